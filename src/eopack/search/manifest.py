"""Search manifests: one GeoJSON FeatureCollection per AOI x date range, byte-stable.

The manifest is what the rest of the workflow trusts: product id, footprint and where its
files lie (bucket + prefix). Same answers give the same bytes (sorted, no run timestamps),
so a re-run of the search does not look like new input to downstream jobs.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eopack.errors import EopackError
from eopack.fsutil import write_if_changed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Product:
    """One product found by a search, normalised across backends."""

    id: str
    collection: str
    datetime: str
    platform: str
    mode: str
    polarisations: tuple[str, ...]
    geometry: dict[str, Any]
    bucket: str
    prefix: str
    orbit_state: str = ""
    product_type: str = ""
    cloud_cover: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_feature(self) -> dict[str, Any]:
        """The manifest Feature (contract: id = product id; properties as in DESIGN.md)."""
        props: dict[str, Any] = {
            "collection": self.collection,
            "datetime": self.datetime,
            "platform": self.platform,
            "mode": self.mode,
            "polarisations": list(self.polarisations),
            "orbit_state": self.orbit_state,
            "product_type": self.product_type,
            "cloud_cover": self.cloud_cover,
            "source": {"bucket": self.bucket, "prefix": self.prefix},
        }
        props.update(self.extra)
        return {"type": "Feature", "id": self.id, "geometry": self.geometry, "properties": props}

    @classmethod
    def from_feature(cls, feature: dict[str, Any], where: str = "manifest") -> Product:
        """Read back a manifest Feature; a missing field names the manifest and product."""
        try:
            props = dict(feature["properties"])
            source = props.pop("source")
            known = {
                "collection",
                "datetime",
                "platform",
                "mode",
                "polarisations",
                "orbit_state",
                "product_type",
                "cloud_cover",
            }
            return cls(
                id=feature["id"],
                collection=props["collection"],
                datetime=props["datetime"],
                platform=props["platform"],
                mode=props["mode"],
                polarisations=tuple(props["polarisations"]),
                geometry=feature["geometry"],
                bucket=source["bucket"],
                prefix=source["prefix"],
                orbit_state=props.get("orbit_state", ""),
                product_type=props.get("product_type", ""),
                cloud_cover=props.get("cloud_cover"),
                extra={k: v for k, v in props.items() if k not in known},
            )
        except (KeyError, TypeError) as exc:
            ident = feature.get("id", "?") if isinstance(feature, dict) else "?"
            raise EopackError(f"{where}: feature {ident}: missing field {exc}") from None


def sort_products(products: Iterable[Product]) -> list[Product]:
    """The manifest order: sensing time, then product id."""
    return sorted(products, key=lambda p: (p.datetime, p.id))


def limit_rank(product: Product) -> tuple[float, str, str]:
    """Which products images_limit keeps first: least cloud, then earliest, then id.

    Radar sees through clouds, so SAR products rank as cloud-free: an S1-only search keeps
    the earliest products, an optical one the clearest (ties: earliest).
    """
    cloud = product.cloud_cover if product.cloud_cover is not None else 0.0
    return (cloud, product.datetime, product.id)


def apply_images_limit(
    products: Sequence[Product], limit: int | None, aoi: str, start: str, end: str
) -> list[Product]:
    """Keep ``limit`` products (see :func:`limit_rank`) and warn as the original tool did.

    The kept products are returned in manifest order (sensing time).
    """
    ordered = sort_products(products)
    if limit is not None and len(ordered) > limit:
        log.warning(
            "There is a limit of %d images per AOI (%s) and range dates (%s to %s). "
            "Thus, only %d from %d will be used!",
            limit,
            aoi,
            start,
            end,
            limit,
            len(ordered),
        )
        return sort_products(sorted(ordered, key=limit_rank)[:limit])
    return ordered


def feature_collection_bytes(products: Iterable[Product]) -> bytes:
    """Canonical JSON of a manifest: products sorted, keys sorted, trailing newline."""
    doc = {
        "type": "FeatureCollection",
        "features": [p.to_feature() for p in sort_products(products)],
    }
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_manifest(path: str | Path, products: Iterable[Product]) -> bool:
    """Write the manifest atomically; leaves an identical existing file untouched."""
    return write_if_changed(path, feature_collection_bytes(products))


def read_manifest(path: str | Path) -> list[Product]:
    """Products of a manifest written by :func:`write_manifest`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EopackError(f"{path}: cannot read search manifest ({exc})") from None
    if doc.get("type") != "FeatureCollection":
        raise EopackError(f"{path}: not a FeatureCollection")
    return [Product.from_feature(f, str(path)) for f in doc.get("features", [])]


def union_products(paths: Iterable[str | Path]) -> list[Product]:
    """All products of several manifests, each once (found for two AOIs -> fetched once)."""
    seen: dict[str, Product] = {}
    for path in paths:
        for product in read_manifest(path):
            seen.setdefault(product.id, product)
    return sort_products(seen.values())


def write_union(
    paths: Iterable[str | Path],
    out: str | Path,
    aois: Sequence[str] | None = None,
    by_aoi_out: str | Path | None = None,
) -> list[Product]:
    """``products.geojson``: every product of the given manifests once.

    With ``aois`` (the AOI of each manifest, in the same order) and ``by_aoi_out``, also
    ``products_by_aoi.json``: AOI -> its product ids. The workflow reads both once the
    union is made, so that per-AOI jobs need no search manifest of their own while the DAG
    is built (one checkpoint for the product list, not one per AOI x date range).
    """
    paths = list(paths)
    products = union_products(paths)
    write_manifest(out, products)
    if by_aoi_out is not None:
        if aois is None or len(aois) != len(paths):
            raise ValueError("write_union: one AOI name per manifest is needed")
        write_if_changed(by_aoi_out, aoi_index_bytes(paths, aois))
    log.info("%d distinct products over %d search manifests", len(products), len(paths))
    return products


def aoi_index_bytes(paths: Sequence[str | Path], aois: Sequence[str]) -> bytes:
    """AOI -> sorted distinct product ids over its manifests, as byte-stable JSON."""
    index: dict[str, set[str]] = {aoi: set() for aoi in aois}
    for path, aoi in zip(paths, aois, strict=True):
        index[aoi].update(product.id for product in read_manifest(path))
    doc = {aoi: sorted(ids) for aoi, ids in sorted(index.items())}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")


def read_aoi_index(path: str | Path) -> dict[str, list[str]]:
    """``products_by_aoi.json`` as written by :func:`write_union`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EopackError(f"{path}: cannot read the AOI product index ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise EopackError(f"{path}: not an AOI -> product ids index")
    return {str(aoi): [str(i) for i in ids] for aoi, ids in doc.items()}


def ids_in_collections(path: str | Path, collections: Iterable[str]) -> tuple[str, ...]:
    """Sorted ids of a manifest's products in ``collections``, parsed once per version of the
    file: the workflow's target functions ask for them many times while the DAG is built."""
    stat = os.stat(path)
    return _ids_in_collections(str(path), stat.st_mtime_ns, stat.st_size, frozenset(collections))


@functools.lru_cache(maxsize=8)
def _ids_in_collections(
    path: str, mtime_ns: int, size: int, collections: frozenset[str]
) -> tuple[str, ...]:
    return tuple(sorted(p.id for p in read_manifest(path) if p.collection in collections))


def aoi_product_ids(path: str | Path, aoi: str) -> tuple[str, ...]:
    """One AOI's product ids in ``products_by_aoi.json`` (read once per version of the file)."""
    stat = os.stat(path)
    return _aoi_index(str(path), stat.st_mtime_ns, stat.st_size).get(aoi, ())


@functools.lru_cache(maxsize=4)
def _aoi_index(path: str, mtime_ns: int, size: int) -> dict[str, tuple[str, ...]]:
    return {aoi: tuple(ids) for aoi, ids in read_aoi_index(path).items()}


def find_product(products_file: str | Path, product_id: str) -> Product:
    """The manifest record of ``product_id`` in the union manifest (``products.geojson``):
    where every product job learns its collection, bucket and prefix."""
    for product in read_manifest(products_file):
        if product.id == product_id:
            return product
    raise EopackError(f"{products_file}: product {product_id} is not in the search results")
