"""Dataset zips (deterministic, stored, checked by a streaming re-read, stamped) and SHA256SUMS."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from eopack.archive import DeterministicZipWriter
from eopack.bigearthnet import package
from eopack.bigearthnet.package import (
    _check_written,
    _records_digest,
    write_sha256sums,
    zip_dataset,
)
from eopack.errors import EopackError
from eopack.stamps import stamped_digest


def tree(root: Path, products: dict[str, int], folder: str = "rgb") -> dict[str, bytes]:
    """``products[p]`` fake PNGs per product under ``root/folder/p``; member name -> bytes."""
    files = {}
    for product, count in products.items():
        where = root / folder / product
        where.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            name = f"{product}_{i // 10}_{i % 10}.png"
            data = b"\x89PNG" + f"{product}{i}".encode() * (i % 7 + 1)
            (where / name).write_bytes(data)
            files[f"{folder}/{product}/{name}"] = data
    return files


def test_zip_holds_the_listed_products_pngs_sorted_stored_and_rebuilds_identically(tmp_path):
    files = tree(tmp_path, {"P_B": 12, "P_A": 3})
    tree(tmp_path, {"P_STALE": 2})  # a folder of an earlier selection: not in the list
    (tmp_path / "rgb" / "P_A" / ".snakemake_timestamp").write_bytes(b"")
    (tmp_path / "rgb" / "P_A" / "notes.txt").write_bytes(b"x")
    dest = tmp_path / "bigearthnet_pngs.zip"
    assert zip_dataset(tmp_path, "rgb", ["P_B", "P_A"], dest) == 15
    with zipfile.ZipFile(dest) as archive:
        assert archive.namelist() == sorted(files)
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert archive.read(info) == files[info.filename]
    first = hashlib.sha256(dest.read_bytes()).hexdigest()
    os.utime(tmp_path / "rgb" / "P_A" / "P_A_0_0.png", (0, 0))  # mtimes do not matter
    zip_dataset(tmp_path, "rgb", ["P_A", "P_B"], dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == first
    tested = subprocess.run(["unzip", "-t", str(dest)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_nothing_to_zip_or_a_missing_product_is_an_error_and_leaves_no_file(tmp_path):
    tree(tmp_path, {"P_A": 0})
    dest = tmp_path / "out" / "x.zip"
    with pytest.raises(EopackError, match="no PNGs to zip"):
        zip_dataset(tmp_path, "rgb", ["P_A"], dest)
    with pytest.raises(EopackError, match="P_Z: missing; render product P_Z first"):
        zip_dataset(tmp_path, "rgb", ["P_Z"], dest)
    assert list(dest.parent.iterdir()) == []


def test_a_png_vanishing_mid_zip_is_an_error_and_the_reader_thread_ends(tmp_path, monkeypatch):
    """PNGs are read a few batches ahead in a thread: an error there reaches the job, stops the
    reader and leaves no zip (many batches, so the reader is ahead when it happens)."""
    tree(tmp_path, {"P_A": 150, "P_B": 150})
    real_read = package.read_small_file

    def read_or_vanish(path: str) -> bytes | None:  # deleted between listing and reading
        return None if path.endswith("P_B_0_9.png") else real_read(path)

    monkeypatch.setattr(package, "read_small_file", read_or_vanish)
    with pytest.raises(EopackError, match=r"P_B_0_9\.png: vanished while zipping"):
        zip_dataset(tmp_path, "rgb", ["P_A", "P_B"], tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert [t for t in threading.enumerate() if t.name == "zip-read-ahead"] == []


def test_more_than_65535_members_get_zip64_end_records_and_pass_the_check(tmp_path):
    tree(tmp_path, {"P_A": 33_000, "P_B": 33_000}, folder="mask")
    dest = tmp_path / "many.zip"
    assert zip_dataset(tmp_path, "mask", ["P_A", "P_B"], dest) == 66_000
    data = dest.read_bytes()
    assert b"PK\x06\x06" in data[-200:]  # ZIP64 end of central directory record
    with zipfile.ZipFile(dest) as archive:
        assert len(archive.infolist()) == 66_000


def written(tmp_path: Path) -> tuple[Path, int, bytes]:
    path = tmp_path / "w.zip"
    with path.open("wb") as handle, DeterministicZipWriter(handle, deflate_level=0) as writer:
        for i in range(3):
            writer.add(f"rgb/P/P_0_{i}.png", 100, [bytes([i]) * 100])
    return path, 3, _records_digest(writer.members)


def test_the_streaming_check_passes_a_good_zip_and_names_what_is_wrong(tmp_path):
    path, count, digest = written(tmp_path)
    _check_written(path, count, digest)
    good = path.read_bytes()
    cases = {
        "data": (good.replace(bytes([1]) * 100, bytes([1]) * 99 + b"\2"), "fails its CRC"),
        "cut": (good[:-30], "end-of-central-directory"),
        "count": (good, "3 entries, 4 written"),
        "name": (good.replace(b"P_0_2.png", b"P_0_9.png", 1), "local header of"),
    }
    for what, (data, words) in cases.items():
        path.write_bytes(data)
        with pytest.raises(EopackError, match=words):
            _check_written(path, count + (what == "count"), digest)
    # both copies of the name changed consistently: only the writer's digest can tell
    path.write_bytes(good.replace(b"P_0_2.png", b"P_0_9.png"))
    with pytest.raises(EopackError, match="does not match the members written"):
        _check_written(path, count, digest)


def test_sha256sums_lists_the_files_beside_it_and_verifies(tmp_path):
    for name, data in (("b.zip", b"zip"), ("a.csv", b"id\n"), ("classes.json", b"{}\n")):
        (tmp_path / name).write_bytes(data)
    names = ["b.zip", "classes.json", "a.csv"]
    write_sha256sums([tmp_path / n for n in names], tmp_path / "SHA256SUMS")
    lines = (tmp_path / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    assert [line.split("  ")[1] for line in lines] == sorted(names)
    assert lines[0] == hashlib.sha256(b"id\n").hexdigest() + "  a.csv"
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_bytes(b"x")
    with pytest.raises(EopackError, match="not beside"):
        write_sha256sums([tmp_path / "sub" / "x"], tmp_path / "SHA256SUMS")


def test_a_zip_is_stamped_with_its_sha256_and_sha256sums_reads_it_only_while_it_holds(tmp_path):
    tree(tmp_path, {"P_A": 30})
    dest, stamps = tmp_path / "bigearthnet_pngs.zip", tmp_path / "stamps"
    zip_dataset(tmp_path, "rgb", ["P_A"], dest, stamps)
    (tmp_path / "index.csv").write_bytes(b"patch_id\n")
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    assert stamped_digest(dest, "sha256", stamps) == digest  # the bytes as written, and on disk

    reads: list[str] = []
    real = package._sha256

    def counted(path: Path) -> str:
        reads.append(path.name)
        return real(path)

    sums = tmp_path / "SHA256SUMS"
    files = [dest, tmp_path / "index.csv"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(package, "_sha256", counted)
        write_sha256sums(files, sums, stamps)
        assert reads == ["index.csv"]  # the zip was not read again
        assert sums.read_text().splitlines()[0] == f"{digest}  bigearthnet_pngs.zip"

        # Changed after it was stamped (same size, new mtime): hashed again, the stamp ignored.
        data = bytearray(dest.read_bytes())
        data[-30] ^= 0xFF
        dest.write_bytes(bytes(data))
        reads.clear()
        write_sha256sums(files, sums, stamps)
        assert sorted(reads) == ["bigearthnet_pngs.zip", "index.csv"]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_failed_zip_leaves_no_stamp(tmp_path):
    stamps = tmp_path / "stamps"
    with pytest.raises(EopackError, match="missing"):
        zip_dataset(tmp_path, "rgb", ["P_NONE"], tmp_path / "x.zip", stamps)
    assert not stamps.exists() and not (tmp_path / "x.zip").exists()
