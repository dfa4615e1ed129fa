"""Search a STAC API (Earth Search v1 by default) with pystac-client.

Filters go to the server only when it declares the *query* (preferred) or *filter*
extension in its conformance classes; every filter is applied client-side as well
(:mod:`eopack.search.filters`), so the manifest is the same whatever the server supports.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
from pystac import Link
from pystac_client import Client, ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from urllib3.util.retry import Retry

from eopack.errors import EopackError
from eopack.search.filters import keep_product, stac_cql2, stac_query
from eopack.search.items import item_to_product
from eopack.search.manifest import Product

log = logging.getLogger(__name__)

STAC_URL_ENV = "EOPACK_STAC_URL"
PAGE_SIZE = 100


def stac_url(configured: str) -> str:
    """The STAC API root: ``EOPACK_STAC_URL`` when set (the demo's local server), else config."""
    return os.environ.get(STAC_URL_ENV) or configured


def datetime_interval(start: str, end: str) -> str:
    """RFC 3339 interval covering both days whole: the end day is included."""
    return f"{start}T00:00:00Z/{end}T23:59:59.999999Z"


def _reason(exc: Exception) -> str:
    """A short cause: urllib3's nested retry messages say little more than this."""
    text = str(exc)  # pystac-client wraps requests' errors in APIError: look at the text
    for cause in ("Connection refused", "Name or service not known", "timed out"):
        if cause in text:
            return cause.lower()
    if isinstance(exc, requests.ConnectionError) or "Max retries exceeded" in text:
        return "cannot connect"
    return text.splitlines()[0] if text else type(exc).__name__


class _NotAPage(Exception):
    """A search answer that is not a FeatureCollection."""


class _PagingIO(StacApiIO):
    """pystac-client's paging, except that an answer that is not a FeatureCollection fails
    the search: pystac-client ends it there, as if nothing more were found, and an error
    page would replace a good manifest with a short or empty one."""

    def get_pages(
        self, url: str, method: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        page = self.read_json(url, method=method, parameters=parameters)
        while True:
            listed = (
                page.get("collections", page.get("features")) if isinstance(page, dict) else None
            )
            if not isinstance(listed, list):
                raise _NotAPage("an answer is not a FeatureCollection")
            if not listed:
                return
            yield page
            links = page.get("links") or []
            following = next((ln for ln in links if ln.get("rel") == "next"), None)
            if following is None:
                return
            page = self.read_json(Link.from_dict(following), parameters=parameters)


def _open(url: str, timeout: float) -> Client:
    retry = Retry(
        total=4,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
    )
    stac_io = _PagingIO(timeout=timeout, max_retries=retry)
    try:
        return Client.open(url, stac_io=stac_io, timeout=timeout)
    except (APIError, requests.RequestException) as exc:
        raise EopackError(
            f"STAC API {url}: unreachable or not a STAC API ({_reason(exc)})"
        ) from None


def server_filters(
    client: Client, filters: Mapping[str, Any], collections: Iterable[str]
) -> dict[str, Any]:
    """Search keyword arguments for the filters the server declares it can apply.

    Nothing when it declares neither extension: a plain STAC API may answer an unknown
    ``query`` with an empty page rather than an error.
    """
    collections = list(collections)
    if client.conforms_to(ConformanceClasses.QUERY):
        query = stac_query(filters, collections)
        return {"query": query} if query else {}
    if client.conforms_to(ConformanceClasses.FILTER):
        expression = stac_cql2(filters, collections)
        return {"filter": expression, "filter_lang": "cql2-json"} if expression else {}
    return {}


def search_stac(
    url: str,
    collections: Iterable[str],
    aoi: BaseGeometry,
    start: str,
    end: str,
    filters: Mapping[str, Any],
    timeout: float = 60,
    server_side: bool = True,
) -> list[Product]:
    """All products of ``collections`` over ``aoi`` in ``[start, end]`` passing ``filters``.

    ``server_side=False`` keeps every filter on the client (for a server whose extension
    support is broken although declared).
    """
    collections = list(collections)
    client = _open(url, timeout)
    extra = server_filters(client, filters, collections) if server_side else {}
    if extra:
        log.info("Server-side filters: %s", {k: v for k, v in extra.items() if k != "filter_lang"})
    else:
        log.info("All filters applied client-side (the server declares no query/filter extension)")
    search = client.search(
        collections=collections,
        intersects=mapping(aoi),
        datetime=datetime_interval(start, end),
        limit=PAGE_SIZE,
        **extra,
    )
    found: dict[str, Product] = {}
    items = search.items_as_dicts()
    while True:
        try:
            item = next(items, None)
        except (APIError, requests.RequestException) as exc:
            raise EopackError(f"STAC API {url}: search failed ({_reason(exc)})") from None
        except json.JSONDecodeError as exc:
            raise EopackError(
                f"STAC API {url}: search failed (an answer is not JSON: {exc})"
            ) from None
        except _NotAPage as exc:
            raise EopackError(f"STAC API {url}: search failed ({exc})") from None
        if item is None:
            return list(found.values())
        product = item_to_product(item)
        if keep_product(product, aoi, start, end, filters):
            found[product.id] = product
