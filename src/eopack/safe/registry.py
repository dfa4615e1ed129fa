"""The collections eopack fetches, and what differs between them: the one place a collection
is named.

Why: the workflow's rules are the same for every collection (rebuild, verify, zip, deliver,
publish per product id). What differs lives here: the product's folder name (``{id}.SAFE``
for ESA products, ``{id}`` for a Landsat scene), how its file list is read from the bucket
(S1: ``productInfo.json``'s ``filenameMap``; S2: product + tile folders; Landsat: the scene
folder), how the folder is verified, and which files the buckets never carry (known gaps).
Adding a collection is one entry in :data:`COLLECTIONS`, never a rule or an
``if collection ==`` branch in the workflow.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eopack.errors import EopackError
from eopack.safe.s2_layout import KNOWN_GAPS

__all__ = [
    "COLLECTIONS",
    "Collection",
    "ProductFiles",
    "collection",
    "fetched_collections",
    "folder_name",
    "product_of_folder",
]


@dataclass(frozen=True)
class ProductFiles:
    """Every file of one product in its source bucket.

    ``files``: path inside the product folder (``MTD_MSIL2A.xml``, ``GRANULE/.../B02.jp2``)
    -> full bucket key. ``prefixes``: the bucket folders the keys live under (one listing
    each gives sizes and ETags without a HEAD per file). ``sizes``: path -> size, where the
    listing was read already. ``checksums``: path -> expected ``(algorithm, hex digest)``
    known before the download (a STAC asset's ``file:checksum``), checked by the verifier.
    ``known_gaps``: paths the product's own manifest lists but the bucket never carries.
    ``etags``: path -> ETag, where the listing was read already: with ``sizes`` they spare
    the download a second listing of each folder (:func:`eopack.safe.rebuild.rebuild_folder`).
    """

    product_id: str
    folder: str
    files: Mapping[str, str]
    prefixes: tuple[str, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    checksums: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    known_gaps: tuple[str, ...] = ()
    etags: Mapping[str, str] = field(default_factory=dict)


#: ``(client, SourceBucket, Product) -> ProductFiles``: read the product's file list.
ListFiles = Callable[[Any, Any, Any], ProductFiles]
#: ``(folder, product id) -> report``: ``verify.json``'s body for a rebuilt folder.
Verify = Callable[[Path, str], dict[str, Any]]


@dataclass(frozen=True)
class Collection:
    """How eopack fetches the products of one STAC collection.

    ``suffix``: the folder name is ``{id}{suffix}`` (``.SAFE`` or empty). ``manifest``: the
    file inside the folder that lists every file with its size and MD5 (``manifest.safe``),
    or None where the bucket listing and the STAC item are the reference.
    ``known_gaps``: glob patterns (relative to the folder) of files the manifest lists but
    the AWS bucket never carries; they are recorded with their own status in ``verify.json``.
    ``quicklook``: glob patterns of the folder's preview image, first match wins.
    ``bulk``: glob patterns of the image files (nearly all the bytes) that the rebuild's
    check before it replaces an earlier folder leaves to the verify step. ``check``: that
    check, for a collection without a manifest (``(staging folder, ProductFiles)``); such a
    collection's rebuild also leaves its listing record for the verify step
    (:mod:`eopack.safe.listing`).
    """

    name: str
    bucket: str
    suffix: str
    list_files: ListFiles
    verify: Verify
    manifest: str | None = "manifest.safe"
    known_gaps: tuple[str, ...] = ()
    quicklook: tuple[str, ...] = ()
    bulk: tuple[str, ...] = ()
    check: Callable[[Path, ProductFiles], None] | None = None

    def folder(self, product_id: str) -> str:
        """The product's folder name (also the zip's single top folder)."""
        return f"{product_id}{self.suffix}"

    def is_known_gap(self, path: str) -> bool:
        """Whether ``path`` (relative to the folder) is a file the bucket never carries."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.known_gaps)


def _s1_files(client: Any, bucket: Any, product: Any) -> ProductFiles:
    from eopack.safe.s1 import product_files

    return product_files(client, bucket, product.prefix, product.id)


def _s2_files(client: Any, bucket: Any, product: Any) -> ProductFiles:
    from eopack.safe.s2 import product_files

    return product_files(client, bucket, product)


def _safe_verify(folder: Path, product_id: str) -> dict[str, Any]:
    from eopack.safe.manifest import verify_safe

    return verify_safe(folder, product=product_id)


def _s2_verify(folder: Path, product_id: str) -> dict[str, Any]:
    from eopack.safe.manifest import verify_safe

    return verify_safe(folder, product=product_id, known_gaps=S2_KNOWN_GAPS)


#: What the S2 buckets never carry of a SAFE: ESA's HTML presentation and XML schemas.
S2_KNOWN_GAPS = KNOWN_GAPS
S2_QUICKLOOK = ("GRANULE/*/QI_DATA/*PVI*.jp2",)


def _landsat_files(client: Any, bucket: Any, product: Any) -> ProductFiles:
    from eopack.safe.landsat import product_files

    return product_files(client, bucket, product)


def _landsat_verify(folder: Path, product_id: str) -> dict[str, Any]:
    from eopack.safe.landsat import verify_scene

    return verify_scene(folder, product_id)


def _landsat_check(staging: Path, files: ProductFiles) -> None:
    from eopack.safe.landsat import check_staged

    check_staged(staging, files)


def _s2_collection(name: str, bucket: str) -> Collection:
    """L1C and L2A differ only in their bucket."""
    return Collection(
        name=name,
        bucket=bucket,
        suffix=".SAFE",
        list_files=_s2_files,
        verify=_s2_verify,
        known_gaps=S2_KNOWN_GAPS,
        quicklook=S2_QUICKLOOK,
        bulk=("GRANULE/*/IMG_DATA/*",),
    )


COLLECTIONS: dict[str, Collection] = {
    "sentinel-1-grd": Collection(
        name="sentinel-1-grd",
        bucket="sentinel-s1-l1c",
        suffix=".SAFE",
        list_files=_s1_files,
        verify=_safe_verify,
        quicklook=("preview/quick-look.png",),
    ),
    "sentinel-2-l1c": _s2_collection("sentinel-2-l1c", "sentinel-s2-l1c"),
    "sentinel-2-l2a": _s2_collection("sentinel-2-l2a", "sentinel-s2-l2a"),
    "landsat-c2-l2": Collection(
        name="landsat-c2-l2",
        bucket="usgs-landsat",
        suffix="",
        list_files=_landsat_files,
        verify=_landsat_verify,
        manifest=None,
        check=_landsat_check,
        quicklook=("*_thumb_large.jpeg", "*_thumb_small.jpeg"),
    ),
}


def collection(name: str) -> Collection:
    """The registry entry of ``name``; a collection eopack cannot fetch is one clear error."""
    try:
        return COLLECTIONS[name]
    except KeyError:
        known = ", ".join(sorted(COLLECTIONS))
        raise EopackError(
            f"collection {name!r}: eopack does not fetch its products (it fetches: {known})"
        ) from None


def fetched_collections() -> tuple[str, ...]:
    """The collections whose products the workflow rebuilds, zips and delivers."""
    return tuple(sorted(COLLECTIONS))


def folder_name(product_id: str, collection_name: str) -> str:
    """``{id}.SAFE`` or ``{id}``: the product's folder under ``results/safe/``."""
    return collection(collection_name).folder(product_id)


def product_of_folder(folder: str) -> str:
    """The product id of a folder name (the inverse of :func:`folder_name`)."""
    for entry in COLLECTIONS.values():
        if entry.suffix and folder.endswith(entry.suffix):
            return folder.removesuffix(entry.suffix)
    return folder


def collections_by_id(products_file: str | Path) -> dict[str, str]:
    """Product id -> collection of a search manifest, read once per version of the file:
    the workflow's input functions ask for it for every product job."""
    stat = os.stat(products_file)
    return _collections_by_id(str(products_file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _collections_by_id(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    from eopack.search.manifest import read_manifest

    return {p.id: p.collection for p in read_manifest(path)}


def collection_of(products_file: str | Path, product_id: str) -> Collection:
    """The registry entry of a searched product."""
    by_id: Mapping[str, str] = collections_by_id(products_file)
    if product_id not in by_id:
        raise EopackError(f"{products_file}: product {product_id} is not in the search results")
    return collection(by_id[product_id])
