"""Stream ``{id}.zip`` from the source bucket to a destination bucket, without local disk.

Each SAFE file is read with GET (requester pays, pinned to the ETag of the listing), in the
zip's sorted order, and fed to :class:`eopack.archive.DeterministicZipWriter`; the zip bytes
fill parts of a multipart upload. The zip is byte-identical to the one
:func:`eopack.archive.zip_safe` writes from a rebuilt SAFE folder: both are written in
streaming form and the member sizes (from the listing here, from ``stat`` there) choose the
ZIP64 headers.

Memory is bounded: one part is filled while at most ``upload_workers`` parts upload (default
1: two part buffers), plus one read chunk. Every part carries its SHA-256, which S3 checks;
after CompleteMultipartUpload the object's size and S3's composite SHA-256 (SHA-256 of the
parts' SHA-256s) must equal what was sent, else the object is deleted. Any failure aborts the
multipart upload, so no partial object ever becomes visible.

While streaming, each member's size and MD5 are recorded and checked against the product's
``manifest.safe`` with the statuses of :func:`eopack.safe.manifest.verify_safe`. Measurement
TIFFs cannot be opened with rasterio from a stream, so "readable GeoTIFF" is reduced to a
valid TIFF/BigTIFF header (``measurement_check: tiff_header`` in the report); a failed
verification aborts the upload before it completes (``on_verify_failure="fail"``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from eopack.archive import DeterministicZipWriter, safe_top, sensing_time
from eopack.deliver import abort_stale_uploads, abort_upload, destination_error, is_forbidden
from eopack.errors import EopackError
from eopack.s3 import TRANSIENT_STREAM_ERRORS, SourceBucket, describe_error
from eopack.safe.manifest import failure_line, parse_manifest_bytes
from eopack.transfer import STREAM_ATTEMPTS

if TYPE_CHECKING:
    from eopack.safe.registry import ProductFiles

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3's smallest part (all but the last)
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 16 * MIB
READ_CHUNK = MIB
MANIFEST = "manifest.safe"
#: TIFF and BigTIFF, little and big endian: the streamed stand-in for "readable GeoTIFF".
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
MEASUREMENT_CHECK = "tiff_header"
OK_STATUSES = ("ok", "ok_reencoded", "known_gap")  # as in eopack.deliver


@dataclass(frozen=True)
class SourceObject:
    """One SAFE file in the source bucket, as listed (size and ETag pin the version)."""

    safe_path: str
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class StreamedMember:
    """What was seen of one SAFE file while it streamed into the zip."""

    path: str
    key: str
    size: int
    md5: str
    crc32: int
    magic: bytes  # the first 4 bytes (TIFF header check of measurement files)


@dataclass(frozen=True)
class StreamedZip:
    """The uploaded zip: where, how big, its SHA-256 and S3 checksum, and the member checks."""

    uri: str
    size: int
    sha256: str
    checksum_sha256: str  # S3's composite value (base64), without the "-N" suffix
    parts: int
    part_size: int
    members: dict[str, StreamedMember] = field(repr=False)
    report: dict[str, Any] = field(repr=False)

    def record(self) -> dict[str, Any]:
        """A JSON-ready record (receipts)."""
        doc = asdict(self)
        doc["members"] = {
            path: {"size": m.size, "md5": m.md5, "crc32": f"{m.crc32:08x}", "key": m.key}
            for path, m in sorted(self.members.items())
        }
        return doc


def _destination_error(exc: Exception, bucket: str, key: str) -> EopackError:
    """:func:`eopack.deliver.destination_error`, plus a multipart upload aborted elsewhere."""
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
        return EopackError(
            f"s3://{bucket}/{key}: the multipart upload vanished (aborted elsewhere?)"
        )
    return destination_error(exc, bucket, key)


# Source side
# --------------------------------------------------------------------------------------------


def list_source(
    client: Any,
    source: SourceBucket,
    prefix: str,
    filename_map: Mapping[str, str],
    prefixes: Sequence[str] = (),
) -> list[SourceObject]:
    """Every file with its bucket key, size and ETag, in zip (sorted path) order.

    One listing of each folder (``prefix/``, or ``prefixes`` when the map's keys are full
    keys and ``prefix`` is empty: an S2 product's and its tiles') instead of a HEAD per
    file; a file of the map that is not listed is an error naming the object, before
    anything is written.
    """
    prefix = prefix.strip("/")
    listed: dict[str, tuple[int, str]] = {}
    for folder in [prefix] if prefix else [p.strip("/") for p in prefixes]:
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=source.name, Prefix=f"{folder}/", **source.extra_args
            )
            for page in pages:
                for item in page.get("Contents", []):
                    listed[item["Key"]] = (int(item["Size"]), str(item.get("ETag", "")))
        except (ClientError, BotoCoreError) as exc:
            raise describe_error(exc, source.name, f"{folder}/") from None
    objects = []
    for safe_path in sorted(filename_map):
        key = f"{prefix}/{filename_map[safe_path]}" if prefix else filename_map[safe_path]
        if key not in listed:
            raise EopackError(f"s3://{source.name}/{key}: object not found")
        size, etag = listed[key]
        objects.append(SourceObject(safe_path, key, size, etag))
    return objects


def _object_chunks(
    client: Any, source: SourceBucket, obj: SourceObject, chunk_size: int
) -> Iterator[bytes]:
    """The object's bytes; a broken stream resumes with a ranged GET (same ETag)."""
    uri = f"s3://{source.name}/{obj.key}"
    received = 0
    for attempt in range(1, STREAM_ATTEMPTS + 1):
        args: dict[str, Any] = {"Bucket": source.name, "Key": obj.key, **source.extra_args}
        if obj.etag:
            args["IfMatch"] = obj.etag
        if received:
            args["Range"] = f"bytes={received}-"
        body = None
        try:
            body = client.get_object(**args)["Body"]
            for data in body.iter_chunks(chunk_size):
                received += len(data)
                if received > obj.size:
                    raise EopackError(f"{uri}: more bytes than the {obj.size} listed")
                yield data
        except TRANSIENT_STREAM_ERRORS as exc:
            if attempt == STREAM_ATTEMPTS:
                raise EopackError(f"{uri}: download kept failing ({exc})") from None
            log.warning("%s: stream broke at byte %d (%s); resuming", uri, received, exc)
            continue
        except (ClientError, BotoCoreError) as exc:
            raise describe_error(exc, source.name, obj.key) from None
        finally:
            if body is not None:
                body.close()
        if received != obj.size:
            raise EopackError(f"{uri}: {received} bytes, listed as {obj.size}")
        return


class _Tap:
    """MD5, first bytes and (for manifest.safe) the data of a member, as it streams past."""

    def __init__(self, keep: bool) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.magic = b""
        self.kept: list[bytes] | None = [] if keep else None

    def __call__(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for data in chunks:
            self.md5.update(data)
            if len(self.magic) < 4:
                self.magic += bytes(data[: 4 - len(self.magic)])
            if self.kept is not None:
                self.kept.append(data)
            yield data


# Verification against manifest.safe (the statuses of eopack.safe.manifest.verify_safe)
# --------------------------------------------------------------------------------------------


def verify_streamed(
    product_id: str,
    members: Mapping[str, StreamedMember],
    manifest_xml: bytes,
    where: str,
    known_gap: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """The ``verify.json`` body for streamed members, as :func:`verify_safe` builds it.
    ``known_gap``: which manifest entries the bucket never carries (eopack.safe.registry)."""
    objects = parse_manifest_bytes(manifest_xml, where)
    files: list[dict[str, Any]] = []
    for obj in sorted(objects, key=lambda o: o.path):
        seen = members.get(obj.path)
        entry: dict[str, Any] = {
            "path": obj.path,
            "expected_size": obj.size,
            "expected_md5": obj.md5,
            "size": None,
            "md5": None,
        }
        if seen is None:
            gap = known_gap is not None and known_gap(obj.path)
            entry["status"] = "known_gap" if gap else "missing"
        else:
            entry["size"], entry["md5"] = seen.size, seen.md5
            matches = seen.size == obj.size and (obj.md5 is None or seen.md5 == obj.md5)
            if obj.is_measurement:
                if seen.magic not in TIFF_MAGIC:
                    entry["status"] = "unreadable"
                else:
                    entry["status"] = "ok" if matches else "ok_reencoded"
            elif seen.size != obj.size:
                entry["status"] = "size_mismatch"
            elif obj.md5 is not None and seen.md5 != obj.md5:
                entry["status"] = "md5_mismatch"
            else:
                entry["status"] = "ok"
        files.append(entry)
    listed = {o.path for o in objects}
    bad = [f for f in files if f["status"] not in OK_STATUSES]
    gaps = sum(f["status"] == "known_gap" for f in files)
    return {
        "product": product_id,
        "ok": not bad,
        "checked": len(files) - gaps,
        "failed": len(bad),
        "known_gaps": gaps,
        "files": files,
        "not_in_manifest": sorted(p for p in members if p not in listed),
        "measurement_check": MEASUREMENT_CHECK,
    }


def verify_listed(
    product_id: str,
    members: Mapping[str, StreamedMember],
    objects: Sequence[SourceObject],
    files: ProductFiles | None,
) -> dict[str, Any]:
    """The ``verify.json`` body of a product without a manifest (a Landsat scene): each
    member's size against the listing, and its MD5 against the STAC item's checksum where
    that is an MD5 (other algorithms are checked by the local path's verify step)."""
    checksums = files.checksums if files is not None else {}
    entries: list[dict[str, Any]] = []
    for obj in objects:
        seen = members.get(obj.safe_path)
        algorithm, digest = checksums.get(obj.safe_path, ("", None))
        expected_md5 = digest if algorithm == "md5" else None
        entry: dict[str, Any] = {
            "path": obj.safe_path,
            "expected_size": obj.size,
            "expected_md5": expected_md5,
            "size": seen.size if seen else None,
            "md5": seen.md5 if seen else None,
        }
        if seen is None:
            entry["status"] = "missing"
        elif seen.size != obj.size:
            entry["status"] = "size_mismatch"
        elif expected_md5 is not None and seen.md5 != expected_md5:
            entry["status"] = "md5_mismatch"
        else:
            entry["status"] = "ok"
        entries.append(entry)
    bad = [f for f in entries if f["status"] not in OK_STATUSES]
    return {
        "product": product_id,
        "ok": not bad,
        "checked": len(entries),
        "failed": len(bad),
        "known_gaps": 0,
        "files": entries,
        "not_in_manifest": [],
    }


# Destination side: the zip's bytes as parts of a multipart upload
# --------------------------------------------------------------------------------------------


def plan_part_size(part_size: int, size_bound: int) -> int:
    """``part_size``, raised if needed to stay within S3's 10,000 parts for ``size_bound``."""
    if part_size < MIN_PART_SIZE:
        raise EopackError(f"zip upload: part size {part_size} is below S3's minimum of 5 MiB")
    return min(max(part_size, -(-size_bound // MAX_PARTS)), MAX_PART_SIZE)


def zip_size_bound(objects: list[SourceObject], top: str) -> int:
    """An upper bound of the zip's size (headers, descriptors, deflate's worst case)."""
    total = 98  # end records, ZIP64 included
    for obj in objects:
        name = len(top) + 1 + len(obj.safe_path.encode())
        total += obj.size + obj.size // 1000 + 64 + 2 * name + 30 + 46 + 2 * 32 + 24
    return total


class _MultipartSink:
    """Collects the zip's bytes into parts and uploads them; bounded buffers, ordered parts."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int, workers: int) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.uri = f"s3://{bucket}/{key}"
        self.part_size = part_size
        self.upload_id: str | None = None
        self.completed = False
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max(1, workers), "eopack-zip-part")
        self._max_buffers = max(1, workers) + 1
        self._allocated = 0
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._buffer: bytearray | None = None
        self._fill = 0
        self._futures: list[Future[tuple[dict[str, Any], bytes]]] = []
        self._checked = 0
        self._stop = threading.Event()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def start(self) -> None:
        try:
            response = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                ChecksumAlgorithm="SHA256",
                ContentType="application/zip",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _destination_error(exc, self.bucket, self.key) from None
        self.upload_id = response["UploadId"]

    def write(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        self._sha256.update(view)
        pos, total = 0, len(view)
        while pos < total:
            if self._buffer is None:
                self._buffer, self._fill = self._take_buffer(), 0
            take = min(total - pos, self.part_size - self._fill)
            self._buffer[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.part_size:
                self._submit()
        self.size += total

    def _take_buffer(self) -> bytearray:
        """A free part buffer; waits for an upload to finish when all are in use."""
        while True:
            try:
                return self._free.get_nowait()
            except queue.Empty:
                pass
            if self._allocated < self._max_buffers:
                self._allocated += 1
                return bytearray(self.part_size)
            self._raise_failed()
            try:
                return self._free.get(timeout=0.5)
            except queue.Empty:
                continue

    def _raise_failed(self) -> None:
        """Re-raise the first failed part (in order) among those that have finished."""
        while self._checked < len(self._futures) and self._futures[self._checked].done():
            self._futures[self._checked].result()
            self._checked += 1

    def _submit(self) -> None:
        self._raise_failed()
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise EopackError(f"{self.uri}: more than {MAX_PARTS} parts; raise the part size")
        buffer, fill = self._buffer, self._fill
        assert buffer is not None
        self._buffer, self._fill = None, 0
        if fill < len(buffer):
            del buffer[fill:]  # the last part: shrink in place rather than copy
        self._futures.append(self._pool.submit(self._upload, number, buffer))

    def _upload(self, number: int, buffer: bytearray) -> tuple[dict[str, Any], bytes]:
        try:
            if self._stop.is_set():
                raise EopackError(f"{self.uri}: part {number} cancelled")
            digest = hashlib.sha256(buffer).digest()
            checksum = base64.b64encode(digest).decode()
            try:
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=buffer,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
            except (ClientError, BotoCoreError) as exc:
                raise _destination_error(exc, self.bucket, self.key) from None
            part = {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}
            return part, digest
        finally:
            if len(buffer) == self.part_size:
                self._free.put(buffer)

    def complete(self) -> tuple[int, str]:
        """Upload the last part, complete the upload; ``(parts, composite SHA-256)``."""
        if self._fill or not self._futures:
            if self._buffer is None:
                self._buffer = bytearray()
            self._submit()
        results = [future.result() for future in self._futures]
        parts = [part for part, _ in results]
        composite = hashlib.sha256(b"".join(digest for _, digest in results)).digest()
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _destination_error(exc, self.bucket, self.key) from None
        self.completed = True
        self._pool.shutdown(wait=True)
        return len(parts), base64.b64encode(composite).decode()

    def check(self, expected_checksum: str) -> None:
        """The stored object must have the size and composite SHA-256 that were sent.

        A write-only destination (HeadObject refused) is not read back: S3 refused any part
        whose SHA-256 was not the one sent, which one warning says.
        """
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key, ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as exc:
            if is_forbidden(exc):
                log.warning(
                    "%s: HeadObject refused (no s3:GetObject?); not read back; S3 checked the "
                    "SHA-256 of every part",
                    self.uri,
                )
                return
            raise _destination_error(exc, self.bucket, self.key) from None
        stored = head.get("ChecksumSHA256")
        stored = stored.split("-", 1)[0] if stored else None  # composite values end in -N
        if int(head["ContentLength"]) != self.size or stored not in (expected_checksum, None):
            raise EopackError(
                f"{self.uri}: uploaded object does not match the streamed zip "
                f"({head['ContentLength']} bytes, SHA-256 {stored}; sent {self.size} bytes, "
                f"{expected_checksum}); removed"
            )
        if stored is None:
            log.warning("%s: the store returned no SHA-256; only the size was checked", self.uri)

    def abort(self) -> None:
        """After a failure: no part left behind, no object left visible (errors only logged)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)  # parts in flight finish first
        if not self.completed:
            if self.upload_id is not None:
                abort_upload(self.client, self.bucket, self.key, self.upload_id)
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except (ClientError, BotoCoreError) as exc:
            log.warning("%s: could not delete the object: %s", self.uri, exc)


# The whole stream
# --------------------------------------------------------------------------------------------


def stream_safe_zip(
    client_src: Any,
    source: SourceBucket,
    prefix: str,
    filename_map: Mapping[str, str],
    product_id: str,
    dest_client: Any,
    dest_bucket: str,
    dest_key: str,
    deflate_level: int = 6,
    part_size: int = DEFAULT_PART_SIZE,
    *,
    upload_workers: int = 1,
    on_verify_failure: str = "fail",
    chunk_size: int = READ_CHUNK,
    files: ProductFiles | None = None,
    known_gap: Callable[[str], bool] | None = None,
) -> StreamedZip:
    """Zip the product's files from ``source`` straight into ``s3://dest_bucket/dest_key``.

    ``filename_map`` is ``ProductInfo.filename_map`` (SAFE path -> key under ``prefix``);
    or, with ``files`` (any collection, :mod:`eopack.safe.registry`), ``prefix`` is empty
    and the map is ``files.files`` (full keys). A product with a ``manifest.safe`` is
    checked against it (``known_gap``: entries the bucket never carries); one without (a
    Landsat scene) against its listing's sizes and its STAC checksums where they are MD5s.
    ``on_verify_failure``: ``fail`` aborts the upload when a member fails its check,
    ``warn`` logs and completes it (the report says ``ok: false``). Returns size, SHA-256,
    S3 checksum, per-member size/MD5/CRC and the verification report.
    """
    uri = f"s3://{dest_bucket}/{dest_key}"
    if on_verify_failure not in ("fail", "warn"):
        raise EopackError(
            f"zip upload: on_verify_failure must be fail or warn, not {on_verify_failure!r}"
        )
    if dest_bucket == source.name:
        raise EopackError(
            f"{uri}: destination is the source bucket (eopack never writes to a source)"
        )
    if files is None and MANIFEST not in filename_map:
        raise EopackError(f"{product_id}: filenameMap lists no {MANIFEST}")
    top = files.folder if files is not None else safe_top(product_id)
    prefixes = files.prefixes if files is not None else ()
    objects = list_source(client_src, source, prefix, filename_map, prefixes)
    part_size = plan_part_size(part_size, zip_size_bound(objects, top))
    abort_stale_uploads(dest_client, dest_bucket, dest_key, exact=True)
    sink = _MultipartSink(dest_client, dest_bucket, dest_key, part_size, upload_workers)
    sink.start()
    members: dict[str, StreamedMember] = {}
    manifest_xml = b""
    try:
        with DeterministicZipWriter(sink.write, sensing_time(product_id), deflate_level) as zw:
            for number, obj in enumerate(objects, start=1):
                log.info(
                    "Zipping item %d of %d: %s <- %s", number, len(objects), obj.safe_path, obj.key
                )
                tap = _Tap(keep=obj.safe_path == MANIFEST)
                chunks = tap(_object_chunks(client_src, source, obj, chunk_size))
                written = zw.add(f"{top}/{obj.safe_path}", obj.size, chunks)
                members[obj.safe_path] = StreamedMember(
                    obj.safe_path, obj.key, obj.size, tap.md5.hexdigest(), written.crc, tap.magic
                )
                if tap.kept is not None:
                    manifest_xml = b"".join(tap.kept)
        if MANIFEST in filename_map:
            manifest_key = next(o.key for o in objects if o.safe_path == MANIFEST)
            where = f"s3://{source.name}/{manifest_key}"
            report = verify_streamed(product_id, members, manifest_xml, where, known_gap)
        else:
            report = verify_listed(product_id, members, objects, files)
        if not report["ok"]:
            line = failure_line(report)
            if on_verify_failure == "fail":
                raise EopackError(f"verification failed: {line}")
            log.warning("verification failed (continuing as configured): %s", line)
        parts, checksum = sink.complete()
        sink.check(checksum)
    except BaseException as exc:
        sink.abort()
        if isinstance(exc, (ClientError, BotoCoreError)):
            raise _destination_error(exc, dest_bucket, dest_key) from None
        raise
    log.info("%s: %d bytes in %d parts, SHA-256 %s", uri, sink.size, parts, sink.sha256)
    return StreamedZip(uri, sink.size, sink.sha256, checksum, parts, part_size, members, report)


def stream_product_zip(
    products_file: str | Path,
    product_id: str,
    sources: Mapping[str, Any],
    destination: str,
    receipt: str | Path,
    deflate_level: int = 6,
    on_verify_failure: str = "fail",
) -> StreamedZip:
    """The workflow's entry point: a searched product's zip streamed to an s3:// destination."""
    from eopack.deliver import (
        S3Destination,
        check_destination_bucket,
        parse_destination,
        write_receipt,
    )
    from eopack.s3 import make_client, source_bucket
    from eopack.safe.registry import collection
    from eopack.search.manifest import find_product

    dest = parse_destination(destination)
    if not isinstance(dest, S3Destination):
        raise EopackError(f"config: destination.uri: {destination!r} is not an s3:// destination")
    product = find_product(products_file, product_id)
    bucket = source_bucket(sources, product.bucket)
    client = make_client(bucket.region)
    key = dest.key(f"{product_id}.zip")
    check_destination_bucket(client, dest.bucket, dest.uri(f"{product_id}.zip"), set(sources))
    entry = collection(product.collection)
    files = entry.list_files(client, bucket, product)
    result = stream_safe_zip(
        client,
        bucket,
        "",
        files.files,
        product_id,
        client,
        dest.bucket,
        key,
        deflate_level,
        on_verify_failure=on_verify_failure,
        files=files,
        known_gap=entry.is_known_gap,
    )
    log.info("%s -> %s (%d bytes, sha256 %s)", product_id, result.uri, result.size, result.sha256)
    write_receipt(result.record(), receipt)
    return result
