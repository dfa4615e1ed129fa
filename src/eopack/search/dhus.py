"""Search a Copernicus DHuS OpenSearch endpoint with sentinelsat.

DHuS answers with ESA product ids but says nothing about the AWS bucket, so the bucket prefix
is derived from the id. sentinelsat's own date handling would drop the last day of a range and
its ``timeout`` never reaches requests; both are handled here. Every filter is also applied
client-side (:func:`eopack.search.filters.keep_product`), as for STAC.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import shapely
from dotenv import dotenv_values
from requests.adapters import HTTPAdapter
from sentinelsat import SentinelAPI
from sentinelsat.exceptions import QueryLengthError, SentinelAPIError, UnauthorizedError
from shapely.errors import ShapelyError
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from urllib3.util.retry import Retry

from eopack.errors import EopackError
from eopack.search.filters import keep_product
from eopack.search.items import STRIPMAP_BEAMS, s1_mode
from eopack.search.manifest import Product

log = logging.getLogger(__name__)

USER_ENV, PASS_ENV = "USER_SENTINEL_HUB", "PASS_SENTINEL_HUB"
DHUS_URL_ENV = "EOPACK_DHUS_URL"
S1_BUCKET = "sentinel-s1-l1c"
COLLECTION = "sentinel-1-grd"
#: Rows per request; 100 is the most DHuS (apihub) serves per page.
PAGE_SIZE = 100

_S1_ID = re.compile(
    r"^S1[A-D]_(?P<mode>IW|EW|WV|S[1-6])_GRD[HMF]_1S(?P<pol>[A-Z]{2})_"
    r"(?P<date>\d{8})T\d{6}_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}$"
)


def dhus_url(configured: str | None) -> str:
    """The DHuS API root: ``EOPACK_DHUS_URL`` when set (a local test hub), else config."""
    url = os.environ.get(DHUS_URL_ENV) or configured
    if not url:
        raise EopackError("config: search.dhus_url: required when search.backend is dhus")
    return url


def hub_credentials(env_file: str | Path | None = ".env") -> tuple[str, str]:
    """DHuS user and password from the environment, else from ``env_file``.

    The file is read with ``dotenv_values`` so that the password does not leak into the
    environment of every job Snakemake starts afterwards.
    """
    from_file: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        from_file = dict(dotenv_values(env_file))
    user = os.environ.get(USER_ENV) or from_file.get(USER_ENV) or ""
    password = os.environ.get(PASS_ENV) or from_file.get(PASS_ENV) or ""
    if not (user and password):
        where = f" or in {env_file}" if env_file is not None else ""
        raise EopackError(
            f"DHuS credentials missing: set {USER_ENV} and {PASS_ENV} in the environment{where}"
        )
    return user, password


def s1_bucket_prefix(product_id: str) -> str:
    """``GRD/{yyyy}/{m}/{d}/{MODE}/{POL}/{id}`` of a GRD product in ``sentinel-s1-l1c``.

    The layout of the AWS bucket (DESIGN.md): month and day not zero-padded, MODE the beam
    (IW, EW, S1..S6), POL the last two letters of the ``1SDV`` field, date = sensing start.
    """
    match = _S1_ID.match(product_id)
    if not match:
        raise EopackError(f"{product_id!r} is not a Sentinel-1 GRD product id")
    day = dt.datetime.strptime(match["date"], "%Y%m%d").date()
    return f"GRD/{day.year}/{day.month}/{day.day}/{match['mode']}/{match['pol']}/{product_id}"


def _iso_z(value: Any) -> str:
    """DHuS times (sentinelsat gives naive UTC datetimes) as ISO 8601 with ``Z``."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    return str(value)


def _gml_to_wkt(gml: str) -> str:
    """A DHuS ``gmlfootprint`` (GML 2 polygon, "lat,lon" pairs) as WKT."""
    coords = ET.fromstring(gml).find(".//{http://www.opengis.net/gml}coordinates")
    if coords is None or not coords.text:
        raise ValueError("no gml:coordinates")
    pairs = [p.split(",") for p in coords.text.split()]
    return "POLYGON ((" + ", ".join(f"{lon} {lat}" for lat, lon in pairs) + "))"


def _platform(entry: Mapping[str, Any], product_id: str) -> str:
    serial = str(entry.get("platformserialidentifier", "")).strip().upper()
    letter = serial[-1] if serial[-1:] in ("A", "B", "C", "D") else product_id[2].upper()
    return f"sentinel-1{letter.lower()}"


def entry_to_product(entry: Mapping[str, Any]) -> Product:
    """Normalise one product of ``SentinelAPI.query``; id = full ESA product id."""
    product_id = str(entry.get("identifier") or entry.get("title") or "")
    prefix = s1_bucket_prefix(product_id)
    footprint = entry.get("footprint") or ""
    try:
        wkt = footprint if footprint else _gml_to_wkt(str(entry["gmlfootprint"]))
        geometry = json.loads(json.dumps(mapping(shapely.from_wkt(wkt))))
    except (KeyError, ValueError, ET.ParseError, ShapelyError) as exc:
        raise EopackError(f"DHuS product {product_id}: unreadable footprint ({exc})") from None
    if "beginposition" not in entry:
        raise EopackError(f"DHuS product {product_id}: no beginposition")
    pols = str(entry.get("polarisationmode", "")).replace("+", " ").split()
    return Product(
        id=product_id,
        collection=COLLECTION,
        datetime=_iso_z(entry["beginposition"]),
        platform=_platform(entry, product_id),
        mode=s1_mode(product_id, str(entry.get("sensoroperationalmode", ""))),
        polarisations=tuple(p.upper() for p in pols),
        geometry=geometry,
        bucket=S1_BUCKET,
        prefix=prefix,
        orbit_state=str(entry.get("orbitdirection", "")).lower(),
    )


def dhus_keywords(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Query keywords for the filters DHuS indexes; the rest is left to ``keep_product``.

    Sets become OR groups in sentinelsat's query. Stripmap beams S1..S6 are ``SM`` in DHuS's
    ``sensoroperationalmode``. Polarisations stay client-side: whether a hub tokenises
    ``polarisationmode`` ("VV VH") is not documented, and a whole-value match would lose products
    that no client-side filter could bring back.
    """
    keywords: dict[str, Any] = {"platformname": "Sentinel-1", "producttype": "GRD"}
    modes = {str(m).upper() for m in filters.get("instrument_modes", [])}
    if modes:
        keywords["sensoroperationalmode"] = {"SM" if m in STRIPMAP_BEAMS else m for m in modes}
    states = {str(s).upper() for s in filters.get("orbit_states", [])}
    if states:
        keywords["orbitdirection"] = states
    return keywords


def date_range(start: str, end: str) -> tuple[str, str]:
    """Both days whole, as strings sentinelsat passes through unchanged.

    sentinelsat turns ``date``/``datetime``/``YYYYMMDD`` into ``...T%H:%M:%SZ``: the end day
    would stop at its 00:00:00 (or lose its last second); ``.999Z`` strings are sent as given.
    """
    for day in (start, end):
        try:
            dt.date.fromisoformat(day)
        except (TypeError, ValueError):
            raise EopackError(f"DHuS search: {day!r} is not a date (use YYYY-MM-DD)") from None
    return f"{start}T00:00:00.000Z", f"{end}T23:59:59.999Z"


class _TimeoutAdapter(HTTPAdapter):
    """Applies a default timeout: sentinelsat sets ``session.timeout``, which requests ignores."""

    def __init__(self, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _open(api_url: str, user: str, password: str, timeout: float, page_size: int) -> SentinelAPI:
    api = SentinelAPI(user, password, api_url, show_progressbars=False, timeout=timeout)
    api.page_size = page_size
    retry = Retry(
        total=2,
        backoff_factor=0.5,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
    )
    adapter = _TimeoutAdapter(timeout, max_retries=retry)
    api.session.mount("http://", adapter)
    api.session.mount("https://", adapter)
    return api


def _public_url(api_url: str) -> str:
    """The URL without any ``user:password@`` part, fit for messages and logs."""
    parts = urlsplit(api_url)
    if parts.username is None and parts.password is None:
        return api_url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _api_reason(exc: SentinelAPIError) -> str:
    """Status and the server's own message (a DHuS error feed, when there is one)."""
    response = exc.response
    message = _first_line(exc.msg or "")
    if response is None:
        return message or type(exc).__name__
    try:
        feed_error = response.json()["feed"]["error"]
        message = _first_line(str(feed_error.get("message", ""))) or message
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return f"HTTP {response.status_code}: {message}" if message else f"HTTP {response.status_code}"


def _failure(url: str, what: str, password: str) -> EopackError:
    """The one-line error; a password echoed back by a server is blanked out."""
    message = f"DHuS {url}: {what}"
    return EopackError(message.replace(password, "***") if password else message)


def _network_reason(exc: requests.RequestException, timeout: float) -> str:
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return f"no answer within {timeout:g} s"
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", str(exc))
    return errno.group(0).strip() if errno else type(exc).__name__


def search_dhus(
    api_url: str,
    user: str,
    password: str,
    aoi: BaseGeometry,
    start: str,
    end: str,
    filters: Mapping[str, Any],
    timeout: float = 60,
    page_size: int = PAGE_SIZE,
) -> list[Product]:
    """All Sentinel-1 GRD products over ``aoi`` sensed in ``[start, end]`` passing ``filters``."""
    url = _public_url(api_url)
    api = _open(api_url, user, password, timeout, page_size)
    try:
        entries = api.query(
            area=shapely.to_wkt(aoi, rounding_precision=7, trim=True),
            date=date_range(start, end),
            **dhus_keywords(filters),
        )
    except SentinelAPIError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if isinstance(exc, UnauthorizedError) or status in (401, 403):
            raise EopackError(
                f"DHuS {url}: authentication refused (check {USER_ENV} / {PASS_ENV})"
            ) from None
        hint = "; simplify the AOI polygon" if isinstance(exc, QueryLengthError) else ""
        raise _failure(url, f"search failed ({_api_reason(exc)}{hint})", password) from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        reason = _network_reason(exc, timeout)
        raise _failure(url, f"unreachable ({reason})", password) from None
    except requests.RequestException as exc:
        reason = _first_line(str(exc)) or type(exc).__name__
        raise _failure(url, f"search failed ({reason})", password) from None
    found: dict[str, Product] = {}
    for entry in entries.values():
        try:
            product = entry_to_product(entry)
        except EopackError as exc:
            raise EopackError(f"DHuS {url}: {exc}") from None
        if keep_product(product, aoi, start, end, filters):
            found[product.id] = product
    log.info("DHuS %s: %d products found, %d kept", url, len(entries), len(found))
    return list(found.values())
