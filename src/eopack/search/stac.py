"""Search a STAC API (Earth Search v1 by default) with pystac-client.

Servers differ in what they filter (Earth Search drops ``query`` on some collections, a
plain STAC API has no ``query`` at all), so every filter is also applied here, client-side.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from urllib3.util.retry import Retry

from eopack.errors import EopackError
from eopack.s3 import parse_s3_uri
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


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def s1_source(item: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and product prefix of an Earth Search S1 item (``earthsearch:s3_path`` or assets)."""
    s3_path = item.get("properties", {}).get("earthsearch:s3_path")
    if not s3_path:
        manifest = item.get("assets", {}).get("safe-manifest", {}).get("href", "")
        if not manifest.startswith("s3://"):
            raise EopackError(f"STAC item {item.get('id')}: no s3:// location of its files")
        s3_path = manifest.rsplit("/", 1)[0]
    bucket, prefix = parse_s3_uri(s3_path)
    return bucket, prefix.rstrip("/")


STRIPMAP_BEAMS = ("S1", "S2", "S3", "S4", "S5", "S6")


def s1_mode(product_id: str, stac_mode: str) -> str:
    """The beam mode as in the product id and bucket path (S1..S6 rather than STAC's ``SM``)."""
    parts = product_id.split("_")
    return (
        parts[1]
        if len(parts) > 1 and parts[1] in (*STRIPMAP_BEAMS, "IW", "EW", "WV")
        else stac_mode
    )


def item_to_product(item: Mapping[str, Any]) -> Product:
    """Normalise an Earth Search ``sentinel-1-grd`` item; id = full ESA product id."""
    props = item.get("properties", {})
    bucket, prefix = s1_source(item)
    product_id = props.get("s1:product_identifier") or item["id"]
    return Product(
        id=product_id,
        collection=item.get("collection", ""),
        datetime=props.get("datetime") or props.get("start_datetime", ""),
        platform=props.get("platform", ""),
        mode=s1_mode(product_id, props.get("sar:instrument_mode", "")),
        polarisations=tuple(props.get("sar:polarizations", [])),
        geometry=item["geometry"],
        bucket=bucket,
        prefix=prefix,
        orbit_state=props.get("sat:orbit_state", ""),
    )


def keep_product(
    product: Product,
    aoi: BaseGeometry,
    start: str,
    end: str,
    filters: Mapping[str, Any],
) -> bool:
    """The client-side filter: footprint, inclusive date range and the config filters."""
    if not shape(product.geometry).intersects(aoi):
        return False
    when = _parse_time(product.datetime).date()
    if not (dt.date.fromisoformat(start) <= when <= dt.date.fromisoformat(end)):
        return False
    platforms = [p.lower() for p in filters.get("platforms", [])]
    if platforms and product.platform.lower() not in platforms:
        return False
    modes = set(filters.get("instrument_modes", []))
    if "SM" in modes:
        modes.update(STRIPMAP_BEAMS)
    if modes and product.mode not in modes:
        return False
    pols = set(filters.get("polarisations", []))
    if pols and not pols <= set(product.polarisations):
        return False
    states = [s.lower() for s in filters.get("orbit_states", [])]
    return not (states and product.orbit_state.lower() not in states)


def _open(url: str, timeout: float) -> Client:
    retry = Retry(
        total=4,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
    )
    stac_io = StacApiIO(timeout=timeout, max_retries=retry)
    try:
        return Client.open(url, stac_io=stac_io, timeout=timeout)
    except (APIError, requests.RequestException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EopackError(f"STAC API {url}: unreachable or not a STAC API ({reason})") from None


def search_stac(
    url: str,
    collections: Iterable[str],
    aoi: BaseGeometry,
    start: str,
    end: str,
    filters: Mapping[str, Any],
    timeout: float = 60,
) -> list[Product]:
    """All products of ``collections`` over ``aoi`` in ``[start, end]`` passing ``filters``."""
    client = _open(url, timeout)
    search = client.search(
        collections=list(collections),
        intersects=mapping(aoi),
        datetime=datetime_interval(start, end),
        limit=PAGE_SIZE,
    )
    found: dict[str, Product] = {}
    try:
        for item in search.items_as_dicts():
            product = item_to_product(item)
            if keep_product(product, aoi, start, end, filters):
                found[product.id] = product
    except (APIError, requests.RequestException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EopackError(f"STAC API {url}: search failed ({reason})") from None
    return list(found.values())
