"""Resumable S3 downloads: ranged parts for large objects, a sidecar to resume, atomic finish.

Next to each destination ``dest`` a download keeps:

* ``{dest}.part``: the bytes so far. Large objects: pre-sized, each part written at its offset.
  Small objects: the prefix received so far.
* ``{dest}.part.json``: the sidecar, naming the object version the bytes belong to (ETag, size)
  and, for ranged downloads, the completed parts. It is replaced atomically after every part.

Only when every byte is there is ``.part`` renamed to ``dest``: a name without ``.part`` is
always a complete file. The MD5 that :func:`download_file` returns is optional
(``TransferConfig.md5``): hashed on the fly for a single stream, in a second pass over the file
for ranged parts. Every request carries the bucket's extra arguments (requester pays) and
``If-Match`` the ETag seen by HEAD, so bytes of two versions never mix.

Sidecar (version 1)::

    {"version": 1, "bucket": "b", "key": "k", "etag": "\\"...\\"", "size": 41943040,
     "part_size": 1048576, "done": [0, 1, 5]}

``part_size`` is ``null`` for a single-stream download, whose progress is the length of
``.part``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from eopack.errors import EopackError
from eopack.fsutil import locked_partial
from eopack.s3 import CHUNK, SourceBucket, describe_error

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SIDECAR_VERSION = 1
#: Attempts per byte range when the *body* breaks; botocore retries requests, not streams.
STREAM_ATTEMPTS = 5
_TRANSIENT = (ResponseStreamingError, ReadTimeoutError, IncompleteReadError, ConnectionClosedError)


@dataclass(frozen=True)
class TransferConfig:
    """When a download switches to ranged parts, how big they are, how many run at once.

    Defaults: S1 measurement TIFFs (0.3-4 GB) get 20-250 parts of 16 MiB, enough to keep
    several connections busy and cheap to redo after a kill; XML, previews and small
    manifests stay single GETs. ``part_workers`` only sizes the pool :func:`download_file`
    creates when no shared ``part_pool`` is given.

    ``md5``: return each file's MD5 (on by default). A ranged download computes it in a second,
    single-core pass over the finished file (~760 MB/s per core), which is a large share of
    its cost on a fast link. With ``md5=False`` no download hashes anything (single streams
    neither, so the answer is the same whatever the size) and the digest is None. The bytes
    are guarded without it: every request carries ``If-Match`` with the ETag seen by HEAD (no
    mixing of versions), every part's ``Content-Range`` is checked, resumed parts are the ones
    the sidecar records as written and synced. Turn it off where something else checks the
    files: :func:`eopack.safe.s1.rebuild_safe` does by default, since the workflow's verify
    step hashes every file against ``manifest.safe``.
    """

    threshold: int = 64 * MiB
    part_size: int = 16 * MiB
    part_workers: int = 8
    md5: bool = True

    def __post_init__(self) -> None:
        if min(self.threshold, self.part_size, self.part_workers) < 1:
            raise EopackError("transfer: threshold, part_size and part_workers must be positive")


class ObjectChanged(Exception):
    """The object's ETag no longer matches (HTTP 412): the bytes on disk are of another version."""


class _Cancelled(Exception):
    """Another part failed; this one stops between chunks so the failure surfaces quickly."""


@dataclass(frozen=True)
class _Version:
    size: int
    etag: str


@dataclass
class _Progress:
    """The sidecar: which object version ``.part`` holds and which parts are complete."""

    bucket: str
    key: str
    etag: str
    size: int
    part_size: int | None  # None: single stream, progress is the length of ``.part``
    done: set[int] = field(default_factory=set)

    def ranges(self) -> list[tuple[int, int]]:
        """Inclusive byte ranges of the parts (one range for a single stream)."""
        step = self.part_size or max(self.size, 1)
        return [(a, min(a + step, self.size) - 1) for a in range(0, self.size, step)]

    def describes(self, bucket: str, key: str, version: _Version) -> bool:
        return (self.bucket, self.key, self.etag, self.size) == (
            bucket,
            key,
            version.etag,
            version.size,
        )

    def save(self, path: Path) -> None:
        """Write atomically: a kill mid-write must leave the previous sidecar, not half a file."""
        doc = {
            "version": SIDECAR_VERSION,
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "part_size": self.part_size,
            "done": sorted(self.done),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> _Progress | None:
        """The sidecar, or None when absent or unusable (then the download starts over)."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc["version"] != SIDECAR_VERSION:
                return None
            progress = cls(
                str(doc["bucket"]),
                str(doc["key"]),
                str(doc["etag"]),
                int(doc["size"]),
                None if doc["part_size"] is None else int(doc["part_size"]),
                {int(i) for i in doc["done"]},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if progress.part_size is not None and progress.part_size < 1:
            return None
        return progress


def partial_path(dest: Path) -> Path:
    """Where the bytes of an unfinished download to ``dest`` live."""
    return dest.with_name(dest.name + ".part")


def sidecar_path(dest: Path) -> Path:
    """Where the progress record of an unfinished download to ``dest`` lives."""
    return dest.with_name(dest.name + ".part.json")


def file_md5(path: Path) -> tuple[int, str]:
    """``(size, md5 hex)`` of a file, streamed so multi-GB measurements need no memory."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest()


def finished_file(dest: Path, md5: bool = True) -> tuple[int, str | None]:
    """``(size, md5)`` of a download completed by an earlier run, dropping its leftovers.

    A kill between the final rename and the sidecar removal leaves a stale sidecar; it must
    not end up inside a SAFE. ``md5=False``: the file is not read and the md5 is None.
    """
    partial_path(dest).unlink(missing_ok=True)
    sidecar_path(dest).unlink(missing_ok=True)
    return file_md5(dest) if md5 else (dest.stat().st_size, None)


def resumable_bytes(dest: Path) -> int:
    """Bytes of ``dest`` already on disk from an interrupted run (for logs; 0 if none).

    A prediction: if the object changed since, the download starts over regardless.
    """
    progress = _Progress.load(sidecar_path(dest))
    part = partial_path(dest)
    if progress is None or not part.is_file():
        return 0
    if progress.part_size is None:
        return min(part.stat().st_size, progress.size)
    ranges = progress.ranges()
    return sum(end - start + 1 for i, (start, end) in enumerate(ranges) if i in progress.done)


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _head(client: Any, bucket: SourceBucket, key: str) -> _Version:
    """Size and ETag of the object, before any file is created.

    A HEAD 404 has no body, so a missing bucket and a missing key look alike; a GET of one
    byte tells them apart for the error message.
    """
    extra = bucket.extra_args
    try:
        response = client.head_object(Bucket=bucket.name, Key=key, **extra)
    except ClientError as exc:
        if _status(exc) != 404:
            raise
        try:
            probe = client.get_object(Bucket=bucket.name, Key=key, Range="bytes=0-0", **extra)
            probe["Body"].close()
        except ClientError as detailed:
            if _code(detailed) in ("NoSuchKey", "NoSuchBucket"):
                raise detailed from None
        raise
    return _Version(int(response["ContentLength"]), str(response["ETag"]))


def _prepare(
    fd: int, dest: Path, bucket: SourceBucket, key: str, version: _Version, config: TransferConfig
) -> _Progress:
    """Reuse the sidecar if it describes this very object version, else start over.

    A reused sidecar keeps its own part size, so a changed configuration loses no progress.
    """
    sidecar = sidecar_path(dest)
    progress = _Progress.load(sidecar)
    on_disk = os.fstat(fd).st_size
    if progress is not None and progress.describes(bucket.name, key, version):
        if progress.part_size is None and on_disk <= version.size:
            return progress
        if progress.part_size is not None and on_disk == version.size:
            return progress
    if progress is not None:
        uri = f"s3://{bucket.name}/{key}"
        log.info("%s: the partial download is of another version; starting over", uri)
    part_size = config.part_size if version.size >= config.threshold else None
    progress = _Progress(bucket.name, key, version.etag, version.size, part_size)
    os.ftruncate(fd, 0)
    if part_size is not None:
        os.ftruncate(fd, version.size)  # pre-sized: parts land at their offsets in any order
    progress.save(sidecar)
    return progress


class _Sink:
    """Writes a stream at its file offsets (hashing in order if asked); ``pos`` survives errors."""

    def __init__(self, fd: int, pos: int, md5: Any = None) -> None:
        self.fd = fd
        self.pos = pos
        self.md5 = md5

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.pos)
            if self.md5 is not None:
                self.md5.update(view[:written])
            view = view[written:]
            self.pos += written


def _get(
    client: Any, bucket: SourceBucket, key: str, etag: str, first: int, last: int, size: int
) -> Any:
    """One GET of bytes ``first..last``: whole-object GETs send no Range, as before."""
    args: dict[str, Any] = {"Bucket": bucket.name, "Key": key, "IfMatch": etag}
    ranged = first > 0 or last < size - 1
    if ranged:
        args["Range"] = f"bytes={first}-{last}"
    try:
        response = client.get_object(**args, **bucket.extra_args)
    except ClientError as exc:
        if _status(exc) == 412 or _code(exc) == "PreconditionFailed":
            raise ObjectChanged(etag) from None
        raise
    served = str(response.get("ContentRange", ""))
    if ranged and not served.startswith(f"bytes {first}-{last}/"):
        response["Body"].close()  # bytes at the wrong offsets would corrupt the file silently
        raise EopackError(f"s3://{bucket.name}/{key}: asked bytes {first}-{last}, got {served!r}")
    return response


def _fetch_range(
    client: Any,
    bucket: SourceBucket,
    key: str,
    etag: str,
    fd: int,
    span: tuple[int, int, int],
    md5: Any = None,
    cancel: threading.Event | None = None,
) -> None:
    """Write object bytes ``first..last`` (``span`` = first, last, size) at their offsets.

    A broken stream is resumed from the byte where it stopped, a few times.
    """
    first, last, size = span
    sink = _Sink(fd, first, md5)
    failures = 0
    while sink.pos <= last:
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        body = _get(client, bucket, key, etag, sink.pos, last, size)["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                if cancel is not None and cancel.is_set():
                    raise _Cancelled
                sink.write(chunk)
        except _TRANSIENT as exc:
            failures += 1
            if failures >= STREAM_ATTEMPTS:
                raise
            log.warning("s3://%s/%s: %s at byte %d; resuming", bucket.name, key, exc, sink.pos)
        finally:
            body.close()


def _record(fd: int, progress: _Progress, dest: Path, indexes: list[int]) -> None:
    """Mark parts complete, after their bytes are on disk (the sidecar must never lie)."""
    os.fdatasync(fd)
    progress.done.update(indexes)
    progress.save(sidecar_path(dest))


def _fetch_parts(
    client: Any,
    bucket: SourceBucket,
    key: str,
    fd: int,
    progress: _Progress,
    dest: Path,
    pool: Executor,
) -> None:
    """Fetch the missing parts in ``pool``, recording each as it completes.

    On the first failure the others are cancelled (queued) or stopped (running), the parts
    that did complete are still recorded, then the error propagates. The failing part raises
    the stop itself, so no queued part starts after it, however late this thread sees it.
    """
    cancel = threading.Event()

    def fetch(span: tuple[int, int, int]) -> None:
        try:
            _fetch_range(client, bucket, key, progress.etag, fd, span, None, cancel)
        except BaseException:
            cancel.set()
            raise

    futures: dict[Future[None], int] = {}
    for index, (first, last) in enumerate(progress.ranges()):
        if index not in progress.done:
            futures[pool.submit(fetch, (first, last, progress.size))] = index
    try:
        for future in as_completed(futures):
            future.result()
            _record(fd, progress, dest, [futures[future]])
    except BaseException as exc:
        cancel.set()
        for future in futures:
            future.cancel()
        wait(futures)
        finished = [
            index
            for future, index in futures.items()
            if not future.cancelled() and future.exception() is None and index not in progress.done
        ]
        if finished:
            _record(fd, progress, dest, finished)
        if isinstance(exc, _Cancelled):  # a part stopped by the failure may finish first
            for future in futures:
                cause = None if future.cancelled() else future.exception()
                if cause is not None and not isinstance(cause, _Cancelled):
                    raise cause from None
        raise


def _hash_prefix(fd: int, md5: Any) -> int:
    """Feed the bytes already in ``.part`` to ``md5``; returns their count."""
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        md5.update(chunk)
        offset += len(chunk)
    return offset


def _download_version(
    client: Any,
    bucket: SourceBucket,
    key: str,
    dest: Path,
    fd: int,
    version: _Version,
    config: TransferConfig,
    part_pool: Executor | None,
) -> tuple[int, str | None]:
    """Complete ``.part`` for this object version, then rename it to ``dest``."""
    progress = _prepare(fd, dest, bucket, key, version, config)
    digest: str | None = None
    if progress.part_size is None:
        md5 = hashlib.md5(usedforsecurity=False) if config.md5 else None
        have = _hash_prefix(fd, md5) if md5 is not None else os.fstat(fd).st_size
        span = (have, version.size - 1, version.size)
        _fetch_range(client, bucket, key, version.etag, fd, span, md5)
        size = os.fstat(fd).st_size
        digest = md5.hexdigest() if md5 is not None else None
    else:
        if part_pool is None:
            with ThreadPoolExecutor(config.part_workers, "eopack-part") as own:
                _fetch_parts(client, bucket, key, fd, progress, dest, own)
        else:
            _fetch_parts(client, bucket, key, fd, progress, dest, part_pool)
        if config.md5:
            size, digest = file_md5(partial_path(dest))
        else:
            size = os.fstat(fd).st_size  # pre-sized; every part's Content-Range was checked
    if size != version.size:
        raise EopackError(f"s3://{bucket.name}/{key}: got {size} bytes, expected {version.size}")
    os.replace(partial_path(dest), dest)
    sidecar_path(dest).unlink(missing_ok=True)
    return size, digest


def download_file(
    client: Any,
    bucket: SourceBucket,
    key: str,
    dest: str | Path,
    config: TransferConfig | None = None,
    part_pool: Executor | None = None,
) -> tuple[int, str | None]:
    """Download one object to ``dest``, resuming an interrupted run; returns ``(size, md5 hex)``.

    The md5 is None when ``config.md5`` is False (see :class:`TransferConfig`).

    Objects of ``config.threshold`` bytes or more come as ranged parts from ``part_pool``
    (or a pool of ``config.part_workers`` made for this call). Pass one pool shared by all
    files of a run, separate from the pool running the files: a file task waiting on parts
    queued behind other file tasks in the same executor could deadlock, and per-file pools
    would multiply connections (files x parts). With a shared part pool, requests in flight
    stay below file workers + part workers, since a file task waiting on parts holds no
    connection. An ETag change mid-way restarts the file once; a second one is an error.
    """
    config = config or TransferConfig()
    dest = Path(dest)
    uri = f"s3://{bucket.name}/{key}"
    try:
        version = _head(client, bucket, key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with locked_partial(partial_path(dest), uri) as fd:
            try:
                return _download_version(client, bucket, key, dest, fd, version, config, part_pool)
            except ObjectChanged:
                log.warning("%s: changed during the download; starting over", uri)
            sidecar_path(dest).unlink(missing_ok=True)
            version = _head(client, bucket, key)
            try:
                return _download_version(client, bucket, key, dest, fd, version, config, part_pool)
            except ObjectChanged:
                raise EopackError(
                    f"{uri}: object changed twice during the download; try again later"
                ) from None
    except (ClientError, BotoCoreError) as exc:
        raise describe_error(exc, bucket.name, key) from None
