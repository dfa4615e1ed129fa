"""Rendering one S2 product folder from extracted release archives (the demo's real formats)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from eopack.bigearthnet.dataset import render_product
from eopack.bigearthnet.extract import extract_dataset_archive
from eopack.bigearthnet.index import Selection, read_report
from eopack.bigearthnet.render import Stretch
from eopack.demo import benworld
from eopack.demo.benworld import BenWorld, build_benworld
from eopack.errors import EopackError

ALL_BANDS = tuple(benworld.S2_BANDS)
EVERYTHING = Selection(include_snow=True, include_cloud=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> BenWorld:
    return build_benworld(
        tmp_path_factory.mktemp("release"), s2_products=2, patches_per_product=6, s1=False
    )


@pytest.fixture(scope="module")
def extracted(release, tmp_path_factory) -> Path:
    """Every S2 band and the reference maps, extracted once (copied by tests that edit them)."""
    root = tmp_path_factory.mktemp("extracted")
    extract_dataset_archive(release.files[benworld.S2_ARCHIVE], root / "BigEarthNet-S2", ALL_BANDS)
    extract_dataset_archive(release.files[benworld.REFERENCE_ARCHIVE], root / "Reference_Maps")
    return root


def render(release, root, out, product=None, bands=("B04", "B03", "B02"), **kwargs):
    product = product or release.s2_products[0]
    stats = render_product(
        product,
        s2_root=root / "BigEarthNet-S2",
        maps_root=root / "Reference_Maps",
        metadata=[release.files[benworld.METADATA], release.files[benworld.SNOW_CLOUD_METADATA]],
        selection=kwargs.pop("selection", EVERYTHING),
        rgb_dir=out / "rgb" / product,
        mask_dir=out / "mask" / product,
        report=out / f"{product}.tsv",
        bands=bands,
        **kwargs,
    )
    return product, stats


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_extraction_takes_the_chosen_bands_under_the_archives_top_only(release, tmp_path):
    stats = extract_dataset_archive(
        release.files[benworld.S2_ARCHIVE], tmp_path / "BigEarthNet-S2", ("B03", "B8A")
    )
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.tif"))
    assert len(files) == stats.extracted == 2 * len(release.patches)
    assert {f.name.rsplit("_", 1)[1] for f in files} == {"B03.tif", "B8A.tif"}
    assert {f.parts[0] for f in files} == {"BigEarthNet-S2"}
    # an archive whose top folder is another one's is not extracted into it
    with pytest.raises(EopackError, match="none of its"):
        extract_dataset_archive(release.files[benworld.S2_ARCHIVE], tmp_path / "Reference_Maps")
    with pytest.raises(EopackError, match="no bands chosen"):
        extract_dataset_archive(release.files[benworld.S2_ARCHIVE], tmp_path / "BigEarthNet-S2")


def test_rgb_and_mask_are_the_stretch_and_class_index_of_the_tiffs(release, extracted, tmp_path):
    product, stats = render(release, extracted, tmp_path)
    patches = [p for p in release.patches if p.s2_product == product]
    assert (stats.selected, stats.rendered, sum(stats.skipped.values())) == (6, 6, 0)
    assert [r.patch_id for r in read_report(tmp_path / f"{product}.tsv")] == [
        p.patch_id for p in patches
    ]
    code_to_index = {c: i for i, (_, codes) in enumerate(benworld.CLASSES) for c in codes}
    for patch in patches:
        stem = extracted / "BigEarthNet-S2" / product / patch.patch_id / patch.patch_id
        x = np.stack([tifffile.imread(f"{stem}_{b}.tif") for b in ("B04", "B03", "B02")], -1)
        expected = (np.clip(x.astype(np.int64), 0, 2000) * 255 + 1000) // 2000
        np.testing.assert_array_equal(
            png(tmp_path / "rgb" / product / f"{patch.patch_id}.png"), expected
        )
        ref = tifffile.imread(
            extracted / "Reference_Maps" / product / patch.patch_id
            / f"{patch.patch_id}_reference_map.tif"
        )  # fmt: skip
        mask = np.vectorize(lambda c: code_to_index.get(int(c), 255))(ref)
        np.testing.assert_array_equal(
            png(tmp_path / "mask" / product / f"{patch.patch_id}.png"), mask
        )


def test_coarser_bands_are_repeated_onto_the_10m_grid(release, extracted, tmp_path):
    product, _ = render(
        release, extracted, tmp_path, bands=("B11", "B8A", "B01"), stretch=Stretch(0, 4000, 1.0)
    )
    patch = next(p for p in release.patches if p.s2_product == product)
    stem = extracted / "BigEarthNet-S2" / product / patch.patch_id / patch.patch_id
    rgb = png(tmp_path / "rgb" / product / f"{patch.patch_id}.png")
    assert rgb.shape == (120, 120, 3)
    for channel, (band, factor) in enumerate((("B11", 2), ("B8A", 2), ("B01", 6))):
        x = tifffile.imread(f"{stem}_{band}.tif").astype(np.int64)
        expected = (np.clip(x, 0, 4000) * 255 + 2000) // 4000
        expected = np.repeat(np.repeat(expected, factor, 0), factor, 1)
        np.testing.assert_array_equal(rgb[..., channel], expected)


def test_selection_and_missing_files(release, extracted, tmp_path):
    root = tmp_path / "extracted"
    shutil.copytree(extracted, root)
    product = release.s2_products[1]
    patches = [p.patch_id for p in release.patches if p.s2_product == product and not p.flagged]
    a, b, c = patches[:3]
    (root / "Reference_Maps" / product / a / f"{a}_reference_map.tif").unlink()
    (root / "BigEarthNet-S2" / product / b / f"{b}_B03.tif").unlink()
    shutil.rmtree(root / "BigEarthNet-S2" / product / c)
    shutil.rmtree(root / "Reference_Maps" / product / c)
    out = tmp_path / "out"
    _, stats = render(release, root, out, product, selection=Selection())
    assert stats.selected == len(patches)
    assert dict(stats.skipped) == {
        "missing reference map": 1,
        "missing B03": 1,
        "no files in the archives": 1,
    }
    report = {r.patch_id: r.reason for r in read_report(out / f"{product}.tsv")}
    assert (report[a], report[b], report[c]) == (
        "missing reference map",
        "missing B03",
        "no files in the archives",
    )
    assert {p.stem for p in (out / "rgb" / product).iterdir()} == set(patches) - {a, b, c}
    assert {p.stem for p in (out / "mask" / product).iterdir()} == set(patches) - {a, b, c}


def test_unknown_clc_code_and_wrong_band_size_are_errors_naming_the_patch(
    release, extracted, tmp_path
):
    product = release.s2_products[0]
    pid = next(p.patch_id for p in release.patches if p.s2_product == product)
    root = tmp_path / "extracted"
    shutil.copytree(extracted, root)
    ref = root / "Reference_Maps" / product / pid / f"{pid}_reference_map.tif"
    codes = tifffile.imread(ref)
    codes[5, 7] = 777
    tifffile.imwrite(ref, codes)
    with pytest.raises(EopackError, match=rf"patch {pid}: .*CLC code\(s\) 777"):
        render(release, root, tmp_path / "a", product)
    shutil.copy2(extracted / "Reference_Maps" / product / pid / ref.name, ref)
    band = root / "BigEarthNet-S2" / product / pid / f"{pid}_B04.tif"
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ones((60, 60), np.uint16))
    band.write_bytes(buffer.getvalue())
    with pytest.raises(EopackError, match=f"patch {pid}: "):
        render(release, root, tmp_path / "b", product)
    with pytest.raises(EopackError, match="RGB bands must be three of"):
        render(release, root, tmp_path / "c", product, bands=("B04", "B03"))
