"""S3 -> S3 delivery against the local S3 server: server-side copies (no object bytes through
the host, proven by the server's traffic counter), verification from HEADs, the completion
marker written last, and one-line errors for destinations that cannot be written."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eopack.deliver import (
    MIB,
    LocalDestination,
    S3Destination,
    copy_safe_to_s3,
    parse_destination,
    part_ranges,
    upload_file,
)
from eopack.demo.s1world import DEMO_BUCKET, DemoProduct
from eopack.demo.s3server import Intercept, split_path
from eopack.errors import EopackError
from eopack.s3 import SourceBucket, make_client

RP_SOURCE = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=True)
REGION = {"LocationConstraint": "eu-central-1"}
BIG_TIFF = "measurement/iw-vv.tiff"  # bucket key replaced by a 12 MiB object in big_source


def _new_bucket(world: Any, stem: str) -> str:
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(Bucket=name, CreateBucketConfiguration=REGION)
    return name


@pytest.fixture
def dest_bucket(world: Any) -> str:
    return _new_bucket(world, "eopack-dest")


def _kms_bucket(world: Any) -> str:
    """A destination whose default encryption is SSE-KMS: its ETags are not MD5s."""
    name = _new_bucket(world, "eopack-kms")
    rule = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/eopack-test"}
    world.client().put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]},
    )
    return name


@pytest.fixture
def client(world_env: dict[str, str]) -> Any:
    return make_client("eu-central-1")


@pytest.fixture(scope="module")
def big_source(world: Any) -> Iterator[tuple[SourceBucket, DemoProduct, bytes]]:
    """A requester-pays copy of one demo product whose VV measurement is 12 MiB (multipart)."""
    product = world.products[1]
    big = os.urandom(12 * MIB + 12345)
    name = _new_bucket(world, "eopack-rp-src")
    raw = world.client()
    for key, data in product.objects.items():
        body = big if key == BIG_TIFF else data
        raw.put_object(Bucket=name, Key=f"{product.prefix}/{key}", Body=body)
    raw.put_bucket_request_payment(Bucket=name, RequestPaymentConfiguration={"Payer": "Requester"})
    yield SourceBucket(name, "eu-central-1", requester_pays=True), product, big


def _copy(client: Any, product: DemoProduct, bucket: str, **kwargs: Any) -> dict[str, Any]:
    source = kwargs.pop("source", RP_SOURCE)
    return copy_safe_to_s3(
        client, source, product.prefix, product.product_id, product.filename_map, bucket,
        kwargs.pop("dest_prefix", "deliveries/s1"), 4, **kwargs,
    )  # fmt: skip


def _keys(world: Any, bucket: str) -> set[str]:
    listed = world.client().list_objects_v2(Bucket=bucket)
    return {obj["Key"] for obj in listed.get("Contents", [])}


def _fail_on(client: Any, operation: str, when: Callable[[dict[str, Any]], bool]) -> None:
    """Make ``operation`` fail (like an S3 500) for calls whose parameters match ``when``."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        if when(params):
            error = {"Code": "InternalError", "Message": "injected failure"}
            raise ClientError({"Error": error}, operation)

    client.meta.events.register(f"before-parameter-build.s3.{operation}", hook)


def _write_only(s3net: Any, bucket: str, read_objects: bool = True) -> list[str]:
    """Answer as IAM does for a policy granting only s3:PutObject (and s3:GetObject on objects
    when ``read_objects``): HeadBucket and ListObjects get 403. Returns the refused requests."""
    refused: list[str] = []

    def hook(environ: dict[str, Any]) -> Intercept | None:
        name, key = split_path(environ)
        method = environ["REQUEST_METHOD"]
        reading = method in ("GET", "HEAD") and (not key or not read_objects)
        if name == bucket and reading:
            refused.append(f"{method} {key or '?' + environ.get('QUERY_STRING', '')}")
            return Intercept(refuse=True)
        return None

    s3net.hook(hook)
    return refused


# Destinations from config
# --------------------------------------------------------------------------------------------


def test_parse_destination():
    assert parse_destination(None) == LocalDestination(Path("results"))
    assert parse_destination("out/here") == LocalDestination(Path("out/here"))
    assert parse_destination("s3://my-bucket") == S3Destination("my-bucket", "")
    dest = parse_destination("s3://my-bucket/a/b/")
    assert dest == S3Destination("my-bucket", "a/b")
    assert dest.uri("X.SAFE", "manifest.safe") == "s3://my-bucket/a/b/X.SAFE/manifest.safe"
    with pytest.raises(EopackError, match="not a valid S3 bucket name"):
        parse_destination("s3://My_Bucket/x")
    with pytest.raises(EopackError, match=r"'\.\.' segment"):
        parse_destination("s3://my-bucket/a/../b")
    with pytest.raises(EopackError, match="use a local folder or s3://"):
        parse_destination("gs://my-bucket/x")
    # One slash (or none) is a typo, not a local folder named "s3:".
    for typo in ("s3:/my-bucket/x", "S3:my-bucket", "https:/host/x"):
        with pytest.raises(EopackError, match=r"needs two slashes \((s3|https)://bucket/prefix\)"):
            parse_destination(typo)
    assert parse_destination("out/s3:x") == LocalDestination(Path("out/s3:x"))


def test_part_ranges_respect_s3_limits():
    assert part_ranges(12 * MIB, 5 * MIB) == [
        (0, 5 * MIB - 1),
        (5 * MIB, 10 * MIB - 1),
        (10 * MIB, 12 * MIB - 1),
    ]
    assert part_ranges(12 * MIB, 1) == part_ranges(12 * MIB, 5 * MIB)  # 5 MiB minimum
    assert len(part_ranges(200_000 * MIB, 5 * MIB)) <= 10_000


# Server-side copy
# --------------------------------------------------------------------------------------------


def test_copy_is_server_side_and_complete(world, client, dest_bucket):
    product = world.products[0]
    before = world.s3.traffic.snapshot()
    report = _copy(client, product, dest_bucket, check_manifest=False)
    during = world.s3.traffic.snapshot() - before

    # No object bytes reached the host: no GetObject at all, and no uploads either.
    assert during.object_bytes_sent == 0
    assert during.count(op="GetObject") == 0
    assert during.count(op="PutObject") == 1  # the completion marker
    assert during.count(op="UploadPart") == 0
    assert during.count(op="CopyObject") == len(product.filename_map)
    assert during.bytes_sent() < 64 * 1024  # small XML answers only
    assert during.count(bucket=DEMO_BUCKET, op="PutObject") == 0  # the source is never written

    assert report["ok"] and report["failed"] == 0
    assert {f["status"] for f in report["files"]} == {"ok"}
    assert {f["method"] for f in report["files"]} == {"copy"}
    assert all(f["md5_checked"] for f in report["files"])
    safe = f"deliveries/s1/{product.product_id}.SAFE"
    expected = {f"{safe}/{p}" for p in product.filename_map}
    marker = f"deliveries/s1/{product.product_id}.verify.json"
    assert _keys(world, dest_bucket) == expected | {marker}

    raw = world.client()
    for safe_path, key in product.filename_map.items():
        body = raw.get_object(Bucket=dest_bucket, Key=f"{safe}/{safe_path}")["Body"].read()
        assert body == product.objects[key], safe_path
    stored = json.loads(raw.get_object(Bucket=dest_bucket, Key=marker)["Body"].read())
    assert stored == report


def test_copy_with_manifest_check_reads_only_the_manifest(world, client, dest_bucket):
    product = world.products[2]
    before = world.s3.traffic.snapshot()
    report = _copy(client, product, dest_bucket, dest_prefix="")
    during = world.s3.traffic.snapshot() - before

    manifest = product.objects[product.filename_map["manifest.safe"]]
    assert during.object_bytes_sent == len(manifest)  # verification metadata, nothing else
    assert during.count(bucket=DEMO_BUCKET, op="GetObject") == 1
    assert report["ok"] and report["manifest_checked"]
    unlisted = set(report["not_in_manifest"])  # the real manifest omits support/, the pdf...
    assert "manifest.safe" in unlisted
    assert not any(p.startswith(("measurement/", "annotation/")) for p in unlisted)
    by_path = {f["path"]: f for f in report["files"]}
    assert set(by_path) == set(product.filename_map)
    for entry in by_path.values():
        assert entry["status"] == "ok", entry
        assert entry["md5_checked"]
        if entry["path"] in unlisted:
            assert entry["against"] == "source" and entry["expected_size"] is None
        else:
            assert entry["against"] == "manifest"
            assert entry["size"] == entry["expected_size"]
            assert entry["md5"] == entry["expected_md5"]
    assert f"{product.product_id}.verify.json" in _keys(world, dest_bucket)


def test_multipart_copy_uses_upload_part_copy(world, client, dest_bucket, big_source):
    source, product, big = big_source
    before = world.s3.traffic.snapshot()
    report = _copy(
        client, product, dest_bucket, source=source, multipart_threshold=5 * MIB,
        part_size=5 * MIB, source_buckets={DEMO_BUCKET},
    )  # fmt: skip
    during = world.s3.traffic.snapshot() - before

    manifest = product.objects[product.filename_map["manifest.safe"]]
    assert during.object_bytes_sent == len(manifest)
    assert during.count(op="UploadPartCopy") == 3
    assert during.count(op="UploadPart") == 0
    assert during.bytes_sent(op="UploadPartCopy") < 4096
    safe_path = next(p for p, k in product.filename_map.items() if k == BIG_TIFF)
    entry = next(f for f in report["files"] if f["path"] == safe_path)
    assert entry["method"] == "multipart"
    assert entry["etag"].strip('"').endswith("-3")
    assert entry["size"] == len(big) and not entry["md5_checked"]
    assert entry["status"] == "ok_reencoded"  # not the manifest's bytes, as for a COG
    assert report["ok"]

    key = f"deliveries/s1/{product.product_id}.SAFE/{safe_path}"
    body = world.client().get_object(Bucket=dest_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()


def test_copy_into_a_kms_bucket_is_verified_without_etag_md5s(world, client):
    """SSE-KMS ETags are not MD5s: sizes, and the pinned source's MD5 against the manifest."""
    product = world.products[2]
    bucket = _kms_bucket(world)
    report = _copy(client, product, bucket)
    assert report["ok"], report["files"]
    by_path = {f["path"]: f for f in report["files"]}
    for entry in by_path.values():
        assert entry["encryption"] == "aws:kms"
        assert entry["md5"] is None and not entry["md5_checked"]
        assert entry["status"] == "ok", entry
    manifest = by_path["manifest.safe"]
    data = product.objects[product.filename_map["manifest.safe"]]
    assert manifest["etag"].strip('"') != hashlib.md5(data).hexdigest()  # the server plays KMS
    listed = [f for f in by_path.values() if f["against"] == "manifest"]
    assert listed and all(f["source_md5_checked"] for f in listed)
    assert f"deliveries/s1/{product.product_id}.verify.json" in _keys(world, bucket)


def test_copy_into_a_kms_bucket_still_fails_on_a_bad_source(world, client):
    """Without destination MD5s the manifest still catches a source file that disagrees."""
    product = world.products[3]
    tampered = next(k for k in product.objects if k.startswith("annotation/calibration/"))
    name = _new_bucket(world, "eopack-plain-src")
    raw = world.client()
    for key, data in product.objects.items():
        body = data.replace(b"<", b"[", 1) if key == tampered else data  # same size
        raw.put_object(Bucket=name, Key=f"{product.prefix}/{key}", Body=body)
    source = SourceBucket(name, "eu-central-1", requester_pays=False)
    with pytest.raises(EopackError, match=r"annotation/calibration/.*: MD5 .* != manifest"):
        _copy(client, product, _kms_bucket(world), source=source)


def test_copy_without_request_payer_is_refused(world, client, dest_bucket):
    product = world.products[0]
    not_paying = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=False)
    with pytest.raises(EopackError, match=r"access denied .*requester pays"):
        _copy(client, product, dest_bucket, source=not_paying)
    assert _keys(world, dest_bucket) == set()


# Destination errors
# --------------------------------------------------------------------------------------------


def test_missing_destination_bucket(world, client, tmp_path):
    product = world.products[0]
    with pytest.raises(EopackError) as info:
        _copy(client, product, "eopack-no-such-bucket")
    expected = f"s3://eopack-no-such-bucket/deliveries/s1/{product.product_id}.SAFE/: "
    assert str(info.value) == expected + "destination bucket does not exist"
    zip_file = tmp_path / "p.zip"
    zip_file.write_bytes(b"PK")
    with pytest.raises(
        EopackError, match=r"^s3://eopack-no-such-bucket/p\.zip: destination bucket"
    ):
        upload_file(client, zip_file, "eopack-no-such-bucket", "p.zip")


def test_destination_not_writable(world, client, dest_bucket, tmp_path):
    product = world.products[0]
    zip_file = tmp_path / "p.zip"
    zip_file.write_bytes(os.urandom(1000))
    world.s3.set_read_only(dest_bucket)
    try:
        with pytest.raises(EopackError, match=r"access denied on the destination \(not writable"):
            _copy(client, product, dest_bucket)
        with pytest.raises(EopackError, match=r"^s3://.*/p\.zip: access denied on the destination"):
            upload_file(client, zip_file, dest_bucket, "p.zip")
    finally:
        world.s3.set_read_only(dest_bucket, False)
    assert _keys(world, dest_bucket) == set()


def test_source_bucket_is_never_a_destination(world, client, big_source):
    product = world.products[0]
    before = world.s3.traffic.snapshot()
    with pytest.raises(EopackError, match="is a configured source bucket"):
        _copy(client, product, DEMO_BUCKET)
    other_source = big_source[0].name
    with pytest.raises(EopackError, match=f"{other_source} is a configured source bucket"):
        _copy(client, product, other_source, source_buckets={DEMO_BUCKET, other_source})
    assert (world.s3.traffic.snapshot() - before).count() == 0  # refused before any request


def test_missing_source_object_fails_before_writing(world, client, dest_bucket):
    product = world.products[0]
    fmap = {**product.filename_map, "annotation/extra.xml": "annotation/not-there.xml"}
    with pytest.raises(EopackError, match=r"/annotation/not-there\.xml: object not found$"):
        copy_safe_to_s3(
            client, RP_SOURCE, product.prefix, product.product_id, fmap, dest_bucket, "x"
        )
    assert _keys(world, dest_bucket) == set()


def test_failed_verification_writes_failed_report_not_marker(world, client, dest_bucket):
    """A source file that disagrees with manifest.safe fails the delivery, as locally."""
    product = world.products[3]
    tampered = next(k for k in product.objects if k.startswith("annotation/calibration/"))
    name = _new_bucket(world, "eopack-plain-src")  # not requester pays
    raw = world.client()
    for key, data in product.objects.items():
        body = data + b"<!-- edited -->" if key == tampered else data
        raw.put_object(Bucket=name, Key=f"{product.prefix}/{key}", Body=body)
    source = SourceBucket(name, "eu-central-1", requester_pays=False)
    with pytest.raises(EopackError, match=r"^verification failed: s3://.*\.SAFE/annotation/"):
        _copy(client, product, dest_bucket, source=source)
    keys = _keys(world, dest_bucket)
    assert f"deliveries/s1/{product.product_id}.verify.json" not in keys
    failed = f"deliveries/s1/{product.product_id}.verify.failed.json"
    report = json.loads(raw.get_object(Bucket=dest_bucket, Key=failed)["Body"].read())
    bad = [f for f in report["files"] if f["status"] != "ok"]
    assert [(f["status"], f["against"]) for f in bad] == [("size_mismatch", "manifest")]
    assert bad[0]["size"] == bad[0]["expected_size"] + len(b"<!-- edited -->")


# Interrupted copies leave no completion marker
# --------------------------------------------------------------------------------------------


def test_interrupted_copy_leaves_no_marker(world, client, dest_bucket):
    product = world.products[0]
    marker = f"deliveries/s1/{product.product_id}.verify.json"
    _copy(client, product, dest_bucket)
    assert marker in _keys(world, dest_bucket)

    # A re-run that fails on one object must not leave the old marker claiming completeness.
    _fail_on(client, "CopyObject", lambda p: p["Key"].endswith("quick-look.png"))
    with pytest.raises(EopackError, match=r"quick-look\.png: S3 error InternalError"):
        _copy(client, product, dest_bucket)
    assert marker not in _keys(world, dest_bucket)


def test_failed_multipart_copy_is_aborted(world, client, dest_bucket, big_source):
    source, product, _ = big_source
    _fail_on(client, "UploadPartCopy", lambda p: p["PartNumber"] == 2)
    with pytest.raises(EopackError, match="S3 error InternalError"):
        _copy(
            client, product, dest_bucket, source=source, multipart_threshold=5 * MIB,
            part_size=5 * MIB,
        )  # fmt: skip
    raw = world.client()
    assert raw.list_multipart_uploads(Bucket=dest_bucket).get("Uploads", []) == []
    keys = _keys(world, dest_bucket)
    assert not any(k.endswith(".verify.json") for k in keys)
    assert not any(k.endswith(BIG_TIFF.rsplit("/", 1)[1]) for k in keys)


# Upload of a local file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 12 * MIB + 7], ids=["single-put", "multipart"])
def test_upload_file_checks_sha256(world, client, dest_bucket, tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "product.zip"
    path.write_bytes(data)
    before = world.s3.traffic.snapshot()
    result = upload_file(
        client,
        path,
        dest_bucket,
        "zips/product.zip",
        multipart_threshold=5 * MIB,
        part_size=5 * MIB,
    )
    during = world.s3.traffic.snapshot() - before
    assert result["multipart"] is (size > 5 * MIB)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert during.count(op="UploadPart") == (3 if result["multipart"] else 0)
    head = world.client().head_object(
        Bucket=dest_bucket, Key="zips/product.zip", ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"].split("-")[0] == result["checksum_sha256"]
    body = world.client().get_object(Bucket=dest_bucket, Key="zips/product.zip")["Body"].read()
    assert body == data


@pytest.mark.parametrize("size", [1000, 12 * MIB + 7], ids=["single-put", "multipart"])
def test_upload_into_a_kms_bucket(world, client, tmp_path, size):
    """The zip upload checks S3's SHA-256, not the ETag: KMS destinations work, and a
    rerun recognises the same bytes."""
    bucket = _kms_bucket(world)
    path = tmp_path / "product.zip"
    path.write_bytes(os.urandom(size))
    args = {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB}
    first = upload_file(client, path, bucket, "zips/product.zip", **args)
    head = world.client().head_object(Bucket=bucket, Key="zips/product.zip")
    assert head["ServerSideEncryption"] == "aws:kms" and first["skipped"] is False
    again = upload_file(client, path, bucket, "zips/product.zip", skip_existing=True, **args)
    assert again["skipped"] is True


def test_write_only_destination_is_tried(world, client, dest_bucket, s3net, tmp_path, caplog):
    """No s3:ListBucket: HeadBucket's 403 is one warning, and the copy and upload go on."""
    refused = _write_only(s3net, dest_bucket)
    product = world.products[0]
    with caplog.at_level(logging.WARNING, logger="eopack"):
        report = _copy(client, product, dest_bucket, check_manifest=False)
        path = tmp_path / "product.zip"
        path.write_bytes(os.urandom(3000))
        record = upload_file(client, path, dest_bucket, "zips/product.zip")
    assert report["ok"] and record["etag"]
    heads = [r for r in refused if r.startswith("HEAD")]
    assert heads == ["HEAD ?", "HEAD ?"]
    assert len([r for r in refused if r.startswith("GET ?uploads")]) == 2  # nor list uploads
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("cannot check the destination bucket (HeadBucket refused" in w for w in warnings)
    s3net.close()
    assert f"deliveries/s1/{product.product_id}.verify.json" in _keys(world, dest_bucket)


def test_safe_copy_to_a_put_only_destination_says_what_it_needs(world, client, dest_bucket, s3net):
    """Copies are verified by HEAD: without s3:GetObject the copy stops before writing."""
    _write_only(s3net, dest_bucket, read_objects=False)
    product = world.products[0]
    marker = f"deliveries/s1/{product.product_id}.verify.json"
    with pytest.raises(EopackError) as info:
        _copy(client, product, dest_bucket, check_manifest=False)
    assert str(info.value) == (
        f"s3://{dest_bucket}/{marker}: HeadObject refused on the destination: copying a SAFE "
        "needs s3:GetObject there to verify the copies (or set destination.copy_safe: false "
        "and deliver the zip only)"
    )
    s3net.close()
    assert _keys(world, dest_bucket) == set()


@pytest.mark.parametrize("size", [3000, 12 * MIB + 7], ids=["single-put", "multipart"])
def test_upload_to_a_put_only_destination(
    world, client, dest_bucket, s3net, tmp_path, caplog, size
):
    """Only s3:PutObject: nothing can be read back; S3 checked each request's SHA-256."""
    refused = _write_only(s3net, dest_bucket, read_objects=False)
    path = tmp_path / "product.zip"
    path.write_bytes(os.urandom(size))
    with caplog.at_level(logging.WARNING, logger="eopack"):
        record = upload_file(
            client, path, dest_bucket, "zips/product.zip", skip_existing=True,
            multipart_threshold=5 * MIB, part_size=5 * MIB,
        )  # fmt: skip
    assert record["skipped"] is False and record["etag"] is None
    heads = [r for r in refused if r.startswith("HEAD")]
    assert heads == ["HEAD ?", "HEAD zips/product.zip", "HEAD zips/product.zip"]
    assert [r for r in refused if not r.startswith("HEAD")] == [
        "GET ?uploads&prefix=zips%2Fproduct.zip"
    ]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 3 and "not read back; S3 checked the SHA-256" in said[-1]
    s3net.close()
    body = world.client().get_object(Bucket=dest_bucket, Key="zips/product.zip")["Body"].read()
    assert body == path.read_bytes()


def _left_behind(world: Any, bucket: str, key: str) -> str:
    """A multipart upload with one part, as a killed copy or zip stream leaves it."""
    raw = world.client()
    upload_id = raw.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    raw.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1000)
    return upload_id


def _uploads(world: Any, bucket: str) -> list[str]:
    listed = world.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted(u["Key"] for u in listed)


def test_uploads_left_by_a_killed_run_are_aborted(world, client, dest_bucket, tmp_path, caplog):
    """Parts of an unfinished multipart upload are billed: the next run aborts those it
    would write (the SAFE's keys, the zip's key), and no other."""
    product = world.products[0]
    safe = f"deliveries/s1/{product.product_id}.SAFE"
    _left_behind(world, dest_bucket, f"{safe}/measurement/a.tiff")
    _left_behind(world, dest_bucket, f"{safe}/measurement/b.tiff")
    _left_behind(world, dest_bucket, "zips/product.zip")
    _left_behind(world, dest_bucket, "zips/product.zip.other-tool")
    _left_behind(world, dest_bucket, "deliveries/s1/other.SAFE/x")
    with caplog.at_level(logging.WARNING, logger="eopack"):
        assert _copy(client, product, dest_bucket, check_manifest=False)["ok"]
        path = tmp_path / "product.zip"
        path.write_bytes(os.urandom(3000))
        upload_file(client, path, dest_bucket, "zips/product.zip")
    assert _uploads(world, dest_bucket) == [
        "deliveries/s1/other.SAFE/x",
        "zips/product.zip.other-tool",
    ]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [
        f"s3://{dest_bucket}/{safe}/: aborted 2 incomplete multipart upload(s) left by an "
        "interrupted run (their parts are billed until aborted)",
        f"s3://{dest_bucket}/zips/product.zip: aborted 1 incomplete multipart upload(s) left by "
        "an interrupted run (their parts are billed until aborted)",
    ]


def test_failed_multipart_upload_leaves_nothing(world, client, dest_bucket, tmp_path):
    path = tmp_path / "product.zip"
    path.write_bytes(os.urandom(12 * MIB))
    _fail_on(client, "UploadPart", lambda p: p["PartNumber"] == 2)
    with pytest.raises(EopackError, match=r"product\.zip: S3 error InternalError"):
        upload_file(
            client, path, dest_bucket, "product.zip", multipart_threshold=5 * MIB, part_size=5 * MIB
        )
    raw = world.client()
    assert raw.list_multipart_uploads(Bucket=dest_bucket).get("Uploads", []) == []
    assert _keys(world, dest_bucket) == set()


def test_upload_mismatch_removes_the_object(world, client, dest_bucket, tmp_path):
    """If the stored SHA-256 differs from the file's, the object is deleted, not left."""
    path = tmp_path / "product.zip"
    path.write_bytes(os.urandom(2000))

    def corrupt(parsed: dict[str, Any], **_: Any) -> None:
        if "ChecksumSHA256" in parsed:
            parsed["ChecksumSHA256"] = "AAAA" + parsed["ChecksumSHA256"][4:]

    client.meta.events.register("after-call.s3.HeadObject", corrupt)
    with pytest.raises(EopackError, match=r"product\.zip: uploaded object does not match"):
        upload_file(client, path, dest_bucket, "product.zip")
    assert _keys(world, dest_bucket) == set()


def test_deliver_product_s3_entry_point(world, world_env, dest_bucket, monkeypatch):
    """The workflow's entry point: searched product -> productInfo.json -> server-side copy."""
    import types

    import eopack.search.manifest
    from eopack.deliver import deliver_product_s3

    product = world.products[4]
    found = types.SimpleNamespace(
        id=product.product_id,
        bucket=DEMO_BUCKET,
        prefix=product.prefix,
        collection="sentinel-1-grd",
    )
    monkeypatch.setattr(eopack.search.manifest, "find_product", lambda _file, _id: found)
    sources = {DEMO_BUCKET: {"region": "eu-central-1", "requester_pays": True}}
    report = deliver_product_s3(
        "products.geojson", product.product_id, sources, f"s3://{dest_bucket}/out", 2
    )
    assert report["ok"] and report["destination"].startswith(f"s3://{dest_bucket}/out/")
    assert f"out/{product.product_id}.verify.json" in _keys(world, dest_bucket)
    with pytest.raises(EopackError, match="is not an s3:// destination"):
        deliver_product_s3("products.geojson", product.product_id, sources, "results", 2)


def test_deliver_zip_skips_an_identical_zip_already_there(world, world_env, dest_bucket, tmp_path):
    """A rerun (lost receipt, rebuilt byte-identical zip) uploads nothing; other bytes do."""
    from eopack.deliver import deliver_zip

    sources = {DEMO_BUCKET: {"region": "eu-central-1", "requester_pays": True}}
    zip_path = tmp_path / "S1A_X.zip"
    zip_path.write_bytes(os.urandom(300_000))
    uri = f"s3://{dest_bucket}/eo"

    def uploads(before: Any) -> int:
        during = world.s3.traffic.snapshot() - before
        return sum(during.count(op=op) for op in ("PutObject", "UploadPart"))

    before = world.s3.traffic.snapshot()
    first = deliver_zip(zip_path, uri, sources, tmp_path / "r1.json")
    assert uploads(before) == 1 and first["skipped"] is False
    before = world.s3.traffic.snapshot()
    second = deliver_zip(zip_path, uri, sources, tmp_path / "r2.json")
    assert uploads(before) == 0 and second["skipped"] is True
    assert json.loads((tmp_path / "r2.json").read_text())["sha256"] == first["sha256"]
    zip_path.write_bytes(os.urandom(300_000))
    before = world.s3.traffic.snapshot()
    third = deliver_zip(zip_path, uri, sources, tmp_path / "r3.json")
    assert uploads(before) == 1 and third["skipped"] is False
    body = world.client().get_object(Bucket=dest_bucket, Key="eo/S1A_X.zip")["Body"].read()
    assert body == zip_path.read_bytes()
