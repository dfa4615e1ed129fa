"""BigEarthNet in the workflow: Snakemake builds the PNG datasets from the demo world's mini
release (3 S2 products x 40 patches, real archive formats) on the local S3 server, and from small
flawed releases in a local folder (bad input: clear errors or counted skips)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
import zstandard
from conftest import REPO, copy_workflow, run_snakemake
from PIL import Image

from eopack.bigearthnet.classes import classes_json
from eopack.bigearthnet.fetch import load_hashes
from eopack.demo import benworld
from eopack.demo.benworld import BenPatch, build_benworld

BEN = Path("results/bigearthnet")
FIXTURES = REPO / "tests" / "fixtures" / "bigearthnet"
DATASET_FILES = {
    "bigearthnet_pngs.zip",
    "bigearthnet_mask_pngs.zip",
    "index.csv",
    "skipped.tsv",
    "classes.json",
}


def bigearthnet(workdir: Path, env: dict[str, str] | None, *configfiles: str, args=()):
    """`snakemake bigearthnet` (only the BigEarthNet targets) with extra config files."""
    return run_snakemake(
        workdir, "bigearthnet", *args, "--cores", "2", "--configfile", *configfiles, env=env
    )


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def write_config(path: Path, section: dict) -> str:
    path.write_text(yaml.safe_dump({"bigearthnet": section}), encoding="utf-8")
    return str(path)


def selected(patches, snow: bool = False, cloud: bool = False) -> list[BenPatch]:
    return [p for p in patches if (snow or not p.snow) and (cloud or not p.cloud)]


def index_rows(workdir: Path) -> list[dict[str, str]]:
    with open(workdir / BEN / "index.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def archive_members(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """Members of a .tar.zst read with the standard library's tarfile, not eopack's reader."""
    out = {}
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            if member.name in wanted:
                out[member.name] = tar.extractfile(member).read()
    return out


@pytest.fixture(scope="module")
def ben_run(world, tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("bigearthnet"))
    started = time.monotonic()
    # The 1-GB instance settings (README): every rule declares mem_mb within the budget.
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", args=("--resources", "mem_mb=700"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, proc, time.monotonic() - started


def test_one_render_job_per_product_and_one_extraction_per_archive(world, ben_run):
    _, proc, _ = ben_run
    counts = job_counts(proc.stderr)
    assert counts["bigearthnet_render"] == len(world.benworld.s2_products) == 3
    assert counts["bigearthnet_fetch"] == counts["bigearthnet_extract"] == 2
    assert counts["bigearthnet_zip"] == 2


def test_every_job_logs_its_peak_rss_within_the_512_mb_budget(ben_run):
    """The 1-GB instance budget: each job's own peak (VmHWM), logged by eopack.jobs.run_job."""
    workdir, _, _ = ben_run
    logs = sorted((workdir / "logs" / "bigearthnet").rglob("*.log"))
    peaks = {}
    for log in logs:
        found = re.findall(r"peak RSS (\d+) MB", log.read_text(encoding="utf-8"))
        assert len(found) == 1, (log, found)
        peaks[log.relative_to(workdir).as_posix()] = int(found[0])
    assert len(peaks) == 2 + 2 + 3 + 1 + 1 + 2 + 1, sorted(peaks)  # fetch, extract, render, ...
    assert max(peaks.values()) <= 512, peaks


def test_every_selected_patch_has_an_rgb_and_a_mask_png(world, ben_run):
    workdir, _, _ = ben_run
    wanted = selected(world.benworld.patches)
    assert 0 < len(wanted) < len(world.benworld.patches)  # the demo has snow and cloud patches
    for kind in ("rgb", "mask"):
        found = {p.relative_to(workdir / BEN / kind) for p in (workdir / BEN / kind).rglob("*.png")}
        assert found == {Path(p.s2_product, f"{p.patch_id}.png") for p in wanted}
    for patch in wanted[::7]:
        rgb = Image.open(workdir / BEN / "rgb" / patch.s2_product / f"{patch.patch_id}.png")
        mask = Image.open(workdir / BEN / "mask" / patch.s2_product / f"{patch.patch_id}.png")
        assert (rgb.size, rgb.mode) == ((120, 120), "RGB")
        assert (mask.size, mask.mode) == ((120, 120), "P")


def test_pixels_are_the_documented_stretch_and_class_table(world, ben_run):
    """RGB = round-half-up(255 * clip(x, 0, 2000) / 2000) of B04/B03/B02; mask = class index of
    each CLC code (255 unlabeled), from TIFFs read with tarfile + tifffile."""
    workdir, _, _ = ben_run
    patches = [next(p for p in selected(world.benworld.patches) if p.s2_product == s)
               for s in world.benworld.s2_products]  # fmt: skip
    names = {}
    for p in patches:
        stem = f"{p.s2_product}/{p.patch_id}/{p.patch_id}"
        names[p.patch_id] = (
            [f"BigEarthNet-S2/{stem}_{band}.tif" for band in ("B04", "B03", "B02")],
            f"Reference_Maps/{stem}_reference_map.tif",
        )
    files = archive_members(
        world.benworld.files[benworld.S2_ARCHIVE], {n for b, _ in names.values() for n in b}
    )
    files |= archive_members(
        world.benworld.files[benworld.REFERENCE_ARCHIVE], {m for _, m in names.values()}
    )
    code_to_index = {c: i for i, (_, codes) in enumerate(benworld.CLASSES) for c in codes}
    for p in patches:
        bands, ref_name = names[p.patch_id]
        x = np.stack([tifffile.imread(io.BytesIO(files[n])) for n in bands], axis=-1)
        expected_rgb = (np.clip(x.astype(np.int64), 0, 2000) * 255 + 1000) // 2000
        ref = tifffile.imread(io.BytesIO(files[ref_name]))
        expected_mask = np.vectorize(lambda c: code_to_index.get(int(c), 255))(ref)
        rgb = np.asarray(Image.open(workdir / BEN / "rgb" / p.s2_product / f"{p.patch_id}.png"))
        mask_png = Image.open(workdir / BEN / "mask" / p.s2_product / f"{p.patch_id}.png")
        np.testing.assert_array_equal(rgb, expected_rgb.astype(np.uint8))
        np.testing.assert_array_equal(np.asarray(mask_png), expected_mask.astype(np.uint8))
        palette = mask_png.getpalette()
        assert palette[0:3] == [230, 0, 77]  # class 0, urban fabric: CORINE 111 colour
        assert sorted({benworld.CLASSES[i][0] for i in np.unique(expected_mask) if i != 255}) == (
            sorted(p.labels)
        )


def test_index_lists_each_rendered_patch_with_split_labels_and_paths(world, ben_run):
    workdir, _, _ = ben_run
    rows = index_rows(workdir)
    wanted = sorted(selected(world.benworld.patches), key=lambda p: p.patch_id)
    assert [r["patch_id"] for r in rows] == [p.patch_id for p in wanted]
    for row, patch in zip(rows, wanted, strict=True):
        assert row["split"] == patch.split
        assert row["s2_product"] == patch.s2_product
        assert row["labels"].split(";") == list(patch.labels)
        assert row["rgb"] == f"rgb/{patch.s2_product}/{patch.patch_id}.png"
        assert row["mask"] == f"mask/{patch.s2_product}/{patch.patch_id}.png"
        assert (workdir / BEN / row["rgb"]).is_file() and (workdir / BEN / row["mask"]).is_file()
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    skipped = (workdir / BEN / "skipped.tsv").read_text(encoding="utf-8")
    assert skipped == "patch_id\tsplit\ts2_product\treason\n"
    assert (workdir / BEN / "classes.json").read_bytes() == classes_json()


def test_zips_hold_exactly_the_pngs_stored(ben_run):
    workdir, _, _ = ben_run
    for name, folder in (("bigearthnet_pngs.zip", "rgb"), ("bigearthnet_mask_pngs.zip", "mask")):
        pngs = sorted((workdir / BEN / folder).rglob("*.png"))
        with zipfile.ZipFile(workdir / BEN / name) as archive:
            infos = archive.infolist()
            assert [i.filename for i in infos] == [
                p.relative_to(workdir / BEN).as_posix() for p in pngs
            ]
            for info, path in zip(infos, pngs, strict=True):
                assert info.compress_type == zipfile.ZIP_STORED
                assert info.date_time == (1980, 1, 1, 0, 0, 0)
                assert archive.read(info) == path.read_bytes()


def test_sha256sums_verify_with_sha256sum(ben_run):
    workdir, _, _ = ben_run
    sums = (workdir / BEN / "SHA256SUMS").read_text(encoding="utf-8")
    assert {line.split("  ", 1)[1] for line in sums.splitlines()} == DATASET_FILES
    proc = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=workdir / BEN, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The zips' digests came from their stamps (hashed as written): Snakemake touched each zip,
    # then its stamp, so the stamps still count. Were that order to change, SHA256SUMS would
    # hash the zips again (right, only slower) and this would say so.
    log = (workdir / "logs" / "bigearthnet" / "sha256sums.log").read_text(encoding="utf-8")
    for name in ("bigearthnet_pngs.zip", "bigearthnet_mask_pngs.zip"):
        assert f"{name}: SHA-256 from its stamp" in log, log


@pytest.fixture(scope="module")
def ben_s1_run(world, tmp_path_factory):
    """The demo with bigearthnet.s1_pngs on: the S1 archive is fetched, extracted, rendered."""
    workdir = copy_workflow(tmp_path_factory.mktemp("bigearthnet-s1"))
    overlay = write_config(workdir / "s1.yaml", {"s1_pngs": True})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", overlay)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, proc


def test_s1_pngs_are_the_db_stretch_of_each_selected_patch(world, ben_s1_run):
    workdir, proc = ben_s1_run
    counts = job_counts(proc.stderr)
    assert counts["bigearthnet_render_s1"] == counts["bigearthnet_render"] == 3
    assert counts["bigearthnet_extract"] == 3 and counts["bigearthnet_zip"] == 3
    wanted = selected(world.benworld.patches)
    found = {p.relative_to(workdir / BEN / "s1") for p in (workdir / BEN / "s1").rglob("*.png")}
    assert found == {
        Path(p.s2_product, f"{p.patch_id}_{band}.png") for p in wanted for band in ("VV", "VH")
    }
    patches = wanted[::9]
    names = {
        f"BigEarthNet-S1/{p.s1_name.rsplit('_', 3)[0]}/{p.s1_name}/{p.s1_name}_{band}.tif": (
            p,
            band,
        )
        for p in patches
        for band in ("VV", "VH")
    }
    tiffs = archive_members(world.benworld.files[benworld.S1_ARCHIVE], set(names))
    assert len(tiffs) == len(names)
    for member, (patch, band) in names.items():
        db = tifffile.imread(io.BytesIO(tiffs[member])).astype(np.float64)
        low, high = {"VV": (-25, 0), "VH": (-32, -5)}[band]
        expected = np.floor(255 * (np.clip(db, low, high) - low) / (high - low) + 0.5)
        png = workdir / BEN / "s1" / patch.s2_product / f"{patch.patch_id}_{band}.png"
        image = Image.open(png)
        assert (image.size, image.mode) == ((120, 120), "L")
        assert np.array_equal(np.asarray(image), np.nan_to_num(expected).astype(np.uint8))


def test_s1_index_columns_zip_and_sums(ben_s1_run):
    workdir, _ = ben_s1_run
    rows = index_rows(workdir)
    assert rows and all(
        r["s1_vv"].endswith("_VV.png") and r["s1_vh"].endswith("_VH.png") for r in rows
    )
    assert all((workdir / BEN / r[c]).is_file() for r in rows for c in ("s1_vv", "s1_vh"))
    pngs = sorted((workdir / BEN / "s1").rglob("*.png"))
    with zipfile.ZipFile(workdir / BEN / "bigearthnet_s1_pngs.zip") as archive:
        assert archive.namelist() == [p.relative_to(workdir / BEN).as_posix() for p in pngs]
    sums = (workdir / BEN / "SHA256SUMS").read_text(encoding="utf-8")
    assert {line.split("  ", 1)[1] for line in sums.splitlines()} == DATASET_FILES | {
        "bigearthnet_s1_pngs.zip"
    }
    proc = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=workdir / BEN, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_second_run_has_nothing_to_do(world, ben_run):
    workdir, _, _ = ben_run
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stderr + proc.stdout


def test_deleted_zip_is_rebuilt_byte_identical(world, ben_run):
    workdir, _, _ = ben_run
    path = workdir / BEN / "bigearthnet_pngs.zip"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sums = (workdir / BEN / "SHA256SUMS").read_bytes()
    path.unlink()
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert (workdir / BEN / "SHA256SUMS").read_bytes() == sums


def test_snow_and_cloud_switches_add_their_patches(world, ben_run, tmp_path):
    workdir = tmp_path / "switches"
    shutil.copytree(ben_run[0], workdir)  # resources and Snakemake's records: only renders rerun
    patches = world.benworld.patches
    assert any(p.snow for p in patches) and any(p.cloud for p in patches)
    snow = write_config(tmp_path / "snow.yaml", {"include_snow": True})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", snow)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bigearthnet_fetch" not in job_counts(proc.stderr)
    ids = [r["patch_id"] for r in index_rows(workdir)]
    assert ids == [p.patch_id for p in selected(patches, snow=True)]
    both = write_config(tmp_path / "both.yaml", {"include_snow": True, "include_cloud": True})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", both)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["patch_id"] for r in index_rows(workdir)] == [p.patch_id for p in patches]
    with zipfile.ZipFile(workdir / BEN / "bigearthnet_mask_pngs.zip") as archive:
        assert len(archive.namelist()) == len(patches)


def test_md5_mismatch_fails_the_fetch_and_leaves_nothing(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    md5s = load_hashes(world.benworld.files[benworld.HASHES])
    md5s[benworld.REFERENCE_ARCHIVE] = "0" * 32
    bad = write_config(tmp_path / "bad.yaml", {"hashes": None, "md5s": md5s})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", bad)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]
    assert lines and "Reference_Maps.tar.zst: md5 mismatch: expected 000" in lines[0], lines
    assert not list((workdir / "resources" / "bigearthnet").glob("Reference_Maps.tar.zst*"))


# --- bad input: small flawed releases in a local folder ------------------------------------------


def flawed_run(tmp_path: Path, flaws: tuple[str, ...], **settings):
    """Build a 2 x 4 patch release with ``flaws`` and run the BigEarthNet targets on it."""
    world = build_benworld(
        tmp_path / "release", s2_products=2, patches_per_product=4, s1=False, flaws=flaws
    )
    workdir = copy_workflow(tmp_path / "wf")
    section = {"enabled": True, "source": str(world.root), "hashes": "hashes.txt"}
    cfg = write_config(tmp_path / "flawed.yaml", {**section, **settings})
    return world, workdir, bigearthnet(workdir, None, cfg)


def test_metadata_row_without_files_and_missing_band_are_counted_skips(tmp_path):
    # B8A as red: the missing_band flaw removes one patch's B8A
    world, workdir, proc = flawed_run(
        tmp_path, ("orphan_metadata_row", "missing_band"), rgb_bands=["B8A", "B04", "B03"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    orphan = world.flaws["orphan_metadata_row"]
    missing = world.flaws["missing_band"].rsplit("/", 2)[1]
    with open(workdir / BEN / "skipped.tsv", encoding="utf-8", newline="") as handle:
        skipped = {r["patch_id"]: r["reason"] for r in csv.DictReader(handle, delimiter="\t")}
    assert skipped == {orphan: "no files in the archives", missing: "missing B8A"}
    indexed = [r["patch_id"] for r in index_rows(workdir)]
    assert indexed == sorted(p.patch_id for p in world.patches if p.patch_id != missing)
    summaries = {
        orphan: "5 patches selected, 4 rendered, 1 skipped (1 no files in the archives)",
        missing: "4 patches selected, 3 rendered, 1 skipped (1 missing B8A)",
    }
    for pid, reason in skipped.items():
        product = pid.rsplit("_", 2)[0]
        log = (workdir / "logs" / "bigearthnet" / "render" / f"{product}.log").read_text()
        assert f"skip {pid}: {reason}" in log
        assert f"{product}: {summaries[pid]}" in log
        assert not (workdir / BEN / "rgb" / product / f"{pid}.png").exists()
    first = indexed[0]
    rgb = Image.open(workdir / BEN / "rgb" / first.rsplit("_", 2)[0] / f"{first}.png")
    assert rgb.size == (120, 120)  # the 60x60 B8A repeated onto the 10 m grid


@pytest.mark.parametrize(
    ("flaw", "words"),
    [
        ("dotdot_member", "points outside the destination ('..')"),
        ("symlink_member", "is a symbolic link to '/etc/passwd'"),
    ],
)
def test_unsafe_archive_member_fails_the_extraction_with_one_line(tmp_path, flaw, words):
    _, workdir, proc = flawed_run(tmp_path, (flaw,))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]
    assert lines and "BigEarthNet-S2.tar.zst: member" in lines[0] and words in lines[0], lines
    extracted = workdir / "resources" / "bigearthnet" / "extracted"
    assert not (extracted / "BigEarthNet-S2").exists()
    # no S2 file anywhere, inside the destination or outside it
    assert not [p for p in tmp_path.rglob("*.tif") if "Reference_Maps" not in p.parts]


def test_truncated_archive_fails_its_md5_on_fetch(tmp_path):
    _, workdir, proc = flawed_run(tmp_path, ("truncated",))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]
    assert lines and lines[0].startswith("eopack: BigEarthNet-S2.tar.zst: md5 mismatch"), lines
    assert not list((workdir / "resources" / "bigearthnet").glob("BigEarthNet-S2.tar.zst*"))


def test_dag_over_the_real_metadata_builds_fast(tmp_path):
    """549,488 real patches (both parquets), 115 S2 product folders: a dry run, no archives."""
    workdir = copy_workflow(tmp_path / "wf")
    cfg = write_config(
        tmp_path / "real.yaml",
        {
            "enabled": True,
            "source": str(FIXTURES),
            "hashes": "hashes.txt",
            "include_snow": True,
            "include_cloud": True,
        },
    )
    started = time.monotonic()
    proc = bigearthnet(workdir, None, cfg, args=("-n",))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_counts(proc.stdout + proc.stderr)["bigearthnet_render"] == 115
    assert elapsed <= 30, elapsed
