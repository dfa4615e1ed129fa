"""Search filters: always applied client-side, also sent to servers that declare support.

Servers differ in what they filter (Earth Search ignores ``query`` on some collections, a
plain STAC API has none and may even answer a ``query`` with nothing), so the client-side
check is the authority. Server-side filters only shrink the answer and the pages to fetch.

SAR-only filters (instrument modes, polarisations, orbit states) do not apply to optical
products; the cloud-cover limit does not apply to SAR products (radar sees through clouds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eopack.search.items import OPTICAL, STRIPMAP_BEAMS
from eopack.search.manifest import Product


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _expand_modes(modes: Iterable[str]) -> set[str]:
    """``SM`` stands for every stripmap beam S1..S6."""
    wanted = set(modes)
    if "SM" in wanted:
        wanted.update(STRIPMAP_BEAMS)
    return wanted


def _sar_ok(product: Product, filters: Mapping[str, Any]) -> bool:
    modes = _expand_modes(filters.get("instrument_modes", []))
    if modes and product.mode not in modes:
        return False
    pols = set(filters.get("polarisations", []))
    if pols and not pols <= set(product.polarisations):
        return False
    states = [s.lower() for s in filters.get("orbit_states", [])]
    return not (states and product.orbit_state.lower() not in states)


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
    types = [t.upper() for t in filters.get("product_types", [])]
    if types and product.product_type.upper() not in types:
        return False
    if product.collection in OPTICAL:
        max_cloud = filters.get("max_cloud_cover")
        cloud = product.cloud_cover
        return max_cloud is None or (cloud is not None and cloud <= float(max_cloud))
    return _sar_ok(product, filters)


def _server_terms(filters: Mapping[str, Any], collections: Iterable[str]) -> dict[str, Any]:
    """Property -> (operator, value) pairs a server can apply to every requested collection."""
    collections = set(collections)
    terms: dict[str, Any] = {}
    platforms = sorted({p.lower() for p in filters.get("platforms", [])})
    if platforms:
        terms["platform"] = ("in", platforms)
    if collections and not collections & OPTICAL:
        modes = _expand_modes(filters.get("instrument_modes", []))
        if modes:
            # Earth Search calls every stripmap beam SM.
            stac_modes = {"SM" if m in STRIPMAP_BEAMS else m for m in modes}
            terms["sar:instrument_mode"] = ("in", sorted(stac_modes))
        states = sorted({s.lower() for s in filters.get("orbit_states", [])})
        if states:
            terms["sat:orbit_state"] = ("in", states)
    if collections and collections <= OPTICAL and filters.get("max_cloud_cover") is not None:
        terms["eo:cloud_cover"] = ("lte", float(filters["max_cloud_cover"]))
    return terms


def stac_query(filters: Mapping[str, Any], collections: Iterable[str]) -> dict[str, Any]:
    """The filters as a STAC API *query extension* object (``{"prop": {"op": value}}``)."""
    return {prop: {op: value} for prop, (op, value) in _server_terms(filters, collections).items()}


def stac_cql2(filters: Mapping[str, Any], collections: Iterable[str]) -> dict[str, Any] | None:
    """The filters as a CQL2-JSON expression for the *filter* extension, or None if empty."""
    args: list[dict[str, Any]] = []
    for prop, (op, value) in _server_terms(filters, collections).items():
        if op == "in":
            args.append({"op": "in", "args": [{"property": prop}, value]})
        else:
            args.append({"op": "<=", "args": [{"property": prop}, value]})
    if not args:
        return None
    return args[0] if len(args) == 1 else {"op": "and", "args": args}
