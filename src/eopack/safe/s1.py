"""Rebuild a Sentinel-1 SAFE folder from the ``sentinel-s1-l1c`` bucket.

The bucket renames every file (``measurement/iw-vv.tiff``, ``annotation/rfi/rfi-iw-vv.xml``,
stripmap ``measurement/s1-vv.tiff`` ...). ``productInfo.json``'s ``filenameMap`` maps each
SAFE path to its bucket key and is the only reliable way back: eopack never guesses names.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from eopack.errors import EopackError
from eopack.s3 import SourceBucket, get_bytes
from eopack.transfer import TransferConfig, download_files, finished_file, resumable_bytes

if TYPE_CHECKING:
    from eopack.safe.registry import ProductFiles

log = logging.getLogger(__name__)

PRODUCT_INFO = "productInfo.json"
#: How :func:`rebuild_safe` downloads by default: no MD5 of the downloads, since the workflow's
#: verify step hashes every file against ``manifest.safe`` anyway (see ``TransferConfig.md5``).
SAFE_TRANSFER = TransferConfig(md5=False)


@dataclass(frozen=True)
class ProductInfo:
    """What eopack needs from ``productInfo.json``: the id and SAFE path -> bucket key map."""

    product_id: str
    path: str
    filename_map: dict[str, str]


def _safe_relative(path: str, where: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise EopackError(f"{where}: filenameMap entry {path!r} is not a safe relative path")
    return str(pure)


def parse_product_info(raw: bytes, where: str) -> ProductInfo:
    """Parse and check ``productInfo.json``; anything unusable is one clear error."""
    try:
        doc: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EopackError(f"{where}: corrupt productInfo.json ({exc})") from None
    if not isinstance(doc, dict):
        raise EopackError(f"{where}: productInfo.json is not a JSON object")
    fmap = doc.get("filenameMap")
    if not isinstance(fmap, dict) or not fmap:
        raise EopackError(f"{where}: productInfo.json has no filenameMap")
    clean: dict[str, str] = {}
    for safe_path, key in fmap.items():
        if not isinstance(key, str):
            raise EopackError(f"{where}: filenameMap[{safe_path!r}] is not a string")
        clean[_safe_relative(safe_path, where)] = _safe_relative(key, where)
    if "manifest.safe" not in clean:
        raise EopackError(f"{where}: filenameMap lists no manifest.safe")
    product_id = doc.get("id")
    if not isinstance(product_id, str) or not product_id:
        raise EopackError(f"{where}: productInfo.json has no product id")
    return ProductInfo(product_id=product_id, path=str(doc.get("path", "")), filename_map=clean)


def fetch_product_info(
    client: Any, bucket: SourceBucket, prefix: str, expected_id: str | None = None
) -> ProductInfo:
    """Download and parse ``{prefix}/productInfo.json``; with ``expected_id``, check that it
    describes that product (a prefix from a stale manifest must not fetch another one)."""
    key = f"{prefix}/{PRODUCT_INFO}"
    info = parse_product_info(get_bytes(client, bucket, key), f"s3://{bucket.name}/{key}")
    if expected_id is not None and info.product_id != expected_id:
        raise EopackError(
            f"s3://{bucket.name}/{key}: describes {info.product_id}, expected {expected_id}"
        )
    return info


def product_files(client: Any, bucket: SourceBucket, prefix: str, product_id: str) -> ProductFiles:
    """The S1 product's files (``productInfo.json``'s ``filenameMap``, keys made absolute),
    for the collection registry (:mod:`eopack.safe.registry`)."""
    from eopack.safe.registry import ProductFiles

    info = fetch_product_info(client, bucket, prefix, product_id)
    files = {path: f"{prefix}/{key}" for path, key in sorted(info.filename_map.items())}
    return ProductFiles(product_id, f"{product_id}.SAFE", files, (prefix,))


def rebuild_safe(
    client: Any,
    bucket: SourceBucket,
    prefix: str,
    product_id: str,
    dest: str | Path,
    max_workers: int = 8,
    transfer: TransferConfig | None = None,
) -> dict[str, tuple[int, str | None]]:
    """Fetch every file of the product into ``dest`` (``{id}.SAFE``) under its ESA name.

    Files go to a hidden sibling folder first, renamed to ``dest`` only when all arrived, so
    an interrupted run never leaves a SAFE that looks complete. The folder is kept after a
    failure or a kill: the next run skips the files it holds and resumes the partial ones.
    Large files come as ranged parts; at most 2 x ``max_workers`` requests are in flight over
    all files (``transfer.requests`` is set so). Returns SAFE path -> (size, md5) of every
    file. The md5 is None unless ``transfer.md5``: the default, :data:`SAFE_TRANSFER`, leaves
    the integrity check to the verify step against ``manifest.safe`` (a given
    ``TransferConfig`` hashes by default).
    """
    dest = Path(dest)
    transfer = transfer or SAFE_TRANSFER
    info = fetch_product_info(client, bucket, prefix, product_id)
    staging = dest.parent / f".{dest.name}.part"
    staging.mkdir(parents=True, exist_ok=True)
    items = sorted(info.filename_map.items())
    total = len(items)
    log.info("%s: %d files in s3://%s/%s/", product_id, total, bucket.name, prefix)

    written: dict[str, tuple[int, str | None]] = {}
    missing: list[tuple[str, str]] = []
    for number, (safe_path, key) in enumerate(items, start=1):
        target = staging / safe_path
        done = target.is_file()  # renamed from .part, so complete
        resumed = 0 if done else resumable_bytes(target)
        note = f" (resumed at {resumed} bytes)" if resumed else ""
        note = " (already complete)" if done else note
        log.info("Copying item %d of %d: %s <- %s%s", number, total, safe_path, key, note)
        if done:
            written[safe_path] = finished_file(target, transfer.md5)
        else:
            missing.append((safe_path, key))
    config = replace(transfer, requests=2 * max_workers)
    jobs = [(f"{prefix}/{key}", staging / safe_path) for safe_path, key in missing]
    results = download_files(client, bucket, jobs, config, prefix=prefix)
    written.update(zip((safe_path for safe_path, _ in missing), results, strict=True))
    written = dict(sorted(written.items()))
    check_before_swap(staging, product_id)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)
    log.info("%s: SAFE rebuilt in %s (%d files)", product_id, dest, total)
    return written


def check_before_swap(staging: Path, product_id: str) -> None:
    """Check the staged SAFE's small files (all but the measurement TIFFs) against its
    ``manifest.safe`` before it replaces anything.

    A forced rebuild from a bucket whose files changed would otherwise swap a bad SAFE in for
    the good one of an earlier run, and the verify step would find it only then (the bad-input
    catalogue, docs/reliability.md). The measurements, nearly all the bytes, are left to the
    verify step. Bad files are removed from the staging folder, so the next run fetches them
    again; the job fails and Snakemake puts the earlier SAFE back (``keep_previous``).
    """
    from eopack.safe.manifest import failure_line, verify_safe

    try:
        report = verify_safe(staging, measurements=False, product=product_id)
    except EopackError as exc:
        (staging / "manifest.safe").unlink(missing_ok=True)
        raise EopackError(f"{exc}; nothing of an earlier run was changed") from None
    if not report["ok"]:
        for entry in report["files"]:
            if entry["status"] not in ("ok", "ok_reencoded"):
                (staging / entry["path"]).unlink(missing_ok=True)
        raise EopackError(
            f"verification failed: {failure_line(report)}; checked before the SAFE replaces "
            "anything: nothing of an earlier run was changed"
        )


def find_product(products_file: str | Path, product_id: str) -> Any:
    """The manifest record of ``product_id`` in the union manifest (``products.geojson``)."""
    from eopack.search.manifest import read_manifest

    for product in read_manifest(products_file):
        if product.id == product_id:
            return product
    raise EopackError(f"{products_file}: product {product_id} is not in the search results")


def rebuild_product(
    products_file: str | Path,
    product_id: str,
    sources: dict[str, Any],
    dest: str | Path,
    max_workers: int = 8,
) -> dict[str, tuple[int, str | None]]:
    """Rebuild the SAFE of a searched product from the bucket and prefix its manifest names.

    The workflow's path (``scripts/rebuild_safe.py``): :data:`SAFE_TRANSFER`, no MD5 of the
    downloads, as ``verify_safe`` hashes every file against ``manifest.safe`` next.
    """
    from eopack.s3 import make_client, source_bucket

    product = find_product(products_file, product_id)
    bucket = source_bucket(sources, product.bucket)
    client = make_client(bucket.region, max_pool=max(10, max_workers * 2))
    return rebuild_safe(
        client, bucket, product.prefix, product_id, dest, max_workers, SAFE_TRANSFER
    )
