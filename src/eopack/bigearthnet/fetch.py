"""Fetch the BigEarthNet v2 release files, resumably and md5-verified against the published hashes.

A source is Zenodo (the default, ``ZENODO_FILES/<name>?download=1``), any other HTTP(S)
mirror, an ``s3://bucket/prefix`` mirror or a local folder; :func:`source_uri` builds the
address of one file, :func:`fetch` brings it to ``dest``. The archives are large (the S2 one is
~59 GB), so nothing is downloaded twice:

* HTTP(S): the bytes go to ``{dest}.part``; ``{dest}.part.json`` (the sidecar) keeps the
  validator of the first response (a strong ``ETag``, else ``Last-Modified``) and the size. A
  later attempt, in this run or the next, asks ``Range: bytes=<len(.part)>-`` with
  ``If-Range: <validator>``: a 206 is appended, a 200 (server without ranges, or the file
  changed) starts over. Broken connections, timeouts, 408/429/5xx are retried with exponential
  backoff, resuming from the bytes on disk; ``retries`` counts attempts in a row that brought
  no new byte, so a long download survives any number of spread-out drops.
* ``s3://``: :func:`eopack.transfer.download_file` (ranged parts, its own ``.part`` and sidecar,
  ETag-pinned with ``If-Match``); botocore's retry settings apply, not ``timeout``/``retries``.
  It renames to ``dest`` before our md5 check, which then deletes a mismatch; a kill in between
  leaves a file without a stamp, which the next run hashes before trusting.
* A local path: hard-linked when on the same file system (a 59 GB copy is wasteful; the
  archives are read-only inputs), else copied through a temporary file and a rename.

The md5 is computed while the bytes arrive (on resume, the bytes already on disk are hashed
first) and checked before the file gets its final name. A mismatch deletes the download: a
corrupt ``.part`` must not be resumed forever. A verified file gets a stamp,
``{dest}.md5.json`` (md5, size, mtime; :mod:`eopack.stamps`), so a later run trusts it without
re-reading 59 GB; a file changed since its stamp is hashed again.

Logs never show query strings (they may carry tokens), except Zenodo's ``download=1``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import requests
import urllib3

from eopack.errors import EopackError
from eopack.fsutil import big_file_writer, locked_partial, new_temp, pwrite_all, write_json
from eopack.s3 import CHUNK, SourceBucket, make_client, parse_s3_uri
from eopack.stamps import stamp_path, stamped_digest, write_stamp
from eopack.transfer import download_file, file_md5, partial_path, resumable_bytes, sidecar_path

log = logging.getLogger(__name__)

#: Where the BigEarthNet v2 release lives (Zenodo record 10891137, InvenioRDM URL form).
ZENODO_FILES = "https://zenodo.org/records/10891137/files"
_ZENODO_HOSTS = frozenset({"zenodo.org", "www.zenodo.org", "sandbox.zenodo.org"})
SIDECAR_KIND = "eopack.bigearthnet.fetch/1"
#: HTTP statuses worth another attempt; every other 4xx is the user's to fix.
_RETRY_STATUSES = frozenset({408, 425, 429})
_MAX_DELAY = 120.0
_MAX_RETRY_AFTER = 600.0
_COPY_CHUNK = 8 * CHUNK
_GiB = 1024**3
_HASH_LINE = re.compile(r"([0-9a-fA-F]{32})\s+\*?(\S.*)")
_HASH_HEADER = re.compile(r"[\w .-]*\bhash(es)?\s*:", re.IGNORECASE)
_MD5 = re.compile(r"[0-9a-f]{32}")
_ETAG_MD5 = re.compile(r'"?md5:([0-9a-fA-F]{32})"?')
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")

Action = Literal["present", "downloaded", "linked", "copied"]


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch` left at ``path`` and how (``resumed_from``: bytes reused from before).

    ``md5`` is None only when no md5 was expected and none came for free (a hard link, or a
    file already there without a stamp).
    """

    path: Path
    size: int
    md5: str | None
    action: Action
    resumed_from: int = 0


# --- hashes and addresses ------------------------------------------------------------------


def parse_hashes(text: str, source: str = "hashes") -> dict[str, str]:
    """``{file name: md5}`` from the release's hashes.txt (``md5  name`` lines, md5sum style).

    Header lines such as ``md5 hashes:``, blank lines and ``#`` comments are skipped; anything
    else is an error naming the line, since a silently dropped hash would go unverified.
    """
    hashes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or _HASH_HEADER.fullmatch(line):
            continue
        match = _HASH_LINE.fullmatch(line)
        if match is None:
            raise EopackError(f"{source}: line {number}: {raw!r} is not '<md5>  <file name>'")
        md5, name = match[1].lower(), match[2].strip()
        if hashes.get(name, md5) != md5:
            raise EopackError(f"{source}: line {number}: {name} is listed with two md5s")
        hashes[name] = md5
    if not hashes:
        raise EopackError(f"{source}: no '<md5>  <file name>' lines")
    return hashes


def load_hashes(path: str | Path) -> dict[str, str]:
    """:func:`parse_hashes` of a file, errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EopackError(f"{path}: cannot read the hashes ({exc})") from None
    return parse_hashes(text, str(path))


def source_uri(base: str, name: str) -> str:
    """The address of release file ``name`` under ``base`` (HTTP(S) folder, ``s3://``, a path).

    Zenodo answers ``/records/<id>/files/<name>`` with the file; ``?download=1`` is what its
    download button adds, so we send the same. Other HTTP bases get the plain name appended
    (their query string, e.g. a token, is kept).
    """
    if not name or "/" in name or name in (".", ".."):
        raise EopackError(f"{name!r} is not a release file name")
    base = base.strip()
    if base.startswith(("https://", "http://")):
        parts = urlsplit(base)
        path = f"{parts.path.rstrip('/')}/{quote(name)}"
        query = parse_qsl(parts.query, keep_blank_values=True)
        if (parts.hostname or "") in _ZENODO_HOSTS and ("download", "1") not in query:
            query.append(("download", "1"))
        return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))
    if base.startswith("s3://"):
        bucket, prefix = parse_s3_uri(base)
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}/{name}" if prefix else f"s3://{bucket}/{name}"
    if base.startswith("file://"):
        base = unquote(urlsplit(base).path)
    if "://" in base:
        raise EopackError(f"{base!r}: unsupported source (https://, http://, s3:// or a folder)")
    return str(Path(base).expanduser() / name)


def redact_uri(uri: str) -> str:
    """``uri`` fit for logs and errors: no user info, no query except ``download=1``."""
    if "://" not in uri or uri.startswith(("s3://", "file://")):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    keep = "download=1" if ("download", "1") in query else ""
    return urlunsplit((parts.scheme, host, parts.path, keep, ""))


def _verified_md5(path: Path, expected: str | None) -> str:
    """``path``'s md5: from its stamp when that says ``expected``, else hashed (59 GB: minutes)."""
    stamped = stamped_digest(path, "md5")
    if stamped is not None and stamped == expected:
        return stamped
    log.info("%s: computing the md5 (%s)", path, human_size(path.stat().st_size))
    _, md5 = file_md5(path)
    return md5


def _mismatch(name: str, source: str, expected: str, got: str, advice: str) -> EopackError:
    return EopackError(
        f"{name}: md5 mismatch: expected {expected}, got {got} (from {source}); {advice}"
    )


_REFETCH = "the download was discarded, run again to fetch it anew"


def _already_there(dest: Path, expected: str | None, keep: bool) -> FetchResult | None:
    """``dest`` if it is already the wanted file; a wrong one is deleted (unless ``keep``)."""
    if not dest.is_file():
        return None
    size = dest.stat().st_size
    if expected is None:
        return FetchResult(dest, size, stamped_digest(dest, "md5"), "present")
    got = _verified_md5(dest, expected)
    if got == expected:
        if stamped_digest(dest, "md5") != got:
            write_stamp(dest, "md5", got)
        return FetchResult(dest, size, got, "present")
    if keep:  # the source itself: never delete it
        raise EopackError(f"{dest}: md5 mismatch: expected {expected}, got {got}")
    log.warning("%s: md5 %s, expected %s; fetching it again", dest, got, expected)
    dest.unlink()
    stamp_path(dest, "md5").unlink(missing_ok=True)
    return None


# --- progress --------------------------------------------------------------------------------


def human_size(size: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as download sizes are quoted)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class _Meter:
    """Logs at INFO every ``step`` percent (every GiB when the total is unknown)."""

    def __init__(self, label: str, step: int) -> None:
        self.label = label
        self.step = max(step, 1)
        self.total: int | None = None
        self.next = 0

    def start(self, done: int, total: int | None) -> None:
        self.total = total or None
        if self.total is None:
            self.next = (done // _GiB + 1) * _GiB
        else:
            self.next = (done * 100 // self.total // self.step + 1) * self.step

    def update(self, done: int) -> None:
        if self.total is None:
            if done >= self.next:
                log.info("%s: %s", self.label, human_size(done))
                self.next = (done // _GiB + 1) * _GiB
            return
        percent = done * 100 // self.total
        if percent >= self.next:
            shown = (human_size(done), human_size(self.total))
            log.info("%s: %d%% (%s of %s)", self.label, percent, *shown)
            self.next = (percent // self.step + 1) * self.step


# --- HTTP(S) ---------------------------------------------------------------------------------


@dataclass
class _Remote:
    """The sidecar: the version of the file ``.part`` holds a prefix of."""

    validator: str | None  # for If-Range: a strong ETag, else Last-Modified
    size: int | None  # None: the server sent no length


def _load_remote(path: Path) -> _Remote | None:
    """The sidecar, or None if absent, unreadable or another tool's (then start over)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("kind") != SIDECAR_KIND:
            return None
        size = doc["size"]
        return _Remote(doc["validator"] or None, None if size is None else int(size))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class _Transient(Exception):
    """An attempt failed in a way another attempt may not (drop, timeout, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _caused_by(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    """Whether ``kind`` is in the chain of ``exc`` (args, reason, cause or context)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        if isinstance(item, kind):
            return True
        seen.add(id(item))
        todo.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return False


def _reason(exc: Exception, timeout: float) -> str:
    """A short cause without the request URL (requests' messages include its query)."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"could not connect within {timeout:g} s"
    if isinstance(exc, requests.ReadTimeout):
        return f"no response within {timeout:g} s (timed out)"
    if _caused_by(exc, urllib3.exceptions.ReadTimeoutError):
        return f"no data for {timeout:g} s (download stalled, timed out)"
    broken = (urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or _caused_by(exc, broken):
        return "connection broken mid-download"
    errno_text = _ERRNO.search(str(exc))
    detail = f": {errno_text[0].strip()}" if errno_text else ""
    return f"connection failed{detail}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return min(float(value), _MAX_RETRY_AFTER) if value.isdigit() else None


def _validator(headers: Any) -> str | None:
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):  # If-Range needs a strong validator
        return str(etag)
    modified = headers.get("Last-Modified")
    return str(modified) if modified else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


@dataclass(frozen=True)
class _Options:
    timeout: float
    retries: int
    backoff: float
    progress_step: int


class _HttpDownload:
    """One file over HTTP(S): ``.part`` plus sidecar, Range/If-Range resume, md5 on the fly."""

    def __init__(
        self,
        session: requests.Session,
        url: str,
        dest: Path,
        fd: int,
        expected: str | None,
        options: _Options,
    ) -> None:
        self.session, self.url, self.dest, self.fd = session, url, dest, fd
        self.shown = redact_uri(url)
        self.expected, self.options = expected, options
        self.part, self.side = partial_path(dest), sidecar_path(dest)
        self.meter = _Meter(self.shown, options.progress_step)
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.pos = 0
        self.remote: _Remote | None = None
        self.done = False

    def run(self) -> FetchResult:
        resumed = self._resume()
        try:
            self._loop()
            return self._finish(resumed)
        except BaseException:
            if self.pos == 0:  # nothing worth keeping: leave no empty leftovers
                self.part.unlink(missing_ok=True)
                self.side.unlink(missing_ok=True)
            raise

    def _resume(self) -> int:
        """Pick up ``.part`` if its sidecar allows, hashing its bytes; returns their count."""
        remote = _load_remote(self.side)
        have = os.fstat(self.fd).st_size
        usable = remote is not None and (remote.validator or self.expected)
        if remote is None or not usable or (remote.size is not None and have > remote.size):
            if have:
                log.info("%s: the partial download cannot be resumed; starting over", self.shown)
            self._reset()
            return 0
        self.remote = remote
        if have:
            log.info("%s: resuming at %s", self.shown, human_size(have))
            offset = 0
            while chunk := os.pread(self.fd, _COPY_CHUNK, offset):
                self.md5.update(chunk)
                offset += len(chunk)
        self.pos = have
        self.done = remote.size == have and have > 0
        return have

    def _reset(self) -> None:
        os.ftruncate(self.fd, 0)
        self.pos = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.remote = None
        self.side.unlink(missing_ok=True)

    def _loop(self) -> None:
        """Attempts until complete; ``retries`` bounds attempts in a row that gain no byte."""
        failures, best = 0, self.pos
        while not self.done:
            try:
                self._attempt()
            except _Transient as exc:
                if self.pos > best:
                    best, failures = self.pos, 0
                failures += 1
                if failures > self.options.retries:
                    kept = f"; {self.pos} bytes kept for the next run" if self.pos else ""
                    raise EopackError(
                        f"{self.shown}: {exc.reason} "
                        f"(gave up after {failures} attempt{'s' if failures > 1 else ''}{kept})"
                    ) from None
                delay = min(self.options.backoff * 2 ** (failures - 1), _MAX_DELAY)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                log.warning(
                    "%s: %s at byte %d; retry %d of %d in %.0f s",
                    self.shown,
                    exc.reason,
                    self.pos,
                    failures,
                    self.options.retries,
                    delay,
                )
                time.sleep(delay)

    def _request(self) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}  # ranges address the bytes as stored
        if self.pos > 0:
            headers["Range"] = f"bytes={self.pos}-"
            if self.remote is not None and self.remote.validator:
                headers["If-Range"] = self.remote.validator
        timeout = self.options.timeout
        try:
            return self.session.get(
                self.url, headers=headers, stream=True, timeout=(timeout, timeout)
            )
        except requests.exceptions.SSLError:
            raise EopackError(f"{self.shown}: TLS error (certificate or proxy?)") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(_reason(exc, timeout)) from None
        except requests.RequestException as exc:
            raise EopackError(f"{self.shown}: {type(exc).__name__}") from None

    def _attempt(self) -> None:
        """One GET from ``pos``; returns at the end of the body (maybe after a restart)."""
        with self._request() as response:
            status = response.status_code
            if status == 416 and self.pos > 0:
                self._unsatisfiable(response)
                return
            self._check_status(response)
            self._check_etag(response.headers.get("ETag"))
            if status == 206:
                if not self._accept_partial(response):
                    return
            else:
                if self.pos:
                    log.info(
                        "%s: the server sent the whole file (no range support, or the file "
                        "changed); starting over",
                        self.shown,
                    )
                self._reset()
                self.remote = _Remote(
                    _validator(response.headers), _int(response.headers.get("Content-Length"))
                )
                self._save_remote()
            self.meter.start(self.pos, self.remote.size if self.remote else None)
            self._stream(response)
        size = self.remote.size if self.remote else None
        if size is None or self.pos == size:
            self.done = True
        elif self.pos > size:
            raise EopackError(f"{self.shown}: got {self.pos} bytes, expected {size}")
        else:
            raise _Transient(f"connection closed at byte {self.pos} of {size}")

    def _check_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status in (200, 206):
            return
        if status in _RETRY_STATUSES or 500 <= status < 600:
            raise _Transient(f"HTTP {status}", _retry_after(response))
        if status in (404, 410):
            raise EopackError(f"{self.shown}: not found (HTTP {status})")
        if status in (401, 403):
            raise EopackError(f"{self.shown}: access denied (HTTP {status})")
        raise EopackError(f"{self.shown}: HTTP {status} {response.reason or ''}".rstrip())

    def _check_etag(self, etag: str | None) -> None:
        """Zenodo's ETag is ``"md5:<hex>"``: a wrong configured hash shows before 59 GB."""
        match = _ETAG_MD5.fullmatch(etag or "")
        if match is None or self.expected is None or match[1].lower() == self.expected:
            return
        self._discard()
        raise EopackError(
            f"{self.dest.name}: the server gives md5 {match[1].lower()} (ETag of {self.shown}), "
            f"expected {self.expected}: check the configured hash and the source"
        )

    def _unsatisfiable(self, response: requests.Response) -> None:
        """416: ``.part`` may already be complete (a kill before the rename); else restart."""
        match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is not None and int(match[1]) == self.pos and self.remote is not None:
            self.remote.size = self.pos
            self._save_remote()
            self.done = True
            return
        log.info("%s: the server refused to resume at byte %d; starting over", self.shown, self.pos)
        self._reset()

    def _accept_partial(self, response: requests.Response) -> bool:
        """Whether a 206 continues ``.part`` exactly; if not, ``.part`` is reset."""
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        total = None if match is None or match[3] == "*" else int(match[3])
        known = self.remote.size if self.remote is not None else None
        if match is None or int(match[1]) != self.pos or (known is not None and total != known):
            log.warning(
                "%s: asked for bytes from %d, got %r; starting over",
                self.shown,
                self.pos,
                response.headers.get("Content-Range"),
            )
            self._reset()
            return False
        if self.remote is None:
            self.remote = _Remote(_validator(response.headers), total)
            self._save_remote()
        return True

    def _save_remote(self) -> None:
        assert self.remote is not None
        doc = {
            "kind": SIDECAR_KIND,
            "source": self.shown,
            "validator": self.remote.validator,
            "size": self.remote.size,
        }
        write_json(self.side, doc)

    def _stream(self, response: requests.Response) -> None:
        """Append the body as it comes: ``read1`` hands over what arrived, so a connection that
        breaks loses no received byte (``iter_content`` drops a partly filled chunk)."""
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise EopackError(
                f"{self.shown}: the server compresses the file (Content-Encoding: {encoding}) "
                "although asked not to; byte ranges of it cannot be resumed"
            )
        raw = response.raw
        read1 = getattr(raw, "read1", None)  # urllib3 >= 2.2
        while True:
            try:
                chunk = read1(CHUNK) if read1 is not None else raw.read(CHUNK)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise _Transient(_reason(exc, self.options.timeout)) from None
            if not chunk:
                return
            self._write(chunk)

    def _write(self, data: bytes) -> None:
        pwrite_all(self.fd, data, self.pos)
        self.md5.update(data)
        self.pos += len(data)
        self.meter.update(self.pos)

    def _discard(self) -> None:
        self._reset()
        self.part.unlink(missing_ok=True)

    def _finish(self, resumed: int) -> FetchResult:
        os.fdatasync(self.fd)
        got = self.md5.hexdigest()
        if self.expected is not None and got != self.expected:
            self._discard()
            raise _mismatch(self.dest.name, self.shown, self.expected, got, _REFETCH)
        os.replace(self.part, self.dest)
        self.side.unlink(missing_ok=True)
        write_stamp(self.dest, "md5", got)
        log.info("%s: %s fetched to %s", self.shown, human_size(self.pos), self.dest)
        return FetchResult(self.dest, self.pos, got, "downloaded", resumed)


def _fetch_http(url: str, dest: Path, expected: str | None, options: _Options) -> FetchResult:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        locked_partial(partial_path(dest), redact_uri(url)) as fd,
        requests.Session() as session,
    ):
        session.headers["User-Agent"] = "eopack (BigEarthNet fetch)"
        return _HttpDownload(session, url, dest, fd, expected, options).run()


# --- S3 and local sources --------------------------------------------------------------------


def _fetch_s3(
    uri: str,
    dest: Path,
    expected: str | None,
    requester_pays: bool,
    region: str | None,
    client: Any,
) -> FetchResult:
    bucket_name, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise EopackError(f"{uri}: no object key")
    region = region or os.environ.get("AWS_DEFAULT_REGION") or "eu-central-1"
    bucket = SourceBucket(bucket_name, region, requester_pays)
    resumed = resumable_bytes(dest)
    if resumed:
        log.info("%s: resuming at %s", uri, human_size(resumed))
    log.info("%s: downloading to %s", uri, dest)
    try:
        size, got = download_file(client or make_client(region), bucket, key, dest)
    except EopackError as exc:
        if requester_pays or "access denied" not in str(exc):
            raise
        raise EopackError(
            f"{uri}: access denied (check AWS credentials; a requester-pays bucket needs "
            "bigearthnet.source_requester_pays: true)"
        ) from None
    if got is None:  # the transfer was configured not to hash
        _, got = file_md5(dest)
    if expected is not None and got != expected:
        dest.unlink(missing_ok=True)
        raise _mismatch(dest.name, uri, expected, got, _REFETCH)
    write_stamp(dest, "md5", got)
    return FetchResult(dest, size, got, "downloaded", resumed)


def _copy_hashing(src: Path, tmp_fd: int, meter: _Meter) -> tuple[int, str]:
    """Copy ``src`` into the open temporary file, hashing on the way; ``(size, md5)``."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    meter.start(0, src.stat().st_size)
    with big_file_writer(tmp_fd, durable=True) as target, open(src, "rb") as source:
        while chunk := source.read(_COPY_CHUNK):
            target.write(chunk)
            md5.update(chunk)
            size += len(chunk)
            meter.update(size)
        target.flush()
        os.fsync(target.fileno())
    return size, md5.hexdigest()


def _fetch_local(
    src: Path, dest: Path, expected: str | None, link: bool, progress_step: int
) -> FetchResult:
    if not src.is_file():
        raise EopackError(f"{src}: no such file (local source)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.link")
    action: Action = "copied"
    if link:
        try:
            os.link(src, tmp)
            action = "linked"
        except OSError as exc:  # another file system (EXDEV), or links not supported
            log.info("%s: cannot hard-link into %s (%s); copying", src, dest.parent, exc.strerror)
    try:
        if action == "linked":
            size = tmp.stat().st_size
            # the bytes are the source's: a stamp next to it (a shared cache) spares a read
            got = (
                _verified_md5(src, expected) if expected is not None else stamped_digest(src, "md5")
            )
        else:
            fd, name = new_temp(dest)
            tmp = Path(name)
            log.info("%s: copying to %s", src, dest)
            size, got = _copy_hashing(src, fd, _Meter(str(src), progress_step))
        if expected is not None and got != expected:
            advice = "nothing was copied; the local copy or the configured hash is wrong"
            raise _mismatch(dest.name, str(src), expected, got or "?", advice)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)  # the link or copy, never the source
    if got is not None:
        write_stamp(dest, "md5", got)
    return FetchResult(dest, size, got, action)


# --- entry point -----------------------------------------------------------------------------


def fetch(
    uri: str,
    dest: str | Path,
    md5: str | None,
    *,
    timeout: float = 60.0,
    retries: int = 8,
    backoff: float = 2.0,
    progress_step: int = 10,
    requester_pays: bool = False,
    region: str | None = None,
    link: bool = True,
    client: Any = None,
) -> FetchResult:
    """Bring ``uri`` (https/http, ``s3://`` or a local path) to ``dest``, verified if ``md5``.

    Nothing is transferred when ``dest`` already has the md5 (by its stamp, else hashed once).
    ``timeout`` (s, per connect and per read) and ``retries`` (attempts in a row without a new
    byte, beyond the first) apply to HTTP; ``backoff`` is the first retry delay, doubling up to
    2 min (or the server's ``Retry-After``). ``requester_pays``, ``region`` and ``client`` are
    for ``s3://`` sources; ``link=False`` copies a local source instead of hard-linking it.
    Errors are :class:`EopackError`s naming the file or the (redacted) source.
    """
    dest = Path(dest)
    expected = md5.strip().lower() if md5 is not None else None
    if expected is not None and not _MD5.fullmatch(expected):
        raise EopackError(f"{dest.name}: {md5!r} is not an md5 (32 hex digits)")
    if min(timeout, backoff) < 0 or retries < 0:
        raise EopackError("fetch: timeout, backoff and retries must not be negative")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    local: Path | None = None
    if scheme in ("", "file"):
        local = Path(unquote(urlsplit(uri).path) if scheme else uri).expanduser()
    elif scheme not in ("http", "https", "s3"):
        raise EopackError(f"{redact_uri(uri)}: unsupported source (https://, s3:// or a path)")
    same = local is not None and local.resolve() == dest.resolve()
    present = _already_there(dest, expected, keep=same)
    if present is not None:
        log.info("%s: already there", dest)
        return present
    if local is not None:
        if same:
            raise EopackError(f"{dest}: no such file (local source)")
        return _fetch_local(local, dest, expected, link, progress_step)
    if scheme == "s3":
        return _fetch_s3(uri, dest, expected, requester_pays, region, client)
    options = _Options(timeout, retries, backoff, progress_step)
    log.info("%s: downloading to %s", redact_uri(uri), dest)
    return _fetch_http(uri, dest, expected, options)
