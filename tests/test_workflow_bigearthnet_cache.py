"""A changed or failed BigEarthNet run never deletes a file that verified once (issue 16, §1).

Snakemake deletes a job's outputs before it runs the job again, and a changed param (an md5)
makes it run again. The release files and their extracted trees live in the download cache
(eopack.bigearthnet.cache), which no job owns: these tests run the workflow, change the
configuration (or the source) so that a job fails, and check that the cached files keep their
inode and bytes, that the message says what was kept, and that going back needs no download
and no extraction.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, run_snakemake

from eopack.bigearthnet.cache import human_size
from eopack.bigearthnet.fetch import load_hashes
from eopack.demo import benworld
from eopack.demo.benworld import build_benworld
from eopack.demo.world import BIGEARTHNET_BUCKET

RES = Path("resources/bigearthnet")
S2 = benworld.S2_ARCHIVE
MAPS = benworld.REFERENCE_ARCHIVE


def bigearthnet(workdir: Path, env, *configfiles: str, args=()):
    return run_snakemake(
        workdir, "bigearthnet", *args, "--cores", "2", "--configfile", *configfiles, env=env
    )


def write_config(path: Path, section: dict) -> str:
    path.write_text(yaml.safe_dump({"bigearthnet": section}), encoding="utf-8")
    return str(path)


def eopack_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(path: Path) -> tuple[int, int, str]:
    """Inode, size and SHA-256: the same file, untouched."""
    st = path.stat()
    return st.st_ino, st.st_size, sha256(path)


def tree_fingerprint(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, sha256(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def files_by_inode(folder: Path) -> dict[int, str]:
    """Inode -> SHA-256 of every file under ``folder`` (the whole tree, whatever its layout)."""
    return {
        p.stat().st_ino: sha256(p) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    }


def held(path: Path) -> dict[int, str]:
    """What ``path`` (a file, or a folder through its link) holds now, by inode."""
    real = Path(os.path.realpath(path))
    return files_by_inode(real) if real.is_dir() else {real.stat().st_ino: sha256(real)}


def survivors(workdir: Path, before: dict[int, str]) -> dict[int, str]:
    """The part of ``before`` still somewhere under resources/bigearthnet, unchanged or not."""
    now = files_by_inode(workdir / RES)
    return {ino: now[ino] for ino in before if ino in now}


def cache_entry(workdir: Path, md5: str, name: str) -> Path:
    return workdir / RES / "cache" / "md5" / md5 / name


def extracted_tree(workdir: Path, md5: str, top: str) -> Path:
    """The one extracted tree of the archive with ``md5`` in the cache."""
    trees = list((workdir / RES / "cache" / "md5" / md5 / "extracted").glob(f"*/{top}"))
    assert len(trees) == 1, trees
    return trees[0]


def fetch_log(workdir: Path, stem: str) -> str:
    return (workdir / "logs/bigearthnet/fetch" / f"{stem}.log").read_text(encoding="utf-8")


def extract_log(workdir: Path, stem: str) -> str:
    return (workdir / "logs/bigearthnet/extract" / f"{stem}.log").read_text(encoding="utf-8")


@pytest.fixture
def demo_run(world, tmp_path):
    """The demo's BigEarthNet targets, built once in a fresh folder; (workdir, md5s, seconds)."""
    workdir = copy_workflow(tmp_path / "wf")
    started = time.monotonic()
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, load_hashes(world.benworld.files[benworld.HASHES]), time.monotonic() - started


@pytest.mark.parametrize("how", ["md5s", "hashes_txt"])
def test_a_wrong_md5_keeps_the_verified_archive_and_its_extraction(
    world, demo_run, s3net, tmp_path, how
):
    workdir, md5s, fresh = demo_run
    good = md5s[S2]
    archive_held = held(workdir / RES / S2)
    tree_held = held(workdir / RES / "extracted/BigEarthNet-S2")

    wrong = "0" * 32
    if how == "md5s":
        bad = write_config(tmp_path / "bad.yaml", {"hashes": None, "md5s": {**md5s, S2: wrong}})
    else:
        hashes = tmp_path / "hashes.txt"
        hashes.write_text("".join(f"{wrong if n == S2 else m}  {n}\n" for n, m in md5s.items()))
        bad = write_config(tmp_path / "bad.yaml", {"hashes": str(hashes)})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", bad)
    assert proc.returncode != 0
    assert survivors(workdir, archive_held) == archive_held  # the verified archive, untouched
    assert survivors(workdir, tree_held) == tree_held  # and what was extracted from it
    entry = cache_entry(workdir, good, S2)  # where they are: the cache
    tree = extracted_tree(workdir, good, "BigEarthNet-S2")
    before, tree_before = fingerprint(entry), tree_fingerprint(tree)
    assert archive_held == {before[0]: before[2]}
    assert tree_held == dict(tree_before.values())
    lines = eopack_lines(proc)
    size = human_size(entry.stat().st_size)
    assert lines[0] == (
        f"eopack: {S2}: md5 mismatch: expected {wrong}, got {good} "
        f"(from {world.bigearthnet_uri}/{S2}); the download was discarded, run again to fetch "
        f"it anew; kept in the cache: {RES}/cache/md5/{good}/{S2} ({size}, md5 {good})"
    ), lines
    assert "nothing was written" not in proc.stderr
    assert (
        f"{RES / S2} is not there: Snakemake removes a job's output before it runs the job "
        f"again; it is a link, the bytes stay in the cache: {RES}/cache/md5/{good}/{S2} ({size}, "
        f"md5 {good})"
    ) in fetch_log(workdir, "BigEarthNet-S2")
    assert not list((workdir / RES / "cache" / "incoming").rglob("*"))

    # Back to the right md5: no download, no extraction, same bytes.
    gets = s3net.log(BIGEARTHNET_BUCKET)
    started = time.monotonic()
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml")
    rerun = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not [key for key in gets.keys if key.endswith(".tar.zst")], gets.keys
    assert f"{S2}: from the cache, no download; {RES}/cache/md5/{good}/{S2}" in fetch_log(
        workdir, "BigEarthNet-S2"
    )
    assert "extracted tree from the cache" in extract_log(workdir, "BigEarthNet-S2")
    assert fingerprint(entry) == before and tree_fingerprint(tree) == tree_before
    assert (workdir / RES / S2).stat().st_ino == before[0]  # the output is a hard link
    assert os.path.realpath(workdir / RES / "extracted/BigEarthNet-S2") == str(tree)
    print(f"\nfresh run {fresh:.1f} s, rerun after the md5 came back {rerun:.1f} s")


def test_a_hashes_txt_missing_from_the_source_keeps_the_one_in_use(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", args=("-n",))
    assert proc.returncode == 0, proc.stderr[-3000:]
    hashes = workdir / RES / "hashes.txt"
    before = hashes.read_bytes()
    missing = write_config(tmp_path / "missing.yaml", {"hashes": "no-such-hashes.txt"})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", missing, args=("-n",))
    assert proc.returncode != 0
    assert hashes.is_file() and hashes.read_bytes() == before
    uri = world.bigearthnet_uri
    assert eopack_lines(proc) == [
        f"eopack: bigearthnet.hashes: {uri}/no-such-hashes.txt: object not found; "
        f"{RES}/hashes.txt (from {uri}/hashes.txt) is kept"
    ], proc.stderr[-3000:]
    assert hashes.read_bytes() == before
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", args=("-n",))
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_hashes_null_keeps_the_verified_metadata(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", args=("-n",))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metadata = workdir / RES / "metadata.parquet"
    before = fingerprint(metadata)
    good = load_hashes(world.benworld.files[benworld.HASHES])["metadata.parquet"]
    null = write_config(tmp_path / "null.yaml", {"hashes": None})
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml", null, args=("-n",))
    assert proc.returncode != 0
    assert metadata.is_file() and fingerprint(metadata) == before
    lines = eopack_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("eopack: metadata.parquet: md5 mismatch"), lines
    assert lines[0].endswith(
        f"kept in the cache: {RES}/cache/md5/{good}/metadata.parquet "
        f"({human_size(before[1])}, md5 {good})"
    ), lines
    assert fingerprint(metadata) == before
    assert fingerprint(cache_entry(workdir, good, "metadata.parquet")) == before


def test_a_truncated_archive_with_its_md5_keeps_the_good_archive_and_extraction(tmp_path):
    """The source's S2 archive is replaced by a truncated one and hashes.txt updated to match:
    it downloads and verifies, the extraction fails; the good archive and its tree stay."""
    release = build_benworld(tmp_path / "release", s2_products=2, patches_per_product=4, s1=False)
    workdir = copy_workflow(tmp_path / "wf")
    cfg = write_config(
        tmp_path / "local.yaml",
        {"enabled": True, "source": str(release.root), "hashes": "hashes.txt"},
    )
    proc = bigearthnet(workdir, None, cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md5s = load_hashes(release.root / "hashes.txt")
    good = md5s[S2]
    archive_held = held(workdir / RES / S2)
    tree_held = held(workdir / RES / "extracted/BigEarthNet-S2")
    pngs = sha256(workdir / "results/bigearthnet/bigearthnet_pngs.zip")

    archive = release.root / S2
    original = archive.read_bytes()
    cut = original[: len(original) * 2 // 3]
    shutil.move(archive, tmp_path / "good.tar.zst")  # a new file, as a mirror's sync would
    archive.write_bytes(cut)
    hashes = release.root / "hashes.txt"
    good_hashes = hashes.read_text(encoding="ascii")
    hashes.write_text(good_hashes.replace(good, hashlib.md5(cut).hexdigest()), encoding="ascii")
    proc = bigearthnet(workdir, None, cfg)
    assert proc.returncode != 0
    assert survivors(workdir, archive_held) == archive_held
    assert survivors(workdir, tree_held) == tree_held
    entry = cache_entry(workdir, good, S2)
    tree = extracted_tree(workdir, good, "BigEarthNet-S2")
    before, tree_before = fingerprint(entry), tree_fingerprint(tree)
    assert archive_held == {before[0]: before[2]}
    assert tree_held == dict(tree_before.values())
    lines = eopack_lines(proc)
    assert lines and f"{S2}: the archive ends" in lines[0], lines
    assert lines[0].endswith(f"kept in the cache: {tree.relative_to(workdir)}"), lines
    cut_md5 = hashlib.md5(cut).hexdigest()
    assert sorted(p.name for p in cache_entry(workdir, cut_md5, S2).parent.iterdir()) == [
        S2,  # the truncated archive verified: it stays, with its stamp, and no empty folder
        f"{S2}.md5.json",
    ]

    shutil.move(tmp_path / "good.tar.zst", archive)
    hashes.write_text(good_hashes, encoding="ascii")
    proc = bigearthnet(workdir, None, cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "from the cache, no download" in fetch_log(workdir, "BigEarthNet-S2")
    assert "extracted tree from the cache" in extract_log(workdir, "BigEarthNet-S2")
    assert fingerprint(entry) == before and tree_fingerprint(tree) == tree_before
    assert sha256(workdir / "results/bigearthnet/bigearthnet_pngs.zip") == pngs


def test_prune_removes_only_what_no_output_uses(world, demo_run, tmp_path):
    workdir, md5s, _ = demo_run
    cache = workdir / RES / "cache"
    stale = cache / "md5" / ("e" * 32)  # an older version of the S2 archive and its tree
    (stale / "extracted" / "B02_B03_B04" / "BigEarthNet-S2").mkdir(parents=True)
    (stale / "extracted" / "B02_B03_B04" / "BigEarthNet-S2" / "x.tif").write_bytes(b"x" * 10)
    (stale / S2).write_bytes(b"old archive")
    kept = {p: fingerprint(p) for p in cache.rglob("*") if p.is_file() and stale not in p.parents}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eopack.cli", "bigearthnet-cache", *args],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )

    listing = cli("list").stdout
    assert re.search(rf"file +11 B +unused +{RES}/cache/md5/e{{32}}/{S2}\n", listing), listing
    assert re.search(rf"file .* in use +{RES}/cache/md5/{md5s[S2]}/{S2}\n", listing), listing
    assert cli("prune", "--dry-run").stdout.endswith("eopack: would remove 2 items, 21 B\n")
    assert (stale / S2).is_file()
    assert cli("prune").stdout.endswith("eopack: removed 2 items, 21 B\n")
    assert not stale.exists()
    assert {p: fingerprint(p) for p in kept} == kept
    proc = bigearthnet(workdir, world.env(), "config/demo.yaml")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
