"""BigEarthNet archive extraction: real tar.zst archives (tarfile + zstandard) built from the
fixture patches, in the archive's own layout; safety, truncation, corruption, formats, memory."""

from __future__ import annotations

import io
import logging
import os
import random
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
import zstandard

from eopack.bigearthnet import extract
from eopack.bigearthnet.extract import (
    CHUNK,
    READ_AHEAD,
    ExtractStats,
    _FileWriter,
    extract_archive,
    iter_members,
    member_filter,
)
from eopack.errors import EopackError

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
S2_TOP, S1_TOP, MAPS_TOP = "BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps"
S2_PRODUCT = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
S2_PATCH = f"{S2_PRODUCT}_75_43"
RGB = ("B02", "B03", "B04")

# An entry: (name, bytes) for a regular file, (name, None) for a folder, or a ready TarInfo.
Entry = tuple[str, bytes | None] | tarfile.TarInfo


def fixture_files(top: str) -> dict[str, bytes]:
    """The fixture's files under ``top``, by archive name (``<Top>/<product>/<patch>/<file>``)."""
    return {
        path.relative_to(FIXTURES).as_posix(): path.read_bytes()
        for path in sorted((FIXTURES / top).rglob("*.tif"))
    }


def synthetic_s2(n_patches: int, products: int = 2) -> dict[str, bytes]:
    """The fixture S2 patch cloned under new patch ids (each file's bytes made unique)."""
    bands = {name.rsplit("_", 1)[1]: data for name, data in fixture_files(S2_TOP).items()}
    files: dict[str, bytes] = {}
    for i in range(n_patches):
        product = S2_PRODUCT[:-1] + "PQRS"[i % products]
        patch = f"{product}_{i // 100}_{i % 100}"
        for band, data in sorted(bands.items()):
            name = f"{S2_TOP}/{product}/{patch}/{patch}_{band}"
            files[name] = data[:-4] + i.to_bytes(4, "little")
    return files


def with_folders(files: dict[str, bytes]) -> list[Entry]:
    """Folder entries before their files, as GNU tar writes a tree."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for name, data in files.items():
        parts = name.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in seen:
                seen.add(folder)
                entries.append((folder, None))
        entries.append((name, data))
    return entries


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def tar_bytes(
    entries: Iterable[Entry], fmt: int = tarfile.GNU_FORMAT, terminate: bool = True
) -> bytes:
    """A real tar stream from Python's writer; ``terminate=False`` leaves out the end blocks."""
    out = io.BytesIO()
    archive = tarfile.open(fileobj=out, mode="w", format=fmt)  # noqa: SIM115 - close() = end blocks
    for entry in entries:
        if isinstance(entry, tarfile.TarInfo):
            archive.addfile(entry)
            continue
        name, data = entry
        info = tarfile.TarInfo(name)
        info.mtime = 1_700_000_000
        if data is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        else:
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    if terminate:
        archive.close()
    return out.getvalue()


def zst(raw: bytes, checksum: bool = True) -> bytes:
    """zstd level 6, like the published archives (the zstd CLI writes a checksum by default)."""
    return zstandard.ZstdCompressor(level=6, write_checksum=checksum).compress(raw)


def write_archive(path: Path, entries: Iterable[Entry], **kwargs: object) -> Path:
    path.write_bytes(zst(tar_bytes(entries, **kwargs)))  # type: ignore[arg-type]
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too), by relative name."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def wanted_of(files: dict[str, bytes], bands: Iterable[str] = RGB) -> dict[str, bytes]:
    suffixes = tuple(f"_{band}.tif" for band in bands)
    return {name: data for name, data in files.items() if name.endswith(suffixes)}


# --- what gets extracted -------------------------------------------------------------------


def test_extracts_only_wanted_bands_byte_identical_in_archive_layout(tmp_path, caplog):
    files = fixture_files(S2_TOP) | synthetic_s2(20)
    archive = write_archive(tmp_path / "BigEarthNet-S2.tar.zst", with_folders(files))
    dest = tmp_path / "extracted"
    with caplog.at_level(logging.INFO, logger="eopack"):
        stats = extract_archive(archive, dest)

    expected = wanted_of(files)
    assert tree(dest) == expected  # only B02-B04, same bytes, nothing hidden left behind
    real = f"{S2_TOP}/{S2_PRODUCT}/{S2_PATCH}/{S2_PATCH}_B03.tif"
    assert (dest / real).read_bytes() == (FIXTURES / real).read_bytes()
    assert sorted(os.listdir(dest)) == [S2_TOP]
    n_folders = 1 + 2 + 1 + 20  # top, two synthetic products + the fixture's, 21 patches
    assert stats == ExtractStats(
        archive=str(archive),
        members=len(files) + n_folders,
        extracted=len(expected),
        bytes_written=sum(map(len, expected.values())),
        skipped={"directory": n_folders, "not wanted": len(files) - len(expected)},
    )
    assert f"{len(expected):,} extracted" in caplog.text and "not wanted" in caplog.text


def test_reference_maps_and_s1_archives(tmp_path):
    maps = fixture_files(MAPS_TOP)
    maps_archive = write_archive(tmp_path / "Reference_Maps.tar.zst", with_folders(maps))
    extract_archive(maps_archive, tmp_path / "out")
    assert tree(tmp_path / "out") == maps

    s1 = fixture_files(S1_TOP)
    s1_archive = write_archive(tmp_path / "BigEarthNet-S1.tar.zst", with_folders(s1))
    extract_archive(s1_archive, tmp_path / "out", wanted_bands=["VV"], reference_maps=False)
    assert tree(tmp_path / "out") == maps | wanted_of(s1, ["VV"])  # both tops side by side


def test_no_match_is_an_error_and_writes_nothing(tmp_path):
    archive = write_archive(tmp_path / "Reference_Maps.tar.zst", fixture_files(MAPS_TOP).items())
    with pytest.raises(EopackError, match=r"Reference_Maps\.tar\.zst: none of its 1 members"):
        extract_archive(archive, tmp_path / "out", reference_maps=False)
    assert os.listdir(tmp_path / "out") == []


def test_member_filter_matches_the_layout_exactly():
    wanted = member_filter(["B02", "B8A"], reference_maps=True)
    patch = f"{S2_TOP}/{S2_PRODUCT}/{S2_PATCH}/{S2_PATCH}"
    assert wanted(f"{patch}_B02.tif") and wanted(f"{patch}_B8A.tif")
    assert wanted(f"{MAPS_TOP}/{S2_PRODUCT}/{S2_PATCH}/{S2_PATCH}_reference_map.tif")
    assert not wanted(f"{patch}_B03.tif")
    assert not wanted(f"{patch}_B02.tif.bak")
    assert not wanted(f"{S2_TOP}/{S2_PATCH}_B02.tif")  # outside the patch layout
    assert not wanted(f"{S2_TOP}/{S2_PRODUCT}/{S2_PATCH}/other_patch_B02.tif")
    assert not member_filter(["B02"], reference_maps=False)(f"{patch}_reference_map.tif")
    with pytest.raises(EopackError, match=r"unknown BigEarthNet band.*B13"):
        member_filter(["B02", "B13"])


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_tar_format(tmp_path, fmt):
    """Real names are ~170 characters: GNU 'L' records, PAX 'path' or the ustar prefix field."""
    files = fixture_files(S2_TOP) | fixture_files(MAPS_TOP)
    assert min(map(len, files)) > 100
    raw = tar_bytes(with_folders(files), fmt=fmt)
    marker = {tarfile.GNU_FORMAT: b"././@LongLink", tarfile.PAX_FORMAT: b" path="}
    if fmt in marker:
        assert marker[fmt] in raw
    got = list(iter_members(io.BytesIO(zst(raw)), lambda name: True))
    assert got == list(files.items())  # archive order, every byte


def test_pax_global_header_size_override_and_dot_slash_names(tmp_path):
    files = fixture_files(MAPS_TOP)
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}
    ) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            info.pax_headers = {"size": str(len(data))}  # PAX size record wins over the header
            archive.addfile(info, io.BytesIO(data))
    assert out.getvalue()[156:157] == b"g"
    assert list(iter_members(io.BytesIO(zst(out.getvalue())), lambda n: True)) == list(
        files.items()
    )


def test_base256_size_field(tmp_path):
    """GNU tar writes sizes of 8 GiB and more in base-256; same parser path for small ones."""
    name, data = next(iter(fixture_files(MAPS_TOP).items()))
    raw = bytearray(tar_bytes([(name, data)], fmt=tarfile.PAX_FORMAT))
    assert raw[156:157] == b"x"  # the long name went to a PAX header; patch the file's header
    pax_size = int(raw[124:135], 8)
    at = 512 + pax_size + (-pax_size % 512)
    patched = _reheader(bytes(raw), at, 124, b"\x80" + len(data).to_bytes(11, "big"))
    assert list(iter_members(io.BytesIO(zst(patched)), lambda n: True)) == [(name, data)]


def test_deterministic_replaces_old_tree_and_clears_stale_staging(tmp_path):
    files = synthetic_s2(5)
    archive = write_archive(tmp_path / "BigEarthNet-S2.tar.zst", with_folders(files))
    dest = tmp_path / "out"
    first = extract_archive(archive, dest)
    before = tree(dest)
    (dest / S2_TOP / "stale.txt").write_text("from an older run")
    (dest / ".BigEarthNet-S2.tar.zst.part" / "junk").mkdir(parents=True)  # a killed run
    second = extract_archive(archive, dest)
    assert first == second
    assert tree(dest) == before == wanted_of(files)
    assert sorted(os.listdir(dest)) == [S2_TOP]


def test_failed_run_leaves_no_partial_top_folder_and_keeps_the_old_one(tmp_path):
    files = synthetic_s2(5)
    good = write_archive(tmp_path / "good.tar.zst", with_folders(files))
    dest = tmp_path / "out"
    extract_archive(good, dest)
    before = tree(dest)
    bad_entries = [*with_folders(synthetic_s2(3)), special("BigEarthNet-S2/x", tarfile.SYMTYPE)]
    bad = write_archive(tmp_path / "good.tar.zst", bad_entries)  # same name: same staging
    with pytest.raises(EopackError, match="symbolic link"):
        extract_archive(bad, dest)
    assert tree(dest) == before  # the complete older tree is untouched, no staging left

    fresh = tmp_path / "fresh"
    with pytest.raises(EopackError):
        extract_archive(bad, fresh)
    assert os.listdir(fresh) == []  # an interrupted extraction never looks complete


# --- unsafe members --------------------------------------------------------------------------

UNSAFE = {
    "dotdot": (("../evil.tif", b"x"), r"member '\.\./evil\.tif' points outside"),
    "dotdot-inside": (("BigEarthNet-S2/a/../../evil", b"x"), r"points outside"),
    "absolute": (("/tmp/evil.tif", b"x"), r"member '/tmp/evil\.tif' has an absolute path"),
    "symlink": (special("BigEarthNet-S2/s", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    "hardlink": (special("BigEarthNet-S2/h", tarfile.LNKTYPE, "BigEarthNet-S2/a"), "hard link"),
    "chardev": (special("BigEarthNet-S2/c", tarfile.CHRTYPE), "character device"),
    "blockdev": (special("BigEarthNet-S2/b", tarfile.BLKTYPE), "block device"),
    "fifo": (special("BigEarthNet-S2/p", tarfile.FIFOTYPE), "FIFO"),
    "unknown-type": (special("BigEarthNet-S2/u", b"Z"), "unknown type 'Z'"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_member_is_an_error_naming_archive_and_member_writing_nothing(tmp_path, case):
    entry, message = UNSAFE[case]
    parent = tmp_path / "parent"
    dest = parent / "dest"
    entries = [*with_folders(fixture_files(MAPS_TOP)), entry]
    archive = write_archive(tmp_path / "evil.tar.zst", entries)
    with pytest.raises(EopackError, match=message) as caught:
        extract_archive(archive, dest, wanted=lambda name: True)
    assert str(archive) in str(caught.value) and "refusing" in str(caught.value)
    assert os.listdir(parent) == ["dest"] and os.listdir(dest) == []
    assert not list(tmp_path.rglob("evil.tif")) and not Path("/tmp/evil.tif").exists()


# --- truncation and corruption ---------------------------------------------------------------


@pytest.fixture
def small_archive(tmp_path) -> tuple[bytes, dict[str, bytes]]:
    files = fixture_files(S2_TOP) | synthetic_s2(4)
    return tar_bytes(with_folders(files)), files


def test_zstd_cut_at_half_names_archive_and_progress(tmp_path, small_archive):
    raw, _ = small_archive
    blob = zst(raw)
    archive = tmp_path / "BigEarthNet-S2.tar.zst"
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(EopackError) as caught:
        extract_archive(archive, tmp_path / "out")
    message = str(caught.value)
    assert str(archive) in message and "truncated" in message
    assert "bytes of tar data" in message and "members read" in message
    assert os.listdir(tmp_path / "out") == []


def test_tar_data_cut_inside_a_member(tmp_path, small_archive):
    raw, _ = small_archive
    with pytest.raises(EopackError, match=r"ends inside member .*_B0\d\.tif.*truncated"):
        list(iter_members(io.BytesIO(zst(raw[: len(raw) // 2 + 100])), lambda n: True))


def test_tar_without_end_blocks_is_an_error_but_one_zero_block_is_enough(small_archive):
    """A stream can't tell 'complete but unterminated' from 'cut at a member boundary'."""
    _, files = small_archive
    unterminated = tar_bytes(with_folders(files), terminate=False)
    with pytest.raises(EopackError, match=r"ends after .* without the tar end-of-archive block"):
        list(iter_members(io.BytesIO(zst(unterminated)), lambda n: True))
    one_block = unterminated + bytes(512)
    got = dict(iter_members(io.BytesIO(zst(one_block)), lambda n: True))
    assert got == files


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 100, 1000, 5000])
def test_any_cut_of_the_compressed_file_is_an_error_or_loses_nothing(small_archive, cut):
    raw, files = small_archive
    blob = zst(raw)
    try:
        got = dict(iter_members(io.BytesIO(blob[:-cut]), lambda n: True))
    except EopackError as exc:
        assert "truncated" in str(exc) or "zstd" in str(exc)
    else:
        assert got == files  # only the checksum or end padding was cut


def test_corrupt_zstd_is_an_error(tmp_path, small_archive):
    raw, _ = small_archive
    blob = bytearray(zst(raw))
    for at in range(len(blob) // 3, len(blob) // 3 + 40):
        blob[at] ^= 0xA5
    archive = tmp_path / "BigEarthNet-S2.tar.zst"
    archive.write_bytes(bytes(blob))
    with pytest.raises(EopackError, match=r"BigEarthNet-S2\.tar\.zst: zstd decompression failed"):
        extract_archive(archive, tmp_path / "out")


def test_not_zstd_empty_and_missing_files(tmp_path, small_archive):
    raw, _ = small_archive
    plain = tmp_path / "plain.tar.zst"
    plain.write_bytes(raw)
    with pytest.raises(EopackError, match=r"plain\.tar\.zst: zstd decompression failed"):
        list(iter_members(plain, lambda n: True))
    empty = tmp_path / "empty.tar.zst"
    empty.write_bytes(zst(b""))
    with pytest.raises(EopackError, match=r"empty\.tar\.zst: the archive ends after 0 bytes"):
        list(iter_members(empty, lambda n: True))
    with pytest.raises(EopackError, match=r"archive .*missing\.tar\.zst not found"):
        list(iter_members(tmp_path / "missing.tar.zst", lambda n: True))


def test_header_checksum_mismatch_is_an_error(small_archive):
    raw = bytearray(small_archive[0])
    raw[512 + 10] ^= 0x01  # in the name of the second header (the product folder)
    with pytest.raises(EopackError, match=r"<stream>: corrupt tar header at offset 512 "):
        list(iter_members(io.BytesIO(zst(bytes(raw))), lambda n: True))


def _with_checksum(header: bytearray, stored: int, layout: bytes = b"%06o\0 ") -> bytes:
    header[148:156] = (layout % stored).ljust(8, b" ")[:8]
    return bytes(header)


def test_header_checksums_are_checked_exactly_on_both_paths():
    """The fast test (Adler-32 low half, exact below 257 non-zero bytes) and the full one
    (plus modulo 255) accept the right sum only: off by 65521 or 255 is refused."""
    rng = random.Random(7)
    for case in range(4000):
        nonzero = rng.choice([rng.randrange(0, 257), rng.randrange(257, 505)])
        header = bytearray(512)
        for at in rng.sample([i for i in range(512) if not 148 <= i < 156], nonzero):
            header[at] = rng.randrange(1, 256)
        header[148:156] = b" " * 8
        right = sum(header)
        layout = [b"%06o\0 ", b"%07o\0", b"%07o ", b"%o"][case % 4]
        assert extract._checksum_ok(_with_checksum(header, right, layout)), (case, nonzero)
        for wrong in (right + 65521, right - 65521, right + 255, right - 255, right + 1):
            if 0 <= wrong < 8**6:
                assert not extract._checksum_ok(_with_checksum(header, wrong, layout)), (
                    case,
                    nonzero,
                    wrong - right,
                )


def test_numeric_fields_read_as_before():
    def reference(field: bytes) -> int | None:
        if field[0] & 0x80:
            return None if field[0] != 0x80 else int.from_bytes(field[1:], "big")
        digits = field.split(b"\0", 1)[0].strip() or b"0"
        return (
            int(digits, 8)
            if digits.isdigit() and b"8" not in digits and b"9" not in digits
            else None
        )

    rng = random.Random(11)
    alphabet = b"0123456789 \0+-_o\x80\xff"
    fields = [b"00000000252\0", b"\0" * 12, b"   17 \0\0\0\0\0\0", b"\x80" + bytes(10) + b"\x05"]
    fields += [bytes(rng.choice(alphabet) for _ in range(12)) for _ in range(20000)]
    fields += [b"%011o\0" % rng.randrange(8**11) for _ in range(1000)]
    for field in fields:
        expected = reference(field)
        if expected is None:
            with pytest.raises(ValueError):
                extract._octal(field)
        else:
            assert extract._octal(field) == expected, field


def _reheader(raw: bytes, at: int, start: int, value: bytes) -> bytes:
    """``raw`` with one header field replaced and the header's checksum made right again."""
    out = bytearray(raw)
    header = out[at : at + 512]
    header[start : start + len(value)] = value
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    out[at : at + 512] = header
    return bytes(out)


@pytest.mark.parametrize("size", [b"-0000000001\0", b"0o000000001\0", b"00000_00001\0", b"xyz\0"])
def test_bad_size_fields_are_errors_even_with_a_right_checksum(size):
    raw = tar_bytes([("a.tif", b"x" * 600), ("b.tif", b"y")], fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(EopackError, match=r"corrupt tar header at offset 0 \(bad number field"):
        list(iter_members(io.BytesIO(zst(_reheader(raw, 0, 124, size))), lambda n: True))


@pytest.mark.parametrize("size", ["-1", "1e3", " 5"])
def test_bad_pax_size_is_an_error(size):
    info = tarfile.TarInfo("a.tif")
    info.pax_headers = {"size": size}
    raw = tar_bytes([info], fmt=tarfile.PAX_FORMAT)
    with pytest.raises(EopackError, match="bad PAX size"):
        list(iter_members(io.BytesIO(zst(raw)), lambda n: True))


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zstd-read-ahead"]


def test_read_ahead_thread_ends_with_the_walk_whatever_stops_it(tmp_path, small_archive):
    """Decompression runs ahead in a thread; a finished, failed or abandoned walk stops it."""
    raw, _ = small_archive
    many = synthetic_s2(60)  # > READ_AHEAD + 1 chunks, so the thread fills its queue and waits
    archive = write_archive(tmp_path / "BigEarthNet-S2.tar.zst", with_folders(many))
    assert sum(map(len, many.values())) > (READ_AHEAD + 2) * CHUNK
    walk = iter_members(archive, lambda name: True)
    next(walk)
    assert len(_read_ahead_threads()) == 1
    walk.close()  # the consumer stops early while the thread blocks on a full queue
    assert _read_ahead_threads() == []
    assert dict(iter_members(archive, lambda name: True)) == many
    assert _read_ahead_threads() == []
    blob = bytearray(zst(raw))
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "bad.tar.zst").write_bytes(bytes(blob))
    with pytest.raises(EopackError, match="zstd decompression failed"):
        list(iter_members(tmp_path / "bad.tar.zst", lambda name: True))
    assert _read_ahead_threads() == []


def test_a_failed_write_is_one_error_and_leaves_no_staging_or_writer(tmp_path, monkeypatch):
    """A full disk half-way: one line naming archive and file, nothing left behind, and the
    writer thread gone before the staging folder is removed."""
    files = synthetic_s2(40)
    archive = write_archive(tmp_path / "BigEarthNet-S2.tar.zst", with_folders(files))
    real_write, calls = extract.write_new_file, []

    def disk_fills_up(path: str, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 50:
            raise OSError(28, "No space left on device", path)
        real_write(path, data)

    monkeypatch.setattr(extract, "write_new_file", disk_fills_up)
    with pytest.raises(EopackError) as caught:
        extract_archive(archive, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{archive}: cannot write a member under {tmp_path / 'out'}")
    assert "No space left on device" in message and calls[49] in message
    assert list((tmp_path / "out").iterdir()) == []
    assert [t for t in threading.enumerate() if t.name == "extract-writer"] == []


def test_oversized_wanted_member_is_refused(small_archive):
    raw, _ = small_archive
    with pytest.raises(EopackError, match=r"is 29,196 bytes, more than the 1,000"):
        list(iter_members(io.BytesIO(zst(raw)), member_filter(), max_member_size=1000))


def test_trailing_data_after_the_end_is_logged_and_ignored(small_archive, caplog):
    raw, files = small_archive
    with caplog.at_level(logging.WARNING, logger="eopack"):
        got = dict(iter_members(io.BytesIO(zst(raw + b"junk" * 200)), lambda n: True))
    assert got == files
    assert "800 non-zero bytes after the tar end-of-archive block ignored" in caplog.text


# --- fuzzing: random damage gives a clear error or a safe, complete read ----------------------


def _header_offsets(raw: bytes) -> list[int]:
    """Offsets of every 512-byte header block (long-name/PAX headers and their data included)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        return [
            at for info in archive.getmembers() for at in range(info.offset, info.offset_data, 512)
        ]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_fuzz_header_byte_flips(tmp_path, fmt):
    files = fixture_files(MAPS_TOP) | synthetic_s2(2)
    raw = tar_bytes(with_folders(files), fmt=fmt)
    headers = _header_offsets(raw)
    rng = random.Random(fmt)
    outcomes = {"error": 0, "ok": 0}
    parent = tmp_path / "parent"
    for round_ in range(100):
        damaged = bytearray(raw)
        for _ in range(rng.choice((1, 1, 2, 8))):
            at = rng.choice(headers) + rng.randrange(512)
            damaged[at] = rng.randrange(256) if rng.random() < 0.5 else damaged[at] ^ 0xFF
        if rng.random() < 0.3:  # keep the checksum right so the parser sees the damage
            at = rng.choice(headers)
            block = damaged[at : at + 512]
            block[148:156] = b" " * 8
            block[148:156] = b"%06o\0 " % sum(block)
            damaged[at : at + 512] = block
        archive = tmp_path / f"fuzz{round_}.tar.zst"
        archive.write_bytes(zst(bytes(damaged)))
        try:
            extract_archive(archive, parent / "dest", wanted=lambda name: True)
        except EopackError as exc:
            assert str(archive) in str(exc) or "unknown" in str(exc)
            outcomes["error"] += 1
        else:
            outcomes["ok"] += 1
        archive.unlink()
        assert os.listdir(parent) in ([], ["dest"])  # never a sibling, never a staging leftover
        for path in (parent / "dest").rglob("*"):
            assert not path.is_symlink()
    assert outcomes["error"] > 40


def test_fuzz_compressed_byte_flips_and_cuts(small_archive):
    raw, _ = small_archive
    blob = zst(raw)
    rng = random.Random(7)
    for _ in range(60):
        damaged = bytearray(blob)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        with pytest.raises(EopackError):
            list(iter_members(io.BytesIO(bytes(damaged)), lambda n: True))
        cut = rng.randrange(len(blob))
        with pytest.raises(EopackError):
            list(iter_members(io.BytesIO(blob[:cut]), lambda n: True))


# --- bounded memory --------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(
    """
    import sys, tracemalloc
    from eopack.bigearthnet.extract import extract_archive
    tracemalloc.start()
    stats = extract_archive(sys.argv[1], sys.argv[2], wanted_bands=["B02"])
    print(stats.members, stats.extracted, tracemalloc.get_traced_memory()[1])
    """
)


def test_memory_stays_flat_over_thousands_of_patches(tmp_path):
    """tarfile's stream mode would keep ~40,000 TarInfo objects here (tens of MB)."""
    n_patches, bands = 3000, ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08"]
    archive = tmp_path / "BigEarthNet-S2.tar.zst"
    with (
        archive.open("wb") as handle,
        zstandard.ZstdCompressor(level=1).stream_writer(handle) as compressed,
        tarfile.open(fileobj=compressed, mode="w|", format=tarfile.GNU_FORMAT) as out,
    ):
        payload = bytes(2000)
        for i in range(n_patches):
            patch = f"{S2_PRODUCT}_{i // 100}_{i % 100}"
            for band in bands:
                info = tarfile.TarInfo(f"{S2_TOP}/{S2_PRODUCT}/{patch}/{patch}_{band}.tif")
                info.size = len(payload)
                out.addfile(info, io.BytesIO(payload))
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(archive), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    members, extracted, peak = map(int, proc.stdout.split())
    assert (members, extracted) == (n_patches * len(bands), n_patches)
    # What the threads may hold at once, whatever the archive's size: decompressed chunks
    # (queued, waiting to be queued, being walked, and the one zstandard is filling) and file
    # batches (queued, being written, being built; paths add up to 1/4), plus 1 MiB for the rest.
    # Measured 5.9-6.9 MiB depending on how the threads interleave.
    bound = (READ_AHEAD + 3) * CHUNK + (_FileWriter.QUEUED + 2) * _FileWriter.BATCH_BYTES * 5 // 4
    assert peak < bound + 2**20, f"peak {peak:,} bytes, bound {bound + 2**20:,}"
