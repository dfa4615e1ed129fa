"""The demo optical items must have Earth Search v1's shapes and cover the demo AOIs and ranges."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from conftest import REPO
from shapely.geometry import mapping, shape

from eopack.aoi import load_aoi
from eopack.demo.opticalworld import (
    LANDSAT,
    OPTICAL_COLLECTIONS,
    S2_L1C,
    S2_L2A,
    build_optical_items,
    landsat_product_id,
    reflectance_conversion_factor,
    s2_relative_orbit,
)
from eopack.s3 import parse_s3_uri
from eopack.search.stac import datetime_interval

AOIS = {
    name: load_aoi(REPO / "config" / "demo" / "aoi" / f"{name}.geojson").geometry
    for name in ("alps", "rhine", "lisbon")
}
RANGES = [
    tuple(r) for r in yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["date_ranges"]
]
R1, R2 = RANGES

# What each AOI and range must find, per collection (S2: the same stems in L1C and L2A).
S2_EXPECTED = {
    ("alps", R1): ["S2B_32TPT_20210312", "S2A_32TPT_20210317"],
    ("alps", R2): ["S2A_32TPT_20230715"],  # S2B 20230717 covers only the tile's east strip
    ("rhine", R1): ["S2A_32UMU_20210330"],
    ("rhine", R2): ["S2A_32UMU_20230731"],
    ("lisbon", R1): ["S2A_29SMC_20210328"],
    ("lisbon", R2): ["S2B_29SMC_20230731"],
}
LANDSAT_EXPECTED = {
    ("alps", R1): ["LC08_L2SP_193027_20210313_02_T1", "LC08_L2SP_193027_20210329_02_T1"],
    ("alps", R2): ["LC09_L2SP_193027_20230717_02_T2"],
    ("rhine", R1): ["LC08_L2SP_195027_20210311_02_T1"],
    ("rhine", R2): ["LC08_L2SP_195027_20230707_02_T1", "LC09_L2SP_195027_20230731_02_T1"],
    ("lisbon", R1): [],
    ("lisbon", R2): ["LC09_L2SP_204033_20230730_02_T1"],
}


def expected_ids(collection: str, aoi: str, rng: tuple[str, str]) -> list[str]:
    if collection == LANDSAT:
        return LANDSAT_EXPECTED[(aoi, rng)]
    level = "L1C" if collection == S2_L1C else "L2A"
    return [f"{stem}_0_{level}" for stem in S2_EXPECTED[(aoi, rng)]]


S2_URI = re.compile(
    r"^(?P<mission>S2[AB])_MSI(?P<level>L1C|L2A)_(?P<start>\d{8}T\d{6})_N(?P<pb>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<gen>\d{8}T\d{6})\.SAFE$"
)
S2_ID = re.compile(r"^(S2[AB])_(\d{2})([C-X])([A-Z]{2})_(\d{8})_0_(L1C|L2A)$")
LANDSAT_ID = re.compile(r"^(LC0[89])_L2SP_(\d{3})(\d{3})_(\d{8})_02_(T[12])$")
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


@pytest.fixture(scope="module")
def items() -> list[dict[str, Any]]:
    return build_optical_items()


def of(items: list[dict[str, Any]], collection: str) -> list[dict[str, Any]]:
    return [i for i in items if i["collection"] == collection]


def when(item: dict[str, Any]) -> datetime:
    return datetime.strptime(item["properties"]["datetime"], ISO)


def in_range(item: dict[str, Any], rng: tuple[str, str]) -> bool:
    return date.fromisoformat(rng[0]) <= when(item).date() <= date.fromisoformat(rng[1])


def local_hits(items: list[dict[str, Any]], collection: str, aoi: str, rng: tuple[str, str]):
    found = [
        i
        for i in of(items, collection)
        if shape(i["geometry"]).intersects(AOIS[aoi]) and in_range(i, rng)
    ]
    return [i["id"] for i in sorted(found, key=when)]


# --------------------------------------------------------------------------------------------
# Determinism and overall shape
# --------------------------------------------------------------------------------------------


def test_build_is_deterministic(items):
    again = build_optical_items()
    assert again == items
    assert json.dumps(again, sort_keys=True) == json.dumps(items, sort_keys=True)


def test_same_json_in_another_process(items):
    code = (
        "import json; from eopack.demo.opticalworld import build_optical_items; "
        "print(json.dumps(build_optical_items(), sort_keys=True))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == json.dumps(items, sort_keys=True)


def test_collections_sizes_and_unique_ids(items):
    assert {i["collection"] for i in items} == set(OPTICAL_COLLECTIONS)
    for collection in OPTICAL_COLLECTIONS:
        ids = [i["id"] for i in of(items, collection)]
        assert 6 <= len(ids) <= 10, collection
        assert len(set(ids)) == len(ids)
    for item in items:
        assert item["type"] == "Feature" and item["stac_version"] == "1.0.0"
        assert item["stac_extensions"] and all(
            e.startswith("https://") for e in item["stac_extensions"]
        )
        # the STAC server adds self/parent/collection/root itself, as Earth Search's does
        assert not {link["rel"] for link in item["links"]} & {
            "self",
            "parent",
            "collection",
            "root",
        }


def test_geometry_is_closed_ccw_and_bbox_matches(items):
    for item in items:
        geom = item["geometry"]
        assert geom["type"] == "Polygon"
        ring = geom["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        poly = shape(geom)
        assert poly.is_valid and poly.exterior.is_ccw
        assert item["bbox"] == pytest.approx(list(poly.bounds))


# --------------------------------------------------------------------------------------------
# Sentinel-2
# --------------------------------------------------------------------------------------------


def test_relative_orbit_formula_matches_real_products():
    # (mission, absolute orbit from s2:granule_id / datatake, R from s2:product_uri) of real items
    real = [
        ("S2A", 41859, 106),  # S2A_MSIL2A_20230628T070631_N0509_R106_T39QTA
        ("S2A", 35167, 135),  # S2A_MSIL1C_20220317T074651_N0400_R135_T36MZB
        ("S2B", 36143, 81),  # S2B_MSIL1C_20240206T131259_N0510_R081_T27VWK
        ("S2B", 25544, 64),  # S2B_MSIL2A_20220126T084129_N0400_R064_T36RUT
        ("S2B", 34041, 124),  # S2B_MSIL2A_20230912T133839_N0509_R124_T22MHD
    ]
    for mission, absolute, relative in real:
        assert s2_relative_orbit(mission, absolute) == relative


def test_reflectance_factor_matches_real_items():
    # s2:reflectance_conversion_factor of real Earth Search items
    assert reflectance_conversion_factor(date(2023, 6, 28)) == pytest.approx(0.9679155, abs=2e-3)
    assert reflectance_conversion_factor(date(2023, 9, 12)) == pytest.approx(0.9857292, abs=2e-3)
    assert reflectance_conversion_factor(date(2024, 2, 6)) == pytest.approx(1.0298276, abs=2e-3)


@pytest.mark.parametrize("collection", [S2_L1C, S2_L2A])
def test_s2_properties_as_earth_search(items, collection):
    level = collection[-3:].upper()
    for item in of(items, collection):
        p = item["properties"]
        mission, zone, band, square, day, id_level = S2_ID.match(item["id"]).groups()
        assert id_level == level
        assert p["platform"] == f"sentinel-2{mission[-1].lower()}"
        assert p["constellation"] == "sentinel-2" and p["instruments"] == ["msi"]
        assert isinstance(p["eo:cloud_cover"], float) and 0 <= p["eo:cloud_cover"] <= 100
        assert p["mgrs:utm_zone"] == int(zone) and isinstance(p["mgrs:utm_zone"], int)
        assert (p["mgrs:latitude_band"], p["mgrs:grid_square"]) == (band, square)
        assert p["grid:code"] == f"MGRS-{zone}{band}{square}"
        assert p["proj:epsg"] == 32600 + int(zone)
        assert p["s2:product_type"] == f"S2MSI{level[1:]}"
        assert re.fullmatch(r"\d{2}\.\d{2}", p["s2:processing_baseline"])
        assert p["s2:sequence"] == "0" and p["s2:datatake_type"] == "INS-NOBS"
        assert 0.96 < p["s2:reflectance_conversion_factor"] < 1.04
        assert 0 <= p["view:sun_azimuth"] < 360 and 20 < p["view:sun_elevation"] < 75
        # Earth Search v1 S2 items carry no sat:* properties; the orbit is in the names.
        assert not [k for k in p if k.startswith("sat:")]
        sensing = when(item)
        assert day == f"{sensing:%Y%m%d}"
        # s2:product_uri agrees with id, datetime, tile, baseline and the absolute orbit
        uri = S2_URI.match(p["s2:product_uri"])
        assert uri, p["s2:product_uri"]
        assert (uri["mission"], uri["level"], uri["tile"]) == (mission, level, zone + band + square)
        assert uri["pb"] == p["s2:processing_baseline"].replace(".", "")
        start = datetime.strptime(uri["start"], "%Y%m%dT%H%M%S")
        generated = datetime.strptime(uri["gen"], "%Y%m%dT%H%M%S")
        assert start < sensing < start + timedelta(minutes=30)
        assert sensing < generated
        assert p["s2:generation_time"] == f"{generated:%Y-%m-%dT%H:%M:%S}.000000Z"
        absolute = int(re.search(r"_A(\d{6})_", p["s2:granule_id"])[1])
        assert s2_relative_orbit(mission, absolute) == int(uri["orbit"])
        assert p["s2:datatake_id"] == (
            f"G{mission}_{uri['start']}_{absolute:06d}_N{p['s2:processing_baseline']}"
        )
        assert p["s2:granule_id"].endswith(f"_T{zone}{band}{square}_N{p['s2:processing_baseline']}")
        assert p["s2:datastrip_id"].startswith(f"{mission}_OPER_MSI_{level}_DS_")
        # baseline history: PB 03.00 from 2021-03-30, 05.09 in 2023
        if sensing < datetime(2021, 3, 30):
            assert p["s2:processing_baseline"] == ("02.09" if level == "L1C" else "02.14")
        elif sensing.year == 2023:
            assert p["s2:processing_baseline"] == "05.09"


def test_s2_geometry_lies_in_its_utm_zone_and_band(items):
    bands = "CDEFGHJKLMNPQRSTUVWX"
    for item in of(items, S2_L1C) + of(items, S2_L2A):
        p = item["properties"]
        lon, lat = shape(item["geometry"]).centroid.coords[0]
        zone = p["mgrs:utm_zone"]
        assert -180 + 6 * (zone - 1) <= lon <= -180 + 6 * zone
        south = -80 + 8 * bands.index(p["mgrs:latitude_band"])
        assert south <= lat <= south + 8


def test_l1c_assets_and_s3_paths(items):
    for item in of(items, S2_L1C):
        p, assets = item["properties"], item["assets"]
        _, zone, band, square, _, _ = S2_ID.match(item["id"]).groups()
        t = when(item)
        # Earth Search's own folder for the item, not the tile
        bucket, key = parse_s3_uri(p["earthsearch:s3_path"])
        assert bucket == "earthsearch-data"
        assert key == f"sentinel-2-l1c/{int(zone)}/{band}/{square}/{t.year}/{t.month}/{item['id']}"
        assert len(assets) == 17  # as a real Earth Search L1C item
        tile = f"tiles/{int(zone)}/{band}/{square}/{t.year}/{t.month}/{t.day}/0/"
        for name, asset in assets.items():
            bucket, key = parse_s3_uri(asset["href"])
            assert bucket == "sentinel-s2-l1c" and key.startswith(tile), (name, key)
        assert assets["red"]["href"].endswith("/B04.jp2")
        assert assets["blue"]["href"].endswith("/B02.jp2") and assets["cirrus"]["eo:bands"]
        assert assets["visual"]["href"].endswith("/TCI.jp2")
        assert assets["thumbnail"]["href"].endswith("/preview.jpg")
        assert assets["tileinfo_metadata"]["href"].endswith("/tileInfo.json")
        assert assets["granule_metadata"]["href"].endswith("/metadata.xml")
        assert assets["red"]["type"] == "image/jp2"
        assert assets["red"]["proj:shape"] == [10980, 10980]
        assert assets["red"]["proj:transform"][2] % 100_000 == 99_980
        assert "earthsearch:boa_offset_applied" not in p


def test_l2a_assets_and_s3_paths(items):
    cogs = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/"
    for item in of(items, S2_L2A):
        p, assets = item["properties"], item["assets"]
        _, zone, band, square, _, _ = S2_ID.match(item["id"]).groups()
        t = when(item)
        bucket, folder = parse_s3_uri(p["earthsearch:s3_path"])
        assert bucket == "sentinel-cogs"
        assert folder == (
            f"sentinel-s2-l2a-cogs/{int(zone)}/{band}/{square}/{t.year}/{t.month}/{item['id']}"
        )
        tile = f"tiles/{int(zone)}/{band}/{square}/{t.year}/{t.month}/{t.day}/0/"
        for name in ("red", "green", "blue", "nir", "scl", "aot", "wvp", "visual"):
            assert (
                assets[name]["href"]
                == f"{cogs}{folder}/"
                + {
                    "red": "B04",
                    "green": "B03",
                    "blue": "B02",
                    "nir": "B08",
                    "scl": "SCL",
                    "aot": "AOT",
                    "wvp": "WVP",
                    "visual": "TCI",
                }[name]
                + ".tif"
            )
            assert assets[name]["type"].endswith("profile=cloud-optimized")
            jp2_bucket, jp2_key = parse_s3_uri(assets[f"{name}-jp2"]["href"])
            assert jp2_bucket == "sentinel-s2-l2a" and jp2_key.startswith(tile)
        assert "cirrus" not in assets
        assert assets["thumbnail"]["href"] == f"{cogs}{folder}/thumbnail.jpg"
        assert assets["granule_metadata"]["href"] == f"{cogs}{folder}/granule_metadata.xml"
        # BOA offset -0.1 from baseline 04.00 on, and the flag saying so
        offset = assets["red"]["raster:bands"][0]["offset"]
        assert p["earthsearch:boa_offset_applied"] is (p["s2:processing_baseline"] >= "04.00")
        assert offset == (-0.1 if p["earthsearch:boa_offset_applied"] else 0)
        # scene classification shares add up with the cloud cover
        shares = [
            v
            for k, v in p.items()
            if k.endswith("_percentage")
            and k
            not in (
                "s2:nodata_pixel_percentage",
                "s2:degraded_msi_data_percentage",
                "s2:saturated_defective_pixel_percentage",
            )
        ]
        assert sum(shares) == pytest.approx(100, abs=0.01)
        cloud = sum(
            p[f"s2:{k}_percentage"]
            for k in ("medium_proba_clouds", "high_proba_clouds", "thin_cirrus")
        )
        assert cloud == pytest.approx(p["eo:cloud_cover"], abs=1e-4)


def test_l1c_and_l2a_describe_the_same_acquisitions(items):
    l1c = {i["id"][:-4]: i for i in of(items, S2_L1C)}
    l2a = {i["id"][:-4]: i for i in of(items, S2_L2A)}
    assert l1c.keys() == l2a.keys()
    for stem, item in l2a.items():
        twin = l1c[stem]
        assert item["properties"]["datetime"] == twin["properties"]["datetime"]
        assert item["geometry"] == twin["geometry"]
        uri = S2_URI.match(item["properties"]["s2:product_uri"])
        twin_uri = S2_URI.match(twin["properties"]["s2:product_uri"])
        assert (uri["start"], uri["orbit"]) == (twin_uri["start"], twin_uri["orbit"])
        derived = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
        assert derived == [
            f"https://earth-search.aws.element84.com/v1/collections/sentinel-2-l1c/items/{stem}_L1C"
        ]
    # one acquisition reaches only part of its tile: L2A says how much has no data
    partial = [i for i in l2a.values() if i["properties"]["s2:nodata_pixel_percentage"] > 0]
    assert [i["id"] for i in partial] == ["S2B_32TPT_20230717_0_L2A"]


# --------------------------------------------------------------------------------------------
# Landsat
# --------------------------------------------------------------------------------------------


def test_landsat_properties_and_ids(items):
    platforms = set()
    for item in of(items, LANDSAT):
        p = item["properties"]
        sensor, path, row, day, category = LANDSAT_ID.match(item["id"]).groups()
        t = when(item)
        assert day == f"{t:%Y%m%d}"
        platforms.add(p["platform"])
        assert p["platform"] == f"landsat-{int(sensor[2:])}"
        if sensor == "LC09":
            assert t.year >= 2022  # Landsat 9 data start in 2022
        assert p["instruments"] == ["oli", "tirs"]
        assert isinstance(p["eo:cloud_cover"], float) and 0 <= p["eo:cloud_cover"] <= 100
        assert (p["landsat:wrs_path"], p["landsat:wrs_row"]) == (path, row)
        assert p["landsat:wrs_type"] == "2" and p["landsat:collection_number"] == "02"
        assert p["landsat:collection_category"] == category
        assert p["landsat:correction"] == "L2SP"
        assert p["landsat:scene_id"] == (
            f"LC{int(sensor[2:])}{path}{row}{t.year}{t.timetuple().tm_yday:03d}LGN00"
        )
        assert p["proj:epsg"] // 100 == 326
        assert 20 < p["view:sun_elevation"] < 75
    assert platforms == {"landsat-8", "landsat-9"}


def test_landsat_assets_in_usgs_bucket(items):
    for item in of(items, LANDSAT):
        _, path, row, day, _ = LANDSAT_ID.match(item["id"]).groups()
        product = landsat_product_id(item)
        # the full USGS id: the Earth Search id plus the processing date
        parts = product.split("_")
        assert "_".join(parts[:4] + parts[5:]) == item["id"]
        assert parts[4] >= day
        folder = (
            f"collection02/level-2/standard/oli-tirs/{day[:4]}/{path}/{row}/{product}/{product}_"
        )
        for name, asset in item["assets"].items():
            bucket, key = parse_s3_uri(asset["href"])
            assert bucket == "usgs-landsat" and key.startswith(folder), (name, key)
            assert asset["storage:requester_pays"] is True
            assert asset["storage:region"] == "us-west-2"
        assets = item["assets"]
        assert assets["red"]["href"].endswith(f"/{product}_SR_B4.TIF")
        assert assets["lwir11"]["href"].endswith(f"/{product}_ST_B10.TIF")
        assert assets["red"]["raster:bands"][0]["scale"] == 2.75e-05
        assert assets["red"]["eo:bands"][0]["common_name"] == "red"
        via = [link["href"] for link in item["links"] if link["rel"] == "via"]
        assert any(href.endswith(f"/{product}_SR") for href in via)


# --------------------------------------------------------------------------------------------
# Coverage of the demo AOIs and date ranges
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("collection", OPTICAL_COLLECTIONS)
@pytest.mark.parametrize("aoi", sorted(AOIS))
@pytest.mark.parametrize("rng", RANGES)
def test_items_over_each_aoi_and_range(items, collection, aoi, rng):
    assert local_hits(items, collection, aoi, rng) == expected_ids(collection, aoi, rng)


@pytest.mark.parametrize("collection", OPTICAL_COLLECTIONS)
def test_items_outside_every_aoi_and_range(items, collection):
    mine = of(items, collection)
    no_aoi = [i for i in mine if not any(shape(i["geometry"]).intersects(a) for a in AOIS.values())]
    no_range = [
        i
        for i in mine
        if not any(in_range(i, r) for r in RANGES)
        and any(shape(i["geometry"]).intersects(a) for a in AOIS.values())
    ]
    assert no_aoi and no_range


@pytest.mark.parametrize("collection", OPTICAL_COLLECTIONS)
def test_last_day_items_over_aois(items, collection):
    """An item sensed on a range's end day, hours after midnight, over an AOI."""
    last = [
        i
        for i in of(items, collection)
        if when(i).date().isoformat() == R2[1]
        and any(shape(i["geometry"]).intersects(a) for a in AOIS.values())
    ]
    assert last and all(when(i).hour >= 10 for i in last)


@pytest.mark.parametrize("collection", OPTICAL_COLLECTIONS)
def test_a_clear_and_a_cloudy_item_over_the_same_aoi_and_range(items, collection):
    """Lets a cloud-cover limit and images_limit's earliest-first cut be told apart."""
    ids = expected_ids(collection, "alps", R1)
    clouds = [next(i for i in items if i["id"] == x)["properties"]["eo:cloud_cover"] for x in ids]
    assert len(clouds) == 2 and min(clouds) < 20 and max(clouds) > 50


# --------------------------------------------------------------------------------------------
# Through the demo STAC API (rustac serve)
# --------------------------------------------------------------------------------------------


def test_world_serves_the_optical_items(world):
    from eopack.demo.landsatworld import with_landsat_checksums

    # served as built, plus file:checksum on the assets of a few Landsat items
    assert world.optical_items == with_landsat_checksums(
        build_optical_items(), world.landsat_scenes
    )
    resp = requests.get(f"{world.stac.url}/collections", timeout=30)
    resp.raise_for_status()
    ids = {c["id"] for c in resp.json()["collections"]}
    assert ids == {"sentinel-1-grd", *OPTICAL_COLLECTIONS}


def _search(world, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = requests.post(f"{world.stac.url}/search", json={"limit": 100, **body}, timeout=30)
    resp.raise_for_status()
    return resp.json()["features"]


@pytest.mark.parametrize("collection", OPTICAL_COLLECTIONS)
@pytest.mark.parametrize("aoi", sorted(AOIS))
@pytest.mark.parametrize("rng", RANGES)
def test_server_search_per_collection(world, collection, aoi, rng):
    found = _search(
        world,
        {
            "collections": [collection],
            "intersects": mapping(AOIS[aoi]),
            "datetime": datetime_interval(*rng),
        },
    )
    assert sorted(f["id"] for f in found) == sorted(expected_ids(collection, aoi, rng))
    local = {i["id"]: i for i in world.optical_items if i["collection"] == collection}
    for feature in found:
        assert feature["collection"] == collection
        props, mine = dict(feature["properties"]), dict(local[feature["id"]]["properties"])
        # rustac re-serialises datetime (…04.697Z for …04.697000Z): compare the instants
        served = datetime.fromisoformat(props.pop("datetime").replace("Z", "+00:00"))
        assert served == datetime.fromisoformat(mine.pop("datetime").replace("Z", "+00:00"))
        assert props == mine
        assert feature["assets"] == local[feature["id"]]["assets"]


def test_server_end_day_search_finds_late_items(world):
    found = _search(
        world,
        {
            "collections": [S2_L1C, S2_L2A],
            "intersects": mapping(AOIS["lisbon"]),
            "datetime": datetime_interval(R2[1], R2[1]),
        },
    )
    assert sorted(f["id"] for f in found) == [
        "S2B_29SMC_20230731_0_L1C",
        "S2B_29SMC_20230731_0_L2A",
    ]


def test_server_keeps_collections_apart(world):
    found = _search(
        world,
        {
            "collections": ["sentinel-1-grd"],
            "intersects": mapping(AOIS["alps"]),
            "datetime": datetime_interval(*R1),
        },
    )
    assert found and all(f["collection"] == "sentinel-1-grd" for f in found)
