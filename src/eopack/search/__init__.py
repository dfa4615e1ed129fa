"""Product search: AOI x date range -> search manifest, through a STAC API or a DHuS hub."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eopack.aoi import load_aoi
from eopack.errors import EopackError
from eopack.search.dhus import DHUS_URL_ENV, dhus_url, hub_credentials, search_dhus
from eopack.search.manifest import Product, apply_images_limit, write_manifest
from eopack.search.stac import STAC_URL_ENV, search_stac, stac_url

log = logging.getLogger(__name__)


def run_search(
    aoi_file: str | Path,
    start: str,
    end: str,
    search: Mapping[str, Any],
    out: str | Path,
) -> list[Product]:
    """Search one AOI over one date range and write its manifest (its footprint map is a
    report figure: ``eopack.report.footprints``).

    Returns the products kept.
    """
    aoi = load_aoi(aoi_file)
    backend = search.get("backend", "stac")
    log.info("AOI %s (%s), range dates %s to %s", aoi.name, aoi.path, start, end)
    filters = search.get("filters", {})
    timeout = float(search.get("timeout_s", 60))
    if backend == "stac":
        url = stac_url(search["stac_url"])
        _say_override(url, search["stac_url"], STAC_URL_ENV, "search.stac_url")
        log.info("Searching %s in %s", ", ".join(search["collections"]), url)
        found = search_stac(
            url,
            search["collections"],
            aoi.geometry,
            start,
            end,
            filters,
            timeout=timeout,
            server_side=bool(search.get("server_filters", True)),
        )
    elif backend == "dhus":
        url = dhus_url(search.get("dhus_url"))
        _say_override(url, search.get("dhus_url"), DHUS_URL_ENV, "search.dhus_url")
        user, password = hub_credentials()
        # No user name in the log either: credentials of any kind stay out of logs.
        log.info("Searching Sentinel-1 GRD in DHuS %s", url)
        found = search_dhus(url, user, password, aoi.geometry, start, end, filters, timeout)
    else:
        raise EopackError(f"config: search.backend: {backend!r} is not supported")
    log.info(
        "%d images found for AOI %s and range dates %s to %s", len(found), aoi.name, start, end
    )
    kept = apply_images_limit(found, search.get("images_limit"), aoi.name, start, end)
    for product in kept:
        detail = (
            "+".join(product.polarisations)
            if product.cloud_cover is None
            else f"cloud {product.cloud_cover:g}%"
        )
        log.info("  %s %s %s", product.datetime, product.id, detail)
    write_manifest(out, kept)
    return kept


def _say_override(url: str, configured: str | None, variable: str, key: str) -> None:
    """Say when the environment, not the config, chose the search endpoint: the manifest does
    not record it, and a run that searched the wrong API would otherwise look like config's."""
    if url != configured:
        log.info("%s=%s overrides %s (%s)", variable, url, key, configured)
