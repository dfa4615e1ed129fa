"""Publish results: upload them to ``s3://bucket/prefix`` and share them by presigned GET URL.

Uploads are :func:`eopack.deliver.upload_file` (multipart, a SHA-256 that S3 checks and that
is compared afterwards), skipped when the object already holds the file's bytes. Each upload
leaves a receipt without a URL: URLs expire, receipts must stay true. ``urls.tsv`` is made
from the receipts by one last job, which checks that every object is still there, uploads
again in the same run those that are not (deleted, expired by a lifecycle rule, lost by a
restarted demo server) from the file each receipt names, and signs fresh URLs; re-running that
job alone refreshes the URLs and uploads nothing while every object is there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from eopack.credentials import cap_to_credentials
from eopack.deliver import (
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE,
    S3Destination,
    check_not_source,
    head_bucket,
    parse_destination,
    pmap,
    upload_file,
    write_receipt,
)
from eopack.errors import EopackError
from eopack.fsutil import atomic_output
from eopack.s3 import describe_error, make_client, parse_s3_uri

log = logging.getLogger(__name__)

SAFE_ZIPS = "safe_zips"
BIGEARTHNET = "bigearthnet"
INCLUDE = (SAFE_ZIPS, BIGEARTHNET)
MIN_EXPIRES_S = 60
DEFAULT_EXPIRES_S = 12 * 3600
SIGV4_MAX_EXPIRES_S = 7 * 24 * 3600  # AWS refuses a SigV4 presigned URL valid any longer
URLS_COLUMNS = ("object", "uri", "url", "expires")
CONTENT_TYPES = {
    ".zip": "application/zip",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
}
TEXT_NAMES = {"SHA256SUMS"}
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishSettings:
    """The config's ``publish:`` section, checked; no ``destination`` = publishing is off."""

    destination: S3Destination | None
    include: frozenset[str]
    expires_s: int
    max_expires_s: int
    source_buckets: tuple[str, ...]

    @property
    def enabled(self) -> bool:
        return self.destination is not None

    def includes(self, what: str) -> bool:
        """Is ``what`` (:data:`SAFE_ZIPS`, :data:`BIGEARTHNET`) published?"""
        return self.enabled and what in self.include


def _duration(seconds: int) -> str:
    """``43200 s (12 h)``: seconds as configured, hours or days as people think of them."""
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{seconds} s ({days} day{'s' if days > 1 else ''})"
    if seconds % 3600 == 0:
        return f"{seconds} s ({seconds // 3600} h)"
    return f"{seconds} s"


def check_expiry(expires_s: int, max_expires_s: int) -> None:
    """URL lifetime: at least a minute, at most the cap; the cap (12 h unless raised on
    purpose, a long-lived link is hard to take back) never above SigV4's 7 days."""
    if expires_s < MIN_EXPIRES_S:
        raise EopackError(
            f"config: publish.expires_s: {expires_s} s is below the minimum of {MIN_EXPIRES_S} s"
        )
    if max_expires_s < MIN_EXPIRES_S:
        raise EopackError(
            f"config: publish.max_expires_s: {max_expires_s} s is below the minimum of "
            f"{MIN_EXPIRES_S} s"
        )
    if max_expires_s > SIGV4_MAX_EXPIRES_S:
        raise EopackError(
            f"config: publish.max_expires_s: {max_expires_s} s is above the SigV4 maximum of "
            f"{_duration(SIGV4_MAX_EXPIRES_S)}"
        )
    if expires_s > max_expires_s:
        raise EopackError(
            f"config: publish.expires_s: {expires_s} s is above publish.max_expires_s, "
            f"{_duration(max_expires_s)}; raise publish.max_expires_s, up to "
            f"{_duration(SIGV4_MAX_EXPIRES_S)}, for longer-lived URLs"
        )


def source_buckets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Every bucket eopack reads from: ``sources`` and an ``s3://`` BigEarthNet source."""
    names = set(config.get("sources") or {})
    ben_source = str((config.get("bigearthnet") or {}).get("source") or "")
    if ben_source.startswith("s3://"):
        names.add(parse_s3_uri(ben_source)[0])
    return tuple(sorted(names))


def parse_publish_uri(uri: str) -> S3Destination:
    """``publish.uri`` as a destination; it must be on S3 (a URL needs a bucket to point at)."""
    where = "config: publish.uri"
    if not str(uri).startswith("s3://"):
        raise EopackError(
            f"{where}: {uri!r} is not s3://bucket/prefix (presigned URLs need an S3 bucket)"
        )
    dest = parse_destination(uri, where=where)
    if not isinstance(dest, S3Destination):  # unreachable: s3:// parses as S3
        raise EopackError(f"{where}: {uri!r} is not s3://bucket/prefix")
    return dest


def publish_settings(config: Mapping[str, Any]) -> PublishSettings:
    """Check ``publish:`` before any job runs; one line naming the key when it is wrong."""
    section = config.get("publish") or {}
    expires_s = int(section.get("expires_s", DEFAULT_EXPIRES_S))
    max_expires_s = int(section.get("max_expires_s", DEFAULT_EXPIRES_S))
    check_expiry(expires_s, max_expires_s)
    sources = source_buckets(config)
    uri = section.get("uri")
    destination = None
    if uri is not None and str(uri).strip():
        destination = parse_publish_uri(str(uri))
        check_not_source(destination, sources, where="config: publish.uri")
    include = frozenset(section.get("include", INCLUDE))
    return PublishSettings(destination, include, expires_s, max_expires_s, sources)


def check_publish_bucket(settings: PublishSettings) -> None:
    """Before any job runs: a publish bucket that is missing or forbidden stops the run.

    Snakemake removes the outputs of a job it runs again (a changed ``publish.uri`` reruns
    every upload) before running it: without this check, a mistyped bucket cost the receipts
    of objects published fine. One HeadBucket, only when publishing jobs are to run.
    """
    if settings.destination is None:
        return
    uri = settings.destination.uri()
    try:
        head_bucket(make_client(), settings.destination.bucket, uri, "publish bucket")
    except EopackError as err:
        raise EopackError(
            f"config: publish.uri: {err}; stopped before any job ran, every result and "
            "receipt of earlier runs is kept"
        ) from None


# Upload
# --------------------------------------------------------------------------------------------


def content_type(path: str | Path) -> str:
    """What a browser should make of the download."""
    path = Path(path)
    if path.name in TEXT_NAMES:
        return "text/plain"
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def publish_file(
    path: str | Path,
    object_name: str,
    uri: str,
    source_buckets: Collection[str],
    receipt: str | Path,
    *,
    max_workers: int = 8,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
) -> dict[str, Any]:
    """Upload ``path`` to ``{uri}/{object_name}`` unless it is already there with the same
    SHA-256 (``skipped``), and write the receipt: object, URI, size, SHA-256, no URL."""
    dest = parse_publish_uri(uri)
    client = make_client(max_pool=max(10, max_workers * 2))
    record = upload_file(
        client,
        path,
        dest.bucket,
        dest.key(object_name),
        source_buckets=source_buckets,
        multipart_threshold=multipart_threshold,
        part_size=part_size,
        max_workers=max_workers,
        content_type=content_type(path),
        skip_existing=True,
    )
    record = {"object": object_name, "file": str(path), **record}
    done = "already published (same SHA-256)" if record["skipped"] else "uploaded"
    log.info("%s -> %s: %s, %d bytes", path, record["uri"], done, record["size"])
    write_receipt(record, receipt)
    return record


# Presigned URLs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedUrl:
    """One row of ``urls.tsv``."""

    object: str
    uri: str
    url: str
    expires: dt.datetime

    def row(self) -> tuple[str, str, str, str]:
        return self.object, self.uri, self.url, self.expires.strftime(ISO_UTC)


@dataclass(frozen=True)
class Published:
    """What a receipt says was published (publish receipts and S3 delivery receipts), and the
    local file it was uploaded from (``file``; none for a zip streamed from a source bucket)."""

    object: str
    uri: str
    size: int
    receipt: str
    etag: str | None = None
    file: str | None = None


def read_receipt(path: str | Path) -> Published:
    """A receipt's object name, URI, size, ETag and file. Delivery receipts (``results/deliver``)
    have no object name: theirs is the key's file name, as under the destination prefix."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        uri, size = str(doc["uri"]), int(doc["size"])
    except (OSError, ValueError, KeyError, TypeError):
        raise EopackError(f"{path}: not a publish or delivery receipt (uri, size)") from None
    name = doc.get("object") or PurePosixPath(parse_s3_uri(uri)[1]).name
    etag, file = doc.get("etag"), doc.get("file")
    return Published(
        str(name), uri, size, str(path), str(etag) if etag else None, str(file) if file else None
    )


def _read_error(exc: Exception, uri: str) -> EopackError:
    """One line for a published object that cannot be read back (other than missing)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return EopackError(f"{uri}: bucket does not exist")
        if code in ("403", "AccessDenied", "Forbidden") or status == 403:
            return EopackError(
                f"{uri}: access denied reading the object (a presigned URL has the rights "
                "of the credentials that sign it)"
            )
    bucket, key = parse_s3_uri(uri)
    return describe_error(exc, bucket, key)


def bucket_region(client: Any, bucket: str) -> str:
    """The bucket's region: a SigV4 URL signed for another region is refused by S3."""
    response = head_bucket(client, bucket, f"s3://{bucket}/")
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
    return str(region or client.meta.region_name)


def check_published(client: Any, item: Published) -> str | None:
    """What is wrong with the object: ``None`` when it is there as its receipt says, else
    ``missing`` or how it differs (deleted, expired by a lifecycle rule, a restarted server,
    overwritten). A URL to such an object is no use."""
    bucket, key = parse_s3_uri(item.uri)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchKey", "NotFound") or (status == 404 and code != "NoSuchBucket"):
            return "missing"
        raise _read_error(exc, item.uri) from None
    except BotoCoreError as exc:
        raise _read_error(exc, item.uri) from None
    size = int(head["ContentLength"])
    if size != item.size:
        return f"{size} bytes, the receipt says {item.size}"
    etag = str(head.get("ETag") or "").strip('"')
    if item.etag and etag and etag != item.etag.strip('"'):
        return "other bytes (its ETag is not the receipt's)"
    return None


def restore_published(
    client: Any, item: Published, source_buckets: Collection[str], max_workers: int = 8
) -> dict[str, Any]:
    """Upload a missing or changed object again from the file its receipt names (the one its
    upload job read), then update the receipt (atomic write) with what is there now."""
    if not item.file:
        raise EopackError(
            f"{item.uri}: {item.receipt} names no local file to upload it from (a zip streamed "
            "from its source); delete the receipt and run again to make it anew"
        )
    if not Path(item.file).is_file():
        raise EopackError(
            f"{item.uri}: its file {item.file} is not here; delete {item.receipt} and run again"
        )
    bucket, key = parse_s3_uri(item.uri)
    record = upload_file(
        client,
        item.file,
        bucket,
        key,
        source_buckets=source_buckets,
        max_workers=max_workers,
        content_type=content_type(item.file),
        skip_existing=True,
    )
    doc = json.loads(Path(item.receipt).read_text(encoding="utf-8"))
    write_receipt({**doc, **record}, item.receipt)
    done = "already there (same SHA-256)" if record["skipped"] else "uploaded again"
    log.info("%s -> %s: %s, %d bytes", item.file, item.uri, done, record["size"])
    return record


def restore_missing(
    client: Any, items: Sequence[Published], source_buckets: Collection[str], max_workers: int = 8
) -> list[Published]:
    """Check every object, then upload again all that are missing or changed, in this run.

    One warning names them all; objects that cannot be restored are named together in one
    error, after the others were restored. Returns the restored ones.
    """
    with ThreadPoolExecutor(max_workers) as pool:
        found = pmap(pool, lambda item: check_published(client, item), list(items))
    problems = {item: what for item, what in found.items() if what}
    if not problems:
        return []
    ordered = sorted(problems, key=lambda i: i.object)
    log.warning(
        "%d of %d published objects are missing or changed, uploading them again from their "
        "files: %s",
        len(problems),
        len(items),
        "; ".join(f"{item.uri} ({problems[item]})" for item in ordered),
    )
    restored, failed = [], []
    for item in ordered:
        try:
            restore_published(client, item, source_buckets, max_workers)
            restored.append(item)
        except EopackError as err:
            reason = str(err).removeprefix(f"{item.uri}: ")
            failed.append(f"{item.uri} ({problems[item]}): {reason}")
    if failed:
        raise EopackError(
            f"{len(failed)} of {len(problems)} missing or changed published objects could not be "
            f"uploaded again: {'; '.join(failed)}; uploaded again: {len(restored)}, their "
            "receipts updated; no receipt was removed; the URL list is written once every "
            "object is there"
        )
    log.info("%d objects uploaded again; their receipts updated", len(restored))
    return restored


def presign(client: Any, uri: str, expires_s: int) -> tuple[str, dt.datetime]:
    """A presigned GET URL and its expiry, read from the URL (signing time + lifetime)."""
    bucket, key = parse_s3_uri(uri)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
    )
    query = parse_qs(urlsplit(url).query)
    try:
        signed = dt.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        lifetime = int(query["X-Amz-Expires"][0])
    except (KeyError, ValueError):
        raise EopackError(f"{uri}: the presigned URL is not SigV4 (no X-Amz-Date)") from None
    return url, signed.replace(tzinfo=dt.UTC) + dt.timedelta(seconds=lifetime)


def presign_receipts(
    receipts: Sequence[str | Path],
    expires_s: int,
    max_expires_s: int,
    source_buckets: Collection[str] = (),
    max_workers: int = 8,
) -> list[PublishedUrl]:
    """Presigned URLs for every receipt's object, sorted by object name. Every object is
    checked first, and those missing or changed are uploaded again (:func:`restore_missing`)."""
    check_expiry(expires_s, max_expires_s)
    items = [read_receipt(path) for path in receipts]
    seen: dict[str, Published] = {}
    for item in items:
        if item.object in seen:
            raise EopackError(
                f"{item.receipt}: object {item.object} is also in {seen[item.object].receipt}"
            )
        seen[item.object] = item
    client = make_client(max_pool=max(10, max_workers * 2))
    buckets = sorted({parse_s3_uri(item.uri)[0] for item in items})
    signers = {b: make_client(bucket_region(client, b), signature_version="s3v4") for b in buckets}
    restore_missing(client, items, source_buckets, max_workers)
    expires_s = cap_to_credentials(client, expires_s) if items else expires_s
    rows = []
    for item in sorted(items, key=lambda i: i.object):
        url, expires = presign(signers[parse_s3_uri(item.uri)[0]], item.uri, expires_s)
        rows.append(PublishedUrl(item.object, item.uri, url, expires))
    return rows


def write_urls(
    receipts: Sequence[str | Path],
    output: str | Path,
    expires_s: int = DEFAULT_EXPIRES_S,
    max_expires_s: int = DEFAULT_EXPIRES_S,
    source_buckets: Collection[str] = (),
    max_workers: int = 8,
) -> list[PublishedUrl]:
    """``urls.tsv``: a header, then object, URI, URL, expiry (UTC ISO 8601) per object.

    The URLs are never logged: they are bearer tokens until they expire.
    """
    rows = presign_receipts(receipts, expires_s, max_expires_s, source_buckets, max_workers)
    with atomic_output(output, text=True) as handle:
        for row in [URLS_COLUMNS, *(r.row() for r in rows)]:
            handle.write("\t".join(row) + "\n")
    until = min((r.expires for r in rows), default=None)
    # As signed: temporary credentials may have shortened it (eopack.credentials).
    lifetime = min((int(parse_qs(urlsplit(r.url).query)["X-Amz-Expires"][0]) for r in rows),
                   default=expires_s)  # fmt: skip
    log.info(
        "%s: %d presigned URLs, valid %s%s",
        output,
        len(rows),
        _duration(lifetime),
        f", until {until.strftime(ISO_UTC)}" if until else "",
    )
    return rows


def read_urls(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``urls.tsv`` as dicts keyed by :data:`URLS_COLUMNS`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != URLS_COLUMNS:
        raise EopackError(f"{path}: not a urls.tsv (header {' '.join(URLS_COLUMNS)})")
    return [dict(zip(URLS_COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]
