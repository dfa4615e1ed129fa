"""The demo world's Sentinel-2 products: real bucket keys per baseline, manifest.safe true to
the bytes, deterministic, read by GDAL's SENTINEL2 driver like a user's SAFE."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from conftest import REPO

from eopack.demo.opticalworld import build_optical_items
from eopack.demo.s2world import (
    DEMO_S2_ITEMS,
    S2DemoProduct,
    _build,
    build_s2_products,
    s2_item_ids,
)
from eopack.safe.manifest import parse_manifest_bytes
from eopack.safe.s2 import S2Product, safe_paths
from eopack.search import run_search

FIXTURES = REPO / "tests" / "fixtures" / "aws-s2"
AOI_DIR = REPO / "config" / "demo" / "aoi"
OLD_L1C = "S2A_29SMC_20210328_0_L1C"  # N0209
OLD_L2A = "S2A_29SMC_20210328_0_L2A"  # N0214
NEW_L1C = "S2B_29SMC_20230731_0_L1C"  # N0509
NEW_L2A = "S2B_29SMC_20230731_0_L2A"  # N0509
N0300_L1C = "S2A_32UMU_20210330_0_L1C"  # PB 03.00: still GML masks


def product(item_id: str) -> S2DemoProduct:
    return build_s2_products([item_id])[0]


def relative(p: S2DemoProduct, key: str) -> str:
    """A key relative to its product (``P/...``) or tile (``T/...``) folder."""
    if key.startswith(p.product_prefix + "/"):
        return "P/" + key.removeprefix(p.product_prefix + "/")
    assert key.startswith(p.tile_prefix + "/"), key
    return "T/" + key.removeprefix(p.tile_prefix + "/")


def sentinelhub_keys(level: str) -> set[str]:
    rows = (FIXTURES / f"sentinelhub_{level}_04.00.csv").read_text().splitlines()
    keys = set()
    for row in rows:
        # s3://sentinel-s2-l1c/... or https://roda.sentinel-hub.com/sentinel-s2-l1c/...
        url = row.split(";")[0]
        key = url.split(f"sentinel-s2-{level.lower()}/", 1)[1]
        parts = key.split("/")
        if parts[0] == "products":
            keys.add("P/" + "/".join(parts[5:]))
        else:
            keys.add("T/" + "/".join(parts[8:]))
    return keys


def eodag_keys(product_type: str) -> set[str]:
    data = yaml.safe_load((FIXTURES / "eodag_aws_sentinel_chunks.yml").read_text())
    keys = set()
    for key in data[product_type]["chunks"]:
        parts = key.split("/")
        keys.add(
            ("P/" + "/".join(parts[5:])) if parts[0] == "products" else "T/" + "/".join(parts[8:])
        )
    return keys


def test_demo_items_are_s2_items_of_the_world():
    assert set(DEMO_S2_ITEMS) <= set(s2_item_ids())
    levels = {(i[-3:], product(i).baseline >= "04.00") for i in DEMO_S2_ITEMS}
    assert levels == {("L1C", False), ("L1C", True), ("L2A", False), ("L2A", True)}
    assert product(OLD_L2A).baseline == "02.14"


def test_recent_keys_are_sentinelhubs_plus_the_json_and_jpeg():
    for item_id, level, extra in (
        (NEW_L1C, "L1C", {"T/preview.jpg"}),
        (NEW_L2A, "L2A", set()),
    ):
        p = product(item_id)
        keys = {relative(p, k) for k in p.objects}
        bucket_only = {"P/productInfo.json", "T/productInfo.json", "T/tileInfo.json", *extra}
        assert keys == sentinelhub_keys(level) | bucket_only


def test_old_keys_are_eodags():
    def keys(item_id: str) -> set[str]:
        p = product(item_id)
        return {relative(p, k) for k in p.objects}

    assert keys(OLD_L2A) == eodag_keys("S2_MSI_L2A")
    assert keys(OLD_L1C) == eodag_keys("S2_MSI_L1C")
    # Baseline 03.00 keeps the old layout (JPEG 2000 masks came with 04.00).
    assert keys(N0300_L1C) == eodag_keys("S2_MSI_L1C")


def test_recent_mapping_is_eopack_safe_paths():
    for item_id in (NEW_L1C, NEW_L2A):
        p = product(item_id)
        expected = safe_paths(
            S2Product(p.name, p.product_prefix, p.tile_prefix, p.granule, p.datastrip)
        )
        assert p.safe_paths == expected


def test_old_l1c_safe_files_are_the_real_manifests():
    """The SAFE paths of the real N0209 manifest, up to the product's own names."""

    def norm(paths: set[str], granule: str, datastrip: str, stem: str) -> set[str]:
        return {p.replace(granule, "G").replace(datastrip, "D").replace(stem, "S") for p in paths}

    real = parse_manifest_bytes((FIXTURES / "S2_MSI_L1C.manifest.safe").read_bytes(), "fixture")
    expected = norm(
        {o.path for o in real},
        "L1C_T43FDA_A029974_20210319T045327",
        "DS_VGS2_20210319T061758_S20210319T045327",
        "T43FDA_20210319T045331",
    )
    p = product(OLD_L1C)
    ours = parse_manifest_bytes(p.safe_files["manifest.safe"], p.name)
    stem = "T29SMC_" + p.name.split("_")[2]
    assert norm({o.path for o in ours}, p.granule, p.datastrip, stem) == expected


@pytest.mark.parametrize("item_id", [OLD_L1C, OLD_L2A, NEW_L1C, NEW_L2A, N0300_L1C])
def test_manifest_sizes_and_md5_equal_the_objects(item_id):
    p = product(item_id)
    files = p.safe_files
    manifest = parse_manifest_bytes(files["manifest.safe"], p.name)
    listed = {o.path for o in manifest}
    assert listed == set(files) - {"manifest.safe"}
    in_bucket = {path.removeprefix(f"{p.name}.SAFE/") for path in p.safe_paths.values()}
    for obj in manifest:
        data = files[obj.path]
        assert obj.size == len(data), obj.path
        assert obj.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest(), obj.path
    # The known gaps: listed, never in the bucket.
    gaps = listed - in_bucket
    assert gaps == set(p.gaps)
    assert {g.split("/")[0] for g in gaps} == (
        {"HTML", "rep_info"} if p.baseline >= "04.00" else {"HTML"}
    )


@pytest.mark.parametrize("item_id", [OLD_L1C, NEW_L2A])
def test_ids_agree_everywhere(item_id):
    p = product(item_id)
    props = p.item["properties"]
    assert p.name + ".SAFE" == props["s2:product_uri"]
    info = json.loads(p.objects[f"{p.product_prefix}/productInfo.json"])
    tile = json.loads(p.objects[f"{p.tile_prefix}/tileInfo.json"])
    assert info["name"] == tile["productName"] == p.name
    assert info["path"] == tile["productPath"] == p.product_prefix
    assert info["datatakeIdentifier"] == props["s2:datatake_id"]
    assert info["tiles"][0]["path"] == tile["path"] == p.tile_prefix
    assert info["tiles"][0]["datastrip"] == tile["datastrip"] == info["datastrips"][0]
    assert tile["datastrip"]["id"] == props["s2:datastrip_id"]
    assert tile["datastrip"]["path"] == f"{p.product_prefix}/datastrip/0"
    assert (tile["utmZone"], tile["latitudeBand"], tile["gridSquare"]) == (29, "S", "MC")
    assert tile["cloudyPixelPercentage"] == props["eo:cloud_cover"]
    assert set(tile) >= {"timestamp", "tileGeometry", "tileDataGeometry"}
    # Granule and datastrip folder names: in the metadata, the manifest, and the item's ids.
    mtd = p.objects[f"{p.product_prefix}/metadata.xml"].decode()
    assert f"<IMAGE_FILE>GRANULE/{p.granule}/IMG_DATA/" in mtd
    assert f'granuleIdentifier="{props["s2:granule_id"]}"' in mtd
    assert f'datastripIdentifier="{props["s2:datastrip_id"]}"' in mtd
    manifest = p.objects[f"{p.product_prefix}/manifest.safe"].decode()
    assert f"./GRANULE/{p.granule}/MTD_TL.xml" in manifest
    assert f"./DATASTRIP/{p.datastrip}/MTD_DS.xml" in manifest
    orbit = props["s2:datatake_id"].split("_")[2]
    assert p.granule.split("_")[2] == f"A{orbit}"
    ds_start = props["s2:datastrip_id"].split("_")[7]
    assert p.granule.endswith(ds_start[1:]) and p.datastrip.endswith(ds_start)
    # The tile folder is the one the item's assets point at.
    hrefs = [a["href"] for a in p.item["assets"].values() if a["href"].startswith("s3://")]
    assert hrefs and all(f"/{p.tile_prefix}/" in h for h in hrefs)


def test_builds_are_deterministic_and_small():
    items = {i["id"]: i for i in build_optical_items()}
    for item_id in (NEW_L2A, OLD_L1C):
        first, second = _build(items[item_id]), _build(items[item_id])
        assert first.objects == second.objects
        assert first.size < 1_000_000
    total = sum(p.size for p in build_s2_products())
    assert total < 3_000_000


def test_pixels_are_reflectance_like():
    p = product(NEW_L2A)
    with rasterio.MemoryFile(p.objects[f"{p.tile_prefix}/R10m/B04.jp2"]) as mem, mem.open() as ds:
        red = ds.read(1)
        assert ds.crs.to_epsg() == 32629 and ds.res == (10.0, 10.0) and red.shape == (120, 120)
    with rasterio.MemoryFile(p.objects[f"{p.tile_prefix}/R10m/B08.jp2"]) as mem, mem.open() as ds:
        nir = ds.read(1)
    # BOA + 1000 offset from 04.00; vegetation is brighter in the NIR than in the red.
    assert red.min() > 1000 and red.max() < 8000 and red.std() > 50
    assert np.mean(nir) > np.mean(red)


def assemble(p: S2DemoProduct, root: Path) -> Path:
    """The SAFE folder from the bucket objects (keys -> SAFE paths) plus the known gaps."""
    for key, path in p.safe_paths.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p.objects[key])
    for rel, data in p.gaps.items():
        (root / f"{p.name}.SAFE" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{p.name}.SAFE" / rel).write_bytes(data)
    return root / f"{p.name}.SAFE"


@pytest.mark.parametrize("item_id", DEMO_S2_ITEMS)
def test_gdal_sentinel2_driver_reads_the_rebuilt_safe(item_id, tmp_path):
    p = product(item_id)
    safe = assemble(p, tmp_path)
    level = p.level
    with rasterio.open(safe / f"MTD_MSI{level}.xml") as ds:
        assert ds.driver == "SENTINEL2"
        subdatasets = ds.subdatasets
        tags = ds.tags()
    suffixes = [s.rsplit(":", 2)[1:] for s in subdatasets]
    assert suffixes == [[r, "EPSG_32629"] for r in ("10m", "20m", "60m", "TCI")]
    assert tags["PROCESSING_BASELINE"] == p.baseline
    assert tags["PRODUCT_URI"] == f"{p.name}.SAFE"
    granule = safe / "GRANULE" / p.granule / "IMG_DATA"
    stem = f"T29SMC_{p.name.split('_')[2]}"
    for sub in subdatasets:
        resolution = sub.rsplit(":", 2)[1]
        with rasterio.open(sub) as ds:
            assert ds.crs.to_epsg() == 32629
            names = [d.split(",")[0] for d in ds.descriptions]
            data = ds.read()
            size = {"10m": 120, "20m": 60, "60m": 20, "TCI": 120}[resolution]
            assert data.shape[1:] == (size, size)
        if resolution == "TCI":
            jp2 = granule / (f"{stem}_TCI.jp2" if level == "L1C" else f"R10m/{stem}_TCI_10m.jp2")
            with rasterio.open(jp2) as src:
                assert np.array_equal(src.read(), data)
            continue
        checked = 0
        for i, name in enumerate(names):
            band = f"B{int(name[1:]):02d}" if name[1:].isdigit() else name  # B4 -> B04
            if level == "L1C":
                jp2 = granule / f"{stem}_{band}.jp2"
            elif band in ("CLD", "SNW"):
                kind = "CLDPRB" if band == "CLD" else "SNWPRB"
                jp2 = safe / "GRANULE" / p.granule / "QI_DATA" / f"MSK_{kind}_{resolution}.jp2"
            else:
                jp2 = granule / f"R{resolution}" / f"{stem}_{band}_{resolution}.jp2"
            with rasterio.open(jp2) as src:
                assert np.array_equal(src.read(1), data[i]), (sub, name)
            checked += 1
        assert checked == len(names) >= 3


def test_world_seeds_the_demo_products_requester_pays(world):
    client = world.client()
    assert [p.item["id"] for p in world.s2_products] == list(DEMO_S2_ITEMS)
    for p in world.s2_products:
        listed = client.list_objects_v2(
            Bucket=p.bucket, Prefix=p.product_prefix + "/", RequestPayer="requester"
        )
        assert {o["Key"] for o in listed["Contents"]} == {
            k for k in p.objects if k.startswith(p.product_prefix + "/")
        }
        key = f"{p.tile_prefix}/tileInfo.json"
        body = client.get_object(Bucket=p.bucket, Key=key, RequestPayer="requester")["Body"]
        assert body.read() == p.objects[key]
    for bucket in ("sentinel-s2-l1c", "sentinel-s2-l2a"):
        payer = client.get_bucket_request_payment(Bucket=bucket)["Payer"]
        assert payer == "Requester"


def test_demo_search_keeps_exactly_the_seeded_s2_products(world, world_env, tmp_path):
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    search = {"backend": "stac", **config["search"]}
    kept = []
    for aoi in sorted(AOI_DIR.glob("*.geojson")):
        for start, end in config["date_ranges"]:
            kept += run_search(aoi, start, end, search, tmp_path / f"{aoi.stem}-{start}.geojson")
    s2 = sorted(p.id for p in kept if p.collection.startswith("sentinel-2"))
    assert s2 == sorted(p.name for p in world.s2_products)
    assert sum(p.collection == "landsat-c2-l2" for p in kept) >= 1
    sources = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["sources"]
    assert sources["sentinel-s2-l1c"] == {"region": "eu-central-1", "requester_pays": True}
    assert sources["sentinel-s2-l2a"] == {"region": "eu-central-1", "requester_pays": True}
    assert sources["usgs-landsat"] == {"region": "us-west-2", "requester_pays": True}
