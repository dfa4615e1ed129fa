"""Package the BigEarthNet PNG datasets: deterministic zips and ``SHA256SUMS``.

``bigearthnet_pngs.zip`` holds ``rgb/<s2_product>/<patch_id>.png``, ``bigearthnet_mask_pngs.zip``
``mask/<s2_product>/<patch_id>.png``: unzipped next to ``index.csv``, its paths resolve. Members
are sorted and stored (PNG is compressed already) and dated 1980-01-01 by
:class:`eopack.archive.DeterministicZipWriter`, so the bytes depend only on the PNGs.

Memory stays within a job's 512 MB for the full dataset (549,488 members): one product's file
names are listed at a time, and the written archive is checked by a streaming re-read with no
per-member state (:func:`_check_written`) instead of :func:`eopack.archive.check_zip`, whose
``zipfile`` member table alone needs ~440 MB at that size. This module imports neither numpy
nor pyarrow (~50 MB less).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

from eopack.archive import ZIP_EPOCH, DeterministicZipWriter, ZipMember, fast_crc32, file_chunks
from eopack.errors import EopackError
from eopack.fsutil import atomic_write_bytes, big_file_writer, new_temp, read_small_file
from eopack.prefetch import prefetch
from eopack.stamps import stamped_digest, write_stamp

__all__ = ["DATASET_ZIPS", "write_sha256sums", "zip_dataset"]

log = logging.getLogger(__name__)

#: Dataset zip name -> the folder (under the dataset root) whose PNGs it holds.
DATASET_ZIPS = {"bigearthnet_pngs.zip": "rgb", "bigearthnet_mask_pngs.zip": "mask"}


def _product_pngs(root: Path, folder: str, product: str) -> list[tuple[str, str]]:
    """(member name, path) of the PNGs of one product under ``root/folder``, sorted by name."""
    where = root / folder / product
    if not where.is_dir():
        raise EopackError(f"{where}: missing; render product {product} first")
    with os.scandir(where) as entries:
        found = [
            (f"{folder}/{product}/{e.name}", e.path)
            for e in entries
            if e.name.endswith(".png") and e.is_file(follow_symlinks=False)
        ]
    found.sort()
    return found


_BATCH = 32  # PNGs read per hand-off (~1 MB)
_BATCHES_AHEAD = 4


def _read_ahead(root: Path, folder: str, products: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of every PNG, read by a background thread a few batches ahead.

    The reads release the GIL and overlap the CRCs and writes; with three syscalls per file
    (no ``stat``, no buffered reader) the RGB zip of 17,857 PNGs took 1.35 s on one core, down
    from 2.35 s. Batches keep the hand-offs to one per ~1 MB.
    """

    def batches() -> Iterator[list[tuple[str, bytes]]]:
        batch: list[tuple[str, bytes]] = []
        for product in products:
            for name, path in _product_pngs(root, folder, product):
                data = read_small_file(path)
                if data is None:
                    raise EopackError(f"{path}: vanished while zipping")
                batch.append((name, data))
                if len(batch) == _BATCH:
                    yield batch
                    batch = []
        yield batch

    for batch in prefetch(batches(), _BATCHES_AHEAD, "zip-read-ahead"):
        yield from batch


def zip_dataset(
    root: str | Path,
    folder: str,
    products: Sequence[str],
    dest: str | Path,
    stamps: str | Path | None = None,
) -> int:
    """Zip the PNGs of ``products`` under ``root/folder`` into ``dest``; returns the count.

    Members are ``<folder>/<product>/<patch_id>.png`` (unzip next to ``index.csv`` and its paths
    resolve), sorted, stored (PNG is compressed already), dated 1980-01-01: the bytes depend only
    on the PNGs. One product's file names are listed at a time. The archive is re-read and
    checked against what was written before it replaces ``dest`` (:func:`_check_written`).
    With ``stamps``, the SHA-256 of the bytes as written is stamped there
    (:mod:`eopack.stamps`) for :func:`write_sha256sums`, which then need not read the zip again.
    """
    root, dest = Path(root), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp(dest)
    digest = hashlib.sha256()
    try:
        # ~10 writes per PNG; the digest runs on the writes, so it sees exactly the file's bytes
        with big_file_writer(fd, 1 << 20, durable=True, digest=digest) as handle:
            writer = DeterministicZipWriter(handle, ZIP_EPOCH, deflate_level=0)
            with writer:
                with closing(_read_ahead(root, folder, sorted(products))) as pngs:
                    for name, data in pngs:
                        writer.add(name, len(data), [data])
                if not writer.members:
                    raise EopackError(f"{root / folder}: no PNGs to zip")
            handle.flush()
            os.fsync(handle.fileno())
        count, records, size = len(writer.members), _records_digest(writer.members), writer.close()
        del writer  # its member list is the largest thing held; the check needs O(1) memory
        _check_written(tmp, count, records)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if stamps is not None:  # _check_written has read the file back as the bytes hashed
        write_stamp(dest, "sha256", digest.hexdigest(), stamps)
    log.info("%s: %d PNGs, %d bytes", dest, count, size)
    return count


# --- streaming check of a written zip ------------------------------------------------------------
# eopack.archive.check_zip opens the archive with zipfile, which holds a ZipInfo per member
# (~800 bytes each: 440 MB for the 549,488 members of the real dataset, above the 512 MB a job
# may use). This check reads the file twice front to back instead and keeps no per-member
# state: the local records (header, data CRC, data descriptor) and the central directory must
# each hash, as a sequence of (name, CRC, size, offset), to what the writer recorded.

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_Z64_LOCATOR = struct.Struct("<IIQI")
_Z64_EOCD = struct.Struct("<IQHHIIQQQQ")
_U32 = 0xFFFFFFFF


def _records_digest(members: Sequence[ZipMember]) -> bytes:
    digest = hashlib.sha256()
    for m in members:
        digest.update(_record(m.name.encode("utf-8"), m.crc, m.size, m.offset))
    return digest.digest()


def _record(name: bytes, crc: int, size: int, offset: int) -> bytes:
    return struct.pack("<HIQQ", len(name), crc, size, offset) + name


def _zip64_values(extra: bytes) -> list[int] | None:
    while len(extra) >= 4:
        kind, length = struct.unpack_from("<HH", extra)
        if kind == 1:
            return list(struct.unpack_from(f"<{length // 8}Q", extra, 4))
        extra = extra[4 + length :]
    return None


def _read_exact(handle: BinaryIO, n: int) -> bytes:
    data = handle.read(n)
    if len(data) != n:
        raise EopackError("it ends early")
    return data


def _central_directory(handle: BinaryIO) -> tuple[int, int]:
    """(offset, entry count) of the central directory; leaves ``handle`` at its start."""
    end = handle.seek(0, os.SEEK_END)
    handle.seek(end - _EOCD.size)
    signature, _, _, _, count, _, offset, _ = _EOCD.unpack(_read_exact(handle, _EOCD.size))
    if signature != 0x06054B50:
        raise EopackError("no end-of-central-directory record")
    locator_at = end - _EOCD.size - _Z64_LOCATOR.size
    if locator_at >= 0:
        handle.seek(locator_at)
        locator = _Z64_LOCATOR.unpack(_read_exact(handle, _Z64_LOCATOR.size))
        if locator[0] == 0x07064B50:
            handle.seek(locator[2])
            record = _Z64_EOCD.unpack(_read_exact(handle, _Z64_EOCD.size))
            if record[0] != 0x06064B50:
                raise EopackError("bad ZIP64 end record")
            count, offset = record[7], record[9]
    handle.seek(offset)
    return offset, count


def _central_entry(handle: BinaryIO) -> tuple[bytes, int, int, int]:
    """(name, CRC, size, local header offset) of the next central directory entry."""
    fields = _CENTRAL.unpack(_read_exact(handle, _CENTRAL.size))
    signature, method, crc, csize, usize = fields[0], fields[4], fields[7], fields[8], fields[9]
    name = _read_exact(handle, fields[10])
    extra = _read_exact(handle, fields[11])
    handle.seek(fields[12], os.SEEK_CUR)
    offset = fields[16]
    if signature != 0x02014B50:
        raise EopackError("bad central directory entry")
    wide = iter(_zip64_values(extra) or ())
    usize = next(wide) if usize == _U32 else usize
    csize = next(wide) if csize == _U32 else csize
    offset = next(wide) if offset == _U32 else offset
    if method != 0 or csize != usize:
        raise EopackError(f"member {name!r} is not stored")
    return name, crc, usize, offset


def _check_local(handle: BinaryIO, name: bytes, crc: int, size: int, buf: bytearray) -> None:
    """The local record at ``handle``: header for ``name``, data with ``crc``, descriptor."""
    fields = _LOCAL.unpack(_read_exact(handle, _LOCAL.size))
    local_name = _read_exact(handle, fields[9])
    extra = _read_exact(handle, fields[10])
    if fields[0] != 0x04034B50 or local_name != name or not fields[2] & 0x08:
        raise EopackError(f"local header of {name!r} does not match the central directory")
    view = memoryview(buf)
    left, found = size, 0
    while left:
        n = handle.readinto(view[: min(left, len(buf))])  # type: ignore[attr-defined]
        if not n:
            raise EopackError(f"member {name!r} is truncated")
        found = fast_crc32(view[:n], found)
        left -= n
    wide = _zip64_values(extra) is not None
    tail = struct.unpack("<IIQQ" if wide else "<IIII", _read_exact(handle, 24 if wide else 16))
    if found != crc or tail != (0x08074B50, crc, size, size):
        raise EopackError(f"member {name!r} fails its CRC or descriptor check")


def _check_written(path: str | Path, count: int, expected: bytes) -> None:
    """Read a zip written by :func:`zip_dataset` back: every member's local header, data CRC
    and data descriptor against the central directory, read in step with it from a second
    handle, and the whole (name, CRC, size, offset) sequence against the writer's digest."""
    digest = hashlib.sha256()
    buf = bytearray(1 << 16)
    try:
        with (
            open(path, "rb", buffering=1 << 20) as central,
            open(path, "rb", buffering=1 << 20) as local,
        ):
            cd_offset, cd_count = _central_directory(central)
            if cd_count != count:
                raise EopackError(f"{cd_count} entries, {count} written")
            for _ in range(count):
                name, crc, size, offset = _central_entry(central)
                if offset != local.tell():
                    raise EopackError(f"member {name!r} is not where the previous one ended")
                _check_local(local, name, crc, size, buf)
                digest.update(_record(name, crc, size, offset))
            if local.tell() != cd_offset:
                raise EopackError("data between the last member and the central directory")
    except (EopackError, struct.error, OSError) as exc:
        raise EopackError(f"{path}: the zip just written fails its check: {exc}") from None
    if digest.digest() != expected:
        raise EopackError(f"{path}: central directory does not match the members written")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def write_sha256sums(
    paths: Sequence[str | Path], dest: str | Path, stamps: str | Path | None = None
) -> None:
    """``SHA256SUMS`` beside the files (``sha256sum -c`` format: ``<hex>  <name>``, by name).

    A file with a stamp in ``stamps`` that still counts (the zips, from :func:`zip_dataset`,
    unchanged since; see :mod:`eopack.stamps`) is not read: on the release, 16 GB less to read
    back from disk.
    """
    dest = Path(dest)
    lines = []
    for path in sorted(map(Path, paths), key=lambda p: p.name):
        if path.resolve().parent != dest.resolve().parent:
            raise EopackError(f"{path}: not beside {dest}")
        stamped = stamped_digest(path, "sha256", stamps) if stamps is not None else None
        if stamped is not None:
            log.info("%s: SHA-256 from its stamp", path)
        lines.append(f"{stamped or _sha256(path)}  {path.name}\n")
    atomic_write_bytes(dest, "".join(lines).encode("utf-8"))
