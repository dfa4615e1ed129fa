"""Publishing against the local S3 server: uploads that skip objects already holding the same
bytes, presigned URLs fetched over HTTP and compared with the files, expiry limits and
one-line errors for buckets that are missing, not writable or sources."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from eopack.deliver import MIB
from eopack.demo.s1world import DEMO_BUCKET
from eopack.errors import EopackError
from eopack.publish import (
    URLS_COLUMNS,
    check_expiry,
    content_type,
    publish_file,
    publish_settings,
    read_urls,
    write_urls,
)

REGION = {"LocationConstraint": "eu-central-1"}
SOURCES = {DEMO_BUCKET: {"region": "eu-central-1", "requester_pays": True}}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def bucket(world: Any) -> str:
    name = f"eopack-pub-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(Bucket=name, CreateBucketConfiguration=REGION)
    return name


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _publish(path: Path, name: str, uri: str, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    receipt = tmp_path / "receipts" / f"{name}.json"
    return publish_file(path, name, uri, [DEMO_BUCKET], receipt, max_workers=2, **kwargs)


def _fetch(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:")  # the local server, never the internet
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _uploads(world: Any, before: Any) -> int:
    during = world.s3.traffic.snapshot() - before
    return sum(during.count(op=op) for op in ("PutObject", "UploadPart"))


# Settings: expiry limits, destination checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_s", "max_expires_s", "message"),
    [
        (30, 43200, "config: publish.expires_s: 30 s is below the minimum of 60 s"),
        (0, 43200, "config: publish.expires_s: 0 s is below the minimum of 60 s"),
        (3600, 59, "config: publish.max_expires_s: 59 s is below the minimum of 60 s"),
        (
            86400,
            43200,
            "config: publish.expires_s: 86400 s is above publish.max_expires_s, 43200 s (12 h); "
            "raise publish.max_expires_s, up to 604800 s (7 days), for longer-lived URLs",
        ),
        (
            3600,
            604801,
            "config: publish.max_expires_s: 604801 s is above the SigV4 maximum of "
            "604800 s (7 days)",
        ),
        (
            700000,
            604800,
            "config: publish.expires_s: 700000 s is above publish.max_expires_s, 604800 s "
            "(7 days); raise publish.max_expires_s, up to 604800 s (7 days), for longer-lived URLs",
        ),
    ],
)
def test_expiry_out_of_range(expires_s, max_expires_s, message):
    with pytest.raises(EopackError) as info:
        check_expiry(expires_s, max_expires_s)
    assert str(info.value) == message
    config = {"publish": {"expires_s": expires_s, "max_expires_s": max_expires_s}}
    with pytest.raises(EopackError) as info:
        publish_settings(config)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("expires_s", "max_expires_s"), [(60, 60), (43200, 43200), (604800, 604800), (90, 3600)]
)
def test_expiry_in_range(expires_s, max_expires_s):
    check_expiry(expires_s, max_expires_s)


def test_settings_defaults_and_switch():
    off = publish_settings({"sources": SOURCES})
    assert not off.enabled and not off.includes("safe_zips")
    assert (off.expires_s, off.max_expires_s) == (43200, 43200)
    assert not publish_settings({"publish": {"uri": " "}}).enabled
    on = publish_settings(
        {"publish": {"uri": "s3://my-bucket/shared/", "include": ["bigearthnet"]}}
    )
    assert (
        on.destination is not None and on.destination.uri("x.zip") == "s3://my-bucket/shared/x.zip"
    )
    assert on.includes("bigearthnet") and not on.includes("safe_zips")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "results/shared",
            "config: publish.uri: 'results/shared' is not s3://bucket/prefix "
            "(presigned URLs need an S3 bucket)",
        ),
        (
            "s3://My_Bucket/x",
            "config: publish.uri: 's3://My_Bucket/x': 'My_Bucket' is not a valid S3 bucket name",
        ),
        (
            f"s3://{DEMO_BUCKET}/mine",
            f"config: publish.uri: s3://{DEMO_BUCKET}/mine/: {DEMO_BUCKET} is a configured source "
            "bucket (eopack never writes to a source)",
        ),
        (
            "s3://eopack-demo-bigearthnet/out",
            "config: publish.uri: s3://eopack-demo-bigearthnet/out/: eopack-demo-bigearthnet is a "
            "configured source bucket (eopack never writes to a source)",
        ),
    ],
)
def test_bad_publish_uri(uri, message):
    config = {
        "sources": SOURCES,
        "bigearthnet": {"source": "s3://eopack-demo-bigearthnet/zenodo"},
        "publish": {"uri": uri},
    }
    with pytest.raises(EopackError) as info:
        publish_settings(config)
    assert str(info.value) == message


# Uploads
# --------------------------------------------------------------------------------------------


def test_upload_then_skip_then_reupload_changed_bytes(world, world_env, bucket, tmp_path):
    path = _file(tmp_path, "data/index.csv", b"patch_id,split\nA,train\n")
    uri = f"s3://{bucket}/shared"
    before = world.s3.traffic.snapshot()
    first = _publish(path, "bigearthnet/index.csv", uri, tmp_path)
    assert _uploads(world, before) == 1
    assert first["skipped"] is False
    assert first["uri"] == f"s3://{bucket}/shared/bigearthnet/index.csv"
    assert first["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    head = world.client().head_object(Bucket=bucket, Key="shared/bigearthnet/index.csv")
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"] == {"sha256": first["sha256"]}

    # The same bytes again (a rebuilt, byte-identical file): nothing is uploaded.
    before = world.s3.traffic.snapshot()
    second = _publish(path, "bigearthnet/index.csv", uri, tmp_path)
    assert _uploads(world, before) == 0
    assert second["skipped"] is True and second["sha256"] == first["sha256"]
    receipt = json.loads((tmp_path / "receipts/bigearthnet/index.csv.json").read_text())
    assert receipt["object"] == "bigearthnet/index.csv" and receipt["sha256"] == first["sha256"]
    assert "skipped" not in receipt and "multipart" not in receipt  # the same on every run
    assert "url" not in receipt and "X-Amz" not in json.dumps(receipt)  # URLs expire, receipts not

    # Changed bytes: uploaded again, the object now holds the new file.
    path.write_bytes(b"patch_id,split\nA,train\nB,test\n")
    before = world.s3.traffic.snapshot()
    third = _publish(path, "bigearthnet/index.csv", uri, tmp_path)
    assert _uploads(world, before) == 1 and third["skipped"] is False
    body = world.client().get_object(Bucket=bucket, Key="shared/bigearthnet/index.csv")["Body"]
    assert body.read() == path.read_bytes()


def test_multipart_upload_skip_and_url(world, world_env, bucket, tmp_path):
    """Above the threshold the file goes up in parts; its S3 checksum is then a composite of
    the parts, so a later run with another part size recognises it by the sha256 metadata."""
    data = os.urandom(12 * MIB + 99)
    path = _file(tmp_path, "big.zip", data)
    uri = f"s3://{bucket}/mp"
    small = {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB}
    before = world.s3.traffic.snapshot()
    record = _publish(path, "big.zip", uri, tmp_path, **small)
    during = world.s3.traffic.snapshot() - before
    assert record["multipart"] is True and during.count(op="UploadPart") == 3
    head = world.client().head_object(Bucket=bucket, Key="mp/big.zip", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].split("-")[0] == record["checksum_sha256"]

    for settings in (small, {"multipart_threshold": 5 * MIB, "part_size": 6 * MIB}, {}):
        before = world.s3.traffic.snapshot()
        assert _publish(path, "big.zip", uri, tmp_path, **settings)["skipped"] is True
        assert _uploads(world, before) == 0

    rows = write_urls([tmp_path / "receipts/big.zip.json"], tmp_path / "urls.tsv", 600, 43200)
    assert _fetch(rows[0].url) == data


def test_missing_bucket(world, world_env, tmp_path):
    path = _file(tmp_path, "a.zip", b"PK\x05\x06" + bytes(18))
    with pytest.raises(EopackError) as info:
        _publish(path, "a.zip", "s3://eopack-no-such-publish/x", tmp_path)
    assert (
        str(info.value) == "s3://eopack-no-such-publish/x/a.zip: destination bucket does not exist"
    )
    assert not (tmp_path / "receipts").exists()


def test_access_denied(world, world_env, bucket, tmp_path):
    path = _file(tmp_path, "a.zip", b"PK\x05\x06" + bytes(18))
    world.s3.set_read_only(bucket)
    try:
        with pytest.raises(EopackError) as info:
            _publish(path, "a.zip", f"s3://{bucket}/x", tmp_path)
    finally:
        world.s3.set_read_only(bucket, False)
    assert str(info.value) == (
        f"s3://{bucket}/x/a.zip: access denied on the destination "
        "(not writable with these credentials)"
    )
    assert not (tmp_path / "receipts").exists()
    assert "Contents" not in world.client().list_objects_v2(Bucket=bucket)


def test_source_bucket_refused_before_any_request(world, world_env, tmp_path):
    path = _file(tmp_path, "a.zip", b"PK\x05\x06" + bytes(18))
    before = world.s3.traffic.snapshot()
    with pytest.raises(EopackError) as info:
        _publish(path, "a.zip", f"s3://{DEMO_BUCKET}/x", tmp_path)
    assert str(info.value) == (
        f"s3://{DEMO_BUCKET}/x/a.zip: destination bucket {DEMO_BUCKET} is a configured source "
        "bucket (eopack never writes to a source)"
    )
    assert (world.s3.traffic.snapshot() - before).count() == 0


def test_content_types():
    assert content_type("x/bigearthnet_pngs.zip") == "application/zip"
    assert content_type("classes.json") == "application/json"
    assert content_type("skipped.tsv") == "text/tab-separated-values"
    assert content_type("SHA256SUMS") == "text/plain"
    assert content_type("other.bin") == "application/octet-stream"


# Presigned URLs
# --------------------------------------------------------------------------------------------


@pytest.fixture
def published(world, world_env, bucket, tmp_path) -> tuple[str, dict[str, Path], list[Path]]:
    """Three files published under s3://{bucket}/share: name -> local file, and receipts."""
    files = {
        "S1A_TEST_1.zip": _file(tmp_path, "zip/S1A_TEST_1.zip", os.urandom(3000)),
        "bigearthnet/index.csv": _file(tmp_path, "ben/index.csv", b"patch_id\nA\n"),
        "bigearthnet/SHA256SUMS": _file(tmp_path, "ben/SHA256SUMS", b"0" * 64 + b"  index.csv\n"),
    }
    for name, path in files.items():
        _publish(path, name, f"s3://{bucket}/share", tmp_path)
    receipts = sorted((tmp_path / "receipts").rglob("*.json"))
    return bucket, files, receipts


def test_urls_download_the_published_bytes(published, tmp_path):
    bucket, files, receipts = published
    output = tmp_path / "publish" / "urls.tsv"
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    write_urls(receipts, output, expires_s=900, max_expires_s=43200)
    end = dt.datetime.now(dt.UTC)
    lines = output.read_text().splitlines()
    assert lines[0] == "object\turi\turl\texpires"
    rows = read_urls(output)
    assert [r["object"] for r in rows] == sorted(files)  # sorted by object name
    for row in rows:
        assert tuple(row) == URLS_COLUMNS
        assert row["uri"] == f"s3://{bucket}/share/{row['object']}"
        assert _fetch(row["url"]) == files[row["object"]].read_bytes()
        query = parse_qs(urlsplit(row["url"]).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Expires"] == ["900"]
        # The expiry is the signing time (X-Amz-Date) plus the lifetime, in UTC ISO 8601.
        assert ISO_UTC.match(row["expires"])
        signed = dt.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        expires = dt.datetime.strptime(row["expires"], "%Y-%m-%dT%H:%M:%SZ")
        assert expires - signed == dt.timedelta(seconds=900)
        expires = expires.replace(tzinfo=dt.UTC)
        assert start + dt.timedelta(seconds=900) <= expires <= end + dt.timedelta(seconds=900)


def test_every_missing_or_changed_object_is_uploaded_again_in_one_run(
    world, published, tmp_path, caplog
):
    """Deleted objects (a lifecycle rule, a restarted server) and an overwritten one: one run
    names them all, uploads them again from the files their receipts name, updates those
    receipts and signs URLs that serve the right bytes."""
    bucket, files, receipts = published
    client = world.client()
    client.delete_object(Bucket=bucket, Key="share/bigearthnet/index.csv")
    client.delete_object(Bucket=bucket, Key="share/bigearthnet/SHA256SUMS")
    client.put_object(Bucket=bucket, Key="share/S1A_TEST_1.zip", Body=b"other")
    index_receipt = tmp_path / "receipts" / "bigearthnet" / "index.csv.json"
    old = json.loads(index_receipt.read_text())
    before = world.s3.traffic.snapshot()
    with caplog.at_level("INFO", logger="eopack.publish"):
        rows = write_urls(receipts, tmp_path / "urls.tsv", 600, 43200, [DEMO_BUCKET])
    assert _uploads(world, before) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "3 of 3 published objects are missing or changed, uploading them again from their "
        f"files: s3://{bucket}/share/S1A_TEST_1.zip (5 bytes, the receipt says 3000); "
        f"s3://{bucket}/share/bigearthnet/SHA256SUMS (missing); "
        f"s3://{bucket}/share/bigearthnet/index.csv (missing)"
    ]
    for row in rows:
        assert _fetch(row.url) == files[row.object].read_bytes()
    new = json.loads(index_receipt.read_text())
    assert new == old  # the same bytes uploaded again: the same receipt
    # Everything there now: the next run checks and uploads nothing.
    before = world.s3.traffic.snapshot()
    write_urls(receipts, tmp_path / "urls.tsv", 600, 43200, [DEMO_BUCKET])
    assert _uploads(world, before) == 0


def test_object_with_other_bytes_of_the_same_size(world, published, tmp_path):
    """Same size, other bytes: the ETag differs from the receipt's, so it is uploaded again."""
    bucket, files, receipts = published
    world.client().put_object(Bucket=bucket, Key="share/S1A_TEST_1.zip", Body=os.urandom(3000))
    before = world.s3.traffic.snapshot()
    rows = write_urls(receipts, tmp_path / "urls.tsv", 600, 43200)
    assert _uploads(world, before) == 1
    row = next(r for r in rows if r.object == "S1A_TEST_1.zip")
    assert _fetch(row.url) == files["S1A_TEST_1.zip"].read_bytes()


def test_objects_that_cannot_be_uploaded_again_are_named_together(
    world, world_env, published, tmp_path
):
    """A streamed zip's delivery receipt names no file, and a file may be gone: both are named
    in one line, after the objects that could be restored were."""
    bucket, files, receipts = published
    client = world.client()
    client.put_object(Bucket=bucket, Key="runs/S1A_X.zip", Body=b"zip bytes")
    streamed = tmp_path / "deliver" / "S1A_X.zip.json"
    streamed.parent.mkdir()
    streamed.write_text(json.dumps({"uri": f"s3://{bucket}/runs/S1A_X.zip", "size": 9}))
    for key in ("runs/S1A_X.zip", "share/S1A_TEST_1.zip", "share/bigearthnet/index.csv"):
        client.delete_object(Bucket=bucket, Key=key)
    files["S1A_TEST_1.zip"].unlink()
    with pytest.raises(EopackError) as info:
        write_urls([*receipts, streamed], tmp_path / "urls.tsv", 600, 43200)
    zip_receipt = tmp_path / "receipts" / "S1A_TEST_1.zip.json"
    assert str(info.value) == (
        "2 of 3 missing or changed published objects could not be uploaded again: "
        f"s3://{bucket}/share/S1A_TEST_1.zip (missing): its file {files['S1A_TEST_1.zip']} is "
        f"not here; delete {zip_receipt} and run again; "
        f"s3://{bucket}/runs/S1A_X.zip (missing): {streamed} names no local file to upload it "
        "from (a zip streamed from its source); delete the receipt and run again to make it "
        "anew; uploaded again: 1, their receipts updated; no receipt was removed; the URL list "
        "is written once every object is there"
    )
    assert not (tmp_path / "urls.tsv").exists()
    assert zip_receipt.exists() and streamed.exists()
    body = client.get_object(Bucket=bucket, Key="share/bigearthnet/index.csv")["Body"].read()
    assert body == files["bigearthnet/index.csv"].read_bytes()


def test_delivered_zip_receipt_names_its_file(world, world_env, bucket, tmp_path):
    """An uploaded (not streamed) delivery receipt says which file to upload again from."""
    from eopack.deliver import deliver_zip

    path = _file(tmp_path, "zip/S1A_Y.zip", os.urandom(500))
    receipt = tmp_path / "deliver" / "S1A_Y.zip.json"
    deliver_zip(path, f"s3://{bucket}/runs", SOURCES, receipt, max_workers=2)
    assert json.loads(receipt.read_text())["file"] == str(path)
    world.client().delete_object(Bucket=bucket, Key="runs/S1A_Y.zip")
    (row,) = write_urls([receipt], tmp_path / "urls.tsv", 600, 43200, [DEMO_BUCKET])
    assert _fetch(row.url) == path.read_bytes()


def test_urls_refuse_an_expiry_out_of_range(published, tmp_path):
    _, _, receipts = published
    with pytest.raises(EopackError, match=r"^config: publish\.expires_s: 59 s is below"):
        write_urls(receipts, tmp_path / "urls.tsv", 59, 43200)
    assert not (tmp_path / "urls.tsv").exists()


def test_urls_access_denied_on_the_bucket(world, world_env, tmp_path):
    """A bucket these credentials may not read (a requester-pays one, asked without paying)."""
    receipt = tmp_path / "deliver" / "x.zip.json"
    receipt.parent.mkdir()
    receipt.write_text(json.dumps({"uri": f"s3://{DEMO_BUCKET}/x.zip", "size": 1}))
    with pytest.raises(EopackError) as info:
        write_urls([receipt], tmp_path / "urls.tsv", 600, 43200)
    assert str(info.value) == (
        f"s3://{DEMO_BUCKET}/: access denied on the bucket (check AWS credentials)"
    )


def test_delivery_receipts_are_presigned_where_they_are(world, world_env, bucket, tmp_path):
    """An s3:// destination's zip receipt (results/deliver): object = the key's file name."""
    world.client().put_object(Bucket=bucket, Key="runs/S1A_X.zip", Body=b"zip bytes")
    receipt = tmp_path / "deliver" / "S1A_X.zip.json"
    receipt.parent.mkdir()
    receipt.write_text(json.dumps({"uri": f"s3://{bucket}/runs/S1A_X.zip", "size": 9}))
    (row,) = write_urls([receipt], tmp_path / "urls.tsv", 600, 43200)
    assert (row.object, row.uri) == ("S1A_X.zip", f"s3://{bucket}/runs/S1A_X.zip")
    assert _fetch(row.url) == b"zip bytes"


def test_nothing_to_publish_writes_the_header(world_env, tmp_path):
    assert write_urls([], tmp_path / "urls.tsv", 600, 43200) == []
    assert (tmp_path / "urls.tsv").read_text() == "object\turi\turl\texpires\n"
    assert read_urls(tmp_path / "urls.tsv") == []


def test_read_urls_checks_the_header(tmp_path):
    path = _file(tmp_path, "urls.tsv", b"name\turl\n")
    with pytest.raises(EopackError, match=r"urls\.tsv: not a urls\.tsv"):
        read_urls(path)
