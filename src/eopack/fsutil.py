"""File writes: atomic ones (a reader or an interrupted run never sees half a file), and the
syscall-lean small-file helpers the dataset stages use inside folders they rename into place."""

from __future__ import annotations

import fcntl
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
