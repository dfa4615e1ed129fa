"""Landsat C2 L2 scenes: listing, rebuild, verify and zip against the demo world's usgs-landsat
bucket on the local S3 server (requester pays, us-west-2)."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import rasterio

from eopack.archive import zip_safe
from eopack.demo.landsatworld import CHECKSUMS, LANDSAT_BUCKET
from eopack.demo.opticalworld import LANDSAT, landsat_product_id
from eopack.errors import EopackError
from eopack.s3 import SourceBucket, make_client
from eopack.safe import registry
from eopack.safe.landsat import (
    decode_multihash,
    encode_multihash,
    failure_line,
    product_files,
    rebuild_scene,
    verify_scene,
)
from eopack.safe.listing import listing_path
from eopack.safe.rebuild import rebuild_product
from eopack.search.items import item_to_product
from eopack.search.manifest import Product, write_manifest

BUCKET = SourceBucket(LANDSAT_BUCKET, "us-west-2", requester_pays=True)
SHA_SCENE = next(k for k, v in CHECKSUMS.items() if v == "sha2-256")
MD5_SCENE = next(k for k, v in CHECKSUMS.items() if v == "md5")
PLAIN_SCENE = "LC08_L2SP_193027_20210329_20210407_02_T1"  # alps, 2021-03: no checksums


@pytest.fixture(scope="module")
def products(world) -> dict[str, Product]:
    """Search records of every demo Landsat item, as the search writes them."""
    return {
        landsat_product_id(item): item_to_product(item)
        for item in world.optical_items
        if item["collection"] == LANDSAT
    }


@pytest.fixture(scope="module")
def client(world):
    saved = dict(os.environ)
    os.environ.update(world.env())
    try:
        yield make_client("us-west-2")
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def rebuilt(client, products, tmp_path_factory) -> dict[str, Path]:
    """Three scenes (sha2-256 checksums, md5 checksums, none) rebuilt once for the module."""
    root = tmp_path_factory.mktemp("landsat")
    out = {}
    for scene in (SHA_SCENE, MD5_SCENE, PLAIN_SCENE):
        dest = root / scene
        rebuild_scene(client, BUCKET, products[scene], dest, max_workers=4)
        out[scene] = dest
    return out


def copy_scene(src: Path, parent: Path) -> Path:
    """A copy of a rebuilt scene with its listing record, to damage."""
    import shutil

    dest = parent / src.name
    shutil.copytree(src, dest)
    shutil.copy2(listing_path(src.parent, src.name), listing_path(parent, src.name))
    return dest


# --- multihash -------------------------------------------------------------------------------


def test_multihash_sha256_and_md5_round_trip():
    data = b"landsat"
    sha = "1220" + hashlib.sha256(data).hexdigest()
    assert decode_multihash(sha, "x") == ("sha2-256", hashlib.sha256(data).hexdigest())
    assert encode_multihash("sha2-256", hashlib.sha256(data).digest()) == sha
    md5 = encode_multihash("md5", hashlib.md5(data).digest())
    assert md5.startswith("d50110")  # code 0xd5 is a two-byte varint
    assert decode_multihash(md5, "x") == ("md5", hashlib.md5(data).hexdigest())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1340" + "00" * 64, r"^s3://b/k: file:checksum uses multihash code 0x13, which eopack"),
        ("1220abcd", r"^s3://b/k: file:checksum sha2-256 digest has 2 bytes"),
        ("12zz", r"^s3://b/k: file:checksum '12zz' is not hexadecimal$"),
        ("d5", r"^s3://b/k: file:checksum is not a multihash"),
    ],
)
def test_bad_multihash_is_one_clear_error(value, message):
    with pytest.raises(EopackError, match=message):
        decode_multihash(value, "s3://b/k")


# --- search record ---------------------------------------------------------------------------


def test_search_record_keeps_asset_files_and_checksums(world, products):
    sha, plain = products[SHA_SCENE], products[PLAIN_SCENE]
    assert plain.id == PLAIN_SCENE and plain.prefix.endswith(f"/2021/193/027/{PLAIN_SCENE}")
    assert "checksums" not in plain.extra  # Earth Search's shape: no file:checksum
    assert f"{PLAIN_SCENE}_SR_B4.TIF" in plain.extra["asset_files"]
    assert len(sha.extra["checksums"]) == len(sha.extra["asset_files"]) == 20
    assert all(v.startswith("1220") for v in sha.extra["checksums"].values())
    assert all(v.startswith("d50110") for v in products[MD5_SCENE].extra["checksums"].values())
    assert Product.from_feature(sha.to_feature()) == sha


# --- listing ---------------------------------------------------------------------------------


def test_product_files_lists_every_file_of_the_scene(world, client, products):
    scene = next(s for s in world.landsat_scenes if s.product_id == SHA_SCENE)
    files = product_files(client, BUCKET, products[SHA_SCENE])
    assert files.folder == SHA_SCENE and files.prefixes == (scene.prefix,)
    assert set(files.files) == set(scene.objects)
    assert len(files.files) == 27
    # files no asset names: only the listing finds them
    for suffix in ("ST_DRAD.TIF", "ST_EMIS.TIF", "ST_URAD.TIF", "SR_stac.json", "ST_stac.json"):
        assert f"{SHA_SCENE}_{suffix}" in files.files
    assert files.files[f"{SHA_SCENE}_MTL.txt"] == f"{scene.prefix}/{SHA_SCENE}_MTL.txt"
    assert files.sizes == {name: len(data) for name, data in scene.objects.items()}
    assert len(files.checksums) == 20
    name = f"{SHA_SCENE}_SR_B4.TIF"
    assert files.checksums[name] == ("sha2-256", hashlib.sha256(scene.objects[name]).hexdigest())


def test_missing_asset_is_one_error_naming_the_key(client, products):
    product = products[PLAIN_SCENE]
    gone = f"{PLAIN_SCENE}_ST_B11.TIF"
    bad = replace(
        product, extra={**product.extra, "asset_files": [*product.extra["asset_files"], gone]}
    )
    with pytest.raises(EopackError) as caught:
        product_files(client, BUCKET, bad)
    assert str(caught.value) == (
        f"s3://usgs-landsat/{product.prefix}/{gone}: not in the bucket, although the STAC item "
        "names it"
    )


def test_empty_listing_is_one_error(client, products):
    product = products[PLAIN_SCENE]
    ghost = PLAIN_SCENE.replace("20210329", "20210330")
    bad = replace(product, id=ghost, prefix=product.prefix.rsplit("/", 1)[0] + "/" + ghost)
    with pytest.raises(EopackError, match=rf"^s3://usgs-landsat/{bad.prefix}/: no objects"):
        product_files(client, BUCKET, bad)


def test_folder_of_another_scene_is_refused(client, products):
    product = products[PLAIN_SCENE]
    bad = replace(product, id=SHA_SCENE)
    with pytest.raises(EopackError, match=rf"not the folder of scene {SHA_SCENE}$"):
        product_files(client, BUCKET, bad)


def test_refused_without_requester_pays(client, products, tmp_path):
    no_payer = SourceBucket(LANDSAT_BUCKET, "us-west-2", requester_pays=False)
    with pytest.raises(EopackError, match="access denied"):
        rebuild_scene(client, no_payer, products[PLAIN_SCENE], tmp_path / PLAIN_SCENE)
    assert not (tmp_path / PLAIN_SCENE).exists()


# --- rebuild and verify ----------------------------------------------------------------------


@pytest.mark.parametrize("scene", [SHA_SCENE, MD5_SCENE, PLAIN_SCENE])
def test_rebuilt_scene_verifies(world, rebuilt, scene):
    folder = rebuilt[scene]
    objects = next(s for s in world.landsat_scenes if s.product_id == scene).objects
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == objects
    record = listing_path(folder.parent, scene)
    assert record.is_file() and not (folder / record.name).exists()  # beside, not inside
    report = verify_scene(folder, scene)
    assert report["ok"] and report["checked"] == 27 and report["failed"] == 0
    assert report["not_in_manifest"] == []
    by_path = {e["path"]: e for e in report["files"]}
    red = by_path[f"{scene}_SR_B4.TIF"]
    assert red["size"] == red["expected_size"] == len(objects[f"{scene}_SR_B4.TIF"])
    assert red["md5"] == hashlib.md5(objects[f"{scene}_SR_B4.TIF"]).hexdigest()
    if scene == SHA_SCENE:
        assert red["checksum"] == red["expected_checksum"]
        assert red["expected_checksum"].startswith("sha2-256:")
    elif scene == MD5_SCENE:
        assert red["expected_md5"] == red["md5"]
    else:
        assert red["expected_md5"] is None and "expected_checksum" not in red
    # only the listing knows these: size-checked
    drad = by_path[f"{scene}_ST_DRAD.TIF"]
    assert drad["expected_md5"] is None and drad["expected_size"] == drad["size"]


def test_registry_entry(rebuilt, client, products):
    entry = registry.collection("landsat-c2-l2")
    assert entry.bucket == "usgs-landsat" and entry.manifest is None
    assert registry.folder_name(PLAIN_SCENE, "landsat-c2-l2") == PLAIN_SCENE
    assert registry.product_of_folder(PLAIN_SCENE) == PLAIN_SCENE
    files = entry.list_files(client, BUCKET, products[PLAIN_SCENE])
    assert len(files.files) == 27
    assert entry.verify(rebuilt[PLAIN_SCENE], PLAIN_SCENE)["ok"]
    thumbs = [p for pattern in entry.quicklook for p in rebuilt[PLAIN_SCENE].glob(pattern)]
    assert thumbs[0].name == f"{PLAIN_SCENE}_thumb_large.jpeg"


def test_gdal_opens_every_band(world, rebuilt, products):
    folder = rebuilt[SHA_SCENE]
    item = next(i for i in world.optical_items if landsat_product_id(i) == SHA_SCENE)
    tifs = sorted(folder.glob("*.TIF"))
    assert len(tifs) == 19  # SR_B1-7, SR_QA_AEROSOL, 9 ST_*, QA_PIXEL, QA_RADSAT
    for tif in tifs:
        with rasterio.open(tif) as ds:
            assert ds.crs.to_epsg() == item["properties"]["proj:epsg"]
            assert ds.res == (30.0, 30.0)
            assert (ds.transform.c, ds.transform.f) == tuple(
                item["properties"]["proj:transform"][i] for i in (2, 5)
            )
            assert ds.read(1).shape == (ds.height, ds.width)


@pytest.mark.parametrize(
    ("scene", "status", "detail"),
    [
        (SHA_SCENE, "checksum_mismatch", "sha2-256:"),
        (MD5_SCENE, "md5_mismatch", "!= STAC file:checksum"),
    ],
)
def test_corrupted_file_fails_its_checksum(rebuilt, tmp_path, scene, status, detail):
    folder = copy_scene(rebuilt[scene], tmp_path)
    name = f"{scene}_MTL.txt"
    data = bytearray((folder / name).read_bytes())
    data[100] ^= 0x01  # same size, one bit off
    (folder / name).write_bytes(bytes(data))
    report = verify_scene(folder, scene)
    assert not report["ok"] and report["failed"] == 1
    (bad,) = [e for e in report["files"] if e["status"] != "ok"]
    assert (bad["path"], bad["status"]) == (name, status)
    line = failure_line(report)
    assert line.startswith(f"{scene}/{name}: ") and detail in line


def test_truncated_file_fails_its_size(rebuilt, tmp_path):
    folder = copy_scene(rebuilt[PLAIN_SCENE], tmp_path)
    name = f"{PLAIN_SCENE}_ST_EMIS.TIF"  # no asset names it: the listing's size is the check
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[:-100])
    report = verify_scene(folder, PLAIN_SCENE)
    (bad,) = [e for e in report["files"] if e["status"] != "ok"]
    assert bad["status"] == "size_mismatch"
    assert failure_line(report) == (
        f"{PLAIN_SCENE}/{name}: size {len(data) - 100} != listing {len(data)}"
    )


def test_unchecked_corrupt_tiff_is_unreadable(rebuilt, tmp_path):
    folder = copy_scene(rebuilt[PLAIN_SCENE], tmp_path)
    name = f"{PLAIN_SCENE}_QA_RADSAT.TIF"
    data = bytearray((folder / name).read_bytes())
    data[:8] = b"\0" * 8  # no TIFF header any more, same size, no checksum to catch it
    (folder / name).write_bytes(bytes(data))
    (folder / "extra.txt").write_text("x")
    report = verify_scene(folder, PLAIN_SCENE)
    (bad,) = [e for e in report["files"] if e["status"] != "ok"]
    assert (bad["path"], bad["status"]) == (name, "unreadable")
    assert report["not_in_manifest"] == ["extra.txt"]


def test_missing_file_and_missing_record(rebuilt, tmp_path):
    folder = copy_scene(rebuilt[PLAIN_SCENE], tmp_path)
    (folder / f"{PLAIN_SCENE}_ANG.txt").unlink()
    report = verify_scene(folder, PLAIN_SCENE)
    assert failure_line(report) == f"{PLAIN_SCENE}/{PLAIN_SCENE}_ANG.txt: missing"
    listing_path(tmp_path, PLAIN_SCENE).unlink()
    with pytest.raises(EopackError, match=rf"{PLAIN_SCENE}.listing.json: missing \(the rebuild"):
        verify_scene(folder, PLAIN_SCENE)


def test_record_of_another_scene_is_refused(rebuilt, tmp_path):
    folder = copy_scene(rebuilt[PLAIN_SCENE], tmp_path)
    record = listing_path(tmp_path, PLAIN_SCENE)
    doc = json.loads(record.read_text())
    doc["product"] = SHA_SCENE
    record.write_text(json.dumps(doc))
    with pytest.raises(EopackError, match=rf"describes {SHA_SCENE}, expected {PLAIN_SCENE}$"):
        verify_scene(folder, PLAIN_SCENE)


def test_rebuild_resumes_and_replaces_an_earlier_folder(client, products, rebuilt, tmp_path):
    dest = copy_scene(rebuilt[MD5_SCENE], tmp_path)
    (dest / f"{MD5_SCENE}_SR_B1.TIF").write_bytes(b"stale")  # an earlier, bad folder
    staging = tmp_path / f".{MD5_SCENE}.part"
    staging.mkdir()
    (staging / f"{MD5_SCENE}_ANG.txt").write_bytes((dest / f"{MD5_SCENE}_ANG.txt").read_bytes())
    (staging / "left-over.bin").write_bytes(b"x")  # from a run against another listing
    rebuild_scene(client, BUCKET, products[MD5_SCENE], dest, max_workers=2)
    assert not staging.exists()
    assert verify_scene(dest, MD5_SCENE)["ok"]
    assert not (dest / "left-over.bin").exists()


def test_rebuild_product_from_the_search_manifest(world, products, tmp_path, monkeypatch):
    for key, value in world.env().items():
        monkeypatch.setenv(key, value)
    manifest = tmp_path / "products.geojson"
    write_manifest(manifest, [products[PLAIN_SCENE]])
    sources = {"usgs-landsat": {"region": "us-west-2", "requester_pays": True}}
    dest = tmp_path / "safe" / PLAIN_SCENE
    # The workflow's entry point, generic over the registry: the folder name is the id.
    written = rebuild_product(manifest, PLAIN_SCENE, sources, dest, max_workers=2)
    assert len(written) == 27
    assert verify_scene(dest, PLAIN_SCENE)["ok"]


# --- zip -------------------------------------------------------------------------------------


def test_zip_has_the_single_top_folder_at_acquisition_date(rebuilt, tmp_path):
    folder = rebuilt[PLAIN_SCENE]
    (folder / ".snakemake_timestamp").touch()
    try:
        zip_safe(folder, tmp_path / f"{PLAIN_SCENE}.zip")
    finally:
        (folder / ".snakemake_timestamp").unlink()
    with zipfile.ZipFile(tmp_path / f"{PLAIN_SCENE}.zip") as archive:
        infos = archive.infolist()
        assert archive.testzip() is None
    names = [i.filename for i in infos]
    assert len(names) == 27
    assert {n.split("/", 1)[0] for n in names} == {PLAIN_SCENE}
    assert all(n.count("/") == 1 for n in names)
    assert {i.date_time for i in infos} == {(2021, 3, 29, 0, 0, 0)}
