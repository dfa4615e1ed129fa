"""The mini BigEarthNet must match the real release's formats, since the pipeline trusts them.

The reference is tests/fixtures/bigearthnet: real TIFFs of each kind, the real metadata parquet
files and hashes.txt. Everything here reads what build_benworld wrote with independent readers
(tarfile, tifffile, pyarrow, zstandard, GNU tar), not with the generator's own code.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile
import zstandard

from eopack.demo import benworld
from eopack.demo.benworld import (
    CLASSES,
    CODE_TO_CLASS,
    FLAWS,
    HASHES,
    METADATA,
    REFERENCE_ARCHIVE,
    S1_ARCHIVE,
    S2_ARCHIVE,
    S2_BANDS,
    SNOW_CLOUD_METADATA,
    UNLABELED_CODES,
    BenWorld,
    build_benworld,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
REAL_S2 = FIXTURES / "BigEarthNet-S2/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
REAL_S2_PATCH = REAL_S2 / "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
REAL_REF = next((FIXTURES / "Reference_Maps").rglob("*_reference_map.tif"))
REAL_S1 = next((FIXTURES / "BigEarthNet-S1").rglob("*_VV.tif"))

PATCH_ID = re.compile(
    r"^(?P<product>(?P<mission>S2[AB])_MSIL2A_(?P<time>\d{8}T\d{6})_N9999_R\d{3}_"
    r"T(?P<tile>\d{2}[C-X][A-Z]{2}))_(?P<x>\d{2})_(?P<y>\d{2})$"
)
S1_NAME = re.compile(
    r"^(?P<product>S1[AB]_IW_GRDH_1SDV_\d{8}T\d{6})_(?P<tile>\d{2}[C-X][A-Z]{2})_"
    r"(?P<x>\d{1,2})_(?P<y>\d{1,2})$"
)
S2V1_NAME = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d{5,6}_(?P<x>\d{1,2})_(?P<y>\d{1,2})$")
TAR_MTIME = 1704067200  # 2024-01-01T00:00:00Z


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> BenWorld:
    return build_benworld(tmp_path_factory.mktemp("benworld"))


Members = dict[str, tuple[tarfile.TarInfo, bytes]]


@cache
def _members(path: Path) -> Members:
    """Every member of a .tar.zst in archive order, read with tarfile in stream mode."""
    out: Members = {}
    with (
        path.open("rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as raw,
        tarfile.open(fileobj=raw, mode="r|") as tar,
    ):
        for info in tar:
            member = tar.extractfile(info) if info.isfile() else None
            out[info.name] = (info, member.read() if member else b"")
    return out


def _sha256s(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def _layout(data: bytes) -> dict[str, Any]:
    """What a reader sees of a TIFF's structure (not its pixels or its place)."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        varying = {273, 279, 33922}  # strip offsets/counts and the tiepoint
        return {
            "byteorder": tif.byteorder,
            "bigtiff": tif.is_bigtiff,
            "pages": len(tif.pages),
            "ifd": page.offset,
            "tags": [(t.code, t.dtype, t.count) for t in page.tags.values()],
            "values": {t.code: t.value for t in page.tags.values() if t.code not in varying},
            "first_offset": page.dataoffsets[0],
            "dtype": page.dtype,
            "shape": page.shape,
        }


def _zone(name: str) -> int:
    """UTM zone of a member, from its patch folder (S2 patch id or S1 name)."""
    folder = name.split("/")[2]
    match = PATCH_ID.match(folder) or S1_NAME.match(folder)
    assert match, name
    return int(match["tile"][:2])


def _kind(name: str) -> Path:
    """The real fixture file of the same kind as member ``name``."""
    if name.endswith("_reference_map.tif"):
        return REAL_REF
    if name.endswith(("_VV.tif", "_VH.tif")):
        return REAL_S1
    band = name.rsplit("_", 1)[1].removesuffix(".tif")
    return REAL_S2_PATCH / f"{REAL_S2_PATCH.name}_{band}.tif"


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------


def test_same_arguments_give_the_same_bytes_in_another_process(
    world: BenWorld, tmp_path: Path
) -> None:
    again = build_benworld(tmp_path / "again")
    code = (
        "import sys; from eopack.demo.benworld import build_benworld; build_benworld(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "sub")], env=env, check=True)
    expected = _sha256s(world.root)
    assert set(expected) == {
        S2_ARCHIVE,
        S1_ARCHIVE,
        REFERENCE_ARCHIVE,
        METADATA,
        SNOW_CLOUD_METADATA,
        HASHES,
    }
    assert _sha256s(again.root) == expected
    assert _sha256s(tmp_path / "sub") == expected


def test_another_seed_gives_another_world(tmp_path: Path) -> None:
    a = build_benworld(tmp_path / "a", s2_products=1, patches_per_product=6, s1=False)
    b = build_benworld(tmp_path / "b", s2_products=1, patches_per_product=6, s1=False, seed=1)
    assert _sha256s(a.root)[S2_ARCHIVE] != _sha256s(b.root)[S2_ARCHIVE]


# --------------------------------------------------------------------------------------------
# GeoTIFFs
# --------------------------------------------------------------------------------------------


def test_tiff_writer_reproduces_every_real_file_byte_for_byte() -> None:
    """Given the real pixels and place, the writer emits the real files' exact bytes."""
    reals = sorted(FIXTURES.rglob("*.tif"))
    assert len(reals) == 15
    for path in reals:
        real = path.read_bytes()
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            pixels = page.asarray()
            tie = page.tags["ModelTiepointTag"].value
            scale = page.tags["ModelPixelScaleTag"].value[0]
            strips = [
                real[o : o + n] for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)
            ]
        origin = (tie[3], tie[4])
        if path == REAL_REF:  # same DEFLATE stream (GDAL's encoder is not zlib's)
            mine = benworld._geotiff(benworld._KIND_REF, strips, 32633, origin, scale)
        elif path.parent.parent.parent.name == "BigEarthNet-S1":
            head = benworld._HeaderCache().get(benworld._KIND_S1, 32633, origin, scale)
            mine = head + pixels.astype("<f4").tobytes()
        else:
            kind = benworld._BAND_KIND[pixels.shape[0]]
            mine = benworld._HeaderCache().get(kind, 32633, origin, scale)
            mine += pixels.astype("<u2").tobytes()
        assert mine == real, path.name


def test_every_member_has_the_real_tiff_layout_of_its_kind(world: BenWorld) -> None:
    real_layouts = {p: _layout(p.read_bytes()) for p in FIXTURES.rglob("*.tif")}
    checked = Counter[str]()
    for archive in (S2_ARCHIVE, REFERENCE_ARCHIVE, S1_ARCHIVE):
        for name, (_, data) in _members(world.root / archive).items():
            real = real_layouts[_kind(name)]
            mine = _layout(data)
            zone = _zone(name)
            if zone == 33:  # same CRS as the fixtures: everything equal
                assert mine == real, name
            else:
                assert {k: v for k, v in mine.items() if k != "values"} == {
                    k: v for k, v in real.items() if k != "values"
                }, name
                assert mine["values"][34735][27] == 32600 + zone
                assert mine["values"][34737] == f"WGS 84 / UTM zone {zone}N|WGS 84|"
            checked[archive] += 1
    assert checked == {S2_ARCHIVE: 12 * 120, REFERENCE_ARCHIVE: 120, S1_ARCHIVE: 2 * 120}


def test_pixels_have_the_real_dtypes_sizes_and_compression(world: BenWorld) -> None:
    sizes = Counter[tuple[str, tuple[int, int], str, int]]()
    for archive in (S2_ARCHIVE, REFERENCE_ARCHIVE, S1_ARCHIVE):
        for name, (_, data) in _members(world.root / archive).items():
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                page = tif.pages[0]
                pixels = page.asarray()
                suffix = name.rsplit("_", 1)[1]
                sizes[(suffix, pixels.shape, str(pixels.dtype), int(page.compression))] += 1
    expected = {(f"{band}.tif", (size, size), "uint16", 1): 120 for band, size in S2_BANDS.items()}
    expected[("map.tif", (120, 120), "uint16", 8)] = 120  # DEFLATE
    expected[("VV.tif", (120, 120), "float32", 1)] = 120
    expected[("VH.tif", (120, 120), "float32", 1)] = 120
    assert sizes == expected


def test_georeference_follows_the_patch_position(world: BenWorld) -> None:
    """x/y in the id step 1200 m east/south from the tile origin (checked on the fixtures)."""
    with tifffile.TiffFile(REAL_S2_PATCH / f"{REAL_S2_PATCH.name}_B02.tif") as tif:
        tie = tif.pages[0].tags["ModelTiepointTag"].value
    x, y = 75, 43
    origin_33uup = (tie[3] - x * 1200, tie[4] + y * 1200)
    assert origin_33uup == (300000.0, 5400000.0)
    s2 = _members(world.root / S2_ARCHIVE)
    for patch in world.patches:
        if not patch.s2_product.endswith("T33UUP"):
            continue
        name = f"BigEarthNet-S2/{patch.s2_product}/{patch.patch_id}/{patch.patch_id}_B04.tif"
        with tifffile.TiffFile(io.BytesIO(s2[name][1])) as tif:
            tie = tif.pages[0].tags["ModelTiepointTag"].value
        assert (tie[3], tie[4]) == (
            origin_33uup[0] + patch.x * 1200,
            origin_33uup[1] - patch.y * 1200,
        )


def test_reflectance_and_backscatter_are_plausible(world: BenWorld) -> None:
    s2 = _members(world.root / S2_ARCHIVE)
    values: dict[str, list[np.ndarray]] = {}
    for name, (_, data) in s2.items():
        band = name.rsplit("_", 1)[1].removesuffix(".tif")
        values.setdefault(band, []).append(tifffile.imread(io.BytesIO(data)))
    b04 = np.stack(values["B04"])
    b08 = np.stack(values["B08"])
    assert 200 < np.median(b04) < 3000
    assert np.median(b08) > np.median(b04)  # vegetation: NIR above red
    assert (b08 > 2000).mean() > 0.2
    every = np.concatenate([np.concatenate([a.ravel() for a in v]) for v in values.values()])
    assert 0 < (every == 0).sum() < 100  # a few nodata pixels
    assert 0 < (every == 65535).sum() < 500  # a few saturated ones
    assert np.percentile(every, 99) < 10000
    # Snow makes patches bright in the visible.
    snowy = [p for p in world.patches if p.snow]
    assert snowy
    for p in snowy:
        green = s2[f"BigEarthNet-S2/{p.s2_product}/{p.patch_id}/{p.patch_id}_B03.tif"][1]
        assert tifffile.imread(io.BytesIO(green)).mean() > 3 * np.median(values["B03"])
    s1 = _members(world.root / S1_ARCHIVE)
    vv = np.stack([tifffile.imread(io.BytesIO(d)) for n, (_, d) in s1.items() if "_VV" in n])
    vh = np.stack([tifffile.imread(io.BytesIO(d)) for n, (_, d) in s1.items() if "_VH" in n])
    for db in (vv, vh):
        assert -40 < float(db.min()) < float(db.max()) < 20
    assert np.median(vh) < np.median(vv) - 3


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------


def test_member_names_and_order_are_the_releases(world: BenWorld) -> None:
    s2_names = list(_members(world.root / S2_ARCHIVE))
    ref_names = list(_members(world.root / REFERENCE_ARCHIVE))
    s1_names = list(_members(world.root / S1_ARCHIVE))
    ids = [p.patch_id for p in world.patches]
    assert ids == sorted(ids) and len(ids) == 120
    assert s2_names == sorted(s2_names)  # B8A after B12, as plain `sort` puts them
    assert s2_names == [
        f"BigEarthNet-S2/{i.rsplit('_', 2)[0]}/{i}/{i}_{band}.tif"
        for i in ids
        for band in sorted(S2_BANDS)
    ]
    assert ref_names == [
        f"Reference_Maps/{i.rsplit('_', 2)[0]}/{i}/{i}_reference_map.tif" for i in ids
    ]
    # S1: <S1 product>/<s1_name>/<s1_name>_<pol>.tif, ordered by the pre-rename path.
    s1 = sorted(p.s1_name for p in world.patches)
    by_old_path = sorted(f"{n}/{n}_{pol}.tif" for n in s1 for pol in ("VH", "VV"))
    assert s1_names == [
        f"BigEarthNet-S1/{old.split('/')[0].rsplit('_', 3)[0]}/{old}" for old in by_old_path
    ]
    # the fixture's S1 folder is named the same way
    real = REAL_S1.relative_to(FIXTURES).parts
    assert real[1] == real[2].rsplit("_", 3)[0] and real[3].startswith(real[2])


def test_archives_are_gnu_tar_with_the_pipelines_options(world: BenWorld) -> None:
    for archive in (S2_ARCHIVE, REFERENCE_ARCHIVE, S1_ARCHIVE):
        members = _members(world.root / archive)
        for info, _ in members.values():
            assert info.isfile()  # files only: no directory members
            assert (info.mode, info.uid, info.gid) == (0o644, 0, 0)
            assert (info.uname, info.gname, info.mtime) == ("", "", TAR_MTIME)
        tar = zstandard.ZstdDecompressor().decompress((world.root / archive).read_bytes())
        assert len(tar) % 10240 == 0
        assert tar[:13] == b"././@LongLink" and tar[156:157] == b"L"  # GNU long names
        assert tar[257:265] == b"ustar  \0"  # GNU magic, not POSIX ustar
        assert tar[265:297] == b"\0" * 32  # --numeric-owner: no user name


@pytest.mark.skipif(
    shutil.which("tar") is None
    or "GNU tar" not in subprocess.run(["tar", "--version"], capture_output=True, text=True).stdout,
    reason="needs GNU tar",
)
def test_gnu_tar_recreates_every_archive_byte_for_byte(world: BenWorld, tmp_path: Path) -> None:
    """Extract, then re-create with the release pipeline's tar options: identical bytes."""
    for archive in (S2_ARCHIVE, REFERENCE_ARCHIVE, S1_ARCHIVE):
        tar = zstandard.ZstdDecompressor().decompress((world.root / archive).read_bytes())
        work = tmp_path / archive
        (work / "x").mkdir(parents=True)
        (work / "a.tar").write_bytes(tar)
        (work / "list").write_text("".join(f"{n}\n" for n in _members(world.root / archive)))
        subprocess.run(["tar", "-xf", "../a.tar"], cwd=work / "x", check=True)
        for path in (work / "x").rglob("*.tif"):
            path.chmod(0o644)
        options = ["--anchored", "--owner=0", "--group=0", "--numeric-owner", "--format=gnu"]
        options += ["--mtime=2024-01-01 00:00:00", "--files-from=../list", "-cf", "../b.tar"]
        env = {**os.environ, "TZ": "UTC"}
        subprocess.run(["tar", *options], cwd=work / "x", env=env, check=True)
        assert (work / "b.tar").read_bytes() == tar, archive


def test_zstd_frames_are_single_checksummed_and_sized(world: BenWorld) -> None:
    for archive in (S2_ARCHIVE, REFERENCE_ARCHIVE, S1_ARCHIVE):
        data = (world.root / archive).read_bytes()
        params = zstandard.get_frame_parameters(data)
        assert params.has_checksum
        obj = zstandard.ZstdDecompressor().decompressobj()
        tar = obj.decompress(data)
        assert obj.eof and obj.unused_data == b""  # one frame, nothing after it
        assert params.content_size == len(tar)


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


@cache
def _real(name: str) -> list[dict[str, Any]]:
    return pq.read_table(FIXTURES / name).slice(0, 3000).to_pylist()


def _rows(world: BenWorld, name: str) -> list[dict[str, Any]]:
    return pq.read_table(world.root / name).to_pylist()


def test_metadata_schema_is_the_real_one(world: BenWorld) -> None:
    for name in (METADATA, SNOW_CLOUD_METADATA):
        real = pq.read_schema(FIXTURES / name)
        mine = pq.read_schema(world.root / name)
        assert mine.equals(real, check_metadata=True), name
        assert mine.metadata is None  # no pandas/arrow schema blob, like DuckDB's files
        meta = pq.ParquetFile(world.root / name).metadata
        column = meta.row_group(0).column(0)
        assert column.compression == "ZSTD"


def test_real_name_patterns_hold_for_the_real_rows_and_ours(world: BenWorld) -> None:
    real = _real(METADATA) + _real(SNOW_CLOUD_METADATA)
    ours = _rows(world, METADATA) + _rows(world, SNOW_CLOUD_METADATA)
    for rows, exact_v1 in ((real, False), (ours, True)):
        for row in rows:
            pid = PATCH_ID.match(row["patch_id"])
            s1 = S1_NAME.match(row["s1_name"])
            v1 = S2V1_NAME.match(row["s2v1_name"])
            assert pid and s1 and v1, row
            assert s1["tile"] == pid["tile"]
            assert (int(s1["x"]), int(s1["y"])) == (int(pid["x"]), int(pid["y"]))
            assert (int(v1["x"]), int(v1["y"])) == (int(pid["x"]), int(pid["y"]))
            if exact_v1:
                assert row["s2v1_name"] == f"{pid['mission']}_MSIL2A_{pid['time']}_" + (
                    f"{int(pid['x'])}_{int(pid['y'])}"
                )


def test_metadata_rows_are_like_the_releases(world: BenWorld) -> None:
    clear = _rows(world, METADATA)
    flagged = _rows(world, SNOW_CLOUD_METADATA)
    real_labels = {label for row in _real(METADATA) for label in row["labels"]}
    real_labels |= {label for row in _real(SNOW_CLOUD_METADATA) for label in row["labels"]}
    for rows in (clear, flagged):
        ids = [r["patch_id"] for r in rows]
        assert ids == sorted(ids)
        assert all(r["labels"] == sorted(r["labels"]) and r["labels"] for r in rows)
    assert {r["patch_id"] for r in clear}.isdisjoint(r["patch_id"] for r in flagged)
    assert len(clear) + len(flagged) == len(world.patches)
    assert not any(r["contains_seasonal_snow"] or r["contains_cloud_or_shadow"] for r in clear)
    # in the release each flagged row has exactly one of the two flags; so do ours
    for rows in (_real(SNOW_CLOUD_METADATA), flagged):
        assert all(r["contains_seasonal_snow"] != r["contains_cloud_or_shadow"] for r in rows)
    assert any(r["contains_seasonal_snow"] for r in flagged)
    assert any(r["contains_cloud_or_shadow"] for r in flagged)
    assert {r["split"] for r in clear} == {"train", "validation", "test"}
    for product in world.s2_products:  # spatial stripes give every product every split
        assert {r["split"] for r in clear if r["patch_id"].startswith(product)} == {
            "train",
            "validation",
            "test",
        }
    ours = {label for r in clear + flagged for label in r["labels"]}
    assert ours == {name for name, _ in CLASSES}
    assert {name for name, _ in CLASSES} <= real_labels | ours
    assert ours <= set(CODE_TO_CLASS.values())
    assert {r["country"] for r in clear} == {"Austria", "Finland", "Portugal"}
    by_id = {p.patch_id: p for p in world.patches}
    for row in clear + flagged:
        patch = by_id[row["patch_id"]]
        assert tuple(row["labels"]) == patch.labels
        assert (row["split"], row["s1_name"]) == (patch.split, patch.s1_name)


def test_class_names_are_the_release_strings() -> None:
    real = {label for row in _real(METADATA) for label in row["labels"]}
    real |= {label for row in _real(SNOW_CLOUD_METADATA) for label in row["labels"]}
    full = pq.read_table(FIXTURES / METADATA, columns=["labels"]).column("labels")
    real |= set(full.combine_chunks().flatten().unique().to_pylist())
    assert {name for name, _ in CLASSES} == real


def test_labels_are_the_classes_in_each_reference_map(world: BenWorld) -> None:
    labels = {
        r["patch_id"]: r["labels"]
        for name in (METADATA, SNOW_CLOUD_METADATA)
        for r in _rows(world, name)
    }
    seen: set[int] = set()
    for name, (_, data) in _members(world.root / REFERENCE_ARCHIVE).items():
        codes = {int(c) for c in np.unique(tifffile.imread(io.BytesIO(data)))}
        seen |= codes
        patch_id = name.split("/")[2]
        assert labels[patch_id] == sorted({CODE_TO_CLASS[c] for c in codes if c in CODE_TO_CLASS})
    labeled = {code for _, codes in CLASSES for code in codes}
    assert labeled <= seen  # every code of the 19-class table
    assert set(UNLABELED_CODES) <= seen  # 0, 999 and every unlabeled CLC code
    assert seen <= labeled | set(UNLABELED_CODES)


def test_hashes_file_is_in_the_release_format_and_correct(world: BenWorld) -> None:
    real = (FIXTURES / HASHES).read_text()
    mine = (world.root / HASHES).read_text()
    pattern = re.compile(r"md5 hashes:\n\n((?:[0-9a-f]{32}  \S+\n)+)\n\Z")
    assert pattern.match(real) and pattern.match(mine)

    def names(text: str) -> list[str]:
        return [line.split("  ")[1] for line in text.splitlines()[2:] if line]

    assert names(mine) == names(real)  # same files, same (case-insensitive) order
    for line in mine.splitlines()[2:]:
        if not line:
            continue
        digest, name = line.split("  ")
        path = world.root / name
        if name.endswith(".tar"):
            data = zstandard.ZstdDecompressor().decompress(
                (world.root / f"{name}.zst").read_bytes()
            )
        else:
            data = path.read_bytes()
        assert hashlib.md5(data).hexdigest() == digest, name


def test_world_without_s1(tmp_path: Path) -> None:
    world = build_benworld(tmp_path, s2_products=1, patches_per_product=8, s1=False)
    assert not (tmp_path / S1_ARCHIVE).exists()
    assert "BigEarthNet-S1" not in (tmp_path / HASHES).read_text()
    rows = _rows(world, METADATA) + _rows(world, SNOW_CLOUD_METADATA)
    assert len(rows) == 8 and all(S1_NAME.match(r["s1_name"]) for r in rows)


def test_benchmark_sized_worlds_are_planned_in_the_real_grid() -> None:
    cells = benworld._plan(0, 40, 125)
    assert len(cells) == 5000 and len({c.patch_id for c in cells}) == 5000
    assert len({c.product.name for c in cells}) == 40
    assert all(0 <= c.x <= 90 and 0 <= c.y <= 90 for c in cells)


# --------------------------------------------------------------------------------------------
# Flaws
# --------------------------------------------------------------------------------------------


def test_flaws_break_what_they_say(tmp_path: Path) -> None:
    flaws = ("missing_band", "orphan_metadata_row", "dotdot_member", "symlink_member")
    world = build_benworld(tmp_path, s2_products=2, patches_per_product=6, flaws=flaws)
    assert set(world.flaws) == set(flaws)
    members = _members(tmp_path / S2_ARCHIVE)
    missing = world.flaws["missing_band"]
    assert missing.endswith("_B8A.tif") and missing not in members
    patch_dir = missing.rsplit("/", 1)[0]
    assert sum(n.startswith(f"{patch_dir}/") for n in members) == 11
    info, _ = members[world.flaws["symlink_member"]]
    assert info.issym() and info.linkname == "/etc/passwd"
    dotdot = world.flaws["dotdot_member"]
    assert ".." in dotdot.split("/") and members[dotdot][0].isfile()
    orphan = world.flaws["orphan_metadata_row"]
    assert orphan in {r["patch_id"] for r in _rows(world, METADATA)}
    assert orphan not in {p.patch_id for p in world.patches}
    for archive in (S2_ARCHIVE, REFERENCE_ARCHIVE, S1_ARCHIVE):
        assert not any(orphan in name for name in _members(tmp_path / archive))
    # everything else is intact: 2 x 6 patches x 12 bands, one missing, one dotdot extra
    assert len(members) == 2 * 6 * 12 - 1 + 1


def test_truncated_archive_fails_its_md5_and_decompression(tmp_path: Path) -> None:
    world = build_benworld(
        tmp_path, s2_products=1, patches_per_product=6, s1=False, flaws=["truncated"]
    )
    assert world.flaws == {"truncated": S2_ARCHIVE}
    listed = dict(
        reversed(line.split("  "))
        for line in (tmp_path / HASHES).read_text().splitlines()[2:]
        if line
    )
    data = (tmp_path / S2_ARCHIVE).read_bytes()
    assert hashlib.md5(data).hexdigest() != listed[S2_ARCHIVE]
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(data)
    with pytest.raises((tarfile.TarError, zstandard.ZstdError, EOFError)):
        _members.__wrapped__(tmp_path / S2_ARCHIVE)


def test_unknown_flaw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown flaws"):
        build_benworld(tmp_path, flaws=["nope"])
    assert "truncated" in FLAWS
