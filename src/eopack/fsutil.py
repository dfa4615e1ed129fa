"""File writes: atomic ones (a reader or an interrupted run never sees half a file), the
syscall-lean small-file helpers the dataset stages use inside folders they rename into place,
and the sliced writes of big files (downloads, zips) that keep the kernel's page cache fast
under hypervisors that take free memory back."""

from __future__ import annotations

import ctypes
import fcntl
import functools
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from eopack.errors import EopackError


def _file_mode() -> int:
    """0666 minus the process umask: what ``open()`` would give (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def new_temp(path: Path) -> tuple[int, str]:
    """A hidden temporary sibling of ``path`` with normal file permissions, for a later rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    return fd, tmp


@contextmanager
def atomic_output(path: str | Path, text: bool = False) -> Iterator[IO[Any]]:
    """A file object writing a hidden temporary sibling of ``path``; on a clean exit it is
    flushed, fsynced and renamed to ``path``, on an error deleted (``path`` stays as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp(path)
    try:
        with (
            os.fdopen(fd, "w", encoding="utf-8", newline="") if text else os.fdopen(fd, "wb")
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_output(path) as handle:
        handle.write(data)


def write_if_changed(path: str | Path, data: bytes) -> bool:
    """Atomically write ``data`` unless ``path`` already holds exactly it; True if written.

    Keeping an unchanged file untouched keeps its mtime, so downstream jobs are not re-run.
    """
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


def write_json(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Atomic JSON with sorted keys and a trailing newline: reports and receipts diff well."""
    atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


@contextmanager
def locked_partial(path: Path, shown: str) -> Iterator[int]:
    """Open (create) a ``.part`` file read/write and exclusively: two writers would interleave.

    The lock goes with the descriptor, so the kernel releases it after a kill too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EopackError(f"{shown}: {path} is being downloaded by another process") from None
        yield fd
    finally:
        os.close(fd)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def write_new_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0644 less umask) in three syscalls.

    For the many small files of a dataset (tens of KB each) a buffered ``open()`` object costs
    more than the write. Not atomic: callers stage whole folders and rename them into place.
    """
    fd = os.open(path, _NEW_FILE, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def read_small_file(path: str) -> bytes | None:
    """The bytes of a small file, or None if it does not exist (see :func:`write_new_file`)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 17):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


#: Bytes per ``write``/``pwrite`` of a big file where :func:`write_slice` says to slice.
WRITE_SLICE = 32 * 1024
_VIRTIO_DEVICES = Path("/sys/bus/virtio/devices")
_VIRTIO_ID_BALLOON = "0x0005"
_VIRTIO_BALLOON_F_REPORTING = 5


def _free_page_reporting(devices: Path = _VIRTIO_DEVICES) -> bool:
    """True when a virtio balloon with free page reporting is attached (Firecracker and other
    KVM hosts that hand the guest's free memory back to the host)."""
    try:
        for device in devices.iterdir():
            if (device / "device").read_text().strip() != _VIRTIO_ID_BALLOON:
                continue
            features = (device / "features").read_text().strip()  # "0110...": bit 0 first
            if features[_VIRTIO_BALLOON_F_REPORTING : _VIRTIO_BALLOON_F_REPORTING + 1] == "1":
                return True
    except OSError:
        return False
    return False


@functools.cache
def write_slice() -> int | None:
    """The largest single write of a big file: :data:`WRITE_SLICE` under free page reporting,
    else None (no limit).

    Why: Linux gives a buffered write a page-cache folio as large as the write (up to 2 MiB).
    Folios above 32 KiB come from the high-order free blocks that free page reporting has just
    handed to the hypervisor, and touching those makes the host fault them back in: on the
    machine the benches run on (Firecracker, reporting order 9), 512 MB written in 1 MiB
    writes took 0.10-0.13 s or, one run in three, 0.6-1.4 s of kernel time; in 32 KiB writes
    0.16-0.19 s (0.44 s at worst), since pages up to order 3 come from the per-CPU lists. Without
    reporting, slicing would only add ~0.1 s of CPU per GB, so it is not done.
    """
    return WRITE_SLICE if _free_page_reporting() else None


def pwrite_all(fd: int, data: Any, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (in :func:`write_slice` pieces)."""
    view = memoryview(data).cast("B")
    step = write_slice() or view.nbytes
    pos, end = 0, view.nbytes
    while pos < end:
        pos += os.pwrite(fd, view[pos : pos + step], offset + pos)


def write_all(fd: int, data: Any) -> None:
    """Write all of ``data`` at the file position (in :func:`write_slice` pieces)."""
    view = memoryview(data).cast("B")
    step = write_slice() or view.nbytes
    pos, end = 0, view.nbytes
    while pos < end:
        pos += os.write(fd, view[pos : pos + step])


#: Bytes of a durable big file written between two writeback starts (:func:`big_file_writer`).
WRITEBACK_WINDOW = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, no wait


@functools.cache
def _sync_file_range() -> Any:
    """libc's ``sync_file_range`` (Linux; not in the ``os`` module), or None where it is missing."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` of ``fd`` to disk, without
    waiting for it; False where that cannot be asked (not Linux, or refused: then a later fsync
    does all the work, as without this call)."""
    func = _sync_file_range()
    return func is not None and func(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


class _BigFileIO(io.FileIO):
    """A raw file whose writes go out in :func:`write_slice` pieces, fed to ``digest`` if given,
    and, if ``durable``, whose pages are sent to disk every :data:`WRITEBACK_WINDOW` bytes (see
    :func:`big_file_writer`)."""

    def __init__(self, fd: int, durable: bool, digest: Any = None) -> None:
        super().__init__(fd, "wb")
        self._durable = durable
        self._digest = digest
        self._written = 0
        self._synced = 0  # where the next writeback window starts

    def write(self, data: Any) -> int:  # type: ignore[override]
        size = memoryview(data).nbytes
        write_all(self.fileno(), data)
        if self._digest is not None:
            self._digest.update(data)  # hashlib lets other threads run meanwhile
        self._written += size
        if self._durable and self._written - self._synced >= WRITEBACK_WINDOW:
            if not start_writeback(self.fileno(), self._synced, self._written - self._synced):
                self._durable = False
            self._synced = self._written
        return size


def big_file_writer(
    fd: int, buffer_size: int = io.DEFAULT_BUFFER_SIZE, *, durable: bool = False, digest: Any = None
) -> IO[bytes]:
    """A buffered binary writer on ``fd`` (closes it) for a file of gigabytes (a zip), whose
    writes reach the kernel in :func:`write_slice` pieces.

    ``durable``: the caller will fsync the file, so its pages are sent to disk while it is
    written (:func:`start_writeback` every :data:`WRITEBACK_WINDOW`) and the fsync waits for the
    last window only. Without it the whole file is still in memory, dirty, when fsync is called
    (the kernel starts writing back after 30 s or at 10 % of RAM): on the bench machine the
    fsync of a 520 MB dataset zip took 0.6-1.5 s of the job's 2.3-3.6 s. It also keeps a big
    write from piling up dirty memory on a small instance.

    ``digest`` (a :mod:`hashlib` object) is fed every byte written, in order: for a file written
    front to back, its digest, with no second read of gigabytes.
    """
    if write_slice() is None and not durable and digest is None:
        return os.fdopen(fd, "wb", buffering=buffer_size)
    return io.BufferedWriter(_BigFileIO(fd, durable, digest), buffer_size)
