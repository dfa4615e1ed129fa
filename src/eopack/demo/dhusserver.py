"""A small DHuS OpenSearch server on loopback, for testing the sentinelsat backend offline.

Why: the Copernicus hubs are gone or need accounts, and a mocked ``requests`` would not show
what sentinelsat really sends. This server answers ``GET {root}search?format=json&rows&start&q``
as DHuS did (Basic auth, Tomcat 401 page, the JSON feed with its quirks: numbers as strings,
typed ``str``/``int``/``date`` lists, a single ``entry`` as an object, none without a match,
query errors as an ``error`` feed) and really evaluates the Solr query: fields, phrases,
wildcards, ranges, AND/OR/NOT, groups and ``footprint:"Intersects(WKT)"``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from eopack.demo.s1world import DemoProduct
from eopack.demo.service import WsgiService

#: DHuS attributes typed ``date`` in the feed; others are ``int``/``double`` by value, else ``str``.
DATE_FIELDS = frozenset({"beginposition", "endposition", "ingestiondate", "generationdate"})
_NSSDC = {"1A": "2014-016A", "1B": "2016-025A"}
_REALM = "Sentinels Scientific Data Hub Search"
_UNAUTHORIZED_PAGE = (
    "<!DOCTYPE html><html><head><title>Apache Tomcat/8.0.36 - Error report</title></head>"
    "<body><h1>HTTP Status 401 - Full authentication is required to access this resource</h1>"
    "<p><b>type</b> Status report</p><p><b>message</b> <u>Full authentication is required to "
    "access this resource</u></p><p><b>description</b> <u>This request requires HTTP "
    "authentication.</u></p><h3>Apache Tomcat/8.0.36</h3></body></html>"
)
_MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>The Sentinels Scientific Data Hub</title></head><body>"
    "<h1>The Sentinels Scientific Data Hub will be back soon!</h1>"
    "<p>Sorry for the inconvenience, we're performing some maintenance at the moment.</p>"
    "</body></html>"
)


class QueryError(ValueError):
    """A query DHuS would refuse; answered as an error feed (code 400, HTTP 200) like DHuS."""


# ------------------------------------------------------------------------------------------
# Solr query: tokens -> tree -> predicate over one product
# ------------------------------------------------------------------------------------------

_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*):")


@dataclass(frozen=True)
class _Clause:
    field: str
    kind: str  # term, phrase, range, regex
    value: Any


def _read_quoted(q: str, i: int) -> tuple[str, int]:
    """The text of a "..." starting at ``q[i]``; backslash escapes the next character."""
    out, i = [], i + 1
    while i < len(q):
        ch = q[i]
        if ch == "\\" and i + 1 < len(q):
            out.append(q[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise QueryError("Cannot parse query: unterminated quoted string")


def _read_range(q: str, i: int) -> tuple[tuple[str, str, bool, bool], int]:
    j, inside = i + 1, False
    while j < len(q) and (inside or q[j] not in "]}"):
        inside = inside != (q[j] == '"')
        j += 1
    if j >= len(q):
        raise QueryError("Cannot parse query: unterminated range")
    parts = re.split(r"\s+TO\s+", q[i + 1 : j].strip())
    if len(parts) != 2:
        raise QueryError(f"Cannot parse query: bad range {q[i : j + 1]}")
    lo, hi = (p.strip().strip('"') for p in parts)
    return (lo, hi, q[i] == "[", q[j] == "]"), j + 1


def _read_bare(q: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(q) and not q[i].isspace() and q[i] != ")":
        if q[i] == "\\" and i + 1 < len(q):
            out.append(q[i + 1])
            i += 2
            continue
        out.append(q[i])
        i += 1
    return "".join(out), i


def tokenize(q: str) -> list[Any]:
    """``(``, ``)``, ``AND``/``OR``/``NOT`` and :class:`_Clause` tokens of a Solr query."""
    tokens: list[Any] = []
    i = 0
    while i < len(q):
        ch = q[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(ch)
            i += 1
        elif (op := re.match(r"(AND|OR|NOT|&&|\|\|)(?=[\s(])", q[i:])) is not None:
            tokens.append({"&&": "AND", "||": "OR"}.get(op.group(1), op.group(1)))
            i += len(op.group(1))
        elif (field := _FIELD.match(q, i)) is not None:
            name, i = field.group(1).lower(), field.end()
            if i >= len(q) or q[i].isspace():
                raise QueryError(f"Cannot parse query: no value for {name}")
            if q[i] == '"':
                text, i = _read_quoted(q, i)
                tokens.append(_Clause(name, "phrase", text))
            elif q[i] in "[{":
                bounds, i = _read_range(q, i)
                tokens.append(_Clause(name, "range", bounds))
            elif q[i] == "/":
                end = q.find("/", i + 1)
                if end < 0:
                    raise QueryError("Cannot parse query: unterminated regular expression")
                tokens.append(_Clause(name, "regex", q[i + 1 : end]))
                i = end + 1
            else:
                text, i = _read_bare(q, i)
                tokens.append(_Clause(name, "term", text))
        else:
            word, _ = _read_bare(q, i)
            raise QueryError(f"free text search ({word!r}) is not supported by this server")
    return tokens


Predicate = Callable[[Mapping[str, Any]], bool]


class _Parser:
    """Recursive descent: ``query := and (OR and)*``, ``and := unary ((AND)? unary)*``,
    ``unary := NOT unary | ( query ) | clause``.

    DHuS runs Solr with AND as the default operator, so juxtaposed clauses must all hold.
    """

    def __init__(self, tokens: list[Any], clause: Callable[[_Clause], Predicate]) -> None:
        self.tokens, self.pos, self.clause = tokens, 0, clause

    def peek(self) -> Any:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Any:
        token = self.peek()
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        if not self.tokens:
            raise QueryError("Empty query")
        pred = self.query()
        if self.peek() is not None:
            raise QueryError(f"Cannot parse query: unexpected {self.peek()!r}")
        return pred

    def query(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda p: any(f(p) for f in parts))

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda p: all(f(p) for f in parts))

    def unary(self) -> Predicate:
        token = self.take()
        if token == "NOT":
            inner = self.unary()
            return lambda p: not inner(p)
        if token == "(":
            inner = self.query()
            if self.take() != ")":
                raise QueryError("Cannot parse query: missing ')'")
            return inner
        if isinstance(token, _Clause):
            return self.clause(token)
        raise QueryError(f"Cannot parse query: unexpected {token!r}")


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"Invalid Date String:'{text}'") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def _text_match(value: Any, kind: str, needle: str) -> bool:
    """Text fields are tokenised and case-insensitive; a phrase is a run of tokens."""
    if isinstance(value, int | float):
        try:
            return float(needle) == float(value)
        except ValueError:
            return False
    text, needle = str(value).lower(), needle.lower()
    if kind == "term" and any(c in needle for c in "*?"):
        return fnmatch.fnmatchcase(text, needle) or any(
            fnmatch.fnmatchcase(t, needle) for t in _tokens(text)
        )
    if text == needle:
        return True
    have, want = _tokens(text), _tokens(needle)
    return bool(want) and any(
        have[k : k + len(want)] == want for k in range(len(have) - len(want) + 1)
    )


def _in_range(field: str, value: Any, bounds: tuple[str, str, bool, bool]) -> bool:
    lo, hi, lo_incl, hi_incl = bounds
    convert: Callable[[Any], Any]
    if field in DATE_FIELDS:
        convert = lambda v: _parse_time(str(v))  # noqa: E731
    elif isinstance(value, int | float):
        convert = float
    else:
        convert = lambda v: str(v).lower()  # noqa: E731
    try:
        have = convert(value)
        if lo != "*":
            low = convert(lo)
            if have < low or (have == low and not lo_incl):
                return False
        if hi != "*":
            high = convert(hi)
            if have > high or (have == high and not hi_incl):
                return False
    except ValueError as exc:
        raise QueryError(f"Invalid range on {field}: {exc}") from None
    return True


_RELATIONS: dict[str, Callable[[BaseGeometry, BaseGeometry], bool]] = {
    "intersects": lambda fp, aoi: fp.intersects(aoi),
    "contains": lambda fp, aoi: fp.contains(aoi),  # the AOI inside the footprint
    "iswithin": lambda fp, aoi: fp.within(aoi),  # the footprint inside the AOI
}


def _footprint_predicate(text: str) -> Predicate:
    match = re.fullmatch(r"\s*(\w+)\s*\((.*)\)\s*", text, re.S)
    if not match or match.group(1).lower() not in _RELATIONS:
        raise QueryError(f"Cannot parse footprint query: {text[:60]}")
    try:
        area = shapely.from_wkt(match.group(2))
    except ShapelyError as exc:
        raise QueryError(f"Cannot parse footprint WKT: {exc}") from None
    relation = _RELATIONS[match.group(1).lower()]
    return lambda p: relation(p["_geometry"], area)


def compile_query(q: str, fields: Iterable[str]) -> Predicate:
    """A predicate over products for DHuS query ``q``; unknown fields are refused like DHuS."""
    known = {f.lower() for f in fields}

    def clause(c: _Clause) -> Predicate:
        if c.field == "footprint" and c.kind == "phrase":
            return _footprint_predicate(c.value)
        if c.field not in known:
            raise QueryError(f"undefined field {c.field}")
        if c.kind == "range":
            return lambda p: c.field in p and _in_range(c.field, p[c.field], c.value)
        if c.kind == "regex":
            pattern = re.compile(c.value, re.I)
            return lambda p: c.field in p and pattern.fullmatch(str(p[c.field])) is not None
        return lambda p: c.field in p and _text_match(p[c.field], c.kind, c.value)

    return _Parser(tokenize(q), clause).parse()


# ------------------------------------------------------------------------------------------
# The feed
# ------------------------------------------------------------------------------------------


def _typed(name: str, value: Any) -> str:
    if name in DATE_FIELDS:
        return "date"
    if isinstance(value, bool):
        return "str"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    return "str"


def _one_or_list(items: list[dict[str, Any]]) -> Any:
    """DHuS's XML-to-JSON conversion turns a one-element list into the element itself."""
    return items[0] if len(items) == 1 else items


def feed_entry(product: Mapping[str, Any], root: str) -> dict[str, Any]:
    """One ``entry`` of the feed, attributes grouped by type as DHuS does."""
    ident, uid = str(product["identifier"]), str(product["uuid"])
    odata = f"{root}odata/v1/Products('{uid}')"
    typed: dict[str, list[dict[str, Any]]] = {}
    for name, value in product.items():
        if name.startswith("_"):
            continue
        typed.setdefault(_typed(name, value), []).append({"name": name, "content": str(value)})
    summary = (
        f"Date: {product.get('beginposition', '')}, Instrument: SAR-C SAR, "
        f"Mode: {product.get('polarisationmode', '')}, "
        f"Satellite: {product.get('platformname', '')}, Size: {product.get('size', '')}"
    )
    entry: dict[str, Any] = {
        "title": ident,
        "link": [
            {"href": f"{odata}/$value"},
            {"rel": "alternative", "href": f"{odata}/"},
            {"rel": "icon", "href": f"{odata}/Products('Quicklook')/$value"},
        ],
        "id": uid,
        "summary": summary,
        "ondemand": "false",
    }
    for kind in ("date", "int", "double", "str"):
        if kind in typed:
            entry[kind] = _one_or_list(typed[kind])
    return entry


def _error_feed(code: int, message: str) -> dict[str, Any]:
    return {
        "feed": {
            "xmlns:opensearch": "http://a9.com/-/spec/opensearch/1.1/",
            "xmlns": "http://www.w3.org/2005/Atom",
            "error": {"code": str(code), "message": message},
        }
    }


class _QuietHandler(WSGIRequestHandler):
    """No per-request log lines on stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class DhusServer(WsgiService):
    """A threaded DHuS search endpoint on a free loopback port; ``.url`` is the API root.

    ``products`` are flat ``{attribute: value}`` dicts (see :func:`dhus_entries_from_demo`):
    ``uuid``, ``identifier`` and a WKT ``footprint`` are required. Switches for tests:
    ``error = (http_status, message)`` answers every search with an error feed,
    ``non_json = http_status`` with an HTML maintenance page, ``delay`` (s) sleeps first;
    ``requests`` records the query arguments of every authenticated search.
    """

    def __init__(
        self,
        products: list[dict[str, Any]],
        user: str,
        password: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.user, self.password, self.host = user, password, host
        self.products = [self._index(p) for p in products]
        self.fields = {k for p in products for k in p} | {"footprint"}
        self.error: tuple[int, str] | None = None
        self.non_json: int | None = None
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()

    @staticmethod
    def _index(product: Mapping[str, Any]) -> dict[str, Any]:
        indexed = {k.lower(): v for k, v in product.items()}
        for required in ("uuid", "identifier", "footprint"):
            if required not in indexed:
                raise ValueError(f"DHuS test product lacks {required}: {product}")
        indexed["_geometry"] = shapely.from_wkt(str(indexed["footprint"]))
        return indexed

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("DhusServer is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> DhusServer:
        # Port 0: the kernel picks a free port at bind time (no race with other tests).
        self._serve(self._app, 0, _QuietHandler)
        return self

    # -- WSGI ---------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        return hmac.compare_digest(str(auth.username), self.user) and hmac.compare_digest(
            str(auth.password), self.password
        )

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/search":
            return Response(
                "<html><body><h1>HTTP Status 404</h1></body></html>",
                404,
                content_type="text/html;charset=utf-8",
            )
        if not self._authorised(request):
            return Response(
                _UNAUTHORIZED_PAGE,
                401,
                {"WWW-Authenticate": f'Basic realm="{_REALM}"'},
                content_type="text/html;charset=utf-8",
            )
        args = {k: request.args.get(k, "") for k in request.args}
        with self._lock:
            self.requests.append(args)
        if self.delay:
            time.sleep(self.delay)
        if self.non_json is not None:
            return Response(
                _MAINTENANCE_PAGE, self.non_json, content_type="text/html;charset=utf-8"
            )
        if self.error is not None:
            status, message = self.error
            return self._json(_error_feed(status, message), status)
        if args.get("format", "xml") != "json":
            return Response("only format=json is served here", 400, content_type="text/plain")
        try:
            rows, start = int(args.get("rows", "10")), int(args.get("start", "0"))
            if rows < 0 or start < 0:
                raise ValueError
        except ValueError:
            return self._json(_error_feed(400, "rows and start must be integers >= 0"), 200)
        try:
            q = args.get("q", "")
            wanted = compile_query(q, self.fields)
            matches = [p for p in self.products if wanted(p)]
        except QueryError as exc:
            return self._json(_error_feed(400, str(exc)), 200)
        return self._json(self._feed(q, rows, start, matches, request.host_url), 200)

    @staticmethod
    def _json(doc: dict[str, Any], status: int) -> Response:
        return Response(json.dumps(doc), status, content_type="application/json")

    @staticmethod
    def _feed(
        q: str, rows: int, start: int, matches: list[dict[str, Any]], root: str
    ) -> dict[str, Any]:
        page = matches[start : start + rows]
        total = len(matches)
        self_link = f"{root}search?q={q}&start={start}&rows={rows}"
        feed: dict[str, Any] = {
            "xmlns:opensearch": "http://a9.com/-/spec/opensearch/1.1/",
            "xmlns": "http://www.w3.org/2005/Atom",
            "title": f"Sentinels Scientific Data Hub search results for: {q}",
            "subtitle": (
                f"Displaying {start} to {start + len(page) - 1} of {total} total results. "
                "Request done in 0.001 seconds."
            ),
            "updated": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "author": {"name": "Sentinels Scientific Data Hub"},
            "id": f"{root}search?q={q}",
            "opensearch:totalResults": str(total),
            "opensearch:startIndex": str(start),
            "opensearch:itemsPerPage": str(rows),
            "opensearch:Query": {"role": "request", "searchTerms": q, "startPage": "1"},
            "link": [
                {"rel": "self", "type": "application/atom+xml", "href": self_link},
                {
                    "rel": "search",
                    "type": "application/opensearchdescription+xml",
                    "href": "opensearch_description.xml",
                },
            ],
        }
        entries = [feed_entry(p, root) for p in page]
        if entries:
            feed["entry"] = _one_or_list(entries)
        return {"feed": feed}


# ------------------------------------------------------------------------------------------
# The demo world as DHuS products
# ------------------------------------------------------------------------------------------


def _ms(stac_time: str) -> str:
    """DHuS times carry milliseconds: ``2021-03-10T05:30:12.123Z``."""
    t = dt.datetime.fromisoformat(stac_time.replace("Z", "+00:00"))
    return t.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def footprint_wkt(geometry: Mapping[str, Any]) -> str:
    """DHuS's ``footprint`` spelling: ``POLYGON ((lon lat,lon lat,...))``, 6 decimals."""
    geom = shape(geometry)
    if geom.geom_type != "Polygon":
        return shapely.to_wkt(geom, rounding_precision=6)
    ring = ",".join(f"{x:.6f} {y:.6f}" for x, y in geom.exterior.coords)
    return f"POLYGON (({ring}))"


def footprint_gml(geometry: Mapping[str, Any]) -> str:
    """DHuS's ``gmlfootprint``: a GML 2 polygon with ``lat,lon`` pairs."""
    ring = " ".join(f"{y:.6f},{x:.6f}" for x, y in shape(geometry).exterior.coords)
    return (
        '<gml:Polygon srsName="http://www.opengis.net/gml/srs/epsg.xml#4326" '
        'xmlns:gml="http://www.opengis.net/gml">\n   <gml:outerBoundaryIs>\n'
        f"      <gml:LinearRing>\n         <gml:coordinates>{ring}</gml:coordinates>\n"
        "      </gml:LinearRing>\n   </gml:outerBoundaryIs>\n</gml:Polygon>"
    )


def dhus_entries_from_demo(products: list[DemoProduct]) -> list[dict[str, Any]]:
    """The demo products as DHuS would list them (values from each STAC item)."""
    out: list[dict[str, Any]] = []
    for product in products:
        props = product.stac_item["properties"]
        pid = product.product_id
        serial = pid[1:3]  # S1A -> 1A
        orbit = int(props["sat:absolute_orbit"])
        relative = int(props["sat:relative_orbit"])
        size = sum(len(data) for data in product.objects.values())
        out.append(
            {
                "beginposition": _ms(props["start_datetime"]),
                "endposition": _ms(props["end_datetime"]),
                "missiondatatakeid": int(props["s1:datatake_id"]),
                "orbitnumber": orbit,
                "lastorbitnumber": orbit,
                "relativeorbitnumber": relative,
                "lastrelativeorbitnumber": relative,
                "sensoroperationalmode": props["sar:instrument_mode"],
                "swathidentifier": pid.split("_")[1],
                "orbitdirection": props["sat:orbit_state"].upper(),
                "producttype": "GRD",
                "timeliness": props.get("s1:product_timeliness", "Fast-24h"),
                "platformname": "Sentinel-1",
                "platformidentifier": _NSSDC.get(serial, ""),
                "platformserialidentifier": serial,
                "instrumentname": "Synthetic Aperture Radar (C-band)",
                "instrumentshortname": "SAR-C SAR",
                "filename": f"{pid}.SAFE",
                "format": "SAFE",
                "productclass": "S",
                "polarisationmode": " ".join(props["sar:polarizations"]),
                "acquisitiontype": "NOMINAL",
                "status": "ARCHIVED",
                "size": f"{size / 1e6:.2f} MB",
                "gmlfootprint": footprint_gml(product.footprint),
                "footprint": footprint_wkt(product.footprint),
                "identifier": pid,
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eopack-demo:{pid}")),
            }
        )
    return out
