"""Item normalisation per collection, client-side filters and the server-side filter objects."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import cql2
import pytest
from conftest import REPO
from shapely.geometry import box

from eopack.aoi import load_aoi
from eopack.demo.stacproxy import QueryStacProxy
from eopack.errors import EopackError
from eopack.search import run_search
from eopack.search.filters import keep_product, stac_cql2, stac_query
from eopack.search.items import item_to_product
from eopack.search.manifest import Product, apply_images_limit, limit_rank
from eopack.search.stac import search_stac

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[10.0, 47.0], [11.0, 47.0], [11.0, 48.0], [10.0, 48.0], [10.0, 47.0]]],
}
AOI = box(10.2, 47.2, 10.4, 47.4)


def s2_item(collection: str = "sentinel-2-l2a", cloud: float = 12.5) -> dict:
    level = "L2A" if collection.endswith("l2a") else "L1C"
    uri = f"S2B_MSI{level}_20210312T102019_N0209_R065_T32TPT_20210312T122712.SAFE"
    return {
        "type": "Feature",
        "id": f"S2B_32TPT_20210312_0_{level}",
        "collection": collection,
        "geometry": SQUARE,
        "properties": {
            "datetime": "2021-03-12T10:27:31.024000Z",
            "platform": "sentinel-2b",
            "eo:cloud_cover": cloud,
            "s2:product_uri": uri,
            "s2:product_type": f"S2MSI{level[1:]}",
        },
        "assets": {},
    }


def landsat_item(cloud: float = 40.0, s3: bool = True) -> dict:
    scene = "LC08_L2SP_195027_20210311_20210317_02_T1"
    folder = f"collection02/level-2/standard/oli-tirs/2021/195/027/{scene}"
    asset = {"href": f"https://landsatlook.usgs.gov/data/{folder}/{scene}_SR_B4.TIF"}
    if s3:
        asset["alternate"] = {"s3": {"href": f"s3://usgs-landsat/{folder}/{scene}_SR_B4.TIF"}}
    return {
        "type": "Feature",
        "id": scene,
        "collection": "landsat-c2-l2",
        "geometry": SQUARE,
        "properties": {
            "datetime": "2021-03-11T10:05:11.123000Z",
            "platform": "landsat-8",
            "instruments": ["oli", "tirs"],
            "eo:cloud_cover": cloud,
            "landsat:correction": "L2SP",
        },
        "assets": {"red": asset},
    }


S1_ID = "S1A_IW_GRDH_1SDV_20230726T172041_20230726T172106_049597_05F6A1_D7E2"
S1_FOLDER = f"s3://sentinel-s1-l1c/GRD/2023/7/26/IW/DV/{S1_ID}"


def s1_item(assets: dict[str, str], identifier: bool = True) -> dict:
    """An Earth Search S1 item without ``earthsearch:s3_path``: ``assets`` {key: path}."""
    props = {"datetime": "2023-07-26T17:20:53Z", "sar:instrument_mode": "IW"}
    if identifier:
        props["s1:product_identifier"] = S1_ID
    return {
        "type": "Feature",
        "id": S1_ID[:-5],
        "collection": "sentinel-1-grd",
        "geometry": SQUARE,
        "properties": props,
        "assets": {key: {"href": f"{S1_FOLDER}/{path}"} for key, path in assets.items()},
    }


MEASUREMENTS_FIRST = {
    "vh": "measurement/iw-vh.tiff",
    "vv": "measurement/iw-vv.tiff",
    "schema-calibration-vv": "annotation/calibration/calibration-iw-vv.xml",
    "schema-product-vv": "annotation/iw-vv.xml",
    "safe-manifest": "manifest.safe",
    "thumbnail": "preview/quick-look.png",
}


@pytest.mark.parametrize(
    ("assets", "identifier"),
    [
        (MEASUREMENTS_FIRST, True),  # the safe-manifest asset's folder
        ({k: v for k, v in MEASUREMENTS_FIRST.items() if k != "safe-manifest"}, True),  # the id
        ({"vv": "measurement/iw-vv.tiff", "vh": "measurement/iw-vh.tiff"}, False),  # SAFE subfolder
        ({"vv": "measurement/iw-vv.tiff", "cal": "annotation/calibration/c.xml"}, False),  # shared
    ],
    ids=["manifest-asset", "product-id", "measurement-only", "common-folder"],
)
def test_s1_prefix_without_s3_path_is_the_product_folder(assets, identifier):
    """Measurement assets may come first: the prefix is still the product's folder."""
    product = item_to_product(s1_item(assets, identifier))
    assert (product.bucket, product.prefix) == (
        "sentinel-s1-l1c",
        f"GRD/2023/7/26/IW/DV/{S1_ID}",
    )


def s1(**changes) -> Product:
    base = {
        "id": "S1A_IW_GRDH_1SDV_20210310T053012_20210310T053037_036920_0457B2_1A2B",
        "collection": "sentinel-1-grd",
        "datetime": "2021-03-10T05:30:24Z",
        "platform": "sentinel-1a",
        "mode": "IW",
        "polarisations": ("VV", "VH"),
        "geometry": SQUARE,
        "bucket": "sentinel-s1-l1c",
        "prefix": "GRD/2021/3/10/IW/DV/x",
        "orbit_state": "descending",
        "product_type": "GRD",
    }
    return Product(**{**base, **changes})


@pytest.mark.parametrize("collection", ["sentinel-2-l1c", "sentinel-2-l2a"])
def test_s2_item_gives_esa_name_and_safe_source(collection):
    product = item_to_product(s2_item(collection))
    level = collection[-3:].upper()
    assert product.id == f"S2B_MSI{level}_20210312T102019_N0209_R065_T32TPT_20210312T122712"
    assert product.bucket == f"sentinel-s2-{collection[-3:]}"
    assert product.prefix == f"products/2021/3/12/{product.id}"
    assert product.cloud_cover == 12.5 and product.polarisations == ()
    assert product.product_type == f"S2MSI{level[1:]}"
    assert product.extra["tile"] == "32TPT"
    feature = product.to_feature()
    assert feature["properties"]["cloud_cover"] == 12.5
    assert Product.from_feature(feature) == product


def test_s2_item_with_foreign_product_uri_is_refused():
    item = s2_item()
    item["properties"]["s2:product_uri"] = "not-a-name.SAFE"
    with pytest.raises(EopackError, match="S2B_32TPT_20210312_0_L2A: s2:product_uri"):
        item_to_product(item)


@pytest.mark.parametrize("with_s3", [True, False])
def test_landsat_item_source_in_usgs_bucket(with_s3):
    product = item_to_product(landsat_item(s3=with_s3))
    assert product.id == "LC08_L2SP_195027_20210311_20210317_02_T1"
    assert product.bucket == "usgs-landsat"
    assert product.prefix == (
        "collection02/level-2/standard/oli-tirs/2021/195/027/"
        "LC08_L2SP_195027_20210311_20210317_02_T1"
    )
    assert product.mode == "OLI-TIRS" and product.product_type == "L2SP"
    assert product.extra["wrs_path"] == "195" and product.extra["wrs_row"] == "027"


def test_unknown_collection_names_the_item():
    with pytest.raises(EopackError, match="collection 'modis' is not supported"):
        item_to_product({"id": "x", "collection": "modis", "geometry": SQUARE})


def test_cloud_cover_filter_applies_to_optical_only():
    clear = item_to_product(s2_item(cloud=5))
    cloudy = item_to_product(s2_item(cloud=80))
    filters = {"max_cloud_cover": 20}
    assert keep_product(clear, AOI, "2021-03-12", "2021-03-12", filters)
    assert not keep_product(cloudy, AOI, "2021-03-12", "2021-03-12", filters)
    assert keep_product(s1(), AOI, "2021-03-10", "2021-03-10", filters)  # radar: no clouds


def test_sar_filters_do_not_drop_optical_products():
    optical = item_to_product(s2_item())
    filters = {"instrument_modes": ["IW"], "polarisations": ["VV"], "orbit_states": ["ascending"]}
    assert keep_product(optical, AOI, "2021-03-01", "2021-03-31", filters)
    assert not keep_product(s1(), AOI, "2021-03-01", "2021-03-31", filters)  # descending


def test_product_type_and_platform_filters():
    optical = item_to_product(s2_item())
    assert keep_product(optical, AOI, "2021-03-12", "2021-03-12", {"product_types": ["s2msi2a"]})
    assert not keep_product(optical, AOI, "2021-03-12", "2021-03-12", {"product_types": ["GRD"]})
    assert keep_product(s1(), AOI, "2021-03-10", "2021-03-10", {"product_types": ["GRD"]})
    assert not keep_product(s1(), AOI, "2021-03-10", "2021-03-10", {"platforms": ["sentinel-1b"]})


def test_stripmap_filter_matches_every_beam():
    beam = s1(mode="S3")
    assert keep_product(beam, AOI, "2021-03-10", "2021-03-10", {"instrument_modes": ["SM"]})
    assert not keep_product(beam, AOI, "2021-03-10", "2021-03-10", {"instrument_modes": ["IW"]})


def test_server_query_for_sar():
    filters = {
        "platforms": ["Sentinel-1A"],
        "instrument_modes": ["S2", "IW"],
        "orbit_states": ["ascending"],
        "polarisations": ["VV"],  # array semantics differ between servers: client-side only
        "max_cloud_cover": 10,  # optical only
    }
    assert stac_query(filters, ["sentinel-1-grd"]) == {
        "platform": {"in": ["sentinel-1a"]},
        "sar:instrument_mode": {"in": ["IW", "SM"]},
        "sat:orbit_state": {"in": ["ascending"]},
    }


def test_server_query_for_optical_and_mixed():
    filters = {"platforms": ["sentinel-2a"], "max_cloud_cover": 30, "instrument_modes": ["IW"]}
    assert stac_query(filters, ["sentinel-2-l2a", "landsat-c2-l2"]) == {
        "platform": {"in": ["sentinel-2a"]},
        "eo:cloud_cover": {"lte": 30.0},
    }
    # A mixed search may only send what holds for every collection.
    assert stac_query(filters, ["sentinel-1-grd", "sentinel-2-l2a"]) == {
        "platform": {"in": ["sentinel-2a"]}
    }
    assert stac_query({}, ["sentinel-1-grd"]) == {}


def test_server_cql2_is_valid_and_means_the_same():
    filters = {"platforms": ["sentinel-2b"], "max_cloud_cover": 20}
    expression = stac_cql2(filters, ["sentinel-2-l2a"])
    expr = cql2.Expr(expression)
    expr.validate()
    assert expr.to_text() == "platform IN ('sentinel-2b') AND eo:cloud_cover <= 20"
    assert expr.matches(s2_item(cloud=20.0))
    assert not expr.matches(s2_item(cloud=20.5))
    assert stac_cql2({}, ["sentinel-2-l2a"]) is None
    single = stac_cql2({"max_cloud_cover": 5}, ["landsat-c2-l2"])
    assert single == {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 5.0]}


def test_images_limit_keeps_least_cloudy_then_earliest(caplog):
    def optical(day: int, cloud: float) -> Product:
        product = item_to_product(s2_item(cloud=cloud))
        return replace(product, id=f"S2B_{day:02d}", datetime=f"2021-03-{day:02d}T10:00:00Z")

    products = [optical(1, 50), optical(2, 3), optical(3, 3), optical(4, 0.5), optical(5, 90)]
    with caplog.at_level(logging.WARNING):
        kept = apply_images_limit(products, 3, "alps", "2021-03-01", "2021-03-31")
    assert [p.id for p in kept] == ["S2B_02", "S2B_03", "S2B_04"]  # manifest order: time
    assert (
        "There is a limit of 3 images per AOI (alps) and range dates (2021-03-01 to "
        "2021-03-31). Thus, only 3 from 5 will be used!"
    ) in caplog.text
    assert limit_rank(s1()) < limit_rank(optical(1, 0.1))  # SAR ranks as cloud-free


AOI_DIR = REPO / "config" / "demo" / "aoi"
ALPS = AOI_DIR / "alps.geojson"
SAR_FILTERS = {"platforms": ["sentinel-1a"], "orbit_states": ["descending"], "polarisations": []}


def test_server_side_filters_only_where_declared(world, world_env):
    """rustac declares no query extension: nothing is sent. Behind a proxy that declares it,
    the same filters go to the server and the answer is identical."""
    aoi = load_aoi(ALPS).geometry
    args = (["sentinel-1-grd"], aoi, "2023-07-01", "2023-07-31", SAR_FILTERS)
    plain = search_stac(world.stac.url, *args)
    with QueryStacProxy(world.stac.url) as proxy:
        served = search_stac(proxy.url, *args)
        sent = [s.params.get("query") for s in proxy.searches()]
        proxy.clear()
        client_only = search_stac(proxy.url, *args, server_side=False)
        assert [s.params.get("query") for s in proxy.searches()] == [None]
    assert sent and sent[0] == {
        "platform": {"in": ["sentinel-1a"]},
        "sat:orbit_state": {"in": ["descending"]},
    }
    assert sorted(p.id for p in served) == sorted(p.id for p in plain)
    assert sorted(p.id for p in client_only) == sorted(p.id for p in plain)
    assert plain  # the case is not vacuous


def test_filters_hold_on_a_server_without_extensions(world, world_env):
    """rustac filters nothing server-side: the client-side check alone gives the answer."""
    aoi = load_aoi(ALPS).geometry
    wanted = search_stac(
        world.stac.url, ["sentinel-1-grd"], aoi, "2023-07-01", "2023-07-31", SAR_FILTERS
    )
    everything = search_stac(
        world.stac.url, ["sentinel-1-grd"], aoi, "2023-07-01", "2023-07-31", {}
    )
    assert len(wanted) < len(everything)
    assert all(p.orbit_state == "descending" for p in wanted)


def test_sentinel2_records_from_the_demo_api(world, world_env, tmp_path):
    out = tmp_path / "alps.geojson"
    search = {"backend": "stac", "stac_url": "x", "collections": ["sentinel-2-l2a"]}
    kept = run_search(AOI_DIR / "alps.geojson", "2021-03-01", "2021-03-31", search, out)
    assert [(p.id[:26], p.cloud_cover) for p in kept] == [
        ("S2B_MSIL2A_20210312T102019", 11.87),
        ("S2A_MSIL2A_20210317T102021", 61.02),
    ]
    feature = json.loads(out.read_text())["features"][0]
    assert feature["properties"]["collection"] == "sentinel-2-l2a"
    assert feature["properties"]["source"]["bucket"] == "sentinel-s2-l2a"
    assert feature["properties"]["source"]["prefix"].startswith("products/2021/3/12/S2B_MSIL2A")


def test_cloud_limit_and_images_limit_on_optical(world, world_env, tmp_path, caplog):
    def ids(**kwargs):
        search = {"backend": "stac", "stac_url": "x", **kwargs}
        found = run_search(
            AOI_DIR / "alps.geojson", "2021-03-01", "2021-03-31", search, tmp_path / "m.geojson"
        )
        # S2: MMM_MSIXXX_<date>T...; Landsat: LXSS_L2SP_PPPRRR_<date>_...
        return [p.id.split("_")[3 if p.collection == "landsat-c2-l2" else 2][:8] for p in found]

    assert ids(collections=["sentinel-2-l1c"], filters={"max_cloud_cover": 20}) == ["20210312"]
    assert ids(collections=["landsat-c2-l2"]) == ["20210313", "20210329"]
    with caplog.at_level(logging.WARNING):
        # Landsat twins over the alps: 71 % and 4.55 % cloud -> the clearer, later one stays.
        assert ids(collections=["landsat-c2-l2"], images_limit=1) == ["20210329"]
    assert "Thus, only 1 from 2 will be used!" in caplog.text


def test_end_day_included_for_optical(world, world_env, tmp_path):
    search = {"backend": "stac", "stac_url": "x", "collections": ["sentinel-2-l1c"]}
    kept = run_search(
        AOI_DIR / "lisbon.geojson", "2023-07-01", "2023-07-31", search, tmp_path / "l.geojson"
    )
    assert [p.id[:26] for p in kept] == ["S2B_MSIL1C_20230731T113319"]


def test_mixed_collections_in_one_manifest(world, world_env, tmp_path):
    search = {
        "backend": "stac",
        "stac_url": "x",
        "collections": ["sentinel-1-grd", "sentinel-2-l2a", "landsat-c2-l2"],
        "filters": {"instrument_modes": ["IW"], "max_cloud_cover": 50},
    }
    kept = run_search(
        AOI_DIR / "rhine.geojson", "2023-07-01", "2023-07-31", search, tmp_path / "r.geojson"
    )
    by_collection = {}
    for p in kept:
        by_collection.setdefault(p.collection, []).append(p.id)
    assert set(by_collection) == {"sentinel-1-grd", "sentinel-2-l2a", "landsat-c2-l2"}
    assert all(p.cloud_cover is None or p.cloud_cover <= 50 for p in kept)
    assert [p.datetime for p in kept] == sorted(p.datetime for p in kept)
