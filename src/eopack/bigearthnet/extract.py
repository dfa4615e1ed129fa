"""Stream BigEarthNet's ``.tar.zst`` archives: read only the members we need, never unpack it all.

The archives (``BigEarthNet-S2.tar.zst``, ``BigEarthNet-S1.tar.zst``, ``Reference_Maps.tar.zst``)
are single tar streams compressed with zstd. :func:`iter_members` decompresses them with
``zstandard``'s stream reader and walks the tar headers itself, yielding ``(name, bytes)`` for the
wanted regular files in archive order; unwanted members are skipped inside the decompressed
buffer, nothing is listed or kept, so memory stays flat (a few MiB) for any archive size.
:func:`extract_archive` writes the wanted members under a destination in the archive's own layout
(``<Top>/<product>/<patch_id>/<patch_id>_<band>.tif``).

Why a tar-header reader of our own (the ``_Stream``/``_walk`` part, ~200 lines): measured on
5,000 real-format patches (real TIFF sizes, 13 GNU long-name members per patch, zstd level 6),
CPU µs per patch on one core (min-median of 3-5 runs): zstd decompression alone 200-207, this
reader 300-309, ``libarchive-c`` (C libarchive, reads tar.zst natively) 295-308, stdlib
``tarfile`` mode ``r|`` with ``.members`` cleared 684-756 (2,000+ with ``bufsize=1 MiB``).
libarchive is as fast, but needs a new PyPI dependency plus the system C library, and accepts a
tar stream that stops at a member boundary without the end-of-archive block (a ``tar c | zstd``
whose ``tar`` died) as complete. This reader is 2.4x faster than ``tarfile``, within ~100 µs of
the zstd floor, needs nothing new and refuses that case. Scope is what GNU tar (BigEarthNet) and
Python/POSIX writers produce: ustar (with ``prefix``), GNU long names (``L``/``K``), PAX ``x``
headers (``path``, ``size``; ``g`` headers are skipped), octal and base-256 sizes; every header's
checksum is verified. Tests flip random bytes in headers and in compressed data: the result is
always a clear :class:`EopackError` or a safe read.

Safety and bad input (a dataset archive is regular files and folders; anything else means it is
not the archive we expect, so these are errors, not skips):

* member names that are absolute or have a ``..`` segment -> error naming archive and member;
* symbolic and hard links, devices, FIFOs, sparse and unknown member types -> error;
* folders -> counted skip (they are recreated as needed); unwanted files -> counted skip;
* the stream ends before the tar end-of-archive block (zstd frame cut, tar data cut, or a tar
  that simply lacks its end blocks) -> error saying how far it got. A stream cannot tell "complete
  but unterminated" from "cut at a member boundary", so we never guess: nothing is silently lost;
* corrupt zstd data or a header whose checksum fails -> error with the tar offset.

``zstandard``'s stream reader does not report a zstd frame cut short (it just ends), so the tar
end-of-archive block is what proves the stream complete; a cut that spares it loses only the
frame's checksum or tar padding, never a member. Frame checksums (the zstd CLI writes them) are
verified by libzstd.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import threading
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from eopack.errors import EopackError
from eopack.fsutil import write_new_file
from eopack.prefetch import prefetch

log = logging.getLogger(__name__)

#: Bands extracted by default: what the RGB rendering needs.
DEFAULT_BANDS: tuple[str, ...] = ("B02", "B03", "B04")
#: Band names found in BigEarthNet v2 patch file names (S2 bands, S1 polarisations).
KNOWN_BANDS = frozenset(
    ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "VV", "VH"]
)
REFERENCE_MAP_SUFFIX = "_reference_map.tif"
#: Top folder of the reference maps archive (the S2 and S1 archives have their own).
REFERENCE_MAPS_TOP = "Reference_Maps"
#: Bytes asked of the zstd reader at a time: large enough that Python overhead vanishes.
CHUNK = 1 << 20
#: Decompressed chunks the read-ahead thread may hold ready (memory: READ_AHEAD * CHUNK).
READ_AHEAD = 2
#: A wanted member is held in memory whole; BigEarthNet's largest file is ~60 KB.
MAX_MEMBER_SIZE = 64 << 20
#: Long-name and PAX headers above this are corrupt (PATH_MAX is 4 KiB).
MAX_META_SIZE = 1 << 20

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_REGULAR = frozenset(b"0\x007")  # regular file; NUL is pre-POSIX; 7 is "contiguous" (= regular)
_DIRECTORY = ord("5")
_GNU_LONGNAME, _GNU_LONGLINK = ord("L"), ord("K")
_PAX_HEADER, _PAX_GLOBAL = ord("x"), ord("g")
_REFUSED_TYPES = {
    ord("1"): "hard link",
    ord("2"): "symbolic link",
    ord("3"): "character device",
    ord("4"): "block device",
    ord("6"): "FIFO",
    ord("S"): "GNU sparse file",
    ord("M"): "multi-volume continuation",
    ord("V"): "volume label",
    ord("D"): "GNU dump directory",
    ord("N"): "old GNU long-name record",
}
_POSIX_MAGIC = b"ustar\x0000"
_MAX_HEADER_SUM = _BLOCK * 255
_ADLER_MOD = 65521


@dataclass
class ExtractStats:
    """What a pass over an archive saw and did; logged, and returned so callers can report it."""

    archive: str
    members: int = 0
    extracted: int = 0
    bytes_written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        """Count one member left out, by reason (``directory``, ``not wanted``)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        """One log line: counts and skip reasons."""
        skips = ", ".join(f"{n:,} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return (
            f"{self.archive}: {self.members:,} members, {self.extracted:,} extracted "
            f"({self.bytes_written:,} bytes); skipped: {skips}"
        )


def member_filter(
    bands: Collection[str] = DEFAULT_BANDS, reference_maps: bool = True
) -> Callable[[str], bool]:
    """Predicate for ``<Top>/<product>/<patch_id>/<patch_id>_<band>.tif`` (and reference maps).

    It matches the layout exactly, so a stray file with a band-like name elsewhere is not taken.
    """
    unknown = sorted(set(bands) - KNOWN_BANDS)
    if unknown:
        raise EopackError(
            f"unknown BigEarthNet band(s) {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(KNOWN_BANDS))}"
        )
    suffixes = {f"_{band}.tif" for band in bands}
    if reference_maps:
        suffixes.add(REFERENCE_MAP_SUFFIX)
    frozen = frozenset(suffixes)

    def wanted(name: str) -> bool:
        parts = name.split("/")
        if len(parts) != 4:
            return False
        patch, leaf = parts[2], parts[3]
        return leaf.startswith(patch) and leaf[len(patch) :] in frozen

    return wanted


class _Stream:
    """Exact-size reads and skips over the decompressed tar stream, with the offset for messages."""

    __slots__ = ("_base", "_buf", "_label", "_pos", "_raw")

    def __init__(self, raw: BinaryIO | _Chunks, label: str) -> None:
        self._raw = raw
        self._label = label
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]

    @property
    def offset(self) -> int:
        """Bytes of tar data consumed so far."""
        return self._base + self._pos

    def _more(self) -> bytes:
        try:
            chunk = self._raw.read(CHUNK)
        except zstandard.ZstdError as exc:
            raise EopackError(
                f"{self._label}: zstd decompression failed after {self.offset:,} bytes of tar "
                f"data ({exc}); the file is corrupt or not a .tar.zst archive: fetch it again"
            ) from None
        self._base += len(self._buf)
        self._buf = chunk
        self._pos = 0
        return chunk

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes, or fewer only at the end of the stream."""
        pos, buf = self._pos, self._buf
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        have = len(buf) - pos
        self._pos = len(buf)
        while have < n:
            chunk = self._more()
            if not chunk:
                break
            piece = chunk[: n - have]
            parts.append(piece)
            have += len(piece)
            self._pos = len(piece)
        return b"".join(parts)

    def skip(self, n: int) -> int:
        """Discard the next ``n`` bytes; returns how many there were."""
        end = self._pos + n
        if end <= len(self._buf):
            self._pos = end
            return n
        left = end - len(self._buf)
        self._pos = len(self._buf)
        while left > 0:
            chunk = self._more()
            if not chunk:
                return n - left
            step = min(left, len(chunk))
            self._pos = step
            left -= step
        return n

    def drain(self) -> int:
        """Read to the end (verifies the rest of the zstd data); returns non-zero bytes seen."""
        nonzero = len(self._buf) - self._pos - self._buf.count(0, self._pos)
        while chunk := self._more():
            nonzero += len(chunk) - chunk.count(0)
        return nonzero


class _Chunks:
    """``read()`` over decompressed chunks made ``READ_AHEAD`` ahead by a thread (prefetch):
    libzstd releases the GIL while it decompresses, so on two cores decompression (~40 % of an
    extraction) overlaps the tar walk and the file writes; on one core it costs one hand-off per
    MiB. A decompression error is raised at the read that would have returned its chunk."""

    def __init__(self, raw: BinaryIO) -> None:
        self._chunks = prefetch(iter(lambda: raw.read(CHUNK), b""), READ_AHEAD, "zstd-read-ahead")

    def read(self, _size: int = CHUNK) -> bytes:
        """The next decompressed chunk; ``b""`` at the end."""
        return next(self._chunks, b"")

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._chunks.close()  # type: ignore[attr-defined]


def _octal(field: bytes) -> int:
    """A tar numeric field: octal digits (NUL/space padded) or GNU base-256 (high bit set)."""
    if field[-1] == 0 and field[:-1].isdigit():  # what GNU tar and Python write: digits, NUL
        return int(field[:-1], 8)  # raises ValueError on 8 or 9, as below
    if field[0] & 0x80:
        if field[0] != 0x80:
            raise ValueError("negative base-256 number")
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip() or b"0"
    if not digits.isdigit():  # int() would also take a sign, '_' or '0o'
        raise ValueError(f"bad number field {field!r}")
    return int(digits, 8)


def _checksum_ok(header: bytes) -> bool:
    """Exact tar checksum test (sum of the bytes, checksum field read as spaces), done in C.

    ``sum(header)`` costs ~3 µs a header in Python (26 headers per patch); instead the byte sum
    is checked modulo 65521 (zlib's Adler-32 low half is ``1 + sum``). That is exact when both
    sums are below 65521, which a header with at most 256 non-zero bytes guarantees (every tar
    header of BigEarthNet: GNU long names keep the name fields short). Otherwise it is also
    checked modulo 255 (a base-256 number is congruent to its digit sum modulo 255): both
    numbers are below 255 * 65521, so by the Chinese remainder theorem matching both residues
    is matching exactly.
    """
    field = header[148:156]
    # GNU tar and Python write "%06o\0 ": read that directly, anything else the long way.
    stored = int(field[:6], 8) if field[6:] == b"\0 " and field[:6].isdigit() else _octal(field)
    if not 0 <= stored <= _MAX_HEADER_SUM:
        return False
    actual = stored - 8 * 32 + sum(field)  # sum of the header's bytes as they are
    if actual < 0:
        return False
    if (zlib.adler32(header) & 0xFFFF) != (1 + actual) % _ADLER_MOD:
        return False
    if actual < _ADLER_MOD and header.count(0) >= _BLOCK - 256:
        return True  # both sums are below 65521 (at most 256 bytes of at most 255)
    return int.from_bytes(header, "little") % 255 == actual % 255


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """``"<len> <key>=<value>\\n"`` records of a PAX header."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos]:
        space = data.find(b" ", pos, pos + 20)
        if space < 0:
            raise ValueError("PAX record without length")
        if not data[pos:space].isdigit():
            raise ValueError("bad PAX record length")
        length = int(data[pos:space])
        record = data[space + 1 : pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n"):
            raise ValueError("bad PAX record length")
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            raise ValueError("PAX record without '='")
        records[key] = value
        pos += length
    return records


def _clean_name(name: str, is_dir: bool, label: str) -> str:
    """``name`` without ``./``, empty segments or trailing ``/``; refuses absolute and ``..``."""
    if name.startswith("/"):
        raise EopackError(
            f"{label}: member {name!r} has an absolute path; a dataset archive has relative "
            "names only, so this is not the archive we expect: refusing to extract"
        )
    if ".." not in name and "//" not in name and name[0] != "." and name[-1] != "/":
        return name
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise EopackError(
            f"{label}: member {name!r} points outside the destination ('..'); this is not the "
            "archive we expect: refusing to extract"
        )
    if not parts and not is_dir:
        raise EopackError(f"{label}: a file member has an empty name {name!r}; archive corrupt")
    return "/".join(parts)


def _open(source: str | os.PathLike[str] | BinaryIO) -> tuple[BinaryIO, str, bool]:
    if isinstance(source, str | os.PathLike):
        try:
            return open(source, "rb"), os.fspath(source), True  # closed by iter_members
        except FileNotFoundError:
            raise EopackError(f"archive {os.fspath(source)} not found") from None
    return source, str(getattr(source, "name", "<stream>")), False


def iter_members(
    source: str | os.PathLike[str] | BinaryIO,
    wanted: Callable[[str], bool],
    *,
    stats: ExtractStats | None = None,
    max_member_size: int = MAX_MEMBER_SIZE,
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` of the wanted regular files of a ``.tar.zst``, in archive order.

    ``source`` is a path or a binary stream of the compressed archive. Names are normalised
    (no ``./``). ``stats``, if given, is updated as members go by. Raises :class:`EopackError`
    for unsafe members, truncation and corruption (see the module docstring).
    """
    fileobj, label, owned = _open(source)
    if stats is None:
        stats = ExtractStats(archive=label)
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 27)
    try:
        with dctx.stream_reader(
            fileobj, read_size=CHUNK, read_across_frames=True, closefd=False
        ) as raw:
            chunks = _Chunks(raw)
            try:
                yield from _walk(_Stream(chunks, label), wanted, stats, max_member_size, label)
            finally:
                chunks.close()
    finally:
        if owned:
            fileobj.close()


def _walk(
    stream: _Stream,
    wanted: Callable[[str], bool],
    stats: ExtractStats,
    max_member_size: int,
    label: str,
) -> Iterator[tuple[str, bytes]]:
    """The tar header loop behind :func:`iter_members`."""
    take, skip = stream.take, stream.skip
    long_name: bytes | None = None
    pax: dict[bytes, bytes] = {}

    def truncated(where: str) -> EopackError:
        return EopackError(
            f"{label}: the archive ends{where} after {stream.offset:,} bytes of tar data "
            f"({stats.members:,} members read), without the tar end-of-archive block: the "
            "file is truncated or was written incompletely; fetch it again"
        )

    def corrupt(at: int, why: str) -> EopackError:
        return EopackError(
            f"{label}: corrupt tar header at offset {at:,} ({why}) after {stats.members:,} "
            "members; the archive is damaged: fetch it again"
        )

    while True:
        at = stream.offset
        header = take(_BLOCK)
        if len(header) < _BLOCK:
            raise truncated(" inside a member header" if header or long_name or pax else "")
        if header == _ZERO_BLOCK:
            if long_name is not None or pax:
                raise corrupt(at, "end of archive right after a long-name/PAX header")
            break
        try:
            if not _checksum_ok(header):
                raise corrupt(at, "checksum mismatch")
            size = _octal(header[124:136])
        except ValueError as exc:
            raise corrupt(at, str(exc)) from None
        kind = header[156]
        padded = size + (-size % _BLOCK)

        if kind in (_GNU_LONGNAME, _GNU_LONGLINK, _PAX_HEADER, _PAX_GLOBAL):
            if size > MAX_META_SIZE:
                raise corrupt(at, f"{size:,}-byte long-name/PAX header")
            data = take(padded)
            if len(data) < padded:
                raise truncated(" inside a long-name/PAX header")
            data = data[:size]
            if kind == _GNU_LONGNAME:
                long_name = data.split(b"\0", 1)[0]
            elif kind == _PAX_HEADER:
                try:
                    pax = _pax_records(data)
                except ValueError as exc:
                    raise corrupt(at, str(exc)) from None
            continue  # K (link target) and g (global) headers change nothing we use

        if b"path" in pax:
            raw_name = pax[b"path"]
        elif long_name is not None:
            raw_name = long_name
        else:
            raw_name = header[:100].split(b"\0", 1)[0]
            if header[257:265] == _POSIX_MAGIC and header[345] != 0:
                raw_name = header[345:500].split(b"\0", 1)[0] + b"/" + raw_name
        if b"size" in pax:
            if not pax[b"size"].isdigit():
                raise corrupt(at, f"bad PAX size {pax[b'size']!r}")
            size = int(pax[b"size"])
            padded = size + (-size % _BLOCK)
        sparse = any(key.startswith(b"GNU.sparse") for key in pax) if pax else False
        long_name, pax = None, {}
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise corrupt(at, f"member name {raw_name!r} is not UTF-8") from None
        if not name or "\0" in name:
            raise corrupt(at, f"member name {name!r} is empty or has a NUL byte")
        name = _clean_name(name, kind == _DIRECTORY, label)
        stats.members += 1

        if kind in _REGULAR and not sparse:
            if wanted(name):
                if size > max_member_size:
                    raise EopackError(
                        f"{label}: member {name!r} is {size:,} bytes, more than the "
                        f"{max_member_size:,} a dataset file can be; not the archive we expect"
                    )
                data = take(size)
                if len(data) < size or skip(padded - size) < padded - size:
                    raise truncated(f" inside member {name!r}")
                yield name, data
                continue
            stats.skip("not wanted")
        elif kind == _DIRECTORY:
            stats.skip("directory")
        else:
            what = (
                "GNU sparse file"
                if sparse
                else _REFUSED_TYPES.get(kind, f"member of unknown type {chr(kind)!r}")
            )
            link = header[157:257].split(b"\0", 1)[0].decode("utf-8", "replace")
            target = f" to {link!r}" if kind in (ord("1"), ord("2")) else ""
            raise EopackError(
                f"{label}: member {name!r} is a {what}{target}; a dataset archive holds only "
                "regular files and folders, so this is not the archive we expect: refusing "
                "to extract"
            )
        if skip(padded) < padded:
            raise truncated(f" inside member {name!r}")

    trailing = stream.drain()
    if trailing:
        log.warning(
            "%s: %s non-zero bytes after the tar end-of-archive block ignored", label, trailing
        )


class _FileWriter:
    """Creates folders and writes files in a background thread, in batches of ~256 KiB.

    On two cores this takes the file system calls (about half of an extraction on ext4: ~50 µs
    per file created) off the thread that parses the tar stream; they release the GIL. On one
    core it costs a hand-off per batch. The first error stops the writing and is raised by the
    next :meth:`add` or by leaving the ``with`` block, which always waits for the thread, so
    nothing is written after the caller cleans up.
    """

    BATCH_BYTES = 1 << 18
    QUEUED = 4

    def __init__(self, what: str) -> None:
        self._what = what
        self._queue: queue.Queue[list[tuple[str, bytes]] | None] = queue.Queue(self.QUEUED)
        self._batch: list[tuple[str, bytes]] = []
        self._size = 0
        self._error: EopackError | None = None
        self._thread = threading.Thread(target=self._run, name="extract-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_dir = ""
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the caller is stopping
            for path, data in batch:
                try:
                    folder = os.path.dirname(path)
                    if folder != last_dir:
                        os.makedirs(folder, exist_ok=True)
                        last_dir = folder
                    write_new_file(path, data)
                except OSError as exc:
                    self._error = EopackError(f"{self._what}: {exc}")
                    break

    def add(self, path: str, data: bytes) -> None:
        """Queue ``data`` for ``path`` (its folder is created as needed)."""
        if self._error is not None:
            raise self._error
        self._batch.append((path, data))
        self._size += len(data)
        if self._size >= self.BATCH_BYTES:
            self._queue.put(self._batch)
            self._batch, self._size = [], 0

    def __enter__(self) -> _FileWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None and self._batch:
            self._queue.put(self._batch)
        if exc_type is not None and self._error is None:
            self._error = EopackError("stopped")  # the thread only drains from here on
        self._queue.put(None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


def extract_archive(
    archive: str | os.PathLike[str],
    dest_root: str | os.PathLike[str],
    wanted_bands: Collection[str] = DEFAULT_BANDS,
    reference_maps: bool = True,
    *,
    wanted: Callable[[str], bool] | None = None,
) -> ExtractStats:
    """Extract the wanted members of ``archive`` under ``dest_root`` in the archive's own layout.

    All-or-nothing, so an interrupted run never looks complete (to Snakemake or to a person):
    files are written under a hidden staging folder ``dest_root/.<archive name>.part`` and each
    top folder (``BigEarthNet-S2``, ``Reference_Maps``...) is renamed into place only after the
    whole archive was read without error; a failed run removes its staging folder, a killed one
    leaves it hidden and the next run clears it. An existing top folder is replaced. The tar
    order is not assumed to be sorted. ``wanted`` overrides the band/reference-map filter.
    """
    archive = Path(archive)
    dest = Path(dest_root)
    predicate = wanted or member_filter(wanted_bands, reference_maps)
    staging = dest / f".{archive.name}.part"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    stats = ExtractStats(archive=str(archive))
    root = os.fspath(staging)
    try:
        with _FileWriter(f"{archive}: cannot write a member under {dest}") as writer:
            for name, data in iter_members(archive, predicate, stats=stats):
                writer.add(os.path.join(root, name), data)
                stats.extracted += 1
                stats.bytes_written += len(data)
        if not stats.extracted:
            raise EopackError(
                f"{archive}: none of its {stats.members:,} members matched the wanted files "
                f"(bands {', '.join(wanted_bands) or 'none'}, reference maps "
                f"{'yes' if reference_maps else 'no'}); is it a BigEarthNet v2 archive?"
            )
        for top in sorted(os.listdir(staging)):
            _replace(staging / top, dest / top)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("%s -> %s", stats.summary(), dest)
    return stats


def extract_dataset_archive(
    archive: str | Path, out_dir: str | Path, bands: Collection[str] = ()
) -> ExtractStats:
    """Extract what the dataset needs from one release archive into ``out_dir``.

    ``out_dir``'s name is the archive's top folder (``BigEarthNet-S2``, ``Reference_Maps``):
    only members under it are taken, so an archive cannot write next to it. From the reference
    maps archive: the maps; from an S2 archive: ``bands``. All or nothing (see extract_archive).
    """
    out_dir = Path(out_dir)
    maps = out_dir.name == REFERENCE_MAPS_TOP
    chosen = () if maps else tuple(bands)
    if not maps and not chosen:
        raise EopackError(f"{archive}: no bands chosen to extract")
    prefix = f"{out_dir.name}/"
    inner = member_filter(chosen, reference_maps=maps)

    def wanted(name: str) -> bool:
        return name.startswith(prefix) and inner(name)

    return extract_archive(
        archive, out_dir.parent, wanted_bands=chosen, reference_maps=maps, wanted=wanted
    )


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing an old ``dst`` (moved aside first, then deleted)."""
    old = dst.with_name(f".{dst.name}.old")
    if dst.exists() or dst.is_symlink():
        _remove(old)
        os.replace(dst, old)
    os.replace(src, dst)
    _remove(old)


def _remove(path: Path) -> None:
    """Delete a file, link or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
