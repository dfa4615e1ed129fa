"""A local S3 server that behaves like AWS where eopack relies on it: requester pays.

moto serves the S3 API faithfully but has no request-payment API (Put/GetBucketRequestPayment)
and enforces nothing, so a client that forgets ``x-amz-request-payer: requester`` would pass
every test and fail on the real ``sentinel-s1-l1c`` bucket. This wraps moto's WSGI app: it
implements the request-payment sub-resource itself and answers requests to a requester-pays
bucket that do not accept the charges, or are not signed, with the 403 ``AccessDenied`` that
AWS sends. That includes copies (CopyObject, UploadPartCopy) whose *source* is a
requester-pays bucket.

It also gives objects stored with SSE-KMS, DSSE-KMS or SSE-C an ETag that is not their MD5, as
AWS does (moto returns the MD5 whatever the encryption): see :class:`EncryptedETags`.

Two test aids sit in the same wrapper:

* :class:`TrafficCounter` counts the body bytes the server sends and receives, per bucket and
  operation, so a test or benchmark can prove that a server-side copy moved no object bytes
  through the host (moto runs in-process, so there is no network to measure instead);
* ``read_only`` buckets answer every write with 403 ``AccessDenied``: moto enforces no IAM or
  bucket policy, and "destination not writable" must be testable against a real server;
* request hooks (:meth:`LocalS3Server.add_hook`) see every request before it is served and may
  delay it, refuse it, or cut its response body after some bytes by closing the connection:
  how tests observe what a client asks for and make the network fail, whatever the client
  library (boto3 or obstore) is.

One performance shim serves a range at the cost of the range, as S3 does
(:class:`RangeReadingS3Response`). moto reads the whole object for every ranged GetObject and
every UploadPartCopy with ``CopySourceRange``, then slices it, so an object fetched in 18
parts is read 18 times and a benchmark measures moto more than the client. The shim changes
where the bytes come from, nothing else: moto still resolves the key and version, checks the
preconditions and builds every header. ``LocalS3Server(range_reads=False)`` is moto as is.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from flask import Flask
from moto.core.utils import convert_to_flask_response
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

from eopack.demo.service import WsgiService

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
TrafficKey = tuple[str, str]  # (bucket or "", operation)

ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)
_HOST_BUCKET = re.compile(r"^(?P<bucket>[a-z0-9.\-]+)\.s3[.\-]")
_PAYER = re.compile(rb"<Payer>\s*(Requester|BucketOwner)\s*</Payer>")
_PAYMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<RequestPaymentConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Payer>{payer}</Payer></RequestPaymentConfiguration>"
)
_WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})
# Sub-resources that turn an object request into another operation (for traffic labels).
_SUBRESOURCES = ("uploadId", "uploads", "tagging", "acl", "attributes", "retention", "restore")
#: WSGI environ key by which the middleware switches the range shim on for one request.
RANGE_READS = "eopack.range_reads"
_ONE_RANGE = re.compile(r"bytes=\d*-\d*")


def split_path(environ: dict[str, Any]) -> tuple[str | None, str]:
    """``(bucket, key)`` a request addresses, path style or virtual-hosted style."""
    path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
    match = _HOST_BUCKET.match(environ.get("HTTP_HOST", ""))
    if match:
        return match.group("bucket"), path
    bucket, _, key = path.partition("/")
    return bucket or None, key


def bucket_of(environ: dict[str, Any]) -> str | None:
    """The bucket a request addresses, path style or virtual-hosted style."""
    return split_path(environ)[0]


def copy_source_bucket(environ: dict[str, Any]) -> str | None:
    """The source bucket of a copy (``x-amz-copy-source: [/]bucket/key[?versionId=...]``)."""
    header = environ.get("HTTP_X_AMZ_COPY_SOURCE")
    if not header:
        return None
    path = unquote(header.partition("?")[0]).lstrip("/")
    return path.split("/", 1)[0] or None


def _query_names(environ: dict[str, Any]) -> list[str]:
    query = environ.get("QUERY_STRING", "")
    return [part.split("=", 1)[0] for part in query.split("&") if part]


def _query_has(environ: dict[str, Any], name: str) -> bool:
    return name in _query_names(environ)


def _has_payer(environ: dict[str, Any]) -> bool:
    header = environ.get("HTTP_X_AMZ_REQUEST_PAYER", "").lower() == "requester"
    # Presigned URLs carry the header among the signed query parameters.
    signed = "x-amz-request-payer=requester" in environ.get("QUERY_STRING", "").lower()
    return header or signed


def _is_signed(environ: dict[str, Any]) -> bool:
    """Signed in a header or a presigned URL: AWS refuses anonymous requests to requester-pays
    buckets (it must know whom to bill), whatever the request-payer header says."""
    query = environ.get("QUERY_STRING", "").lower()
    return "HTTP_AUTHORIZATION" in environ or "x-amz-signature=" in query


def operation_of(environ: dict[str, Any]) -> str:
    """An S3 operation name good enough to label traffic (``GetObject``, ``UploadPartCopy``)."""
    method = environ.get("REQUEST_METHOD", "GET")
    _, key = split_path(environ)
    names = _query_names(environ)
    copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if not key:
        return f"{method} bucket" + (f"?{names[0]}" if names else "")
    if "partNumber" in names and "uploadId" in names and method == "PUT":
        return "UploadPartCopy" if copy else "UploadPart"
    if "uploads" in names and method == "POST":
        return "CreateMultipartUpload"
    if "uploadId" in names and method in ("POST", "DELETE"):
        return "CompleteMultipartUpload" if method == "POST" else "AbortMultipartUpload"
    sub = next((name for name in names if name in _SUBRESOURCES), None)
    if sub:
        return f"{method} object?{sub}"
    plain = {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return plain.get(method, f"{method} object")


@dataclass(frozen=True)
class TrafficSnapshot:
    """Body bytes and request counts per ``(bucket, operation)`` at one moment."""

    sent: dict[TrafficKey, int] = field(default_factory=dict)
    received: dict[TrafficKey, int] = field(default_factory=dict)
    requests: dict[TrafficKey, int] = field(default_factory=dict)

    @staticmethod
    def _total(table: dict[TrafficKey, int], bucket: str | None, op: str | None) -> int:
        return sum(
            n
            for (b, o), n in table.items()
            if (bucket is None or b == bucket) and (op is None or o == op)
        )

    def bytes_sent(self, bucket: str | None = None, op: str | None = None) -> int:
        """Response-body bytes the server sent to clients (optionally one bucket/operation)."""
        return self._total(self.sent, bucket, op)

    def bytes_received(self, bucket: str | None = None, op: str | None = None) -> int:
        """Request-body bytes the server read from clients (uploads, XML requests)."""
        return self._total(self.received, bucket, op)

    def count(self, bucket: str | None = None, op: str | None = None) -> int:
        """Number of requests (optionally one bucket/operation)."""
        return self._total(self.requests, bucket, op)

    @property
    def object_bytes_sent(self) -> int:
        """Object bytes that left the server (GetObject bodies): 0 for a server-side copy."""
        return self.bytes_sent(op="GetObject")

    def __sub__(self, other: TrafficSnapshot) -> TrafficSnapshot:
        """What happened between ``other`` and ``self``."""

        def minus(a: dict[TrafficKey, int], b: dict[TrafficKey, int]) -> dict[TrafficKey, int]:
            return {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0)}

        return TrafficSnapshot(
            minus(self.sent, other.sent),
            minus(self.received, other.received),
            minus(self.requests, other.requests),
        )


class TrafficCounter:
    """Thread-safe byte counters (the server handles requests on many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: Counter[TrafficKey] = Counter()
        self._received: Counter[TrafficKey] = Counter()
        self._requests: Counter[TrafficKey] = Counter()

    def add(self, key: TrafficKey, sent: int = 0, received: int = 0, requests: int = 0) -> None:
        with self._lock:
            self._sent[key] += sent
            self._received[key] += received
            self._requests[key] += requests

    def snapshot(self) -> TrafficSnapshot:
        with self._lock:
            return TrafficSnapshot(dict(self._sent), dict(self._received), dict(self._requests))

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self._received.clear()
            self._requests.clear()


class _CountingInput:
    """``wsgi.input`` that reports every byte read (the app may read it in any of these ways)."""

    def __init__(self, stream: Any, report: Callable[[int], None]) -> None:
        self._stream = stream
        self._report = report

    def read(self, *args: Any) -> bytes:
        data = self._stream.read(*args)
        self._report(len(data))
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._stream.readline(*args)
        self._report(len(data))
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines = self._stream.readlines(*args)
        self._report(sum(len(line) for line in lines))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._report(len(line))
            yield line


class _CountingBody:
    """A WSGI response body that reports its bytes as the server sends them."""

    def __init__(self, body: Iterable[bytes], report: Callable[[int], None]) -> None:
        self._body = body
        self._report = report

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._report(len(chunk))
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


# ETags of encrypted objects, as AWS gives them
# --------------------------------------------------------------------------------------------

_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
#: ``x-amz-server-side-encryption`` values whose objects' ETags are not their MD5.
_KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})
#: Conditional request headers that name an ETag (moto compares them with the MD5).
_CONDITION_HEADERS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_X_AMZ_COPY_SOURCE_IF_MATCH",
    "HTTP_X_AMZ_COPY_SOURCE_IF_NONE_MATCH",
)
#: Operations whose ETag answers are left as moto gives them: part ETags go back to moto in
#: CompleteMultipartUpload (and eopack never reads a part's ETag as an MD5).
_PART_OPERATIONS = frozenset({"UploadPart", "UploadPartCopy"})


class EncryptedETags:
    """Give SSE-KMS, DSSE-KMS and SSE-C objects an ETag that is not their MD5, as AWS does.

    moto stores ``x-amz-server-side-encryption`` (from the request or the bucket's default
    encryption, e.g. ``put_bucket_encryption`` with ``aws:kms``) but keeps the MD5 as ETag, so
    a client that takes any 32-hex ETag for an MD5 passes every test and fails on a KMS bucket.
    Response headers of such objects get a stable stand-in ETag (the MD5 of the MD5, salted);
    conditional requests naming a stand-in (``If-Match``, ``x-amz-copy-source-if-match``) are
    translated back before moto sees them. XML bodies (CopyObjectResult, listings) keep moto's
    ETag: eopack reads ETags from HEAD answers.
    """

    def __init__(self) -> None:
        self.enabled = True
        self._real: dict[str, str] = {}  # stand-in -> moto's ETag (both without quotes)

    def stand_in(self, etag: str) -> str:
        fake = hashlib.md5(b"eopack-sse:" + etag.encode(), usedforsecurity=False).hexdigest()
        self._real[fake] = etag
        return fake

    def translate_request(self, environ: dict[str, Any]) -> None:
        """Conditions on a stand-in ETag become conditions on moto's."""
        for name in _CONDITION_HEADERS:
            match = _MD5_ETAG.match(str(environ.get(name, "")))
            if match and match.group(1) in self._real:
                environ[name] = f'"{self._real[match.group(1)]}"'

    def rewrite(self, headers: list[tuple[str, str]], customer_key: bool) -> list[tuple[str, str]]:
        """Response headers with the stand-in ETag when they describe an encrypted object.

        ``customer_key``: the request carried an SSE-C key (AWS requires it to read or write
        an SSE-C object; moto does not always echo the algorithm back).
        """
        lower = {name.lower(): value for name, value in headers}
        encrypted = lower.get("x-amz-server-side-encryption") in _KMS_ALGORITHMS or bool(
            customer_key or lower.get("x-amz-server-side-encryption-customer-algorithm")
        )
        if not (self.enabled and encrypted):
            return headers
        out = []
        for name, value in headers:
            match = _MD5_ETAG.match(value) if name.lower() == "etag" else None
            out.append((name, f'"{self.stand_in(match.group(1))}"') if match else (name, value))
        return out


# Request hooks (test aid)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intercept:
    """What a request hook asks of the server for one request.

    ``refuse``: answer 403 ``AccessDenied`` (as AWS does for credentials without the right).
    ``cut_after``: send this many bytes of the response body, then close the connection, as a
    network failure mid-transfer does (the client has the headers and a short body).
    ``answer``: ``(status line, headers, body)`` sent instead of serving the request (AWS
    answers moto does not give, such as a 301 for a bucket in another region).
    """

    refuse: bool = False
    cut_after: int | None = None
    answer: tuple[str, tuple[tuple[str, str], ...], bytes] | None = None


#: Called with each request's WSGI environ before it is served (in the server's thread).
RequestHook = Callable[[dict[str, Any]], Intercept | None]


class _CutBody:
    """A response body that stops after ``limit`` bytes and shuts the client's socket."""

    def __init__(self, body: Iterable[bytes], limit: int, sock: socket.socket | None) -> None:
        self._body = body
        self._limit = limit
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        left = self._limit
        for chunk in self._body:
            if len(chunk) >= left:
                if left:
                    yield chunk[:left]
                break
            left -= len(chunk)
            yield chunk
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_RDWR)  # the client sees EOF mid-body
        raise ConnectionAbortedError("eopack test server: response cut")

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


# Ranged reads at the cost of the range (a performance shim for this test server)
# --------------------------------------------------------------------------------------------


def _read_range(key: FakeKey, start: int, stop: int) -> bytes:
    """Bytes ``start..stop-1`` of a stored object: one seek and read of moto's spooled file,
    under the key's lock as ``FakeKey.value`` reads the whole of it."""
    with key.lock:
        key._value_buffer.seek(start)
        return bytes(key._value_buffer.read(max(0, stop - start)))


class _RangeView:
    """``FakeKey.value`` for one ranged GET: moto takes its ``len`` and one slice of it."""

    def __init__(self, key: FakeKey) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __getitem__(self, item: slice) -> bytes:
        start, stop, step = item.indices(len(self))
        if step != 1:
            return self.whole()[item]
        return _read_range(self.key, start, stop)

    def whole(self) -> bytes:
        return self.key.value


class _RangeKey:
    """moto's key, except that ``value`` is a :class:`_RangeView` (read-only: GET reads it)."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)

    @property
    def value(self) -> _RangeView:
        return _RangeView(self._key)


class _RangeCopyBackend:
    """moto's S3 backend for one UploadPartCopy: a ``CopySourceRange`` reads only that range."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def upload_part_copy(
        self,
        dest_bucket_name: str,
        multipart_id: str,
        part_id: int,
        src_bucket_name: str,
        src_key_name: str,
        src_version_id: str | None,
        start_byte: int | None,
        end_byte: int | None,
    ) -> FakeKey:
        if start_byte is None or end_byte is None:  # the whole source: moto as is
            return self._backend.upload_part_copy(
                dest_bucket_name,
                multipart_id,
                part_id,
                src_bucket_name,
                src_key_name,
                src_version_id,
                start_byte,
                end_byte,
            )
        multipart = self._backend.get_bucket(dest_bucket_name).multiparts[multipart_id]
        source = self._backend.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
        # moto slices value[start_byte : end_byte + 1]; this reads the same bytes from the file.
        return multipart.set_part(part_id, _read_range(source, start_byte, end_byte + 1))


class RangeReadingS3Response(S3Response):
    """moto's S3 responses, with ranged reads that cost the range, as on S3.

    For a GetObject with one ``Range: bytes=a-b`` (or ``a-``, ``-n``) and no ``partNumber``
    or SSE-C headers, moto's own ``get_object`` runs on a key whose ``value`` reads only what
    moto then slices out of it (:class:`_RangeView`). moto still resolves the key and
    ``versionId``, answers the preconditions (412, 304), the range (206, ``Content-Range``,
    ``Content-Length``, 416) and builds every header. Should moto ignore the range after all
    (``bytes=5-3``), the whole value is read, as moto does. UploadPartCopy with a
    ``CopySourceRange`` likewise reads just that range of the source. Anything else is moto's
    code unchanged. The middleware switches this on per request (:data:`RANGE_READS`).
    """

    _ranged = False
    _copying = False

    def _range_reads(self) -> bool:
        return bool(self.request.environ.get(RANGE_READS))

    @property
    def backend(self) -> Any:
        backend = super().backend
        return _RangeCopyBackend(backend) if self._copying else backend

    def _get_key(self, validate_storage_class: bool = True) -> tuple[FakeKey, bool]:
        key, not_modified = super()._get_key(validate_storage_class)
        return (_RangeKey(key) if self._ranged else key), not_modified  # type: ignore[return-value]

    def get_object(self) -> Any:
        self._ranged = (
            self._range_reads()
            and _ONE_RANGE.fullmatch(str(self.headers.get("Range", ""))) is not None
            and "partNumber" not in self.querystring
            and not self.headers.get("x-amz-server-side-encryption-customer-algorithm")
        )
        try:
            return super().get_object()
        finally:
            self._ranged = False

    def upload_part_copy(self) -> Any:
        self._copying = self._range_reads()
        try:
            return super().upload_part_copy()
        finally:
            self._copying = False

    def key_response(self, request: Any, full_url: str, headers: dict[str, Any]) -> Any:
        status, response_headers, body = super().key_response(request, full_url, headers)
        if isinstance(body, _RangeView):  # moto answered 200 with the value unsliced
            body = body.whole()
        return status, response_headers, body


def create_app(service: str) -> Flask:
    """moto's backend app for ``service``, S3 answered by :class:`RangeReadingS3Response`.

    moto's S3 routes call ``S3Response``'s dispatch class methods (``key_dispatch`` ...); the
    same class methods of the subclass make the subclass answer.
    """
    app = create_backend_app(service)  # type: ignore[arg-type]
    for endpoint, view in list(app.view_functions.items()):
        callback = getattr(view, "callback", None)
        if getattr(callback, "__self__", None) is S3Response:
            handler = getattr(RangeReadingS3Response, callback.__name__)  # type: ignore[union-attr]
            app.view_functions[endpoint] = convert_to_flask_response(handler)
    return app


def _refuse(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response(
        "403 Forbidden",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(ACCESS_DENIED)))],
    )
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [ACCESS_DENIED]


class RequesterPaysMiddleware:
    """Refuse requests to requester-pays buckets that do not accept the charges.

    ``read_only`` (test infrastructure) holds buckets whose writes are refused, standing in for
    an IAM or bucket policy without ``s3:PutObject``, which moto does not enforce.
    ``range_reads`` switches :class:`RangeReadingS3Response`'s shim on (it is off for an app
    that is plain moto).
    """

    def __init__(self, app: WSGIApp, range_reads: bool = True) -> None:
        self.app = app
        self.range_reads = range_reads
        self.refused = 0
        self.requester_pays: set[str] = set()
        self.read_only: set[str] = set()
        self.hooks: list[RequestHook] = []
        self.traffic = TrafficCounter()
        self.encrypted_etags = EncryptedETags()

    def _request_payment(
        self, bucket: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        """Put/GetBucketRequestPayment, which moto lacks."""
        method = environ.get("REQUEST_METHOD")
        if method == "PUT":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            match = _PAYER.search(environ["wsgi.input"].read(length))
            if not match:
                body = b"<Error><Code>MalformedXML</Code><Message>No Payer</Message></Error>"
                start_response("400 Bad Request", [("Content-Type", "application/xml")])
                return [body]
            if match.group(1) == b"Requester":
                self.requester_pays.add(bucket)
            else:
                self.requester_pays.discard(bucket)
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        payer = "Requester" if bucket in self.requester_pays else "BucketOwner"
        body = _PAYMENT_XML.format(payer=payer).encode()
        start_response("200 OK", [("Content-Type", "application/xml")])
        return [body]

    def _refused(self, bucket: str | None, environ: dict[str, Any]) -> bool:
        """AWS's answer would be 403: unpaid or anonymous requester-pays access, or a write to
        a read-only bucket."""
        if _has_payer(environ) and _is_signed(environ):
            unpaid = False
        else:
            source = copy_source_bucket(environ)
            unpaid = bucket in self.requester_pays or source in self.requester_pays
        write = environ.get("REQUEST_METHOD") in _WRITE_METHODS
        return unpaid or (write and bucket in self.read_only)

    def _handle(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        bucket = bucket_of(environ)
        if bucket and _query_has(environ, "requestPayment"):
            return self._request_payment(bucket, environ, start_response)
        if bucket and self._refused(bucket, environ):
            self.refused += 1
            return _refuse(environ, start_response)
        return self.app(environ, start_response)

    def _etag_rewriting(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Callable[..., Any]:
        customer_key = "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_ALGORITHM" in environ

        def rewritten(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            headers = self.encrypted_etags.rewrite(headers, customer_key)
            return start_response(status, headers, *rest)

        return rewritten

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        key = (bucket_of(environ) or "", operation_of(environ))
        self.traffic.add(key, requests=1)
        self.encrypted_etags.translate_request(environ)
        if key[1] not in _PART_OPERATIONS:
            start_response = self._etag_rewriting(environ, start_response)
        environ[RANGE_READS] = self.range_reads
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _CountingInput(
                environ["wsgi.input"], lambda n: self.traffic.add(key, received=n)
            )
        intercept = None
        for hook in list(self.hooks):
            intercept = hook(environ) or intercept
        if intercept is not None and intercept.answer is not None:
            status, headers, data = intercept.answer
            start_response(status, [*headers, ("Content-Length", str(len(data)))])
            body: Iterable[bytes] = [b"" if environ.get("REQUEST_METHOD") == "HEAD" else data]
        elif intercept is not None and intercept.refuse:
            body = _refuse(environ, start_response)
        else:
            body = self._handle(environ, start_response)
        if intercept is not None and intercept.cut_after is not None:
            body = _CutBody(body, intercept.cut_after, environ.get("werkzeug.socket"))
        return _CountingBody(body, lambda n: self.traffic.add(key, sent=n))


class LocalS3Server(WsgiService):
    """moto on a free loopback port, wrapped by :class:`RequesterPaysMiddleware`.

    Use as a context manager; ``endpoint_url`` is what boto3 (``AWS_ENDPOINT_URL_S3``) needs.
    ``traffic`` counts body bytes per bucket and operation; ``set_read_only`` makes a bucket
    refuse writes (both are test infrastructure, see the module docstring).
    ``range_reads=False`` (or setting :attr:`range_reads` later) serves ranges as moto does,
    reading the whole object each time.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, range_reads: bool = True) -> None:
        self.host = host
        self.port = port
        self.middleware = RequesterPaysMiddleware(
            DomainDispatcherApplication(create_app), range_reads
        )

    @property
    def range_reads(self) -> bool:
        """Ranged GETs and UploadPartCopy read only their range (True) or, as moto, all."""
        return self.middleware.range_reads

    @range_reads.setter
    def range_reads(self, value: bool) -> None:
        self.middleware.range_reads = value

    @property
    def traffic(self) -> TrafficCounter:
        return self.middleware.traffic

    def set_read_only(self, bucket: str, read_only: bool = True) -> None:
        """Answer writes to ``bucket`` with 403 AccessDenied (or stop doing so)."""
        if read_only:
            self.middleware.read_only.add(bucket)
        else:
            self.middleware.read_only.discard(bucket)

    def add_hook(self, hook: RequestHook) -> Callable[[], None]:
        """Call ``hook`` on every request from now on; returns the function that removes it."""
        self.middleware.hooks.append(hook)
        return lambda: self.middleware.hooks.remove(hook)

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalS3Server is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> LocalS3Server:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._serve(self.middleware, self.port, MotoRequestHandler)
        return self
