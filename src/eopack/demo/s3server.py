"""A local S3 server that behaves like AWS where eopack relies on it: requester pays.

moto serves the S3 API faithfully but has no request-payment API (Put/GetBucketRequestPayment)
and enforces nothing, so a client that forgets ``x-amz-request-payer: requester`` would pass
every test and fail on the real ``sentinel-s1-l1c`` bucket. This wraps moto's WSGI app: it
implements the request-payment sub-resource itself and answers requests to a requester-pays
bucket that do not accept the charges with the 403 ``AccessDenied`` that AWS sends.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

from eopack.demo.service import WsgiService

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

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


def bucket_of(environ: dict[str, Any]) -> str | None:
    """The bucket a request addresses, path style or virtual-hosted style."""
    host = environ.get("HTTP_HOST", "")
    match = _HOST_BUCKET.match(host)
    if match:
        return match.group("bucket")
    path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
    return path.split("/", 1)[0] or None


def _query_has(environ: dict[str, Any], name: str) -> bool:
    query = environ.get("QUERY_STRING", "")
    return any(part.split("=", 1)[0] == name for part in query.split("&"))


def _has_payer(environ: dict[str, Any]) -> bool:
    header = environ.get("HTTP_X_AMZ_REQUEST_PAYER", "").lower() == "requester"
    # Presigned URLs carry the header among the signed query parameters.
    signed = "x-amz-request-payer=requester" in environ.get("QUERY_STRING", "").lower()
    return header or signed


class RequesterPaysMiddleware:
    """Refuse requests to requester-pays buckets that do not accept the charges."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.refused = 0
        self.requester_pays: set[str] = set()

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

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        bucket = bucket_of(environ)
        if bucket and _query_has(environ, "requestPayment"):
            return self._request_payment(bucket, environ, start_response)
        if bucket and bucket in self.requester_pays and not _has_payer(environ):
            self.refused += 1
            start_response(
                "403 Forbidden",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(ACCESS_DENIED)))],
            )
            return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [ACCESS_DENIED]
        return self.app(environ, start_response)


class LocalS3Server(WsgiService):
    """moto on a free loopback port, wrapped by :class:`RequesterPaysMiddleware`.

    Use as a context manager; ``endpoint_url`` is what boto3 (``AWS_ENDPOINT_URL_S3``) needs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.middleware = RequesterPaysMiddleware(DomainDispatcherApplication(create_backend_app))

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalS3Server is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> LocalS3Server:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._serve(self.middleware, self.port, MotoRequestHandler)
        return self
