"""STAC search against a real STAC API (rustac serve) holding the demo items."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import REPO

from eopack.aoi import load_aoi
from eopack.errors import EopackError
from eopack.search import run_search
from eopack.search.manifest import (
    aoi_product_ids,
    ids_in_collections,
    read_aoi_index,
    read_manifest,
    union_products,
    write_union,
)
from eopack.search.stac import datetime_interval, search_stac

AOI_DIR = REPO / "config" / "demo" / "aoi"
SEARCH = {
    "backend": "stac",
    "stac_url": "http://unused.invalid",
    "collections": ["sentinel-1-grd"],
    "images_limit": 10,
    "filters": {},
}
# AOI, range -> sensing starts of the demo products that must be found (see eopack.demo.s1world).
EXPECTED = {
    ("alps", "2021-03-01", "2021-03-31"): ["20210310T053012"],
    ("alps", "2023-07-01", "2023-07-31"): ["20230714T052433", "20230726T172041"],
    ("rhine", "2021-03-01", "2021-03-31"): ["20210310T053012"],
    ("rhine", "2023-07-01", "2023-07-31"): ["20230705T053450", "20230714T052433"],
    ("lisbon", "2021-03-01", "2021-03-31"): ["20210315T183620", "20210322T183105"],
    ("lisbon", "2023-07-01", "2023-07-31"): ["20230719T063327"],
}


def sensing(product_id: str) -> str:
    return product_id.split("_")[4]


@pytest.mark.parametrize(("aoi", "start", "end"), sorted(EXPECTED))
def test_manifest_per_aoi_and_range(world, world_env, tmp_path, aoi, start, end):
    out = tmp_path / aoi / f"{start}_{end}.geojson"
    kept = run_search(AOI_DIR / f"{aoi}.geojson", start, end, SEARCH, out)
    assert [sensing(p.id) for p in kept] == EXPECTED[(aoi, start, end)]
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection"
    by_id = {p.product_id: p for p in world.products}
    for feature in doc["features"]:
        product = by_id[feature["id"]]  # id = full product id, not the STAC item id
        props = feature["properties"]
        assert props["collection"] == "sentinel-1-grd"
        assert props["source"] == {"bucket": "sentinel-s1-l1c", "prefix": product.prefix}
        assert props["mode"] == product.product_id.split("_")[1]
        assert props["polarisations"]
        assert props["platform"].startswith("sentinel-1")
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_manifest_bytes_are_stable(world, world_env, tmp_path):
    out = tmp_path / "m.geojson"
    run_search(AOI_DIR / "alps.geojson", "2023-07-01", "2023-07-31", SEARCH, out)
    first, mtime = out.read_bytes(), out.stat().st_mtime_ns
    run_search(AOI_DIR / "alps.geojson", "2023-07-01", "2023-07-31", SEARCH, out)
    assert out.read_bytes() == first
    assert out.stat().st_mtime_ns == mtime  # unchanged answers leave the file untouched


def test_end_day_is_included(world, world_env):
    aoi = load_aoi(AOI_DIR / "lisbon.geojson").geometry
    url = world_env["EOPACK_STAC_URL"]
    found = search_stac(url, ["sentinel-1-grd"], aoi, "2021-03-22", "2021-03-22", {})
    assert [sensing(p.id) for p in found] == ["20210322T183105"]
    assert datetime_interval("2021-03-22", "2021-03-22").endswith("2021-03-22T23:59:59.999999Z")


def test_client_side_filters(world, world_env):
    aoi = load_aoi(AOI_DIR / "rhine.geojson").geometry
    url = world_env["EOPACK_STAC_URL"]
    dual = search_stac(
        url, ["sentinel-1-grd"], aoi, "2023-07-01", "2023-07-31", {"polarisations": ["VH"]}
    )
    assert dual == []  # EW is HH+HV, the IW product is VV only
    iw = search_stac(
        url, ["sentinel-1-grd"], aoi, "2023-07-01", "2023-07-31", {"instrument_modes": ["IW"]}
    )
    assert [p.mode for p in iw] == ["IW"]


def test_images_limit_cuts_and_warns(world, world_env, tmp_path, caplog):
    search = {**SEARCH, "images_limit": 1}
    with caplog.at_level(logging.WARNING, logger="eopack"):
        kept = run_search(
            AOI_DIR / "lisbon.geojson", "2021-03-01", "2021-03-31", search, tmp_path / "m.geojson"
        )
    assert [sensing(p.id) for p in kept] == ["20210315T183620"]  # earliest first
    assert (
        "There is a limit of 1 images per AOI (lisbon) and range dates (2021-03-01 to 2021-03-31). "
        "Thus, only 1 from 2 will be used!"
    ) in caplog.text


def test_the_log_says_when_the_environment_chose_the_stac_api(world, world_env, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="eopack"):
        run_search(AOI_DIR / "alps.geojson", "2021-03-01", "2021-03-31", SEARCH, tmp_path / "m")
    url = world_env["EOPACK_STAC_URL"]
    assert f"EOPACK_STAC_URL={url} overrides search.stac_url (http://unused.invalid)" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eopack"):
        run_search(
            AOI_DIR / "alps.geojson",
            "2021-03-01",
            "2021-03-31",
            {**SEARCH, "stac_url": url},
            tmp_path / "n",
        )
    assert "overrides" not in caplog.text


def test_union_has_each_product_once(world, world_env, tmp_path):
    paths = []
    for aoi, start, end in sorted(EXPECTED):
        out = tmp_path / aoi / f"{start}_{end}.geojson"
        run_search(AOI_DIR / f"{aoi}.geojson", start, end, SEARCH, out)
        paths.append(out)
    union = union_products(paths)
    assert len(union) == len({p.id for p in union}) == 7
    assert sum(len(read_manifest(p)) for p in paths) == 9  # P1 and the EW product twice


def test_union_writes_the_aoi_index(world, world_env, tmp_path):
    """products_by_aoi.json: AOI -> its distinct product ids over its date ranges; byte-stable."""
    paths, aois = [], []
    for aoi, start, end in sorted(EXPECTED):
        out = tmp_path / aoi / f"{start}_{end}.geojson"
        run_search(AOI_DIR / f"{aoi}.geojson", start, end, SEARCH, out)
        paths.append(out)
        aois.append(aoi)
    products, by_aoi = tmp_path / "products.geojson", tmp_path / "products_by_aoi.json"
    write_union(paths, products, aois, by_aoi)
    index = read_aoi_index(by_aoi)
    assert sorted(index) == sorted(set(aois))
    for aoi in index:
        wanted = sorted({t for (a, _, _), ts in EXPECTED.items() if a == aoi for t in ts})
        assert sorted({sensing(pid) for pid in index[aoi]}) == wanted
        assert index[aoi] == sorted(index[aoi])
        assert aoi_product_ids(by_aoi, aoi) == tuple(index[aoi])
    assert aoi_product_ids(by_aoi, "nowhere") == ()
    assert set(ids_in_collections(products, ["sentinel-1-grd"])) == {
        pid for ids in index.values() for pid in ids
    }
    assert ids_in_collections(products, ["sentinel-2-l2a"]) == ()
    before = (by_aoi.read_bytes(), by_aoi.stat().st_mtime_ns)
    write_union(paths, products, aois, by_aoi)  # same answers: the file is not touched
    assert (by_aoi.read_bytes(), by_aoi.stat().st_mtime_ns) == before


def test_cached_product_lists_follow_the_file(tmp_path):
    """The DAG reads the union many times: parsed once, but a rewritten file is read again."""
    by_aoi = tmp_path / "products_by_aoi.json"
    by_aoi.write_text(json.dumps({"a": ["P1"]}))
    assert aoi_product_ids(by_aoi, "a") == ("P1",)
    by_aoi.write_text(json.dumps({"a": ["P1", "P2"]}))
    assert aoi_product_ids(by_aoi, "a") == ("P1", "P2")
    by_aoi.write_text("[1, 2]")
    with pytest.raises(EopackError, match=r"products_by_aoi\.json: not an AOI -> product ids"):
        read_aoi_index(by_aoi)


def test_unreachable_stac_api_is_one_line(tmp_path, monkeypatch):
    from eopack.demo.stacserver import free_port

    monkeypatch.setenv("EOPACK_STAC_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EopackError, match=r"^STAC API http://127\.0\.0\.1:\d+: unreachable"):
        run_search(
            AOI_DIR / "alps.geojson",
            "2021-03-01",
            "2021-03-02",
            {**SEARCH, "timeout_s": 2},
            tmp_path / "m.geojson",
        )
    assert not (tmp_path / "m.geojson").exists()


def test_antimeridian_footprint_matches_split_aoi(tmp_path):
    """The real productInfo footprint of a product across 180° (MultiPolygon) hits a split AOI."""
    from eopack.search.filters import keep_product
    from eopack.search.manifest import Product

    info = json.loads(
        (
            REPO
            / "tests/fixtures/aws-s1"
            / "S1A_IW_GRDH_1SDV_20230726T183302_20230726T183327_049598_05F6CA_31E7.productInfo.json"
        ).read_text()
    )
    product = Product(
        id=info["id"],
        collection="sentinel-1-grd",
        datetime="2023-07-26T18:33:02Z",
        platform="sentinel-1a",
        mode="IW",
        polarisations=("VV", "VH"),
        geometry=info["footprint"],
        bucket="sentinel-s1-l1c",
        prefix=info["path"],
    )
    ring = [[[179, 61.5], [181, 61.5], [181, 62], [179, 62], [179, 61.5]]]
    aoi_file = tmp_path / "dateline.geojson"
    aoi_file.write_text(json.dumps({"type": "Polygon", "coordinates": ring}))
    aoi = load_aoi(aoi_file).geometry
    assert keep_product(product, aoi, "2023-07-26", "2023-07-26", {})
    assert not keep_product(product, aoi, "2023-07-27", "2023-07-28", {})
