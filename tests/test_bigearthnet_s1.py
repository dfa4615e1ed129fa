"""Optional Sentinel-1 PNGs: the dB stretch, the greyscale encoding, one product's S1 render
from the demo release's real-format S1 archive, and index.csv's S1 columns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from eopack.bigearthnet.extract import extract_dataset_archive
from eopack.bigearthnet.index import (
    INDEX_COLUMNS,
    S1_INDEX_COLUMNS,
    ReportRow,
    Selection,
    read_report,
    write_index,
    write_report,
)
from eopack.bigearthnet.png import encode_gray
from eopack.bigearthnet.render import read_band
from eopack.bigearthnet.s1 import DbStretch, render_s1_product, s1_product, stretch_db
from eopack.demo import benworld
from eopack.demo.benworld import BenWorld, build_benworld
from eopack.errors import EopackError

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
EVERYTHING = Selection(include_snow=True, include_cloud=True)


def test_db_stretch_is_the_documented_formula():
    db = np.array([[-40, -25, -12.5, -12.549, -0.01, 0, 3, np.nan]], dtype=np.float32)
    got = stretch_db(db, -25.0, 0.0)
    # floor(255 * (clip(db) + 25) / 25 + 0.5): 12.5 dB is 127.5 -> 128 (half up); NaN -> 0
    assert got.tolist() == [[0, 0, 128, 127, 255, 255, 255, 0]]
    assert got.dtype == np.uint8
    rng = np.random.default_rng(1)
    values = rng.uniform(-40, 5, (120, 120)).astype(np.float32)
    expected = np.floor(255 * (np.clip(values.astype(np.float64), -32, -5) + 32) / 27 + 0.5)
    assert np.array_equal(stretch_db(values, -32.0, -5.0), expected.astype(np.uint8))


def test_db_stretch_config_is_checked():
    assert DbStretch.from_config({}).as_params() == {"VV": [-25.0, 0.0], "VH": [-32.0, -5.0]}
    assert DbStretch.from_config({"VH": [-30, -10]}).range("VH") == (-30.0, -10.0)
    with pytest.raises(EopackError, match=r"S1 stretch VV: need finite low < high"):
        DbStretch.from_config({"VV": [0, -25]})
    with pytest.raises(EopackError, match="unknown key"):
        DbStretch.from_config({"HH": [-25, 0]})
    with pytest.raises(EopackError, match=r"each of VV, VH is \[low, high\]"):
        DbStretch.from_config({"VV": "low"})


def test_real_s1_patch_reads_as_tifffile_and_encodes_as_greyscale():
    for path in sorted((FIXTURES / "BigEarthNet-S1").rglob("*.tif")):
        ours = read_band(path.read_bytes(), path.name)
        assert ours.dtype == np.float32 and ours.shape == (120, 120)
        assert np.array_equal(ours, tifffile.imread(path), equal_nan=True)
        gray = stretch_db(ours, -25, 0)
        image = Image.open(io.BytesIO(encode_gray(gray)))
        assert image.mode == "L" and np.array_equal(np.asarray(image), gray)


def test_s1_product_folder_of_an_s1_patch():
    name = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"
    assert s1_product(name) == "S1A_IW_GRDH_1SDV_20170613T165043"
    assert next((FIXTURES / "BigEarthNet-S1").iterdir()).name == s1_product(name)
    with pytest.raises(EopackError, match="is not <S1 product>"):
        s1_product("S1A_70_48")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> BenWorld:
    return build_benworld(tmp_path_factory.mktemp("release"), s2_products=2, patches_per_product=6)


@pytest.fixture(scope="module")
def s1_root(release, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extracted")
    extract_dataset_archive(
        release.files[benworld.S1_ARCHIVE], root / "BigEarthNet-S1", ("VV", "VH")
    )
    return root / "BigEarthNet-S1"


def _metadata(release: BenWorld) -> list[Path]:
    return [release.files[benworld.METADATA], release.files[benworld.SNOW_CLOUD_METADATA]]


def test_s1_render_writes_the_stretch_of_each_patch_and_skips_missing_files(
    release, s1_root, tmp_path
):
    product = release.s2_products[0]
    patches = [p for p in release.patches if p.s2_product == product]
    gone = patches[1]
    missing = next(s1_root.rglob(f"{gone.s1_name}_VH.tif"))
    kept = missing.read_bytes()
    missing.unlink()
    try:
        stats = render_s1_product(
            product,
            s1_root=s1_root,
            metadata=_metadata(release),
            selection=EVERYTHING,
            s1_dir=tmp_path / "s1" / product,
            report=tmp_path / "s1.tsv",
        )
    finally:
        missing.write_bytes(kept)
    assert (stats.selected, stats.rendered) == (len(patches), len(patches) - 1)
    assert stats.skipped == {"missing S1 VH": 1}
    report = {r.patch_id: r for r in read_report(tmp_path / "s1.tsv")}
    assert report[gone.patch_id].reason == f"missing S1 VH ({gone.s1_name})"
    pngs = sorted(p.name for p in (tmp_path / "s1" / product).iterdir())
    assert pngs == sorted(
        f"{p.patch_id}_{band}.png" for p in patches if p is not gone for band in ("VV", "VH")
    )
    for patch in patches[::3]:
        if patch is gone:
            continue
        for band, (low, high) in (("VV", (-25, 0)), ("VH", (-32, -5))):
            db = tifffile.imread(next(s1_root.rglob(f"{patch.s1_name}_{band}.tif")))
            png = np.asarray(Image.open(tmp_path / "s1" / product / f"{patch.patch_id}_{band}.png"))
            expected = np.floor(
                255 * (np.clip(db.astype(np.float64), low, high) - low) / (high - low) + 0.5
            )
            assert np.array_equal(png, np.nan_to_num(expected).astype(np.uint8)), (patch, band)


def test_index_gains_s1_columns_empty_where_s1_was_skipped(tmp_path):
    product = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
    ids = [f"{product}_1_{i}" for i in range(3)]
    write_report(tmp_path / "main" / f"{product}.tsv", [ReportRow(i, "train", ("A",)) for i in ids])
    s1_rows = [
        ReportRow(ids[0], "train", ("A",)),
        ReportRow(ids[1], "train", ("A",), "missing S1 VV (x)"),
    ]
    s1_rows.append(ReportRow(ids[2], "train", ("A",)))
    write_report(tmp_path / "s1" / f"{product}.tsv", s1_rows)
    count, skipped = write_index(
        [tmp_path / "main" / f"{product}.tsv"],
        tmp_path / "index.csv",
        tmp_path / "skipped.tsv",
        [tmp_path / "s1" / f"{product}.tsv"],
    )
    assert (count, skipped) == (3, 0)
    with open(tmp_path / "index.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == INDEX_COLUMNS + S1_INDEX_COLUMNS
    assert [(r["s1_vv"], r["s1_vh"]) for r in rows] == [
        (f"s1/{product}/{ids[0]}_VV.png", f"s1/{product}/{ids[0]}_VH.png"),
        ("", ""),
        (f"s1/{product}/{ids[2]}_VV.png", f"s1/{product}/{ids[2]}_VH.png"),
    ]
    with pytest.raises(EopackError, match="no S1 render report for product"):
        write_index(
            [tmp_path / "main" / f"{product}.tsv"], tmp_path / "i.csv", tmp_path / "s.tsv", []
        )
