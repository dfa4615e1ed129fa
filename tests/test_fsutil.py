"""Big-file writes: sliced under free page reporting, byte-exact either way, hashed as written."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from eopack import fsutil
from eopack.archive import write_deterministic_zip


def _balloon(root: Path, name: str, device: str, features: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "device").write_text(device + "\n")
    (folder / "features").write_text(features + "\n")


def test_free_page_reporting_read_from_the_virtio_balloon_features(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    # Firecracker's balloon as this machine shows it: stats, deflate-on-OOM, reporting.
    _balloon(devices, "virtio0", "0x0005", "0110010100000000")
    _balloon(devices, "virtio1", "0x0002", "1111111111111111")  # a block device: not asked
    assert fsutil._free_page_reporting(devices)

    quiet = tmp_path / "quiet"
    _balloon(quiet, "virtio0", "0x0005", "0110000000000000")  # a balloon without reporting
    _balloon(quiet, "virtio1", "0x0002", "1111111111111111")
    assert not fsutil._free_page_reporting(quiet)
    assert not fsutil._free_page_reporting(tmp_path / "absent")  # no virtio bus at all


def _recorded(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """The length of every ``os.<name>`` call (the real call still happens)."""
    sizes: list[int] = []
    real = getattr(os, name)

    def call(fd: int, data: memoryview, *rest: int) -> int:
        sizes.append(memoryview(data).nbytes)
        return real(fd, data, *rest)

    monkeypatch.setattr(os, name, call)
    return sizes


@pytest.mark.parametrize("piece", [None, fsutil.WRITE_SLICE])
def test_big_writes_land_byte_exact_in_pieces_of_at_most_the_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int | None
) -> None:
    monkeypatch.setattr(fsutil, "write_slice", lambda: piece)
    data = os.urandom(3 * 1024 * 1024 + 123)
    limit = piece or len(data)

    path = tmp_path / "at-offset"
    sizes = _recorded(monkeypatch, "pwrite")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fsutil.pwrite_all(fd, data, 4096)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(4096) + data
    assert max(sizes) <= limit and sum(sizes) == len(data)
    assert len(sizes) == -(-len(data) // limit)

    sizes = _recorded(monkeypatch, "write")
    fd = os.open(tmp_path / "buffered", os.O_WRONLY | os.O_CREAT)
    with fsutil.big_file_writer(fd, 1 << 20) as handle:
        handle.write(b"head")
        handle.write(data)  # bigger than the buffer: goes straight to the raw file
        handle.write(memoryview(data)[:1000])
    assert (tmp_path / "buffered").read_bytes() == b"head" + data + data[:1000]
    if piece is not None:  # unsliced, the C file object writes without os.write
        assert sizes and max(sizes) <= piece


@pytest.mark.parametrize("piece", [None, fsutil.WRITE_SLICE])
@pytest.mark.parametrize("durable", [False, True])
def test_the_digest_of_a_big_file_is_fed_every_byte_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int | None, durable: bool
) -> None:
    monkeypatch.setattr(fsutil, "write_slice", lambda: piece)
    data = os.urandom(3 * 1024 * 1024 + 123)
    digest = hashlib.sha256()
    path = tmp_path / "hashed"
    with fsutil.big_file_writer(
        os.open(path, os.O_WRONLY | os.O_CREAT), 1 << 16, durable=durable, digest=digest
    ) as handle:
        for start in range(0, 4998, 7):  # small writes, gathered by the buffer
            handle.write(data[start : start + 7])
        handle.write(data)  # bigger than the buffer: straight to the raw file
        handle.write(memoryview(data)[100:70_000])
        handle.write(bytearray(b"tail"))
    written = path.read_bytes()
    assert written == data[:4998] + data + data[100:70_000] + b"tail"
    assert digest.hexdigest() == hashlib.sha256(written).hexdigest()


def test_a_zip_is_the_same_bytes_sliced_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "X.SAFE"
    (src / "measurement").mkdir(parents=True)
    (src / "measurement" / "a.tiff").write_bytes(os.urandom(5 * 1024 * 1024))
    (src / "manifest.safe").write_text("<xml/>" * 10000)
    digests = []
    for piece in (None, fsutil.WRITE_SLICE):
        monkeypatch.setattr(fsutil, "write_slice", lambda piece=piece: piece)
        out = tmp_path / f"{piece}.zip"
        write_deterministic_zip(src, out, "X.SAFE")
        digests.append(out.read_bytes())
        with zipfile.ZipFile(out) as archive:
            assert archive.testzip() is None
    assert digests[0] == digests[1]


def test_start_writeback_asks_the_kernel_and_leaves_the_bytes_alone(tmp_path: Path) -> None:
    path = tmp_path / "dirty"
    data = os.urandom(1 << 20)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, data)
        assert fsutil.start_writeback(fd, 0, len(data)) is (fsutil._sync_file_range() is not None)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    assert not fsutil.start_writeback(fd, 0, len(data))  # closed descriptor: refused, not raised


@pytest.mark.parametrize("piece", [None, fsutil.WRITE_SLICE])
def test_a_durable_big_file_is_sent_to_disk_window_by_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int | None
) -> None:
    monkeypatch.setattr(fsutil, "write_slice", lambda: piece)
    window = fsutil.WRITEBACK_WINDOW
    asked: list[tuple[int, int]] = []
    real = fsutil.start_writeback

    def spy(fd: int, offset: int, length: int) -> bool:
        asked.append((offset, length))
        return real(fd, offset, length)

    monkeypatch.setattr(fsutil, "start_writeback", spy)
    chunk = os.urandom(1 << 20)
    count = 3 * window // len(chunk) + 5  # 3 windows and a bit
    path = tmp_path / "big"
    with fsutil.big_file_writer(
        os.open(path, os.O_WRONLY | os.O_CREAT), 1 << 16, durable=True
    ) as f:
        for _ in range(count):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    assert path.read_bytes() == chunk * count
    # Contiguous windows from the start, each at least a window, none past what was written.
    assert [offset for offset, _ in asked] == [sum(n for _, n in asked[:i]) for i in range(3)]
    assert all(length >= window for _, length in asked)
    assert sum(n for _, n in asked) <= len(chunk) * count

    # Where the kernel refuses, it is asked once and the file is written all the same.
    asked.clear()
    monkeypatch.setattr(fsutil, "start_writeback", lambda *call: asked.append(call[1:]) or False)
    with fsutil.big_file_writer(
        os.open(path, os.O_WRONLY | os.O_TRUNC), 1 << 16, durable=True
    ) as f:
        for _ in range(count):
            f.write(chunk)
    assert path.read_bytes() == chunk * count
    assert asked == [(0, window)]


def test_a_safe_zip_is_synced_before_it_replaces_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "X.SAFE"
    src.mkdir()
    (src / "manifest.safe").write_text("<xml/>")
    out = tmp_path / "X.zip"
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        events.append(f"replace {b}")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_deterministic_zip(src, out, "X.SAFE")
    assert len(events) == 2 and events[1] == f"replace {out}"
    assert events[0].startswith(f"fsync {tmp_path}/.X.zip.") and events[0].endswith(".part")
