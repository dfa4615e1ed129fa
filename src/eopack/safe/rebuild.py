"""Rebuild a product's folder from its source bucket, for every collection of the registry.

Why one module: the steps are the same for a Sentinel-1 or Sentinel-2 SAFE and a Landsat
scene folder (stage beside the destination, resume what an earlier run left, check before
replacing anything, rename into place); only the file list and the check differ, and those
come from :mod:`eopack.safe.registry`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from eopack.errors import EopackError
from eopack.safe.registry import Collection, ProductFiles, collection, product_of_folder
from eopack.transfer import TransferConfig, download_files, finished_file, resumable_bytes

log = logging.getLogger(__name__)

#: How products are downloaded by default: no MD5 of the downloads, since the workflow's
#: verify step hashes every file against the product's manifest anyway.
FOLDER_TRANSFER = TransferConfig(md5=False)


def rebuild_folder(
    client: Any,
    bucket: Any,
    files: ProductFiles,
    dest: str | Path,
    max_workers: int = 8,
    transfer: TransferConfig | None = None,
    check: Callable[[Path], None] | None = None,
) -> dict[str, tuple[int, str | None]]:
    """Fetch every file of ``files`` into ``dest`` under its name in the product folder.

    Files go to a hidden sibling folder first, renamed to ``dest`` only when all arrived and
    ``check(staging)`` passed, so an interrupted run never leaves a folder that looks
    complete and a bad download never replaces a good folder of an earlier run. The staging
    folder is kept after a failure or a kill: the next run skips the files it holds and
    resumes the partial ones. At most 2 x ``max_workers`` requests are in flight over all
    files. Returns path -> (size, md5) of every file (md5 None unless ``transfer.md5``).
    """
    dest = Path(dest)
    transfer = transfer or FOLDER_TRANSFER
    staging = dest.parent / f".{dest.name}.part"
    staging.mkdir(parents=True, exist_ok=True)
    items = sorted(files.files.items())
    total = len(items)
    where = ", ".join(f"s3://{bucket.name}/{p}/" for p in files.prefixes)
    log.info("%s: %d files in %s", files.product_id, total, where)

    written: dict[str, tuple[int, str | None]] = {}
    missing: list[tuple[str, str]] = []
    for number, (path, key) in enumerate(items, start=1):
        target = staging / path
        done = target.is_file()  # renamed from .part, so complete
        resumed = 0 if done else resumable_bytes(target)
        note = f" (resumed at {resumed} bytes)" if resumed else ""
        note = " (already complete)" if done else note
        log.info("Copying item %d of %d: %s <- %s%s", number, total, path, key, note)
        if done:
            written[path] = finished_file(target, transfer.md5)
        else:
            missing.append((path, key))
    config = replace(transfer, requests=2 * max_workers)
    jobs = [(key, staging / path) for path, key in missing]
    # The file list's own listing (sizes, ETags) stands for the download's: one LIST per folder.
    versions = {
        files.files[path]: (files.sizes[path], etag)
        for path, etag in files.etags.items()
        if path in files.sizes and path in files.files
    }
    results = download_files(client, bucket, jobs, config, prefix=files.prefixes, versions=versions)
    written.update(zip((path for path, _ in missing), results, strict=True))
    if check is not None:
        check(staging)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)
    log.info("%s: %s rebuilt in %s (%d files)", files.product_id, files.folder, dest, total)
    return dict(sorted(written.items()))


def check_staged(entry: Collection, files: ProductFiles) -> Callable[[Path], None]:
    """The check a staged folder passes before it replaces anything: the collection's own
    (a Landsat scene: the listing's sizes and the STAC checksums), else the manifest check
    of the small files (a SAFE)."""

    def check(staging: Path) -> None:
        if entry.check is not None:
            entry.check(staging, files)
            return
        from eopack.safe.s1 import check_before_swap

        check_before_swap(staging, files.product_id, entry.known_gaps, entry.bulk)

    return check


def rebuild_product(
    products_file: str | Path,
    folder: str,
    sources: Mapping[str, Any],
    dest: str | Path,
    max_workers: int = 8,
    listing: str | Path | None = None,
) -> dict[str, tuple[int, str | None]]:
    """The workflow's entry point: rebuild ``results/safe/{folder}`` of a searched product
    from the bucket and prefix its manifest record names, as its collection says, and write
    its listing record (``listing``, default ``{folder}.listing.json`` beside it): which
    bucket object became which file, the sizes and STAC checksums a scene is verified by."""
    from eopack.s3 import make_client, source_bucket
    from eopack.search.manifest import find_product

    product_id = product_of_folder(folder)
    product = find_product(products_file, product_id)
    entry = collection(product.collection)
    if entry.folder(product_id) != folder:
        raise EopackError(
            f"results/safe/{folder}: the folder of {product_id} ({product.collection}) is "
            f"{entry.folder(product_id)}"
        )
    bucket = source_bucket(sources, product.bucket)
    client = make_client(bucket.region, max_pool=max(10, max_workers * 2))
    files = entry.list_files(client, bucket, product)
    written = rebuild_folder(
        client, bucket, files, dest, max_workers, FOLDER_TRANSFER, check_staged(entry, files)
    )
    from eopack.safe.listing import write_listing

    write_listing(Path(dest).parent, files, bucket.name, listing)
    return written
