"""Rebuild a Sentinel-1 SAFE folder from the ``sentinel-s1-l1c`` bucket.

The bucket renames every file (``measurement/iw-vv.tiff``, ``annotation/rfi/rfi-iw-vv.xml``,
stripmap ``measurement/s1-vv.tiff`` ...). ``productInfo.json``'s ``filenameMap`` maps each
SAFE path to its bucket key and is the only reliable way back: eopack never guesses names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from eopack.errors import EopackError
from eopack.s3 import SourceBucket, get_bytes
from eopack.transfer import TransferConfig

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

    :func:`eopack.safe.rebuild.rebuild_folder` with the product's ``filenameMap``: staged
    beside ``dest``, resumed after a kill, the small files checked against ``manifest.safe``
    (:func:`check_before_swap`) before the SAFE replaces an earlier one. The default
    transfer, :data:`SAFE_TRANSFER`, leaves the MD5s to the verify step (a given
    ``TransferConfig`` hashes by default).
    """
    from eopack.safe.rebuild import rebuild_folder

    files = product_files(client, bucket, prefix, product_id)
    return rebuild_folder(
        client,
        bucket,
        files,
        dest,
        max_workers,
        transfer or SAFE_TRANSFER,
        lambda staging: check_before_swap(staging, product_id),
    )


def check_before_swap(
    staging: Path,
    product_id: str,
    known_gaps: Sequence[str] = (),
    leave_out: Sequence[str] = (),
) -> None:
    """Check the staged SAFE's small files (all but the measurement TIFFs) against its
    ``manifest.safe`` before it replaces anything.

    A forced rebuild from a bucket whose files changed would otherwise swap a bad SAFE in for
    the good one of an earlier run, and the verify step would find it only then (the bad-input
    catalogue, docs/reliability.md). The measurements, nearly all the bytes, are left to the
    verify step. Bad files are removed from the staging folder, so the next run fetches them
    again; the job fails and Snakemake puts the earlier SAFE back (``keep_previous``).
    Any SAFE (S1, S2): ``known_gaps`` and ``leave_out`` as in
    :func:`eopack.safe.manifest.verify_safe` (the collection's, :mod:`eopack.safe.registry`).
    """
    from eopack.safe.manifest import GOOD, failure_line, verify_safe

    try:
        report = verify_safe(
            staging,
            measurements=False,
            product=product_id,
            known_gaps=known_gaps,
            leave_out=leave_out,
        )
    except EopackError as exc:
        (staging / "manifest.safe").unlink(missing_ok=True)
        raise EopackError(f"{exc}; nothing of an earlier run was changed") from None
    if not report["ok"]:
        for entry in report["files"]:
            if entry["status"] not in GOOD:
                (staging / entry["path"]).unlink(missing_ok=True)
        raise EopackError(
            f"verification failed: {failure_line(report)}; checked before the SAFE replaces "
            "anything: nothing of an earlier run was changed"
        )
