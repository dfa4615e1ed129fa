"""A STAC API that declares and applies the query extension: a proxy in front of ``rustac serve``.

Why it exists: eopack must send server-side property filters (the STAC API query extension,
``{"query": {"platform": {"eq": "sentinel-1a"}}}``) only to servers that declare them, and
filter on the client otherwise. The test STAC server, ``rustac serve`` with its memory backend
(:class:`eopack.demo.stacserver.StacServer`), declares only core, ogcapi-features, collections
and item-search in ``/conformance``; sent a ``query`` it does not fail but silently answers
a POST search with no features at all (and a GET search ignores it). To test the "server declares
the query extension" branch against a real HTTP STAC API, :class:`QueryStacProxy` sits in front
of a running rustac server on its own loopback port and

* forwards every request (method, path, query string, body, headers) and hands back the
  upstream status, headers and body, with every JSON string naming the upstream base URL
  (the ``href`` of all links, in features too) rewritten to the proxy's own base URL;
* adds ``https://api.stacspec.org/v1.0.0/item-search#query`` to ``GET /conformance`` and to
  the landing page's ``conformsTo``;
* removes ``query`` from ``POST /search`` bodies and ``GET /search?query=<JSON>`` query strings
  before forwarding, applies the query to the features that come back, and carries it over
  into the search links of the answer (``next``/``prev``: into a POST link's ``body``, into a
  GET link's query string) so that every page the client fetches is filtered;
* records every ``/search`` request it receives in :attr:`QueryStacProxy.requests`.

Paging caveat: the proxy filters upstream's pages, it does not re-page. A page therefore
holds at most ``limit`` features and usually fewer. It never hands back an *empty* page
while upstream has more: pystac-client stops paging at the first page without features,
so the proxy keeps following upstream ``next`` links until a page has a match or upstream
runs out. ``numberMatched`` and ``context.matched`` are dropped (unknown without reading
everything), ``numberReturned`` and ``context.returned`` are corrected. Good enough for a
test server, not for anything else.

Operator semantics (spec: https://github.com/stac-api-extensions/query; several operators on
one property and several properties are all ANDed):

* An item without the property (in ``properties``; a leading ``properties.`` in the name is
  ignored) matches no operator, ``neq`` included.
* ``eq``/``neq``: JSON equality (``true`` is not ``1``). On an array property (such as
  ``sar:polarizations``) a scalar operand means "the array contains it" and an array operand
  means "the array equals it" (same elements, same order); ``neq`` is the negation.
* ``in`` (operand: a list): a scalar property matches if it equals one of the listed values,
  an array property if any of its elements does (the arrays overlap).
* ``lt``/``lte``/``gt``/``gte``: numbers with numbers, strings with strings (lexicographic,
  which orders ISO 8601 timestamps of one format correctly); anything else does not match.
* ``startsWith``/``endsWith``/``contains``: on strings. ``contains`` on an array property means
  "has an element equal to the operand", like ``eq`` with a scalar.

A malformed ``query`` (not an object of objects, unknown operator, ``in`` without a list,
GET ``query`` that is not JSON) is answered with 400 and a JSON error, as a real server would.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from eopack.demo.service import WsgiService

QUERY_CONFORMANCE = "https://api.stacspec.org/v1.0.0/item-search#query"
OPERATORS = frozenset(
    {"eq", "neq", "lt", "lte", "gt", "gte", "startsWith", "endsWith", "contains", "in"}
)

# Not copied between the two HTTP legs: connection-level headers, and those the proxy sets.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",  # ask upstream for identity, so JSON bodies can be read and edited
        "content-encoding",
    }
)
_MAX_PAGES = 10_000  # upstream pages followed for one answer; a guard against link loops


class QueryError(ValueError):
    """A malformed STAC ``query`` parameter (answered with HTTP 400)."""


@dataclass(frozen=True)
class RecordedSearch:
    """One ``/search`` request as the proxy received it (before removing ``query``)."""

    method: str
    path: str
    query_string: str
    body: bytes

    @property
    def params(self) -> dict[str, Any]:
        """The search parameters: the JSON body of a POST, the query string of a GET.

        A GET's ``query`` (and ``intersects``/``filter``) is JSON-decoded when it parses;
        other GET values stay strings. Unparseable bodies give ``{}``.
        """
        if self.method == "POST":
            try:
                parsed = json.loads(self.body or b"{}")
            except ValueError:
                return {}
            return parsed if isinstance(parsed, dict) else {}
        params: dict[str, Any] = {}
        for key, value in urllib.parse.parse_qsl(self.query_string, keep_blank_values=True):
            if key in ("query", "intersects", "filter"):
                try:
                    params[key] = json.loads(value)
                    continue
                except ValueError:
                    pass
            params[key] = value
        return params

    @property
    def query(self) -> dict[str, Any] | None:
        """The STAC ``query`` the client sent, or None."""
        query = self.params.get("query")
        return query if isinstance(query, dict) else None


class _QuietHandler(WSGIRequestHandler):
    """No per-request log lines on stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back to the client instead of following them."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class _Upstream:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        """The parsed body if it is JSON, else None."""
        ctype = next((v for k, v in self.headers if k.lower() == "content-type"), "")
        media = ctype.split(";")[0].strip().lower()
        if not (media.endswith("/json") or media.endswith("+json")):
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# -- query evaluation ------------------------------------------------------------------------


def validate_query(query: Any) -> dict[str, dict[str, Any]]:
    """``query`` if it is a well-formed STAC query, else :class:`QueryError`."""
    if not isinstance(query, dict):
        raise QueryError("query must be a JSON object of {property: {operator: value}}")
    for name, ops in query.items():
        if not isinstance(ops, dict) or not ops:
            raise QueryError(f"query[{name!r}] must be a non-empty object of {{operator: value}}")
        for op, operand in ops.items():
            if op not in OPERATORS:
                raise QueryError(f"unknown query operator {op!r} for {name!r}")
            if op == "in" and not isinstance(operand, list):
                raise QueryError(f"query[{name!r}]['in'] must be a list")
    return query


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _ordered(value: Any, operand: Any) -> tuple[Any, Any] | None:
    """The pair if ``<`` between them is meaningful (number/number, string/string)."""
    if _is_number(value) and _is_number(operand):
        return value, operand
    if isinstance(value, str) and isinstance(operand, str):
        return value, operand
    return None


def _eq(value: Any, operand: Any) -> bool:
    if isinstance(value, list) and not isinstance(operand, list):
        return any(_equal(v, operand) for v in value)
    return _equal(value, operand)


def _apply(op: str, value: Any, operand: Any) -> bool:
    if op == "eq":
        return _eq(value, operand)
    if op == "neq":
        return not _eq(value, operand)
    if op == "in":
        values = value if isinstance(value, list) else [value]
        return any(_equal(v, o) for v in values for o in operand)
    if op in ("lt", "lte", "gt", "gte"):
        pair = _ordered(value, operand)
        if pair is None:
            return False
        a, b = pair
        return {"lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[op]
    if op == "contains" and isinstance(value, list):
        return any(_equal(v, operand) for v in value)
    if not (isinstance(value, str) and isinstance(operand, str)):
        return False
    if op == "startsWith":
        return value.startswith(operand)
    if op == "endsWith":
        return value.endswith(operand)
    return operand in value  # contains


def item_matches(item: Mapping[str, Any], query: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a STAC item (a GeoJSON feature dict) satisfies every clause of ``query``."""
    props = item.get("properties") or {}
    for name, ops in query.items():
        key = name.removeprefix("properties.")
        if key not in props:
            return False
        if not all(_apply(op, props[key], operand) for op, operand in ops.items()):
            return False
    return True


# -- the proxy -------------------------------------------------------------------------------


class QueryStacProxy(WsgiService):
    """A loopback STAC API that adds the query extension to the STAC API at ``upstream``.

    ``upstream`` is the base URL of a running server, e.g. ``StacServer(...).start().url``.
    ``url`` is the proxy's base URL once started; ``requests`` lists a
    :class:`RecordedSearch` per ``/search`` request received (append-only, guarded by a
    lock; :meth:`searches` returns a snapshot, :meth:`clear` empties it).
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1", timeout: float = 30) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.timeout = timeout
        self.requests: list[RecordedSearch] = []
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._upstream_path = urllib.parse.urlsplit(self.upstream).path.rstrip("/")

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("QueryStacProxy is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> QueryStacProxy:
        # Port 0: the kernel picks a free port at bind time (no race with other tests).
        self._serve(self._app, 0, _QuietHandler)
        return self

    def searches(self) -> list[RecordedSearch]:
        """A snapshot of :attr:`requests`."""
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    # -- WSGI ------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        path = request.path or "/"
        query_string = request.query_string.decode("latin-1")
        body = request.get_data(cache=False)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        is_search = path.rstrip("/") == "/search"
        if is_search:
            with self._lock:
                self.requests.append(RecordedSearch(request.method, path, query_string, body))
        try:
            if is_search and request.method in ("GET", "POST"):
                return self._search(request.method, path, query_string, body, headers)
            upstream = self._fetch(
                request.method, self._upstream_url(path, query_string), body, headers
            )
        except QueryError as exc:
            return _error(400, "BadRequest", str(exc))
        except (urllib.error.URLError, OSError) as exc:
            return _error(502, "BadGateway", f"upstream {self.upstream} unreachable: {exc}")
        doc = upstream.json()
        landing = path == "/" and isinstance(doc, dict) and "conformsTo" in doc
        conformance = path.rstrip("/") == "/conformance" and isinstance(doc, dict)
        if upstream.status == 200 and (landing or conformance):
            _declare_query(doc)
        return self._answer(upstream, doc)

    def _search(
        self,
        method: str,
        path: str,
        query_string: str,
        body: bytes,
        headers: list[tuple[str, str]],
    ) -> Response:
        query: dict[str, Any] | None = None
        params: Any = None  # the POST body as forwarded, for links that ask to merge it
        if method == "POST":
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                params = None  # let upstream complain about it
            if isinstance(params, dict) and "query" in params:
                query = validate_query(params.pop("query"))
                body = json.dumps(params).encode()
        else:
            raw_query, query_string = _split_query_param(query_string)
            if raw_query is not None:
                try:
                    query = validate_query(json.loads(raw_query))
                except ValueError as exc:
                    if isinstance(exc, QueryError):
                        raise
                    raise QueryError(f"query is not JSON: {raw_query!r}") from exc
        upstream = self._fetch(method, self._upstream_url(path, query_string), body, headers)
        doc = upstream.json()
        if not query or upstream.status != 200 or not isinstance(doc, dict):
            return self._answer(upstream, doc)
        page = _filtered(doc, query)
        for _ in range(_MAX_PAGES):
            next_link = _link(doc, "next")
            if page["features"] or next_link is None:
                break
            # An empty page would end pystac-client's paging: read on upstream instead.
            upstream = self._follow(next_link, params, headers)
            doc = upstream.json()
            if upstream.status != 200 or not isinstance(doc, dict):
                return self._answer(upstream, doc)
            page = _filtered(doc, query)
        for link in page.get("links") or []:
            if isinstance(link, dict) and self._is_upstream_search(link.get("href")):
                _carry_query(link, query)
        return self._answer(upstream, page)

    # -- upstream --------------------------------------------------------------------------

    def _upstream_url(self, path: str, query_string: str) -> str:
        return self.upstream + path + (f"?{query_string}" if query_string else "")

    def _is_upstream_search(self, href: Any) -> bool:
        if not isinstance(href, str) or not _under(href, self.upstream):
            return False
        return urllib.parse.urlsplit(href).path.rstrip("/") == self._upstream_path + "/search"

    def _fetch(
        self, method: str, url: str, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> _Upstream:
        req = urllib.request.Request(url, data=body or None, method=method, headers=dict(headers))
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return _Upstream(resp.status, list(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _Upstream(exc.code, list(exc.headers.items()), exc.read())

    def _follow(
        self, link: Mapping[str, Any], sent: Any, headers: list[tuple[str, str]]
    ) -> _Upstream:
        """Request an upstream paging link (GET href, or POST href + body, maybe merged)."""
        method = str(link.get("method", "GET")).upper()
        if method != "POST":
            return self._fetch("GET", str(link["href"]), b"", headers)
        link_body = link.get("body") or {}
        if link.get("merge") and isinstance(sent, dict):
            link_body = {**sent, **link_body}
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        headers.append(("Content-Type", "application/json"))
        return self._fetch("POST", str(link["href"]), json.dumps(link_body).encode(), headers)

    def _answer(self, upstream: _Upstream, doc: Any) -> Response:
        """Upstream's answer with upstream URLs replaced by ours (JSON, Location header)."""
        body = upstream.body
        if doc is not None:
            body = json.dumps(_rebase(doc, self.upstream, self.url)).encode()
        headers = []
        for key, value in upstream.headers:
            if key.lower() in _HOP_BY_HOP:
                continue
            if key.lower() == "location" and _under(value, self.upstream):
                value = self.url + value[len(self.upstream) :]
            headers.append((key, value))
        return Response(body, upstream.status, headers)


# -- helpers ---------------------------------------------------------------------------------


def _error(status: int, code: str, description: str) -> Response:
    return Response(
        json.dumps({"code": code, "description": description}),
        status,
        content_type="application/json",
    )


def _declare_query(doc: dict[str, Any]) -> None:
    classes = doc.get("conformsTo")
    if not isinstance(classes, list):
        classes = []
    if QUERY_CONFORMANCE not in classes:
        classes.append(QUERY_CONFORMANCE)
    doc["conformsTo"] = classes


def _under(url: str, base: str) -> bool:
    return url == base or url.startswith((base + "/", base + "?"))


def _rebase(value: Any, old: str, new: str) -> Any:
    """``value`` with every string that is, or starts with, URL ``old`` moved to ``new``."""
    if isinstance(value, str):
        return new + value[len(old) :] if _under(value, old) else value
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    return value


def _split_query_param(query_string: str) -> tuple[str | None, str]:
    """(decoded ``query`` value or None, the query string without it, otherwise untouched)."""
    found: str | None = None
    kept = []
    for part in query_string.split("&") if query_string else []:
        key, _, value = part.partition("=")
        if urllib.parse.unquote_plus(key) == "query":
            found = urllib.parse.unquote_plus(value)
        else:
            kept.append(part)
    return found, "&".join(kept)


def _link(doc: Mapping[str, Any], rel: str) -> dict[str, Any] | None:
    for link in doc.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == rel and link.get("href"):
            return link
    return None


def _filtered(doc: dict[str, Any], query: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of the search page ``doc`` with the features that match ``query``."""
    page = dict(doc)
    features = [f for f in doc.get("features") or [] if isinstance(f, dict)]
    page["features"] = [f for f in features if item_matches(f, query)]
    page.pop("numberMatched", None)
    if "numberReturned" in page:
        page["numberReturned"] = len(page["features"])
    context = page.get("context")
    if isinstance(context, dict):
        context = {k: v for k, v in context.items() if k != "matched"}
        context["returned"] = len(page["features"])
        page["context"] = context
    return page


def _carry_query(link: dict[str, Any], query: Mapping[str, Any]) -> None:
    """Put ``query`` into a search link: its body if it is a POST link, else its href."""
    if str(link.get("method", "GET")).upper() == "POST":
        body = link.get("body")
        link["body"] = {**(body if isinstance(body, dict) else {}), "query": query}
        return
    parts = urllib.parse.urlsplit(link["href"])
    _, rest = _split_query_param(parts.query)
    encoded = "query=" + urllib.parse.quote(json.dumps(query, separators=(",", ":")), safe="")
    link["href"] = urllib.parse.urlunsplit(parts._replace(query=f"{rest}&{encoded}".lstrip("&")))
