"""Deterministic zips: same SAFE in, same bytes out, so a rebuild can be checked by SHA-256.

Entries are sorted, timestamps fixed (the product's sensing time), permissions fixed, and
the compression chosen by file type: measurement TIFFs are stored (they barely compress),
the rest deflated.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from eopack.errors import EopackError

STORED_SUFFIXES = (".tif", ".tiff", ".jp2", ".zip", ".png")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Snakemake drops this marker into directory() outputs; it is not part of the product.
SNAKEMAKE_MARKER = ".snakemake_timestamp"
_SENSING = re.compile(r"_(\d{8}T\d{6})_")
COPY_CHUNK = 4 * 1024 * 1024


def sensing_time(product_id: str) -> tuple[int, int, int, int, int, int]:
    """The product's sensing start from its id, as a zip timestamp (1980 if none is found).

    Zip (DOS) times have a 2-second resolution, so odd seconds are rounded down.
    """
    match = _SENSING.search(product_id)
    if not match:
        return ZIP_EPOCH
    when = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
    return (when.year, when.month, when.day, when.hour, when.minute, when.second - when.second % 2)


def _members(src: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in src.rglob("*")
            if p.is_file() and not p.is_symlink() and p.name != SNAKEMAKE_MARKER
        ),
        key=lambda p: p.relative_to(src).as_posix(),
    )


def _zipinfo(name: str, when: tuple[int, ...], size: int, deflate_level: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when)  # type: ignore[arg-type]
    info.create_system = 3  # unix, whatever the host
    info.external_attr = (0o100644 & 0xFFFF) << 16
    stored = name.lower().endswith(STORED_SUFFIXES) or deflate_level == 0
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    if not stored:
        # ZipInfo has no public level before Python 3.13; `_compresslevel` works on 3.11+.
        info._compresslevel = deflate_level  # type: ignore[attr-defined]
    info.file_size = size  # lets zipfile pick ZIP64 itself for members above 4 GB
    return info


def write_deterministic_zip(
    src: str | Path,
    dest: str | Path,
    top: str,
    when: tuple[int, int, int, int, int, int] = ZIP_EPOCH,
    deflate_level: int = 6,
) -> list[str]:
    """Zip folder ``src`` as ``top/...`` into ``dest`` atomically; returns the member names.

    The archive is re-read (CRC of every member) before it replaces ``dest``.
    """
    src, dest = Path(src), Path(dest)
    files = _members(src)
    if not files:
        raise EopackError(f"{src}: nothing to zip")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    names: list[str] = []
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for path in files:
                name = f"{top}/{path.relative_to(src).as_posix()}"
                size = path.stat().st_size
                info = _zipinfo(name, when, size, deflate_level)
                with path.open("rb") as reader, archive.open(info, "w") as out:
                    shutil.copyfileobj(reader, out, COPY_CHUNK)
                names.append(name)
        check_zip(tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return names


def check_zip(path: str | Path) -> None:
    """Read every member back and compare CRCs; a bad archive is an error naming the member."""
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise EopackError(f"{path}: member {bad} fails its CRC check")


def zip_names(path: str | Path) -> Iterable[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def zip_safe(safe_dir: str | Path, dest: str | Path, deflate_level: int = 6) -> list[str]:
    """``{id}.zip`` with the single top folder ``{id}.SAFE/``, timestamped at sensing time."""
    safe_dir = Path(safe_dir)
    top = safe_dir.name
    product_id = top.removesuffix(".SAFE")
    return write_deterministic_zip(safe_dir, dest, top, sensing_time(product_id), deflate_level)
