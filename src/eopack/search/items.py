"""STAC items -> :class:`Product` records, one normaliser per Earth Search v1 collection.

Earth Search names things its own way (item id without the S1 unique suffix, ``SM`` for
every stripmap beam, COG mirrors for S2 L2A). The manifest records what the rest of eopack
needs instead: the ESA product id and the requester-pays bucket + prefix holding the
product's original files, from which a SAFE can be rebuilt.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from eopack.errors import EopackError
from eopack.s3 import parse_s3_uri
from eopack.search.manifest import Product

S1_COLLECTION = "sentinel-1-grd"
S2_COLLECTIONS = {"sentinel-2-l1c": "sentinel-s2-l1c", "sentinel-2-l2a": "sentinel-s2-l2a"}
LANDSAT_COLLECTION = "landsat-c2-l2"
LANDSAT_BUCKET = "usgs-landsat"
OPTICAL = frozenset({*S2_COLLECTIONS, LANDSAT_COLLECTION})
SUPPORTED = (S1_COLLECTION, *S2_COLLECTIONS, LANDSAT_COLLECTION)

STRIPMAP_BEAMS = ("S1", "S2", "S3", "S4", "S5", "S6")

# ESA S2 product name: MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxyy_ROOO_Txxxxx_<discriminator>
_S2_NAME = re.compile(
    r"^(?P<mission>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T\d{6}"
    r"_N\d{4}_R\d{3}_T(?P<tile>\d{2}[C-X][A-Z]{2})_\d{8}T\d{6}$"
)
# Landsat C2 L2: LXSS_L2SP_PPPRRR_YYYYMMDD[_yyyymmdd]_02_TX (Earth Search drops the processing
# date from its item ids; the USGS product id in the bucket path keeps it).
_LANDSAT_ID = re.compile(
    r"^L[CEOT]0\d_L2S[PR]_(?P<path>\d{3})(?P<row>\d{3})_(?P<y>\d{4})\d{4}(_\d{8})?_02_(T1|T2|RT)$"
)


def s1_mode(product_id: str, stac_mode: str) -> str:
    """The beam mode as in the product id and bucket path (S1..S6 rather than STAC's ``SM``)."""
    parts = product_id.split("_")
    return (
        parts[1]
        if len(parts) > 1 and parts[1] in (*STRIPMAP_BEAMS, "IW", "EW", "WV")
        else stac_mode
    )


#: Folders inside a SAFE that Earth Search's S1 assets lie in (``measurement/iw-vv.tiff``...).
_SAFE_SUBFOLDERS = ("annotation/calibration", "annotation/rfi", "annotation", "measurement",
                    "preview/icons", "preview", "support")  # fmt: skip


def _s3_hrefs(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(asset key, s3:// href)`` of every asset (or its ``alternate.s3``), in item order."""
    found = []
    for name, asset in item.get("assets", {}).items():
        for href in (asset.get("href", ""), asset.get("alternate", {}).get("s3", {}).get("href")):
            if isinstance(href, str) and href.startswith("s3://"):
                found.append((str(name), href))
                break
    return found


def _s3_location(item: Mapping[str, Any], product_id: str | None = None) -> str | None:
    """The product's folder: ``earthsearch:s3_path``, else derived from the s3:// assets.

    Assets may come in any order, and a measurement's folder is not the product's. So, in
    turn: the ``safe-manifest`` asset's folder (``manifest.safe`` sits at the top of a SAFE);
    the path up to the segment that names ``product_id``; the folder all assets share, less a
    SAFE subfolder (``measurement``, ``annotation``...) it would end in.
    """
    s3_path = item.get("properties", {}).get("earthsearch:s3_path")
    if s3_path:
        return str(s3_path)
    hrefs = _s3_hrefs(item)
    if not hrefs:
        return None
    for name, href in hrefs:
        if name == "safe-manifest" or href.endswith("/manifest.safe"):
            return href.rsplit("/", 1)[0]
    if product_id:
        stem = product_id.removesuffix(".SAFE")
        for _, href in hrefs:
            parts = href[5:].split("/")
            for i, part in enumerate(parts[1:-1], start=1):
                if part.removesuffix(".SAFE").startswith(stem):
                    return "s3://" + "/".join(parts[: i + 1])
    common = posixpath.commonpath([href[5:].rsplit("/", 1)[0] for _, href in hrefs])
    for sub in _SAFE_SUBFOLDERS:
        if common.endswith("/" + sub):
            common = common.removesuffix("/" + sub)
            break
    return f"s3://{common}" if "/" in common else None  # a bucket's root is no product


def s1_source(item: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and product prefix of an Earth Search S1 item (``earthsearch:s3_path`` or assets)."""
    product_id = item.get("properties", {}).get("s1:product_identifier") or item.get("id")
    location = _s3_location(item, str(product_id) if product_id else None)
    if not location:
        raise EopackError(f"STAC item {item.get('id')}: no s3:// location of its files")
    bucket, prefix = parse_s3_uri(location)
    return bucket, prefix.rstrip("/")


def _common(item: Mapping[str, Any]) -> dict[str, Any]:
    props = item.get("properties", {})
    if not isinstance(item.get("geometry"), Mapping):
        raise EopackError(f"STAC item {item.get('id')}: no geometry (its footprint is needed)")
    cloud = props.get("eo:cloud_cover")
    return {
        "collection": item.get("collection", ""),
        "datetime": props.get("datetime") or props.get("start_datetime", ""),
        "platform": props.get("platform", ""),
        "geometry": item["geometry"],
        "orbit_state": props.get("sat:orbit_state", ""),
        "cloud_cover": None if cloud is None else float(cloud),
    }


def s1_product(item: Mapping[str, Any]) -> Product:
    """``sentinel-1-grd``: id = the full ESA id (``s1:product_identifier``)."""
    props = item.get("properties", {})
    bucket, prefix = s1_source(item)
    product_id = props.get("s1:product_identifier") or item["id"]
    return Product(
        id=product_id,
        mode=s1_mode(product_id, props.get("sar:instrument_mode", "")),
        polarisations=tuple(props.get("sar:polarizations", [])),
        bucket=bucket,
        prefix=prefix,
        product_type=props.get("sar:product_type", "GRD"),
        **_common(item),
    )


def s2_product(item: Mapping[str, Any]) -> Product:
    """``sentinel-2-l1c``/``-l2a``: id = ESA product name, files under ``products/`` of the
    requester-pays ``sentinel-s2-l1c``/``-l2a`` bucket (the SAFE's source, not the COG mirror).
    """
    props = item.get("properties", {})
    uri = str(props.get("s2:product_uri", "")).removesuffix(".SAFE")
    match = _S2_NAME.match(uri)
    if not match:
        raise EopackError(f"STAC item {item.get('id')}: s2:product_uri {uri!r} is not an S2 name")
    y, m, d = (int(match[k]) for k in ("y", "m", "d"))
    tile = match["tile"]
    extra = {"stac_id": item.get("id", ""), "tile": tile}
    location = _s3_location(item)
    if location:
        extra["stac_s3_path"] = location
    return Product(
        id=uri,
        mode="MSI",
        polarisations=(),
        bucket=S2_COLLECTIONS[item["collection"]],
        prefix=f"products/{y}/{m}/{d}/{uri}",
        product_type=props.get("s2:product_type", f"S2MSI{match['level'][1:]}"),
        extra=extra,
        **_common(item),
    )


def landsat_asset_facts(item: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """What the scene's STAC assets say about its files, for the rebuild and verify steps.

    ``asset_files``: the file names the assets put in the scene folder (the listing must
    hold each: a missing one is an incomplete scene). ``checksums``: file name -> the
    asset's ``file:checksum`` (a multihash, decoded by :mod:`eopack.safe.landsat`), only
    where the item carries one (real Earth Search items carry none; the demo's some).
    Both are left out when empty, so manifests of items without them stay byte-identical.
    """
    names: list[str] = []
    checksums: dict[str, str] = {}
    assets = item.get("assets", {})
    for key, href in _s3_hrefs(item):
        directory, _, name = href.rpartition("/")
        if directory != folder or not name:
            continue
        names.append(name)
        checksum = assets[key].get("file:checksum")
        if isinstance(checksum, str) and checksum:
            checksums[name] = checksum
    facts: dict[str, Any] = {}
    if names:
        facts["asset_files"] = sorted(set(names))
    if checksums:
        facts["checksums"] = dict(sorted(checksums.items()))
    return facts


def landsat_product(item: Mapping[str, Any]) -> Product:
    """``landsat-c2-l2``: id = the USGS product id (the folder name in ``usgs-landsat``)."""
    props = item.get("properties", {})
    location = _s3_location(item)
    if location:
        bucket, prefix = parse_s3_uri(location)
        prefix = prefix.rstrip("/")
        scene = prefix.rsplit("/", 1)[-1]
    else:
        bucket, prefix, scene = LANDSAT_BUCKET, "", str(item.get("id", ""))
    match = _LANDSAT_ID.match(scene)
    if not match:
        raise EopackError(
            f"STAC item {item.get('id')!r}: {scene!r} is not a Landsat Collection 2 Level-2 id"
        )
    if not prefix:
        sensor = {"C": "oli-tirs", "E": "etm", "T": "tm"}.get(scene[1], "oli-tirs")
        prefix = (
            f"collection02/level-2/standard/{sensor}/{match['y']}/"
            f"{match['path']}/{match['row']}/{scene}"
        )
    instruments = props.get("instruments") or []
    extra: dict[str, Any] = {
        "stac_id": item.get("id", ""),
        "wrs_path": match["path"],
        "wrs_row": match["row"],
        **landsat_asset_facts(item, f"s3://{bucket}/{prefix}"),
    }
    return Product(
        id=scene,
        mode="-".join(str(i).upper() for i in instruments) or "OLI-TIRS",
        polarisations=(),
        bucket=bucket,
        prefix=prefix,
        product_type=props.get("landsat:correction", scene.split("_")[1]),
        extra=extra,
        **_common(item),
    )


_NORMALISERS: dict[str, Callable[[Mapping[str, Any]], Product]] = {
    S1_COLLECTION: s1_product,
    **dict.fromkeys(S2_COLLECTIONS, s2_product),
    LANDSAT_COLLECTION: landsat_product,
}


def item_to_product(item: Mapping[str, Any]) -> Product:
    """Normalise an Earth Search v1 item of any supported collection."""
    collection = item.get("collection", "")
    normalise = _NORMALISERS.get(collection)
    if normalise is None:
        raise EopackError(
            f"STAC item {item.get('id')}: collection {collection!r} is not supported "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    return normalise(item)
