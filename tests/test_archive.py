"""The deterministic zip writer and the streamed zip upload (no local disk).

A zip streamed from the source bucket into a destination bucket must be byte-identical to
the local zip of the same product rebuilt with rebuild_safe; ZIP64 follows from member sizes;
failures leave neither an object nor a pending multipart upload; memory stays at a few parts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import logging
import random
import re
import shutil
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ResponseStreamingError

from eopack.archive import (
    ZIP64_MEMBER_THRESHOLD,
    DeterministicZipWriter,
    check_zip,
    file_chunks,
    needs_zip64,
    sensing_time,
    zip_safe,
)
from eopack.demo.s1world import DEMO_BUCKET, DemoProduct
from eopack.demo.s3server import Intercept, split_path
from eopack.errors import EopackError
from eopack.s3 import SourceBucket
from eopack.safe.manifest import verify_safe
from eopack.safe.s1 import fetch_product_info, rebuild_safe
from eopack.zipstream import MIN_PART_SIZE, stream_safe_zip

MIB = 1024 * 1024
REGION = "eu-central-1"
DEMO = SourceBucket(DEMO_BUCKET, REGION, requester_pays=True)
_BUCKETS = itertools.count()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_bucket(client: Any, stem: str) -> str:
    name = f"eopack-{stem}-{next(_BUCKETS)}"
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def leftovers(client: Any, bucket: str) -> tuple[list[str], list[str]]:
    """``(object keys, keys with a pending multipart upload)`` in ``bucket``."""
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return keys, uploads


def copy_product(
    client: Any, product: DemoProduct, replace: dict[str, bytes] | None = None
) -> SourceBucket:
    """The product's objects in a fresh (not requester-pays) bucket, some replaced."""
    bucket = new_bucket(client, "src")
    for key, data in sorted(product.objects.items()):
        body = (replace or {}).get(key, data)
        client.put_object(Bucket=bucket, Key=f"{product.prefix}/{key}", Body=body)
    return SourceBucket(bucket, REGION, requester_pays=False)


def local_zip(client: Any, source: SourceBucket, product: DemoProduct, tmp: Path) -> bytes:
    """The product rebuilt with rebuild_safe and zipped with zip_safe (the local path)."""
    out = tmp / f"{product.product_id}.zip"
    zip_safe(rebuilt(client, source, product, tmp), out)
    return out.read_bytes()


def rebuilt(client: Any, source: SourceBucket, product: DemoProduct, tmp: Path) -> Path:
    safe = tmp / f"{product.product_id}.SAFE"
    if not safe.exists():
        rebuild_safe(client, source, product.prefix, product.product_id, safe, max_workers=2)
    return safe


def stream(client: Any, source: SourceBucket, product: DemoProduct, dest: str, key: str, **kw):
    info = fetch_product_info(client, source, product.prefix)
    return stream_safe_zip(
        client,
        source,
        product.prefix,
        info.filename_map,
        product.product_id,
        client,
        dest,
        key,
        **kw,
    )


@pytest.fixture(scope="module")
def big(world):
    """A demo product whose measurement TIFFs are ~12 MB each: a zip of several 5 MiB parts.

    The TIFFs keep a valid TIFF header but no longer match manifest.safe (like the bucket's
    COG re-encoding), so they verify as ``ok_reencoded``.
    """
    client = world.client()
    product = next(p for p in world.products if "_1SDV_" in p.product_id)
    rng = random.Random(7)
    replace = {
        key: b"II*\x00" + rng.randbytes(12 * MIB + 3)
        for key in product.objects
        if key.startswith("measurement/")
    }
    return product, copy_product(client, product, replace)


# Local vs streamed: the same bytes
# --------------------------------------------------------------------------------------------


def test_streamed_zip_is_byte_identical_to_local_zip(world, tmp_path):
    client = world.client()
    dest = new_bucket(client, "dest")
    for number, product in enumerate(world.products):
        local = local_zip(client, DEMO, product, tmp_path / str(number))
        key = f"zips/{product.product_id}.zip"
        result = stream(client, DEMO, product, dest, key)
        uploaded = client.get_object(Bucket=dest, Key=key)["Body"].read()
        assert sha256(uploaded) == sha256(local) == result.sha256, product.product_id
        assert result.size == len(local) and result.parts == 1
        assert result.uri == f"s3://{dest}/{key}"
        # The statuses verify_safe gives the rebuilt folder (there: a real GeoTIFF read).
        report = dict(result.report)
        assert report.pop("measurement_check") == "tiff_header"
        assert report == verify_safe(rebuilt(client, DEMO, product, tmp_path / str(number)))
        assert result.report["ok"] and "manifest.safe" in result.report["not_in_manifest"]
        with zipfile.ZipFile(io.BytesIO(uploaded)) as archive:
            infos = {i.filename: i for i in archive.infolist()}
        for safe_path, member in result.members.items():
            data = product.objects[product.filename_map[safe_path]]
            assert member.md5 == hashlib.md5(data).hexdigest()
            assert member.crc32 == infos[f"{product.product_id}.SAFE/{safe_path}"].CRC
    assert leftovers(client, dest) == (
        sorted(f"zips/{p.product_id}.zip" for p in world.products),
        [],
    )


def test_stream_into_a_kms_bucket(world, big):
    """An SSE-KMS destination (ETags not MD5s) takes the streamed zip: checked by SHA-256."""
    client = world.client()
    product, source = big
    dest = new_bucket(client, "kms")
    rule = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/eopack-test"}
    client.put_bucket_encryption(
        Bucket=dest,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]},
    )
    result = stream(client, source, product, dest, "p.zip", part_size=MIN_PART_SIZE)
    head = client.head_object(Bucket=dest, Key="p.zip")
    assert head["ServerSideEncryption"] == "aws:kms" and result.parts > 1
    assert sha256(client.get_object(Bucket=dest, Key="p.zip")["Body"].read()) == result.sha256


def test_stream_aborts_an_upload_left_by_a_killed_stream(world, caplog):
    client = world.client()
    dest = new_bucket(client, "killed")
    upload_id = client.create_multipart_upload(Bucket=dest, Key="p.zip")["UploadId"]
    client.upload_part(Bucket=dest, Key="p.zip", UploadId=upload_id, PartNumber=1, Body=b"x")
    with caplog.at_level(logging.WARNING, logger="eopack"):
        stream(client, DEMO, world.products[0], dest, "p.zip")
    assert leftovers(client, dest) == (["p.zip"], [])
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [
        f"s3://{dest}/p.zip: aborted 1 incomplete multipart upload(s) left by an interrupted "
        "run (their parts are billed until aborted)"
    ]


def test_stream_to_a_put_only_destination(world, s3net, caplog):
    """Only s3:PutObject: HeadBucket and HeadObject refused; the zip is streamed anyway."""
    client = world.client()
    product = world.products[0]
    dest = new_bucket(client, "put-only")

    def hook(environ: dict) -> Intercept | None:
        name, _ = split_path(environ)
        refused = name == dest and environ["REQUEST_METHOD"] in ("GET", "HEAD")
        return Intercept(refuse=True) if refused else None

    s3net.hook(hook)
    with caplog.at_level(logging.WARNING, logger="eopack"):
        result = stream(client, DEMO, product, dest, "p.zip")
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and "HeadObject refused" in said[0]
    s3net.close()
    assert sha256(client.get_object(Bucket=dest, Key="p.zip")["Body"].read()) == result.sha256


def test_multipart_stream_is_byte_identical_and_deterministic(world, big, tmp_path):
    client = world.client()
    product, source = big
    local = local_zip(client, source, product, tmp_path)
    dest = new_bucket(client, "dest")
    first = stream(client, source, product, dest, "a.zip", part_size=MIN_PART_SIZE)
    second = stream(
        client, source, product, dest, "b.zip", part_size=MIN_PART_SIZE, upload_workers=3
    )
    assert first.parts == second.parts == -(-len(local) // MIN_PART_SIZE) >= 5
    assert first.sha256 == second.sha256 == sha256(local)
    assert client.get_object(Bucket=dest, Key="a.zip")["Body"].read() == local
    head = client.head_object(Bucket=dest, Key="b.zip", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(local)
    assert head["ChecksumSHA256"].split("-")[0] == first.checksum_sha256
    statuses = {f["path"]: f["status"] for f in first.report["files"]}
    assert {s for p, s in statuses.items() if p.startswith("measurement/")} == {"ok_reencoded"}
    assert {s for p, s in statuses.items() if not p.startswith("measurement/")} == {"ok"}
    assert first.report["measurement_check"] == "tiff_header" and first.report["ok"]
    record = first.record()
    assert record["members"]["manifest.safe"]["md5"] == first.members["manifest.safe"].md5


# Failures: no object, no pending upload, one line naming the object
# --------------------------------------------------------------------------------------------


class DeletesBeforeGet:
    """A client that deletes one object right before its GET (it vanished after the listing)."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key

    def get_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == self._key:
            self._client.delete_object(Bucket=self._bucket, Key=self._key)
        return self._client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_object_vanishing_mid_stream_aborts_the_upload(world, big):
    client = world.client()
    product, source = big
    info = fetch_product_info(client, source, product.prefix)
    last = max(info.filename_map)  # streamed last: the parts before it are uploaded already
    key = f"{product.prefix}/{info.filename_map[last]}"
    saved = client.get_object(Bucket=source.name, Key=key)["Body"].read()
    dest = new_bucket(client, "dest")
    flaky = DeletesBeforeGet(client, source.name, key)
    before = world.s3.traffic.snapshot()
    try:
        with pytest.raises(EopackError) as failure:
            stream_safe_zip(
                flaky,
                source,
                product.prefix,
                info.filename_map,
                product.product_id,
                client,
                dest,
                "p.zip",
                part_size=MIN_PART_SIZE,
            )
    finally:
        client.put_object(Bucket=source.name, Key=key, Body=saved)
    traffic = world.s3.traffic.snapshot() - before
    assert str(failure.value) == f"s3://{source.name}/{key}: object not found"
    assert traffic.count(dest, "UploadPart") >= 4  # the TIFFs were uploaded when it failed
    assert traffic.count(dest, "AbortMultipartUpload") == 1
    assert traffic.count(dest, "CompleteMultipartUpload") == 0
    assert leftovers(client, dest) == ([], [])


class TamperedHead:
    """A destination whose HEAD reports another checksum (the stored bytes differ)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def head_object(self, **kwargs: Any) -> Any:
        head = self._client.head_object(**kwargs)
        return {**head, "ChecksumSHA256": base64.b64encode(bytes(32)).decode() + "-1"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_checksum_mismatch_after_upload_removes_the_object(world):
    client = world.client()
    product = world.products[0]
    info = fetch_product_info(client, DEMO, product.prefix)
    dest = new_bucket(client, "dest")
    with pytest.raises(EopackError, match=rf"^s3://{dest}/p.zip: uploaded object does not match"):
        stream_safe_zip(
            client,
            DEMO,
            product.prefix,
            info.filename_map,
            product.product_id,
            TamperedHead(client),
            dest,
            "p.zip",
        )
    assert leftovers(client, dest) == ([], [])


class BreaksOnce:
    """A source whose first GET of ``key`` breaks after ``after`` bytes (then resumes)."""

    def __init__(self, client: Any, key: str, after: int) -> None:
        self._client, self._key, self._after = client, key, after
        self.requests: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> Any:
        response = self._client.get_object(**kwargs)
        if kwargs["Key"] != self._key:
            return response
        self.requests.append(kwargs)
        if len(self.requests) > 1:
            return response
        body, after = response["Body"], self._after

        class Broken:
            def iter_chunks(self, chunk: int):
                yield body.read(after)
                raise ResponseStreamingError(error="connection reset")

            def close(self) -> None:
                body.close()

        return {**response, "Body": Broken()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_broken_stream_resumes_with_a_ranged_get(world, tmp_path):
    client = world.client()
    product = world.products[0]
    info = fetch_product_info(client, DEMO, product.prefix)
    tiff = next(p for p in sorted(info.filename_map) if p.startswith("measurement/"))
    key = f"{product.prefix}/{info.filename_map[tiff]}"
    flaky = BreaksOnce(client, key, 1000)
    dest = new_bucket(client, "dest")
    result = stream_safe_zip(
        flaky, DEMO, product.prefix, info.filename_map, product.product_id, client, dest, "p.zip"
    )
    assert [r.get("Range") for r in flaky.requests] == [None, "bytes=1000-"]
    assert all(r["IfMatch"] and r["RequestPayer"] == "requester" for r in flaky.requests)
    assert result.sha256 == sha256(local_zip(client, DEMO, product, tmp_path))


def test_object_missing_from_listing_fails_before_writing(world, tmp_path):
    client = world.client()
    product = world.products[0]
    info = fetch_product_info(client, DEMO, product.prefix)
    fmap = {**info.filename_map, "annotation/ghost.xml": "annotation/ghost.xml"}
    dest = new_bucket(client, "dest")
    with pytest.raises(EopackError) as failure:
        stream_safe_zip(
            client, DEMO, product.prefix, fmap, product.product_id, client, dest, "p.zip"
        )
    uri = f"s3://{DEMO_BUCKET}/{product.prefix}/annotation/ghost.xml"
    assert str(failure.value) == f"{uri}: object not found"
    assert leftovers(client, dest) == ([], [])


def test_missing_or_read_only_destination_is_one_line(world):
    client = world.client()
    product = world.products[0]
    with pytest.raises(EopackError, match=r"^s3://eopack-nowhere/p.zip: destination bucket"):
        stream(client, DEMO, product, "eopack-nowhere", "p.zip")
    dest = new_bucket(client, "dest")
    world.s3.set_read_only(dest)
    try:
        with pytest.raises(EopackError, match=rf"^s3://{dest}/p.zip: access denied on the dest"):
            stream(client, DEMO, product, dest, "p.zip")
    finally:
        world.s3.set_read_only(dest, False)
    assert leftovers(client, dest) == ([], [])


def test_verification_failure_aborts_or_warns(world, tmp_path):
    client = world.client()
    product = world.products[0]
    xml = next(k for k in sorted(product.objects) if k.startswith("annotation/"))
    data = bytearray(product.objects[xml])
    data[100] ^= 0x01  # same size, different content
    source = copy_product(client, product, {xml: bytes(data)})
    safe_path = next(p for p, k in product.filename_map.items() if k == xml)
    dest = new_bucket(client, "dest")
    with pytest.raises(EopackError) as failure:
        stream(client, source, product, dest, "p.zip")
    assert str(failure.value).startswith(
        f"verification failed: {product.product_id}.SAFE/{safe_path}: MD5 "
    )
    assert leftovers(client, dest) == ([], [])
    warned = stream(client, source, product, dest, "p.zip", on_verify_failure="warn")
    assert not warned.report["ok"]
    statuses = {f["path"]: f["status"] for f in warned.report["files"]}
    assert statuses[safe_path] == "md5_mismatch"
    assert leftovers(client, dest) == (["p.zip"], [])


def test_not_a_tiff_is_unreadable(world):
    client = world.client()
    product = world.products[0]
    tiff = next(k for k in sorted(product.objects) if k.startswith("measurement/"))
    source = copy_product(client, product, {tiff: b"<html>not a tiff</html>"})
    dest = new_bucket(client, "dest")
    with pytest.raises(EopackError, match=r"^verification failed: .*: not a readable GeoTIFF"):
        stream(client, source, product, dest, "p.zip")
    assert leftovers(client, dest) == ([], [])


# Memory: a few parts, whatever the product size
# --------------------------------------------------------------------------------------------


class _Body:
    def __init__(self, size: int, block: bytes, head: bytes) -> None:
        self.size, self.block, self.head = size, block, head

    def iter_chunks(self, chunk: int):
        sent = 0
        while sent < self.size:
            n = min(chunk, self.size - sent, len(self.block))
            data = self.head + self.block[len(self.head) : n] if sent == 0 else self.block[:n]
            sent += n
            yield data

    def close(self) -> None:
        pass


class StubSource:
    """Serves generated objects without holding them (moto runs in-process and would)."""

    def __init__(self, objects: dict[str, tuple[int, bytes]], block: bytes) -> None:
        self.objects, self.block = objects, block

    def get_paginator(self, name: str) -> Any:
        objects = self.objects

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                items = [{"Key": k, "Size": s, "ETag": '"e"'} for k, (s, _) in objects.items()]
                return [{"Contents": items}]

        return Pages()

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        size, head = self.objects[kwargs["Key"]]
        return {"Body": _Body(size, self.block, head)}


class StubDestination:
    """Keeps the SHA-256 of every part, not the bytes; reports S3's composite checksum."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.size = 0
        self.whole = hashlib.sha256()
        self.done = False

    def list_multipart_uploads(self, **kwargs: Any) -> dict[str, Any]:
        return {"Uploads": []}

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["ChecksumAlgorithm"] == "SHA256"
        return {"UploadId": "u1"}

    def upload_part(self, **kwargs: Any) -> dict[str, Any]:
        body = kwargs["Body"]
        digest = hashlib.sha256(body).digest()
        assert base64.b64encode(digest).decode() == kwargs["ChecksumSHA256"]
        self.parts[kwargs["PartNumber"]] = digest
        self.size += len(body)
        return {"ETag": f'"{kwargs["PartNumber"]}"'}

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        numbers = [p["PartNumber"] for p in kwargs["MultipartUpload"]["Parts"]]
        assert numbers == sorted(self.parts) == list(range(1, len(numbers) + 1))
        self.done = True
        return {}

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        composite = hashlib.sha256(b"".join(self.parts[n] for n in sorted(self.parts)))
        value = base64.b64encode(composite.digest()).decode()
        return {"ContentLength": self.size, "ChecksumSHA256": f"{value}-{len(self.parts)}"}


def _manifest(entries: dict[str, int]) -> bytes:
    streams = "".join(
        f'<dataObject><byteStream size="{size}"><fileLocation href="./{path}"/>'
        f"</byteStream></dataObject>"
        for path, size in entries.items()
    )
    return f"<xfdu>{streams}</xfdu>".encode()


def stream_peak() -> tuple[int, int, int, int]:
    """Stream a 30 MiB product through stub clients; (peak traced bytes, size, parts, part)."""
    block = random.Random(3).randbytes(MIB)
    files = {"measurement/s1a-iw-grd-vv.tiff": 28 * MIB + 5, "annotation/a.xml": 2 * MIB}
    manifest = _manifest(files)  # sizes only: the generated data has no MD5 to match
    objects = {f"p/{path}": (size, b"II*\x00") for path, size in files.items()}
    objects["p/manifest.safe"] = (len(manifest), manifest)
    fmap = {path: path for path in (*files, "manifest.safe")}
    source = StubSource(objects, block)
    dest = StubDestination()
    part = MIN_PART_SIZE
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = stream_safe_zip(
            source,
            SourceBucket("src", REGION),
            "p",
            fmap,
            "S1A_IW_GRDH_1SDV_20230726T183302_X",
            dest,
            "dest",
            "p.zip",
            part_size=part,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dest.done and result.size == dest.size
    return peak, result.size, result.parts, part


def test_memory_stays_within_a_few_parts():
    """Measured in a fresh interpreter: tracemalloc counts every thread, and the session's
    in-process S3 server would add its own allocations to the peak."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_archive; "
        "print(*test_archive.stream_peak())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, size, parts, part = map(int, out.stdout.split())
    assert size > 30 * MIB
    assert parts == -(-size // part)
    assert peak < 3 * part, f"peak {peak / MIB:.1f} MiB for {size / MIB:.0f} MiB streamed"


# The writer itself
# --------------------------------------------------------------------------------------------


def _pinned_archive() -> bytes:
    out = io.BytesIO()
    with DeterministicZipWriter(out, sensing_time("S1A_IW_20210319T234759_X"), 0) as writer:
        writer.add("X.SAFE/a.tiff", 5, [b"II*", b"\x00!"])
        writer.add("X.SAFE/b.xml", 6, [b"<a/>\n\n"])
    return out.getvalue()


def test_format_is_pinned():
    """zipfile's streaming output for fixed input; a Python upgrade that changes it fails here.

    Stored members only: deflated bytes also depend on the zlib build.
    """
    data = _pinned_archive()
    assert data == _pinned_archive()
    assert sha256(data) == "bf580ec76809a23fe4956d1fb4c07682aaa1643e27fcb0f54ec02028d86323bc"
    version, flags = struct.unpack_from("<HH", data, 4)
    assert (version, flags) == (20, 0x08)  # data descriptor, no ZIP64 for small members


def test_writer_refuses_unsorted_names_and_wrong_sizes():
    writer = DeterministicZipWriter(io.BytesIO())
    writer.add("T/b", 1, [b"x"])
    with pytest.raises(EopackError, match="entries must be sorted"):
        writer.add("T/a", 1, [b"x"])
    writer = DeterministicZipWriter(io.BytesIO())
    with pytest.raises(EopackError, match=r"^T/a: 2 bytes, expected 3$"):
        writer.add("T/a", 3, [b"xy"])


def test_check_zip_finds_a_flipped_byte(world, tmp_path):
    client = world.client()
    product = world.products[0]
    safe = tmp_path / f"{product.product_id}.SAFE"
    rebuild_safe(client, DEMO, product.prefix, product.product_id, safe, max_workers=2)
    good = tmp_path / "good.zip"
    zip_safe(safe, good)
    check_zip(good)
    with zipfile.ZipFile(good) as archive:
        infos = archive.infolist()
    for info in (
        next(i for i in infos if i.compress_type == zipfile.ZIP_STORED),
        next(i for i in infos if i.compress_type == zipfile.ZIP_DEFLATED),
    ):
        bad = tmp_path / "bad.zip"
        shutil.copyfile(good, bad)
        data = bytearray(bad.read_bytes())
        data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 20] ^= 0x40
        bad.write_bytes(bytes(data))
        with pytest.raises(EopackError, match=rf"^{re.escape(f'{bad}: member {info.filename} ')}"):
            check_zip(bad)


class SparseSink:
    """Writes zero runs as holes, so a 4 GiB member costs no disk (test aid only)."""

    ZEROS = memoryview(bytes(8 * MIB))

    def __init__(self, handle: Any) -> None:
        self.handle, self.pos = handle, 0

    def write(self, data: Any) -> None:
        view = memoryview(data)
        if 65536 <= view.nbytes <= len(self.ZEROS) and view == self.ZEROS[: view.nbytes]:
            self.handle.seek(view.nbytes, 1)
        else:
            self.handle.write(view)
        self.pos += view.nbytes


@pytest.mark.slow
def test_zip64_member_above_4_gib(tmp_path):
    """4 GiB + 1 byte stored (sparse), then a small member at an offset beyond 4 GiB."""
    src = tmp_path / "big.tiff"
    with src.open("wb") as handle:
        handle.truncate(4 * 1024**3 + 1)
    small = b"<xml/>\n"
    assert needs_zip64(src.stat().st_size) and not needs_zip64(len(small))
    assert needs_zip64(ZIP64_MEMBER_THRESHOLD + 1) and not needs_zip64(ZIP64_MEMBER_THRESHOLD)
    out = tmp_path / "big.zip"
    with out.open("wb") as handle:
        sink = SparseSink(handle)
        with DeterministicZipWriter(sink, sensing_time("X_20210319T234758_")) as writer:
            writer.add("X.SAFE/measurement/big.tiff", src.stat().st_size, file_chunks(src))
            writer.add("X.SAFE/support/z.xml", len(small), [small])
        handle.truncate(sink.pos)
    assert out.stat().st_size == writer.bytes_written
    check_zip(out, writer.members)
    with out.open("rb") as raw:
        header = raw.read(30)
        version, flags, _, _, _, crc, csize, usize, _, extra_len = struct.unpack(
            "<HHHHHIIIHH", header[4:]
        )
        assert (version, flags, crc, csize, usize) == (45, 0x08, 0, 0xFFFFFFFF, 0xFFFFFFFF)
        assert extra_len == 20  # ZIP64 extra with both sizes
        raw.seek(writer.members[1].offset - 24)
        descriptor = struct.unpack("<IIQQ", raw.read(24))
        assert descriptor[2:] == (4 * 1024**3 + 1,) * 2
    with zipfile.ZipFile(out) as archive:
        assert archive.read("X.SAFE/support/z.xml") == small
        assert archive.getinfo("X.SAFE/support/z.xml").header_offset > 0xFFFFFFFF
        with archive.open("X.SAFE/measurement/big.tiff") as member:
            assert member.read(4096) == bytes(4096)
    tested = subprocess.run(["unzip", "-t", str(out)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "No errors detected" in tested.stdout
