"""SAFE rebuild through filenameMap, verification against manifest.safe, deterministic zips."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from eopack.archive import sensing_time, zip_safe
from eopack.demo.s1world import DEMO_BUCKET
from eopack.errors import EopackError
from eopack.s3 import SourceBucket, make_client
from eopack.safe.manifest import parse_manifest, verify_safe, verify_to_report
from eopack.safe.s1 import parse_product_info, rebuild_safe

FIXTURES = Path(__file__).parent / "fixtures"
BUCKET = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=True)


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_safe_files_are_exactly_the_filename_map(rebuilt):
    for product, dest in rebuilt.values():
        assert tree(dest) == set(product.filename_map)
        assert "productInfo.json" not in tree(dest)
        for safe_path, key in product.filename_map.items():
            assert (dest / safe_path).read_bytes() == product.objects[key]
        assert not list(dest.parent.glob(f".{dest.name}*")), "staging folder left behind"


def test_stripmap_and_rfi_names(rebuilt):
    names = {pid: tree(dest) for pid, (_, dest) in rebuilt.items()}
    stripmap = next(pid for pid in names if pid.startswith("S1A_S1_"))
    assert any(
        n.startswith("measurement/s1a-s1-grd-vv-") and n.endswith("-001.tiff")
        for n in names[stripmap]
    )
    for pid, files in names.items():
        has_rfi = any(n.startswith("annotation/rfi/rfi-") for n in files)
        assert has_rfi == ("_2023" in pid or "_2022" in pid), pid


def test_every_product_verifies(rebuilt, tmp_path):
    reencoded = set()
    for pid, (product, dest) in rebuilt.items():
        report = verify_to_report(dest, tmp_path / f"{pid}.verify.json")
        assert report["ok"], pid
        assert report["checked"] == len(parse_manifest(dest / "manifest.safe"))
        # The bucket's COG re-encodings (one demo product) differ from manifest.safe but are
        # readable GeoTIFFs; every other file matches size and MD5.
        statuses = {f["path"]: f["status"] for f in report["files"]}
        expected = {p: "ok_reencoded" if p in product.originals else "ok" for p in statuses}
        assert statuses == expected, pid
        assert "manifest.safe" in report["not_in_manifest"]
        if product.originals:
            reencoded.add(pid)
            assert set(product.originals) == {p for p in statuses if p.startswith("measurement/")}
    assert [pid[:32] for pid in reencoded] == ["S1A_IW_GRDH_1SDV_20230719T063327"]


def test_md5_mismatch_and_missing_file_fail_with_the_file_name(rebuilt, tmp_path):
    pid, (_, dest) = next(iter(rebuilt.items()))

    copy = tmp_path / dest.name
    shutil.copytree(dest, copy)
    xml = next(p for p in sorted(copy.glob("annotation/*.xml")))
    data = bytearray(xml.read_bytes())
    data[100] ^= 0x01  # same size, different content
    xml.write_bytes(bytes(data))
    out = tmp_path / "v.json"
    with pytest.raises(EopackError) as info:
        verify_to_report(copy, out)
    rel = xml.relative_to(copy).as_posix()
    assert str(info.value).startswith(f"verification failed: {pid}.SAFE/{rel}: MD5 ")
    assert not out.exists()
    failed = json.loads((tmp_path / "v.failed.json").read_text())
    assert not failed["ok"]
    (copy / "preview" / "map-overlay.kml").unlink()
    report = verify_safe(copy)
    statuses = {f["path"]: f["status"] for f in report["files"]}
    assert statuses["preview/map-overlay.kml"] == "missing"
    assert statuses[rel] == "md5_mismatch"


def test_verify_warn_mode_records_and_continues(rebuilt, tmp_path, caplog):
    """verify.on_failure: warn -> verify.json written with ok false, the job goes on."""
    import logging

    pid, (_, dest) = next(iter(rebuilt.items()))
    copy = tmp_path / dest.name
    shutil.copytree(dest, copy)
    (copy / "preview" / "map-overlay.kml").unlink()
    out = tmp_path / "v.json"
    with caplog.at_level(logging.WARNING):
        report = verify_to_report(copy, out, fail=False)
    assert report["ok"] is False
    assert json.loads(out.read_text())["ok"] is False
    assert f"{pid}.SAFE/preview/map-overlay.kml: missing" in caplog.text


def test_reencoded_measurement_is_accepted_when_readable(rebuilt, tmp_path):

    import numpy as np
    import rasterio

    _, dest = next(iter(rebuilt.values()))
    copy = tmp_path / dest.name
    shutil.copytree(dest, copy)
    tiff = sorted(copy.glob("measurement/*.tiff"))[0]
    with rasterio.open(tiff) as src:
        profile, data = src.profile, src.read()
    profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    with rasterio.open(tiff, "w", **profile) as dst:  # like the bucket's COG re-encoding
        dst.write(data)
    report = verify_safe(copy)
    status = {f["path"]: f for f in report["files"]}[tiff.relative_to(copy).as_posix()]
    assert status["status"] == "ok_reencoded"
    assert status["size"] != status["expected_size"]
    assert report["ok"]
    tiff.write_bytes(np.zeros(100, dtype=np.uint8).tobytes())
    assert verify_safe(copy)["ok"] is False


def test_zip_has_one_top_folder_and_is_deterministic(rebuilt, tmp_path):
    for pid, (product, dest) in rebuilt.items():
        first = tmp_path / f"{pid}.zip"
        zip_safe(dest, first)
        digest = hashlib.sha256(first.read_bytes()).hexdigest()
        first.unlink()
        zip_safe(dest, first)
        assert hashlib.sha256(first.read_bytes()).hexdigest() == digest
        with zipfile.ZipFile(first) as archive:
            names = archive.namelist()
            assert names == sorted(names)
            assert set(names) == {f"{pid}.SAFE/{p}" for p in product.filename_map}
            infos = archive.infolist()
            assert {i.date_time for i in infos} == {sensing_time(pid)}
            tiffs = [i for i in infos if i.filename.endswith(".tiff")]
            assert tiffs and all(i.compress_type == zipfile.ZIP_STORED for i in tiffs)


def test_zips_pass_info_zip_tests_and_are_in_streaming_form(rebuilt, tmp_path):
    """Info-ZIP ``unzip -t`` and ``zip -T`` (installed by ``make test``) accept every demo zip.

    Every member is in streaming form (data descriptor) with unix 0644 attributes: the same
    bytes as the zip streamed to S3 (see test_archive.py).
    """
    for pid, (_, dest) in rebuilt.items():
        out = tmp_path / f"{pid}.zip"
        zip_safe(dest, out)
        tested = subprocess.run(["unzip", "-t", str(out)], capture_output=True, text=True)
        assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout
        tested = subprocess.run(["zip", "-T", str(out)], capture_output=True, text=True)
        assert tested.returncode == 0 and "OK" in tested.stdout, tested.stdout
        with zipfile.ZipFile(out) as archive:
            for info in archive.infolist():
                assert info.flag_bits & 0x08, info.filename
                assert (info.create_system, info.external_attr >> 16) == (3, 0o100644)


def test_product_info_fixture_parses():
    raw = (
        FIXTURES
        / "aws-s1"
        / "S1A_IW_GRDH_1SDV_20230726T183302_20230726T183327_049598_05F6CA_31E7.productInfo.json"
    ).read_bytes()
    info = parse_product_info(raw, "fixture")
    assert info.product_id.endswith("_31E7")
    assert (
        info.filename_map[
            "annotation/rfi/rfi-s1a-iw-grd-vv-20230726t183302-20230726t183327-049598-05f6ca-001.xml"
        ]
        == "annotation/rfi/rfi-iw-vv.xml"
    )
    assert len(info.filename_map) == 25


def test_manifest_fixture_parses():
    objects = parse_manifest(
        FIXTURES
        / "aws-s1"
        / "S1A_IW_GRDH_1SDV_20210319T234758_20210319T234823_037074_045D2F_A10E.manifest.safe"
    )
    assert len(objects) == 11
    measurement = [o for o in objects if o.is_measurement]
    assert len(measurement) == 2 and measurement[0].size == 857916006
    assert objects[0].md5 == "1a9b289c56bfeb98ec1afda2510445d2"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{broken", "corrupt productInfo.json"),
        (b"[]", "is not a JSON object"),
        (b'{"id": "X"}', "has no filenameMap"),
        (
            b'{"id": "X", "filenameMap": {"../evil": "a", "manifest.safe": "manifest.safe"}}',
            "not a safe relative path",
        ),
        (b'{"id": "X", "filenameMap": {"a.xml": "a.xml"}}', "lists no manifest.safe"),
    ],
)
def test_bad_product_info(raw, message):
    with pytest.raises(EopackError, match=message):
        parse_product_info(raw, "s3://b/p/productInfo.json")


def test_missing_product_is_a_clear_error(world, world_env, tmp_path):
    client = make_client("eu-central-1")
    dest = tmp_path / "S1A_X.SAFE"
    with pytest.raises(
        EopackError,
        match=r"^s3://sentinel-s1-l1c/GRD/2099/1/1/IW/DV/S1A_X/productInfo.json: object not found$",
    ):
        rebuild_safe(client, BUCKET, "GRD/2099/1/1/IW/DV/S1A_X", "S1A_X", dest)
    assert not dest.exists()
    assert not list(tmp_path.iterdir())


def test_refused_without_requester_pays(world, world_env, tmp_path):
    client = make_client("eu-central-1")
    product = world.products[0]
    dest = tmp_path / f"{product.product_id}.SAFE"
    no_payer = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=False)
    with pytest.raises(EopackError, match="access denied"):
        rebuild_safe(client, no_payer, product.prefix, product.product_id, dest)
    assert not dest.exists()
