"""Check a SAFE folder against its ``manifest.safe`` (size and MD5 of each data object).

The S1 bucket's measurement TIFFs are re-encoded (COG), so their size/MD5 need not match the
manifest; for them eopack records both and requires a readable GeoTIFF instead. Every other
file, S2's JP2s included (the S2 buckets keep ESA's originals), must match size and MD5.
A file the source bucket never carries (a collection's known gap, e.g. S2's ``HTML/``) is
recorded as ``known_gap``: counted, not a failure, and not silent.
"""

from __future__ import annotations

import fnmatch
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from eopack.archive import SNAKEMAKE_MARKER
from eopack.errors import EopackError
from eopack.fsutil import write_json

#: Statuses that are not a failure.
GOOD = ("ok", "ok_reencoded", "known_gap")


@dataclass(frozen=True)
class DataObject:
    """One ``dataObject/byteStream`` of ``manifest.safe``."""

    path: str
    size: int | None
    md5: str | None

    @property
    def is_measurement(self) -> bool:
        """An S1 measurement TIFF (re-encoded in the bucket, see the module docstring)."""
        return self.path.startswith("measurement/")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_manifest(path: str | Path) -> list[DataObject]:
    """The data objects listed by ``manifest.safe`` (namespace-agnostic, as hrefs vary)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EopackError(f"{path}: cannot read manifest.safe ({exc})") from None
    return parse_manifest_bytes(data, str(path))


def parse_manifest_bytes(data: bytes, path: str) -> list[DataObject]:
    """:func:`parse_manifest` of bytes already in memory (read from a bucket); ``path``
    names the source in errors."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise EopackError(f"{path}: cannot parse manifest.safe ({exc})") from None
    objects: list[DataObject] = []
    for stream in root.iter():
        if _local(stream.tag) != "byteStream":
            continue
        href = size = md5 = None
        for child in stream:
            name = _local(child.tag)
            if name == "fileLocation":
                href = child.get("href")
            elif name == "checksum" and (child.get("checksumName") or "").upper() == "MD5":
                md5 = (child.text or "").strip().lower()
        if href is None:
            continue
        rel = str(PurePosixPath(href.removeprefix("./")))
        if ".." in PurePosixPath(rel).parts:
            raise EopackError(f"{path}: dataObject href {href!r} leaves the SAFE folder")
        raw_size = stream.get("size")
        size = int(raw_size) if raw_size and raw_size.isdigit() else None
        objects.append(DataObject(rel, size, md5))
    if not objects:
        raise EopackError(f"{path}: manifest.safe lists no data objects")
    return objects


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _readable_geotiff(path: Path) -> bool:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            ds.read(1, window=((0, min(1, ds.height)), (0, min(1, ds.width))))
        return True
    except RasterioError:
        return False


def verify_safe(
    safe_dir: str | Path,
    *,
    measurements: bool = True,
    product: str | None = None,
    known_gaps: Sequence[str] = (),
    leave_out: Sequence[str] = (),
) -> dict[str, Any]:
    """Compare every data object with the file on disk; the report is ``verify.json``'s body.

    ``measurements=False`` leaves the measurement TIFFs out (the bulk of the bytes): the
    rebuild's check of the small files before its SAFE replaces an earlier one. ``product``:
    the name to report when ``safe_dir`` is not ``{product}.SAFE`` (a staging folder).
    ``leave_out``: glob patterns of files not to check (the bulk image files, for the
    rebuild's check of the small files). ``known_gaps``: glob patterns (relative to the
    folder) of files the source bucket never carries; such a file, absent, is ``known_gap``
    (counted in ``known_gaps``); present, it is checked as any other.
    """
    safe_dir = Path(safe_dir)
    objects = parse_manifest(safe_dir / "manifest.safe")
    if not measurements:
        objects = [o for o in objects if not o.is_measurement]
    if leave_out:
        objects = [o for o in objects if not any(fnmatch.fnmatchcase(o.path, p) for p in leave_out)]
    files: list[dict[str, Any]] = []
    for obj in sorted(objects, key=lambda o: o.path):
        target = safe_dir / obj.path
        entry: dict[str, Any] = {
            "path": obj.path,
            "expected_size": obj.size,
            "expected_md5": obj.md5,
            "size": None,
            "md5": None,
        }
        if not target.is_file():
            gap = any(fnmatch.fnmatchcase(obj.path, pattern) for pattern in known_gaps)
            entry["status"] = "known_gap" if gap else "missing"
        else:
            entry["size"] = target.stat().st_size
            entry["md5"] = file_md5(target)
            matches = entry["size"] == obj.size and (obj.md5 is None or entry["md5"] == obj.md5)
            if obj.is_measurement:
                if not _readable_geotiff(target):
                    entry["status"] = "unreadable"
                else:
                    entry["status"] = "ok" if matches else "ok_reencoded"
            elif entry["size"] != obj.size:
                entry["status"] = "size_mismatch"
            elif obj.md5 is not None and entry["md5"] != obj.md5:
                entry["status"] = "md5_mismatch"
            else:
                entry["status"] = "ok"
        files.append(entry)
    listed = {o.path for o in objects}
    unlisted = sorted(
        p.relative_to(safe_dir).as_posix()
        for p in safe_dir.rglob("*")
        if p.is_file()
        and p.name != SNAKEMAKE_MARKER
        and p.relative_to(safe_dir).as_posix() not in listed
    )
    bad = [f for f in files if f["status"] not in GOOD]
    gaps = sum(f["status"] == "known_gap" for f in files)
    return {
        "product": product or safe_dir.name.removesuffix(".SAFE"),
        "ok": not bad,
        "checked": len(files) - gaps,
        "failed": len(bad),
        "known_gaps": gaps,
        "files": files,
        "not_in_manifest": unlisted,
    }


def write_report(report: dict[str, Any], path: str | Path) -> None:
    """Write ``verify.json`` atomically (stable key order for diffing)."""
    write_json(path, report)


def failure_line(report: dict[str, Any]) -> str:
    """One line naming the first failed file and why, for the job's error: any collection's
    report (a SAFE's against its manifest; a report with a ``folder``, a Landsat scene's,
    against the bucket listing and the STAC checksums)."""
    if "folder" in report:
        from eopack.safe.landsat import failure_line as listing_failure_line

        return listing_failure_line(report)
    bad = [f for f in report["files"] if f["status"] not in GOOD]
    first = bad[0]
    detail = {
        "missing": "missing",
        "unreadable": "not a readable GeoTIFF",
        "size_mismatch": f"size {first['size']} != manifest {first['expected_size']}",
        "md5_mismatch": f"MD5 {first['md5']} != manifest {first['expected_md5']}",
    }.get(first["status"], first["status"])
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{report['product']}.SAFE/{first['path']}: {detail}{more}"


def verify_to_report(
    safe_dir: str | Path, out: str | Path, fail: bool = True, collection: str = "sentinel-1-grd"
) -> dict[str, Any]:
    """Verify with the collection's verifier (:mod:`eopack.safe.registry`), write
    ``verify.json`` (always, for the record) and fail on a bad file if asked."""
    import logging

    from eopack.safe.registry import collection as registry_entry
    from eopack.safe.registry import product_of_folder

    log = logging.getLogger(__name__)
    entry = registry_entry(collection)
    report = entry.verify(Path(safe_dir), product_of_folder(Path(safe_dir).name))
    if report["ok"]:
        against = entry.manifest or "the bucket listing"
        log.info(
            "%s: %d files verified against %s, %d known gaps (not in the source bucket)",
            safe_dir,
            report["checked"],
            against,
            report.get("known_gaps", 0),
        )
        write_report(report, out)
        return report
    line = failure_line(report)
    if fail:
        # Keep the evidence beside the output without creating the output itself.
        write_report(report, Path(out).with_suffix(".failed.json"))
        raise EopackError(f"verification failed: {line}")
    log.warning("verification failed (continuing as configured): %s", line)
    write_report(report, out)
    return report
