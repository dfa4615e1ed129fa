"""Resumable S3 downloads: ranged parts for large objects, a sidecar to resume, atomic finish.

Next to each destination ``dest`` a download keeps:

* ``{dest}.part``: the bytes so far. Large objects: pre-sized, each part written at its offset.
  Small objects: the prefix received so far.
* ``{dest}.part.json``: the sidecar, naming the object version the bytes belong to (ETag, size)
  and, for ranged downloads, the completed parts. It is replaced atomically after every part.

Only when every byte is there is ``.part`` renamed to ``dest``: a name without ``.part`` is
always a complete file. The MD5 that :func:`download_files` returns is optional
(``TransferConfig.md5``): hashed on the fly for a single stream, in a second pass over the file
for ranged parts. Every request carries the bucket's extra arguments (requester pays) and
``If-Match`` the ETag seen by HEAD (or LIST), so bytes of two versions never mix.

Who does what, and why: the object bytes go through ``obstore`` (Rust ``object_store``), from
one asyncio loop that writes every body at its offset as it arrives, with the credentials and
endpoint of the boto3 client the caller passes; boto3 only words the errors (a missing bucket
or key, access denied) as the rest of eopack does.
Measured on the bench server (``make bench-safe``), boto3 bodies read by a pool of Python
threads cost the client 2-3x s5cmd's CPU and reached 0.5-0.8 of its throughput on two cores;
the loop reaches s5cmd's throughput with s5cmd's CPU, since no Python thread touches a byte
and a single writer never contends for the file's lock.

Sidecar (version 2)::

    {"version": 2, "bucket": "b", "key": "k", "etag": "\\"...\\"", "size": 41943040,
     "part_size": 1048576, "done": [0, 1, 5], "boot": "6f2c...-..."}

``part_size`` is ``null`` for a single-stream download, whose progress is the length of
``.part``. ``boot`` is the Linux boot id when the sidecar was written. A part counts as done
once its bytes were written (``pwrite``), not synced: after a kill, even ``SIGKILL``, the
kernel still holds them and a resume reads them back; only a crash of the machine loses
unsynced bytes, and the boot id tells that one apart (a sidecar of another boot is not
trusted: the file starts over). Syncing every part instead cost ~0.2 s of CPU per GB and
stalled the writes on the bench. Where there is no boot id (not Linux) every part is synced
before it is recorded and ``boot`` is ``null``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from eopack.errors import EopackError
from eopack.fsutil import locked_partial, pwrite_all
from eopack.s3 import CHUNK, SourceBucket, bucket_region, describe_error

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SIDECAR_VERSION = 2
#: Attempts per byte range when the *body* breaks; obstore retries requests, not streams.
STREAM_ATTEMPTS = 5
#: How often, at most, the sidecar of a ranged download is saved while parts complete.
SAVE_EVERY_S = 0.5


@dataclass(frozen=True)
class TransferConfig:
    """When a download switches to ranged parts, how big they are, how many GETs run at once.

    Defaults: S1 measurement TIFFs (0.3-4 GB) get 20-250 parts of 16 MiB, enough to keep
    several connections busy and cheap to redo after a kill; XML, previews and small
    manifests stay single GETs. ``requests`` bounds the GETs in flight over all the files of
    one :func:`download_files` call (16 x 16 MiB reached s5cmd's speed on the bench).

    ``md5``: return each file's MD5 (on by default). A ranged download computes it in a second,
    single-core pass over the finished file (~760 MB/s per core), which is a large share of
    its cost on a fast link. With ``md5=False`` no download hashes anything (single streams
    neither, so the answer is the same whatever the size) and the digest is None. The bytes
    are guarded without it: every request carries ``If-Match`` with the ETag seen by HEAD or
    LIST (no mixing of versions), every part's served range is checked, resumed parts are the ones
    the sidecar records as written in this boot of the machine (module docstring). Turn it
    off where something else checks the files: :func:`eopack.safe.s1.rebuild_safe` does by
    default, since the workflow's verify step hashes every file against ``manifest.safe``.
    """

    threshold: int = 64 * MiB
    part_size: int = 16 * MiB
    requests: int = 16
    md5: bool = True

    def __post_init__(self) -> None:
        if min(self.threshold, self.part_size, self.requests) < 1:
            raise EopackError("transfer: threshold, part_size and requests must be positive")


class ObjectChanged(Exception):
    """The object's ETag no longer matches (HTTP 412): the bytes on disk are of another version."""


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
    saved_at: float = field(default=float("-inf"), compare=False, repr=False)
    unsaved: bool = field(default=False, compare=False, repr=False)

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
            "boot": boot_id(),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self.saved_at = time.monotonic()
        self.unsaved = False

    @classmethod
    def load(cls, path: Path) -> _Progress | None:
        """The sidecar, or None when absent or unusable (then the download starts over)."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc["version"] != SIDECAR_VERSION or doc["boot"] != boot_id():
                return None  # another format, or written before the machine restarted
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


@functools.cache
def boot_id() -> str | None:
    """This boot of the machine (Linux), or None where the kernel does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None


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


class _ClientCredentials:
    """obstore's credential provider: the boto3 client's own credentials, refreshed as boto3
    refreshes them (instance profiles, SSO), asked again every few minutes."""

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials

    def __call__(self) -> dict[str, Any]:
        frozen = self.credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(UTC) + timedelta(minutes=5),
        }


def located(client: Any, bucket: SourceBucket) -> SourceBucket:
    """``bucket`` with the region S3 says it is in, said in one line when the config differs.

    obstore does not follow S3's 301 for a request signed for another region (it has no
    ``Location``), so the store must be rebuilt for the region S3 names.
    """
    found = bucket_region(client, bucket.name)
    if not found or found == bucket.region:
        return bucket
    log.warning(
        "s3://%s: the bucket is in %s, not %s as configured; using %s",
        bucket.name,
        found,
        bucket.region,
        found,
    )
    return replace(bucket, region=found)


def _is_redirect(exc: BaseException) -> bool:
    """obstore's "Received redirect without LOCATION": S3's 301 for another region."""
    return "redirect" in str(exc).lower()


def _redirect_error(uri: str, bucket: SourceBucket) -> EopackError:
    """One line for a redirect whose region S3 did not name (HeadBucket refused)."""
    return EopackError(
        f"{uri}: S3 redirects to another region than {bucket.region}: set the bucket's "
        f"region in the config (sources: {bucket.name}: region)"
    )


def object_store(client: Any, bucket: SourceBucket) -> Any:
    """An obstore ``S3Store`` for ``bucket`` that talks to where and as ``client`` talks.

    Same endpoint (a custom one, such as ``AWS_ENDPOINT_URL_S3``, path style), same
    credentials (the client's, from boto3's chain: environment, ``~/.aws``, instance profile),
    requester pays as the bucket says. ``timeout`` bounds a whole request, so it is long; a
    stalled body is caught by ``read_timeout``, and a broken one is resumed where it stopped.
    """
    from obstore.store import S3Store

    options: dict[str, Any] = {"connect_timeout": "20s", "read_timeout": "120s", "timeout": "1h"}
    config: dict[str, Any] = {"region": bucket.region, "request_payer": bucket.requester_pays}
    endpoint = str(client.meta.endpoint_url)
    host = urlsplit(endpoint).hostname or ""
    if not host.endswith(".amazonaws.com"):
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False
        options["allow_http"] = endpoint.startswith("http://")
    # botocore keeps a client's credentials on its signer; there is no public accessor.
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is None:
        config["skip_signature"] = True  # anonymous, as the client itself
        return S3Store(bucket.name, client_options=options, **config)
    provider = _ClientCredentials(credentials)
    return S3Store(bucket.name, client_options=options, credential_provider=provider, **config)


def _prepare(
    fd: int, dest: Path, bucket: SourceBucket, key: str, version: _Version, config: TransferConfig
) -> _Progress:
    """Reuse the sidecar if it describes this very object version, else start over.

    A reused sidecar keeps its own part size, so a changed configuration loses no progress.
    A new single stream gets its sidecar only once more than its first chunk is coming (see
    :meth:`_Downloads._range`): most SAFE files arrive in one chunk, and three file
    operations each (write, rename, unlink) cost more than the file on a busy disk. Bytes
    without a sidecar are never trusted: the next run starts that file over.
    """
    sidecar = sidecar_path(dest)
    progress = _Progress.load(sidecar)
    on_disk = os.fstat(fd).st_size
    if progress is not None and progress.describes(bucket.name, key, version):
        if progress.part_size is None and on_disk <= version.size:
            return progress
        if progress.part_size is not None and on_disk == version.size:
            return progress
    uri = f"s3://{bucket.name}/{key}"
    if progress is not None:
        log.info("%s: the partial download is of another version; starting over", uri)
    elif on_disk and sidecar.exists():
        log.info("%s: the partial download is of an earlier boot or format; starting over", uri)
    part_size = config.part_size if version.size >= config.threshold else None
    progress = _Progress(bucket.name, key, version.etag, version.size, part_size)
    if on_disk:
        # Only a file with bytes is cut: ext4 flushes a file cut to zero when it is closed
        # (auto_da_alloc), which made every fresh download wait for its disk writes.
        os.ftruncate(fd, 0)
    if part_size is not None:
        os.ftruncate(fd, version.size)  # pre-sized: parts land at their offsets in any order
        progress.save(sidecar)
    else:
        sidecar.unlink(missing_ok=True)
    return progress


def _record(fd: int, progress: _Progress, dest: Path, index: int) -> None:
    """Mark a part complete once its bytes are written (the sidecar must never lie).

    The bytes are synced first only where there is no boot id (see the module docstring).
    The sidecar is saved at most every :data:`SAVE_EVERY_S` (two file operations each, a
    millisecond or more on a busy disk) and when the download stops short: a kill loses the
    record of the parts of the last half second, not their bytes' worth of progress beyond.
    """
    if boot_id() is None:
        os.fdatasync(fd)
    progress.done.add(index)
    progress.unsaved = True
    if time.monotonic() - progress.saved_at >= SAVE_EVERY_S:
        progress.save(sidecar_path(dest))


def _hash_prefix(fd: int, md5: Any) -> int:
    """Feed the bytes already in ``.part`` to ``md5``; returns their count."""
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        md5.update(chunk)
        offset += len(chunk)
    return offset


def _refused() -> tuple[type[BaseException], ...]:
    """What obstore raises for a 404 or a 403: its own classes or Python's (it uses both)."""
    from obstore.exceptions import NotFoundError, PermissionDeniedError, UnauthenticatedError

    return (
        FileNotFoundError,
        PermissionError,
        NotFoundError,
        PermissionDeniedError,
        UnauthenticatedError,
    )


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error to report from a task group: the first that is not a cancellation."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


class _Downloads:
    """The files of one :func:`download_files` call, fetched from one asyncio loop.

    One semaphore bounds the GETs in flight over all files; each body is written at its
    offset in chunks of at least ``CHUNK`` as it arrives, from the loop's thread only.
    """

    def __init__(self, client: Any, bucket: SourceBucket, config: TransferConfig) -> None:
        self.client = client
        self.bucket = bucket
        self.config = config
        self.store = object_store(client, bucket)
        #: The store was rebuilt for the region S3 named (at most once: see :meth:`_moved`).
        self.relocated = False
        self.relocating = asyncio.Lock()
        self.gate = asyncio.Semaphore(config.requests)
        #: Versions from :meth:`list`, each used once (a changed object is asked again by HEAD).
        self.listed: dict[str, _Version] = {}
        #: One thread syncs parts and writes sidecars, off the loop, one sidecar at a time.
        self.recorder = ThreadPoolExecutor(1, "eopack-record")

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket.name}/{key}"

    async def _moved(self, store: Any, key: str) -> None:
        """A request on ``store`` was redirected: rebuild the store for the bucket's region.

        Asked only then (one HeadBucket), so a well-configured run sends no extra request.
        Returns when the caller should try again (now, or already, relocated); raises the
        one-line error when S3 names no other region or still redirects.
        """
        async with self.relocating:
            if store is not self.store:
                return  # another request relocated meanwhile
            if not self.relocated:
                self.relocated = True
                moved = await asyncio.to_thread(located, self.client, self.bucket)
                if moved.region != self.bucket.region:
                    self.bucket, self.store = moved, object_store(self.client, moved)
                    return
            raise _redirect_error(self._uri(key), self.bucket)

    async def head(self, key: str) -> _Version:
        """Size and ETag, by obstore; a refusal is asked again by boto3 for its words (a
        missing bucket and a missing key look alike to a HEAD, :func:`_head` tells them)."""
        import obstore

        while True:
            store = self.store
            async with self.gate:
                try:
                    meta = await obstore.head_async(store, key)
                    return _Version(int(meta["size"]), str(meta["e_tag"]))
                except _refused():
                    return await asyncio.to_thread(_head, self.client, self.bucket, key)
                except Exception as exc:
                    if not _is_redirect(exc):
                        raise
            await self._moved(store, key)

    async def list(self, prefix: str) -> None:
        """Sizes and ETags of every object under ``prefix`` by LIST (1,000 per request), in
        place of a HEAD per object. Best effort: where the LIST is refused (a policy may grant
        GetObject without ListBucket) or fails, each object is asked by HEAD as before."""
        import obstore

        try:
            async with self.gate:
                metas = await obstore.list(self.store, prefix).collect_async()
        except Exception as exc:  # the HEADs that follow word any real error
            log.info(
                "s3://%s/%s: no listing (%s); asking each object",
                self.bucket.name,
                prefix,
                type(exc).__name__,
            )
            return
        self.listed.update(
            (m["path"], _Version(int(m["size"]), str(m["e_tag"]))) for m in metas if m["e_tag"]
        )

    async def file(self, key: str, dest: Path) -> tuple[int, str | None]:
        """Download one object; an ETag change mid-way restarts it once."""
        uri = self._uri(key)
        try:
            version = self.listed.pop(key, None) or await self.head(key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with locked_partial(partial_path(dest), uri) as fd:
                try:
                    return await self._version(key, dest, fd, version)
                except ObjectChanged:
                    log.warning("%s: changed during the download; starting over", uri)
                sidecar_path(dest).unlink(missing_ok=True)
                version = await self.head(key)
                try:
                    return await self._version(key, dest, fd, version)
                except ObjectChanged:
                    raise EopackError(
                        f"{uri}: object changed twice during the download; try again later"
                    ) from None
        except (ClientError, BotoCoreError) as exc:
            raise describe_error(exc, self.bucket.name, key) from None

    async def _version(
        self, key: str, dest: Path, fd: int, version: _Version
    ) -> tuple[int, str | None]:
        """Complete ``.part`` for this object version, then rename it to ``dest``."""
        progress = _prepare(fd, dest, self.bucket, key, version, self.config)
        digest: str | None = None
        if progress.part_size is None:
            md5 = hashlib.md5(usedforsecurity=False) if self.config.md5 else None
            have = _hash_prefix(fd, md5) if md5 is not None else os.fstat(fd).st_size
            sidecar = sidecar_path(dest)
            save = None if sidecar.exists() else (lambda: progress.save(sidecar))
            await self._range(key, version, fd, have, version.size, md5, save)
            size = os.fstat(fd).st_size
            digest = md5.hexdigest() if md5 is not None else None
        else:
            await self._parts(key, dest, fd, progress, version)
            if self.config.md5:
                size, digest = await asyncio.to_thread(file_md5, partial_path(dest))
            else:
                size = os.fstat(fd).st_size  # pre-sized; every part's range was checked
        if size != version.size:
            raise EopackError(f"{self._uri(key)}: got {size} bytes, expected {version.size}")
        os.replace(partial_path(dest), dest)
        sidecar_path(dest).unlink(missing_ok=True)
        return size, digest

    async def _parts(
        self, key: str, dest: Path, fd: int, progress: _Progress, version: _Version
    ) -> None:
        """Fetch the missing parts, recording each as it completes.

        On the first failure the task group cancels the others; the parts that completed are
        already recorded, so a later run fetches only the rest.
        """
        records: list[Future[None]] = []

        async def part(index: int, first: int, last: int) -> None:
            await self._range(key, version, fd, first, last + 1)
            # Recorded even when a failure elsewhere cancels this task meanwhile.
            records.append(self.recorder.submit(_record, fd, progress, dest, index))
            await asyncio.shield(asyncio.wrap_future(records[-1]))

        complete = False
        try:
            async with asyncio.TaskGroup() as group:
                for index, (first, last) in enumerate(progress.ranges()):
                    if index not in progress.done:
                        group.create_task(part(index, first, last))
            complete = True
        except BaseExceptionGroup as failed:
            raise _first_error(failed) from None
        finally:
            wait(records)  # the descriptor is closed next: no record may still be using it
            if progress.unsaved and not complete:
                progress.save(sidecar_path(dest))  # what did complete, for the next run

    async def _range(
        self,
        key: str,
        version: _Version,
        fd: int,
        first: int,
        end: int,
        md5: Any = None,
        save: Callable[[], None] | None = None,
    ) -> None:
        """Write object bytes ``first..end-1`` at their offsets (``md5``: hash them in order).

        ``save``: called once when a chunk is written and more are to come (a single
        stream's lazy sidecar). A broken stream is resumed from the byte where
        it stopped, a few times. Whole-object GETs send no Range.
        """
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        uri = self._uri(key)
        pos = first
        failures = 0
        while pos < end:
            options: dict[str, Any] = {"if_match": version.etag}
            if pos > 0 or end < version.size:
                options["range"] = (pos, end)
            store = self.store
            async with self.gate:
                try:
                    result = await obstore.get_async(store, key, options=options)  # type: ignore[arg-type]
                    if tuple(result.range) != (pos, end):  # wrong offsets corrupt silently
                        raise EopackError(f"{uri}: asked bytes {pos}-{end - 1}, got {result.range}")
                    async for chunk in result.stream(min_chunk_size=CHUNK):
                        try:
                            pwrite_all(fd, chunk, pos)
                        except OSError as exc:  # the local disk, not S3
                            raise EopackError(f"{uri}: cannot write the download: {exc}") from None
                        if md5 is not None:
                            md5.update(chunk)
                        pos += len(chunk)
                        if save is not None and pos < end:
                            save()
                            save = None
                    if pos == end:
                        return
                    broken: BaseException = EopackError(f"body ended at byte {pos}")
                except PreconditionError:
                    raise ObjectChanged(version.etag) from None
                except _refused() as exc:
                    if isinstance(exc, FileNotFoundError | NotFoundError):
                        raise EopackError(f"{uri}: object not found") from None
                    raise EopackError(
                        f"{uri}: access denied (check AWS credentials; source buckets are "
                        "requester pays)"
                    ) from None
                except (EopackError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a broken connection or body, in obstore's words
                    broken = exc
            if _is_redirect(broken):  # before any byte: the bucket's region, not the network
                await self._moved(store, key)
                continue
            failures += 1
            if failures >= STREAM_ATTEMPTS:
                detail = str(broken).splitlines()[0] if str(broken) else type(broken).__name__
                raise EopackError(f"{uri}: download failed at byte {pos}: {detail}")
            log.warning("%s: %s at byte %d; resuming", uri, type(broken).__name__, pos)


def download_files(
    client: Any,
    bucket: SourceBucket,
    items: Sequence[tuple[str, Path]],
    config: TransferConfig | None = None,
    prefix: str | Sequence[str] | None = None,
    versions: Mapping[str, tuple[int, str]] | None = None,
) -> list[tuple[int, str | None]]:
    """Download objects ``(key, dest)`` of one bucket, resuming interrupted runs.

    Returns ``(size, md5 hex)`` per item, in order; the md5 is None when ``config.md5`` is
    False (see :class:`TransferConfig`). Objects of ``config.threshold`` bytes or more come
    as ranged parts; at most ``config.requests`` requests are in flight over all items. The
    first failure stops the others: what completed stays on disk (finished files renamed,
    finished parts in their sidecars) for the next run. An ETag change mid-way restarts that
    file once; a second one is an error. ``prefix``: the keys lie under it (a product's
    folder, or several: an S2 product's and its tiles'), and one LIST of each stands for a HEAD
    of each object (:meth:`_Downloads.list`). ``versions``: key -> (size, ETag) the caller
    listed already (the file list of a product); when they cover every item, no LIST is sent.
    """
    config = config or TransferConfig()
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix or ())
    known = {key: _Version(size, etag) for key, (size, etag) in (versions or {}).items() if etag}
    if all(key in known for key, _ in items):
        prefixes = []

    async def run() -> list[tuple[int, str | None]]:
        downloads = _Downloads(client, bucket, config)
        downloads.listed.update(known)
        if items:
            for folder in prefixes:
                await downloads.list(folder)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(downloads.file(key, Path(dest))) for key, dest in items]
        except BaseExceptionGroup as failed:
            raise _first_error(failed) from None
        finally:
            downloads.recorder.shutdown()
        return [task.result() for task in tasks]

    return asyncio.run(run())


def download_file(
    client: Any,
    bucket: SourceBucket,
    key: str,
    dest: str | Path,
    config: TransferConfig | None = None,
) -> tuple[int, str | None]:
    """Download one object to ``dest`` (see :func:`download_files`); ``(size, md5 hex)``."""
    return download_files(client, bucket, [(key, Path(dest))], config)[0]
