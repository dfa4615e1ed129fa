"""Deliver products to their destination: a local folder (default) or ``s3://bucket/prefix``.

S3 -> S3 delivery is server-side (CopyObject, or UploadPartCopy above a threshold): the
object bytes never pass through the host, which matters on a small instance far from the
bucket. On S3 a SAFE is complete only when ``{prefix}/{id}.verify.json`` exists: it is the
verification report, written last, so an interrupted copy never looks complete. It sits
beside ``{id}.SAFE/`` (as ``results/safe/{id}.verify.json`` does locally) rather than inside,
so the SAFE folder holds exactly the product's files.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

from eopack.errors import EopackError
from eopack.fsutil import write_json
from eopack.s3 import SourceBucket, describe_error, get_bytes
from eopack.safe.manifest import DataObject, parse_manifest_bytes

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

MIB = 1024 * 1024
GIB = 1024 * MIB
COPY_OBJECT_LIMIT = 5 * GIB  # largest object a single CopyObject may copy
MIN_PART_SIZE = 5 * MIB  # S3's smallest part (all but the last)
MAX_PART_SIZE = 5 * GIB
MAX_PARTS = 10_000
DEFAULT_MULTIPART_THRESHOLD = 256 * MIB
DEFAULT_PART_SIZE = 128 * MIB
#: As in eopack.safe.manifest; ``known_gap``: a file the product's manifest lists that the
#: AWS bucket never carries (eopack.safe.registry).
OK_STATUSES = ("ok", "ok_reencoded", "known_gap")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


# Destinations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalDestination:
    """Products land in a folder on this host (the default)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class S3Destination:
    """Products land under ``s3://bucket/prefix/``; ``prefix`` has no leading/trailing ``/``."""

    bucket: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def __str__(self) -> str:
        return self.uri() + ("/" if self.prefix else "")


Destination = LocalDestination | S3Destination


def clean_prefix(prefix: str, where: str) -> str:
    """``a/b`` from ``/a/b/``; empty, ``.`` or ``..`` segments are refused, not normalised."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    parts = stripped.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise EopackError(f"{where}: prefix {prefix!r} has an empty, '.' or '..' segment")
    return stripped


#: A URI scheme written without its ``//`` (``s3:/bucket``, ``s3:bucket``).
_SCHEME_WITHOUT_SLASHES = re.compile(r"^(s3|https?|gs|az|file):(?!//)", re.IGNORECASE)


def parse_destination(
    value: str | os.PathLike[str] | None,
    default: str = "results",
    where: str = "config: destination.uri",
) -> Destination:
    """The destination named in config (``where``): ``s3://bucket[/prefix]`` or a local folder."""
    text = os.fspath(value) if value is not None else ""
    if not text.strip():
        return LocalDestination(Path(default))
    scheme = _SCHEME_WITHOUT_SLASHES.match(text)
    if scheme:  # ``s3:/bucket/x`` would otherwise be a local folder named ``s3:``
        raise EopackError(
            f"{where}: {text!r}: {scheme.group(1)}: needs two slashes "
            f"({scheme.group(1).lower()}://bucket/prefix), or name a local folder without a colon"
        )
    if not text.startswith("s3://"):
        if "://" in text:
            raise EopackError(f"{where}: {text!r}: use a local folder or s3://bucket/prefix")
        return LocalDestination(Path(text))
    bucket, _, prefix = text[5:].partition("/")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise EopackError(f"{where}: {text!r}: {bucket!r} is not a valid S3 bucket name")
    return S3Destination(bucket, clean_prefix(prefix, f"{where}: {text!r}"))


# Errors and preflight
# --------------------------------------------------------------------------------------------


def _code(exc: ClientError) -> tuple[str, int | None]:
    """``(error code, HTTP status)``; HEAD errors have no body, hence no code but ``404``."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def destination_error(exc: Exception, bucket: str, key: str) -> EopackError:
    """One line for a failed write: missing bucket, not writable, or what S3 said."""
    uri = f"s3://{bucket}/{key}"
    if isinstance(exc, ClientError):
        code, status = _code(exc)
        if code == "NoSuchBucket" or (not key and status == 404):
            return EopackError(f"{uri}: destination bucket does not exist")
        if code in ("AccessDenied", "403", "Forbidden") or status == 403:
            return EopackError(
                f"{uri}: access denied on the destination (not writable with these credentials)"
            )
    return describe_error(exc, bucket, key)


def check_not_source(
    destination: Destination,
    source_buckets: Collection[str],
    where: str = "config: destination.uri",
) -> None:
    """Pre-flight: an s3:// destination must not be a source bucket (eopack only reads those)."""
    if isinstance(destination, S3Destination) and destination.bucket in source_buckets:
        raise EopackError(
            f"{where}: {destination}: {destination.bucket} is a configured "
            "source bucket (eopack never writes to a source)"
        )


def check_destination_bucket(
    client: Any, bucket: str, uri: str, source_buckets: Collection[str]
) -> None:
    """Refuse a source bucket as destination, and a bucket that is missing or forbidden.

    Checked before anything is written, so these mistakes cost no copy and leave nothing.
    HeadBucket needs ``s3:ListBucket``, which a write-only policy (``s3:PutObject`` on
    ``prefix/*``) does not grant: a 403 is then one warning, and the writes say the rest.
    """
    if bucket in source_buckets:
        raise EopackError(
            f"{uri}: destination bucket {bucket} is a configured source bucket "
            "(eopack never writes to a source)"
        )

    def forbidden() -> None:
        log.warning(
            "%s: cannot check the destination bucket (HeadBucket refused: no s3:ListBucket?); "
            "trying the writes",
            uri,
        )

    head_bucket(client, bucket, uri, "destination bucket", on_forbidden=forbidden)


def is_forbidden(exc: Exception) -> bool:
    """A 403: these credentials may not make this call (which may still allow others)."""
    return isinstance(exc, ClientError) and _code(exc)[1] == 403


def head_bucket(
    client: Any,
    bucket: str,
    uri: str,
    noun: str = "bucket",
    *,
    on_forbidden: Callable[[], None] | None = None,
) -> Mapping[str, Any]:
    """HEAD a bucket; a missing or forbidden one is one line naming ``uri`` and the ``noun``.

    ``on_forbidden``: called instead of raising on a 403 (the answer is then empty).
    """
    try:
        return client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code, status = _code(exc)
        if code in ("404", "NoSuchBucket", "NotFound") or status == 404:
            raise EopackError(f"{uri}: {noun} does not exist") from None
        if status == 403 and on_forbidden is not None:
            on_forbidden()
            return {}
        if status == 403:
            raise EopackError(
                f"{uri}: access denied on the {noun} (check AWS credentials)"
            ) from None
        raise describe_error(exc, bucket, "") from None
    except BotoCoreError as exc:
        raise describe_error(exc, bucket, "") from None


# Parallel helpers
# --------------------------------------------------------------------------------------------


def gather(pool: ThreadPoolExecutor, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` on ``pool``; on the first failure cancel the rest, wait, and re-raise.

    Waiting matters: a multipart upload may only be aborted once no part is in flight.
    """
    futures: list[Future[T]] = [pool.submit(call) for call in calls]
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    error = next((f.exception() for f in futures if f in done and f.exception()), None)
    if error is not None:
        for future in futures:
            future.cancel()
        wait(futures)
        raise error
    return [f.result() for f in futures]


def pmap(pool: ThreadPoolExecutor, fn: Callable[[K], V], keys: Sequence[K]) -> dict[K, V]:
    """``{key: fn(key)}`` computed on ``pool``, with :func:`gather`'s failure handling."""
    calls = [functools.partial(fn, key) for key in keys]
    return dict(zip(keys, gather(pool, calls), strict=True))


# S3 -> S3 copy of a SAFE
# --------------------------------------------------------------------------------------------


#: ``ServerSideEncryption`` values (and SSE-C, by ``SSECustomerAlgorithm``) whose objects'
#: ETags are not their MD5 (AWS: "Objects encrypted by SSE-C or SSE-KMS have ETags that are
#: not an MD5 digest of their object data").
OPAQUE_ETAG_ENCRYPTION = frozenset({"aws:kms", "aws:kms:dsse", "SSE-C"})


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD tells about an object."""

    size: int
    etag: str
    content_type: str | None = None
    encryption: str | None = None  # ServerSideEncryption, or "SSE-C"

    @property
    def opaque_etag(self) -> bool:
        """Encrypted so that the ETag is not the MD5 even for a single-part object."""
        return self.encryption in OPAQUE_ETAG_ENCRYPTION

    @property
    def md5(self) -> str | None:
        """The MD5 when the ETag is one: single part (multipart ETags end in ``-N``), and not
        SSE-KMS, DSSE-KMS or SSE-C, whose 32-hex ETags are something else."""
        etag = self.etag.strip('"').lower()
        if self.opaque_etag:
            return None
        return etag if re.fullmatch(r"[0-9a-f]{32}", etag) else None


def _info(response: Mapping[str, Any]) -> ObjectInfo:
    encryption = response.get("ServerSideEncryption")
    if response.get("SSECustomerAlgorithm"):
        encryption = "SSE-C"
    return ObjectInfo(
        int(response["ContentLength"]),
        str(response.get("ETag", "")),
        response.get("ContentType"),
        str(encryption) if encryption else None,
    )


def head_source(client: Any, source: SourceBucket, key: str) -> ObjectInfo:
    """HEAD a source object (requester pays); proves it exists and is readable before writing."""
    try:
        return _info(client.head_object(Bucket=source.name, Key=key, **source.extra_args))
    except (ClientError, BotoCoreError) as exc:
        raise describe_error(exc, source.name, key) from None


def head_or_none(client: Any, bucket: str, key: str, **extra: Any) -> Mapping[str, Any] | None:
    """HEAD a destination object (``extra``: e.g. ``ChecksumMode``); ``None`` when absent."""
    try:
        return client.head_object(Bucket=bucket, Key=key, **extra)
    except ClientError as exc:
        code, status = _code(exc)
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return None
        raise destination_error(exc, bucket, key) from None
    except BotoCoreError as exc:
        raise describe_error(exc, bucket, key) from None


def head_destination(client: Any, bucket: str, key: str) -> ObjectInfo | None:
    """HEAD a destination object; ``None`` when it does not exist."""
    response = head_or_none(client, bucket, key)
    return None if response is None else _info(response)


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges of the parts, within S3's part size and part count limits."""
    part_size = min(max(part_size, MIN_PART_SIZE, -(-size // MAX_PARTS)), MAX_PART_SIZE)
    return [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]


def _copy_error(
    exc: Exception, source: SourceBucket, src_key: str, bucket: str, key: str
) -> EopackError:
    """A failed copy names the source if the source was at fault, else the destination."""
    if isinstance(exc, ClientError):
        code, status = _code(exc)
        missing_bucket = exc.response.get("Error", {}).get("BucketName")
        if code in ("NoSuchKey", "404", "NotFound") or (
            code == "NoSuchBucket" and missing_bucket == source.name
        ):
            return describe_error(exc, source.name, src_key)
        if code == "PreconditionFailed" or status == 412:
            return EopackError(f"s3://{source.name}/{src_key}: source object changed during copy")
    return destination_error(exc, bucket, key)


def _copy_source(source: SourceBucket, key: str, info: ObjectInfo) -> dict[str, Any]:
    """Arguments naming the source of a copy; If-Match pins every part to one version."""
    args: dict[str, Any] = {"CopySource": {"Bucket": source.name, "Key": key}}
    if info.etag:
        args["CopySourceIfMatch"] = info.etag
    return {**args, **source.extra_args}


def abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort a multipart upload so no parts linger (and bill); failures only logged."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "s3://%s/%s: could not abort multipart upload %s: %s", bucket, key, upload_id, exc
        )


def abort_stale_uploads(
    client: Any, bucket: str, prefix: str, *, exact: bool = False, before: datetime | None = None
) -> int:
    """Abort multipart uploads to keys under ``prefix`` (``exact``: to that key) begun before
    ``before`` (default: now); returns how many.

    A killed copy or zip stream leaves its multipart upload behind: invisible, but its parts
    are billed until it is aborted. Only the keys this run is about to write are looked at, so
    uploads of other tools are left alone; the run's own uploads start after ``before``. One
    line says what was aborted. Credentials that may not list uploads
    (``s3:ListBucketMultipartUploads``) only skip this (the lifecycle rule
    ``AbortIncompleteMultipartUpload`` is the other remedy).
    """
    before = before or datetime.now(UTC)
    uploads: list[Mapping[str, Any]] = []
    args = {"Bucket": bucket, "Prefix": prefix}
    try:
        while True:  # 1,000 a page
            page = client.list_multipart_uploads(**args)
            uploads += page.get("Uploads", [])
            if not page.get("IsTruncated"):
                break
            args.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
    except (ClientError, BotoCoreError) as exc:
        log.info(
            "s3://%s/%s: incomplete multipart uploads not looked for (%s)",
            bucket,
            prefix,
            type(exc).__name__,
        )
        return 0
    stale = [
        u
        for u in uploads
        if (not exact or u["Key"] == prefix) and u.get("Initiated", before) < before
    ]
    for upload in stale:
        abort_upload(client, bucket, upload["Key"], upload["UploadId"])
    if stale:
        log.warning(
            "s3://%s/%s: aborted %d incomplete multipart upload(s) left by an interrupted run "
            "(their parts are billed until aborted)",
            bucket,
            prefix,
            len(stale),
        )
    return len(stale)


def multipart_copy(
    client: Any,
    parts_pool: ThreadPoolExecutor,
    source: SourceBucket,
    src_key: str,
    info: ObjectInfo,
    bucket: str,
    key: str,
    part_size: int,
) -> int:
    """Copy one object with UploadPartCopy parts in parallel; returns the number of parts."""
    extra = {"ContentType": info.content_type} if info.content_type else {}
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    copy_source = _copy_source(source, src_key, info)

    def part(number: int, first: int, last: int) -> dict[str, Any]:
        response = client.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySourceRange=f"bytes={first}-{last}",
            **copy_source,
        )
        return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

    ranges = part_ranges(info.size, part_size)
    calls = [lambda n=n, r=r: part(n, *r) for n, r in enumerate(ranges, start=1)]
    try:
        parts = gather(parts_pool, calls)
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        abort_upload(client, bucket, key, upload_id)
        raise
    return len(ranges)


def copy_one(
    client: Any,
    parts_pool: ThreadPoolExecutor,
    source: SourceBucket,
    src_key: str,
    info: ObjectInfo,
    bucket: str,
    key: str,
    multipart_threshold: int,
    part_size: int,
) -> str:
    """Copy one object server-side; returns the method used (``copy`` or ``multipart``)."""
    log.info(
        "Copying s3://%s/%s -> s3://%s/%s (%d bytes)", source.name, src_key, bucket, key, info.size
    )
    try:
        if info.size <= min(multipart_threshold, COPY_OBJECT_LIMIT):
            client.copy_object(Bucket=bucket, Key=key, **_copy_source(source, src_key, info))
            return "copy"
        multipart_copy(client, parts_pool, source, src_key, info, bucket, key, part_size)
        return "multipart"
    except (ClientError, BotoCoreError) as exc:
        raise _copy_error(exc, source, src_key, bucket, key) from None


def read_manifest(client: Any, source: SourceBucket, key: str) -> list[DataObject]:
    """Parse the source's ``manifest.safe`` (the only object bytes the host reads)."""
    return parse_manifest_bytes(get_bytes(client, source, key), f"s3://{source.name}/{key}")


def _copied_md5(src: ObjectInfo | None, dst: ObjectInfo | None) -> str | None:
    """The MD5 of the destination's bytes, as far as HEADs tell.

    The destination's ETag when it is an MD5. For an encrypted destination (SSE-KMS...: the
    ETag is opaque) the source's MD5: every copy is pinned to that source version by
    ``x-amz-copy-source-if-match`` and the sizes agree, so the bytes are the source's.
    """
    if dst is None:
        return None
    if dst.md5 is None and dst.opaque_etag and src is not None:
        return src.md5
    return dst.md5


def _status(
    src: ObjectInfo | None, dst: ObjectInfo | None, listed: DataObject | None
) -> tuple[str, str]:
    """``(status, what it was compared with)``: the source first, then ``manifest.safe``."""
    if src is None or dst is None:
        return "missing", "source" if src else "manifest"
    if dst.size != src.size:
        return "size_mismatch", "source"
    if dst.md5 and src.md5 and dst.md5 != src.md5:
        return "md5_mismatch", "source"
    if listed is None:
        return "ok", "source"
    got = _copied_md5(src, dst)
    size_ok = listed.size is None or dst.size == listed.size
    md5_ok = listed.md5 is None or got is None or got == listed.md5
    if listed.is_measurement:  # re-encoded in the bucket: a mismatch is expected
        return ("ok" if size_ok and md5_ok else "ok_reencoded"), "manifest"
    if not size_ok:
        return "size_mismatch", "manifest"
    return ("ok" if md5_ok else "md5_mismatch"), "manifest"


def file_entry(
    safe_path: str,
    key: str | None,
    method: str | None,
    src: ObjectInfo | None,
    dst: ObjectInfo | None,
    listed: DataObject | None,
) -> dict[str, Any]:
    """Check one copied file against its source and ``manifest.safe`` from HEADs alone.

    Sizes always; MD5 where the destination ETag is one (``md5_checked``), or, for an
    encrypted destination whose ETag is not an MD5, the pinned source's MD5 against the
    manifest (``source_md5_checked``). Statuses are those of
    :func:`eopack.safe.manifest.verify_safe`, keys a superset of its entries'.
    """
    status, against = _status(src, dst, listed)
    md5 = dst.md5 if dst else None
    by_source = md5 is None and dst is not None and dst.opaque_etag
    return {
        "path": safe_path,
        "key": key,
        "method": method,
        "source_size": src.size if src else None,
        "source_etag": src.etag if src else None,
        "expected_size": listed.size if listed else None,
        "expected_md5": listed.md5 if listed else None,
        "size": dst.size if dst else None,
        "md5": md5,
        "etag": dst.etag if dst else None,
        "md5_checked": bool(md5 and ((src and src.md5) or (listed and listed.md5))),
        "encryption": dst.encryption if dst else None,
        "source_md5_checked": bool(by_source and src and src.md5 and listed and listed.md5),
        "against": against,
        "status": status,
    }


def failure_line(report: Mapping[str, Any]) -> str:
    """One line naming the first failed file and why (source or manifest comparison)."""
    bad = [f for f in report["files"] if f["status"] not in OK_STATUSES]
    first = bad[0]
    source = first["against"] == "source"
    expected_size = first["source_size"] if source else first["expected_size"]
    expected_md5 = first["source_etag"] if source else first["expected_md5"]
    # An encrypted destination's MD5 is its pinned source's (see _copied_md5).
    got_md5 = first["md5"] or str(first["source_etag"]).strip('"')
    detail = {
        "missing": "missing at the destination",
        "size_mismatch": f"size {first['size']} != {first['against']} {expected_size}",
        "md5_mismatch": f"MD5 {got_md5} != {first['against']} {expected_md5}",
    }[first["status"]]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{report['destination']}{first['path']}: {detail}{more}"


def _put_json(client: Any, bucket: str, key: str, report: Mapping[str, Any]) -> None:
    body = (json.dumps(report, indent=1, sort_keys=True) + "\n").encode()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise destination_error(exc, bucket, key) from None


def _remove_marker(client: Any, bucket: str, key: str) -> None:
    """Delete a previous run's completion marker before overwriting any of its files.

    Its HEAD is the copy's first read of the destination: a write-only policy stops here, in
    words that say what the copy needs (it verifies every copied file by HEAD).
    """
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code, status = _code(exc)
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return  # nothing to delete: no s3:DeleteObject permission needed
        if status == 403:
            raise EopackError(
                f"s3://{bucket}/{key}: HeadObject refused on the destination: copying a SAFE "
                "needs s3:GetObject there to verify the copies (or set "
                "destination.copy_safe: false and deliver the zip only)"
            ) from None
        raise destination_error(exc, bucket, key) from None
    except BotoCoreError as exc:
        raise describe_error(exc, bucket, key) from None
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise destination_error(exc, bucket, key) from None


def copy_safe_to_s3(
    client: Any,
    source: SourceBucket,
    prefix: str,
    product_id: str,
    filename_map: Mapping[str, str],
    dest_bucket: str,
    dest_prefix: str = "",
    max_workers: int = 8,
    *,
    source_buckets: Collection[str] = (),
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
    check_manifest: bool = True,
    fail: bool = True,
    folder: str | None = None,
    known_gap: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Copy every file ``{prefix}/{key}`` to ``{dest_prefix}/{folder}/{path}`` server-side.

    ``folder``: the product's folder name (``{id}.SAFE`` unless given: a Landsat scene's is
    ``{id}``). With an empty ``prefix`` the map's keys are full bucket keys. ``known_gap``:
    which manifest entries the bucket never carries (recorded as such, not missing).

    Order: refuse bad destinations, HEAD every source (and read ``manifest.safe`` when
    ``check_manifest``), drop an old completion marker, copy (largest first), HEAD every copy,
    then write the report: ``{id}.verify.json`` (the completion marker) when all is well,
    else ``{id}.verify.failed.json`` and an error (unless ``fail`` is False). Any failure on
    the way leaves no marker. ``source_buckets`` are never written to. Returns the report.
    """
    dest = S3Destination(dest_bucket, clean_prefix(dest_prefix, f"s3://{dest_bucket}"))
    safe_dir = folder or f"{product_id}.SAFE"
    destination = dest.uri(safe_dir) + "/"
    check_destination_bucket(client, dest_bucket, destination, {source.name, *source_buckets})
    marker = dest.key(f"{product_id}.verify.json")
    log.info("%s: %d files -> %s", product_id, len(filename_map), destination)
    paths = sorted(filename_map)

    def src_key(safe_path: str) -> str:
        return f"{prefix}/{filename_map[safe_path]}" if prefix else filename_map[safe_path]

    def dst_key(safe_path: str) -> str:
        return dest.key(safe_dir, safe_path)

    with ThreadPoolExecutor(max_workers) as files, ThreadPoolExecutor(max_workers) as parts:
        sources = pmap(files, lambda p: head_source(client, source, src_key(p)), paths)
        manifest: list[DataObject] = []
        if check_manifest and "manifest.safe" in filename_map:
            manifest = read_manifest(client, source, src_key("manifest.safe"))
        _remove_marker(client, dest_bucket, marker)
        abort_stale_uploads(client, dest_bucket, dest.key(safe_dir) + "/")

        def copy(p: str) -> str:
            return copy_one(
                client,
                parts,
                source,
                src_key(p),
                sources[p],
                dest_bucket,
                dst_key(p),
                multipart_threshold,
                part_size,
            )

        methods = pmap(files, copy, sorted(paths, key=lambda p: -sources[p].size))
        copied = pmap(files, lambda p: head_destination(client, dest_bucket, dst_key(p)), paths)
    report = build_report(
        product_id, destination, methods, sources, copied, manifest, dst_key, known_gap
    )
    return _finish(client, dest, product_id, report, fail)


def build_report(
    product_id: str,
    destination: str,
    methods: Mapping[str, str],
    sources: Mapping[str, ObjectInfo],
    copied: Mapping[str, ObjectInfo | None],
    manifest: Sequence[DataObject],
    key_of: Callable[[str], str],
    known_gap: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """The report (``verify.json``'s shape, plus copy facts) from the HEADs."""
    listed = {obj.path: obj for obj in manifest}
    files = [
        file_entry(p, key_of(p), methods.get(p), sources[p], copied[p], listed.get(p))
        for p in sorted(sources)
    ]
    for obj in manifest:
        if obj.path not in sources:
            entry = file_entry(obj.path, None, None, None, None, obj)
            if known_gap is not None and known_gap(obj.path):
                entry["status"] = "known_gap"
            files.append(entry)
    files.sort(key=lambda f: f["path"])
    bad = [f for f in files if f["status"] not in OK_STATUSES]
    return {
        "product": product_id,
        "destination": destination,
        "ok": not bad,
        "checked": len(files),
        "failed": len(bad),
        "known_gaps": sum(f["status"] == "known_gap" for f in files),
        "files": files,
        "manifest_checked": bool(manifest),
        "not_in_manifest": sorted(p for p in sources if manifest and p not in listed),
        "copied_bytes": sum(info.size for info in sources.values()),
    }


def _finish(
    client: Any, dest: S3Destination, product_id: str, report: dict[str, Any], fail: bool
) -> dict[str, Any]:
    """Write the completion marker last, or the failed report beside it and raise."""
    if report["ok"] or not fail:
        if not report["ok"]:
            log.warning("verification failed (continuing as configured): %s", failure_line(report))
        _put_json(client, dest.bucket, dest.key(f"{product_id}.verify.json"), report)
        log.info(
            "%s: %d files copied and verified in %s",
            product_id,
            report["checked"],
            report["destination"],
        )
        return report
    _put_json(client, dest.bucket, dest.key(f"{product_id}.verify.failed.json"), report)
    raise EopackError(f"verification failed: {failure_line(report)}")


def deliver_product_s3(
    products_file: str | Path,
    product_id: str,
    sources: Mapping[str, Any],
    destination: str,
    max_workers: int = 8,
) -> dict[str, Any]:
    """Copy a searched product's folder to an ``s3://`` destination (the workflow's entry
    point), with the file list of its collection (:mod:`eopack.safe.registry`)."""
    from eopack.s3 import make_client, source_bucket
    from eopack.safe.registry import collection
    from eopack.search.manifest import find_product

    dest = parse_destination(destination)
    if not isinstance(dest, S3Destination):
        raise EopackError(f"config: destination.uri: {destination!r} is not an s3:// destination")
    product = find_product(products_file, product_id)
    bucket = source_bucket(sources, product.bucket)
    client = make_client(bucket.region, max_pool=max(10, max_workers * 2))
    entry = collection(product.collection)
    files = entry.list_files(client, bucket, product)
    return copy_safe_to_s3(
        client,
        bucket,
        "",
        product_id,
        files.files,
        dest.bucket,
        dest.prefix,
        max_workers,
        source_buckets=set(sources),
        check_manifest=entry.manifest is not None,
        folder=files.folder,
        known_gap=entry.is_known_gap,
    )


# Upload of a local file (the zip)
# --------------------------------------------------------------------------------------------


def sha256_checksums(path: Path, part_size: int | None) -> tuple[str, str]:
    """``(hex SHA-256 of the file, S3's ChecksumSHA256 for the upload)`` in one read.

    S3's value is the base64 SHA-256 of the object for a single PUT, and the base64 SHA-256 of
    the parts' binary SHA-256s for a multipart upload (``part_size`` given).
    """
    whole = hashlib.sha256()
    parts: list[bytes] = []
    block = part_size or MIB
    with path.open("rb") as handle:
        for data in iter(lambda: handle.read(block), b""):
            whole.update(data)
            parts.append(hashlib.sha256(data).digest())
    if part_size is None or not parts:
        s3_value = base64.b64encode(whole.digest()).decode()
    else:
        s3_value = base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()
    return whole.hexdigest(), s3_value


def upload_file(
    client: Any,
    path: str | Path,
    dest_bucket: str,
    key: str,
    *,
    source_buckets: Collection[str] = (),
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
    max_workers: int = 8,
    content_type: str = "application/zip",
    skip_existing: bool = False,
) -> dict[str, Any]:
    """Upload a local file with boto3's managed transfer (multipart from the threshold on).

    Every request carries a SHA-256 that S3 checks; afterwards the stored checksum is
    compared with the file's, and a mismatching object is deleted. Readers never see a
    partial object: S3 publishes a PUT or a completed multipart upload atomically, and a
    failed multipart upload is aborted by the transfer manager. The file's SHA-256 is also
    stored as metadata ``sha256``: unlike S3's multipart checksum it does not depend on the
    part size, so ``skip_existing`` can recognise the same bytes uploaded with other settings
    and then uploads nothing (``skipped`` in the record).
    """
    path = Path(path)
    uri = f"s3://{dest_bucket}/{key}"
    if not path.is_file():
        raise EopackError(f"{path}: file to upload does not exist")
    check_destination_bucket(client, dest_bucket, uri, source_buckets)
    size = path.stat().st_size
    chunk = ChunksizeAdjuster().adjust_chunksize(part_size, size)
    multipart = size >= multipart_threshold
    sha256, expected = sha256_checksums(path, chunk if multipart else None)
    record = {"uri": uri, "size": size, "sha256": sha256, "checksum_sha256": expected}
    if skip_existing:
        head = _head_if_allowed(client, dest_bucket, key, "not looking for the same bytes there")
        if head is not None and _same_bytes(head, size, sha256, expected):
            log.info("%s: already there with the same SHA-256; not uploaded again", uri)
            return {**record, "etag": head.get("ETag"), "multipart": None, "skipped": True}
    abort_stale_uploads(client, dest_bucket, key, exact=True)
    config = TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=chunk,
        max_concurrency=max_workers,
    )
    extra = {
        "ChecksumAlgorithm": "SHA256",
        "ContentType": content_type,
        "Metadata": {"sha256": sha256},
    }
    try:
        client.upload_file(str(path), dest_bucket, key, ExtraArgs=extra, Config=config)
    except S3UploadFailedError as exc:
        cause = exc.__context__ if isinstance(exc.__context__, ClientError) else exc
        raise destination_error(cause, dest_bucket, key) from None
    except (ClientError, BotoCoreError) as exc:
        raise destination_error(exc, dest_bucket, key) from None
    head = _head_if_allowed(
        client, dest_bucket, key, "not read back; S3 checked the SHA-256 of every request"
    )
    if head is None:  # write-only: S3 refuses a body whose SHA-256 is not the one sent
        return {**record, "etag": None, "multipart": multipart, "skipped": False}
    _check_upload(client, path, uri, head, size, expected)
    return {**record, "etag": head.get("ETag"), "multipart": multipart, "skipped": False}


def _head_if_allowed(
    client: Any, bucket: str, key: str, otherwise: str
) -> Mapping[str, Any] | None:
    """HEAD with checksums; None when absent, or refused (write-only: one warning saying
    ``otherwise``, what is done instead)."""
    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        code, status = _code(exc)
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return None
        if status == 403:
            log.warning(
                "s3://%s/%s: HeadObject refused (no s3:GetObject?); %s", bucket, key, otherwise
            )
            return None
        raise destination_error(exc, bucket, key) from None
    except BotoCoreError as exc:
        raise describe_error(exc, bucket, key) from None


def _same_bytes(head: Mapping[str, Any], size: int, sha256: str, expected: str) -> bool:
    """Does the stored object hold the file's bytes? Same size, and S3's own checksum equal
    to the one this upload would get or, for an upload with another part size, the ``sha256``
    metadata that eopack writes with every upload whose body S3 checked."""
    if int(head.get("ContentLength", -1)) != size:
        return False
    stored = head.get("ChecksumSHA256")
    if stored and stored.split("-", 1)[0] == expected:
        return True
    return head.get("Metadata", {}).get("sha256") == sha256


def _check_upload(
    client: Any, path: Path, uri: str, head: Mapping[str, Any], size: int, expected: str
) -> None:
    """Compare the stored object with the file; delete it when it differs."""
    stored = head.get("ChecksumSHA256")
    stored = stored.split("-", 1)[0] if stored else None  # composite values end in -N
    if int(head["ContentLength"]) == size and stored in (expected, None):
        if stored is None:
            log.warning("%s: the store returned no SHA-256; only the size was checked", uri)
        return
    bucket, _, key = uri[5:].partition("/")
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        log.warning("%s: could not delete the mismatching object: %s", uri, exc)
    raise EopackError(f"{uri}: uploaded object does not match {path} (size or SHA-256); removed")


# Workflow entry points: the receipts are the Snakemake outputs of S3 deliveries
# --------------------------------------------------------------------------------------------


#: How one run moved the bytes (uploaded or found there, in one part or many): logged, not kept.
RUN_ONLY_KEYS = ("skipped", "multipart")


def write_receipt(record: Mapping[str, Any], path: str | Path) -> None:
    """A local JSON record of what was delivered where (stable key order).

    Only facts about the object: two runs that deliver the same bytes write the same receipt,
    whether this one uploaded them or found them there (that is in the job's log)."""
    write_json(path, {k: v for k, v in record.items() if k not in RUN_ONLY_KEYS})


def deliver_safe(
    products_file: str | Path,
    product_id: str,
    sources: Mapping[str, Any],
    destination: str,
    receipt: str | Path,
    max_workers: int = 8,
) -> dict[str, Any]:
    """Server-side SAFE copy to the destination; its verification report is the receipt."""
    report = deliver_product_s3(products_file, product_id, sources, destination, max_workers)
    write_receipt(report, receipt)
    return report


def deliver_zip(
    zip_path: str | Path,
    destination: str,
    sources: Mapping[str, Any],
    receipt: str | Path,
    max_workers: int = 8,
) -> dict[str, Any]:
    """Upload a local zip to ``s3://bucket/prefix/{name}`` and record the checksums.

    A zip already there with the same size and SHA-256 (a rerun after a lost receipt, or a
    rebuild, which is byte-identical) is not uploaded again: its receipt says ``skipped``.
    """
    from eopack.s3 import make_client

    dest = parse_destination(destination)
    if not isinstance(dest, S3Destination):
        raise EopackError(f"config: destination.uri: {destination!r} is not an s3:// destination")
    name = Path(zip_path).name
    client = make_client(max_pool=max(10, max_workers * 2))
    record = upload_file(
        client,
        zip_path,
        dest.bucket,
        dest.key(name),
        source_buckets=set(sources),
        max_workers=max_workers,
        skip_existing=True,
    )
    # The file it came from: publish_urls uploads the zip again from it if it goes missing.
    record = {**record, "file": str(zip_path)}
    log.info(
        "%s -> %s (%d bytes, sha256 %s%s)",
        zip_path,
        record["uri"],
        record["size"],
        record["sha256"],
        "; already there, not uploaded" if record["skipped"] else "",
    )
    write_receipt(record, receipt)
    return record
