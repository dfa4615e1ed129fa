"""The BigEarthNet download cache (eopack.bigearthnet.cache) with a local release folder: entries
by md5, hard links out of it, failures that keep every entry, adoption of files fetched before
the cache, and extraction keyed by the archive's md5 and bands."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
from pathlib import Path

import pytest

from eopack.bigearthnet.cache import DownloadCache, cache_items, cache_root, extract_cached, prune
from eopack.bigearthnet.source import Source, fetch_verified, prepare_inputs
from eopack.demo import benworld
from eopack.demo.benworld import build_benworld
from eopack.errors import EopackError
from eopack.stamps import write_stamp


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def mirror(tmp_path) -> tuple[Path, bytes]:
    folder = tmp_path / "mirror"
    folder.mkdir()
    data = random.Random(3).randbytes(200_003)
    (folder / "Reference_Maps.tar.zst").write_bytes(data)
    return folder, data


def test_entry_by_md5_and_a_hard_link_out(mirror, tmp_path):
    folder, data = mirror
    resources = tmp_path / "resources"
    dest = resources / "Reference_Maps.tar.zst"
    source = Source(str(folder), {dest.name: md5(data)})
    fetch_verified(source, dest.name, dest)
    entry = cache_root(resources) / "md5" / md5(data) / dest.name
    assert entry.read_bytes() == data
    assert dest.stat().st_ino == entry.stat().st_ino
    assert not list((cache_root(resources) / "incoming").rglob("*"))


def test_a_failed_fetch_keeps_the_entry_and_the_output_and_says_so(mirror, tmp_path):
    folder, data = mirror
    resources = tmp_path / "resources"
    dest = resources / "Reference_Maps.tar.zst"
    fetch_verified(Source(str(folder), {dest.name: md5(data)}), dest.name, dest)
    inode = dest.stat().st_ino
    with pytest.raises(EopackError) as failed:
        fetch_verified(Source(str(folder), {dest.name: "0" * 32}), dest.name, dest)
    entry = cache_root(resources) / "md5" / md5(data) / dest.name
    assert str(failed.value) == (
        f"{dest.name}: md5 mismatch: expected {'0' * 32}, got {md5(data)} (from "
        f"{folder / dest.name}); nothing was copied; the local copy or the configured hash is "
        f"wrong; kept in the cache: {entry} (200.0 KB, md5 {md5(data)})"
    )
    assert dest.stat().st_ino == inode and dest.read_bytes() == data
    assert entry.stat().st_ino == inode
    assert not (cache_root(resources) / "md5" / ("0" * 32)).exists()


def test_a_touched_entry_is_trusted_and_a_changed_one_is_removed(mirror, tmp_path, caplog):
    """Snakemake touches the job's output, a hard link of the entry: no 59 GB re-hash for that;
    bytes that no longer match the md5 (another size) are no verified file."""
    caplog.set_level(logging.INFO, logger="eopack")
    folder, data = mirror
    cache = DownloadCache(tmp_path / "cache")
    entry, how = cache.fetch(str(folder / "Reference_Maps.tar.zst"), "x.tar.zst", md5(data))
    assert how.startswith("linked")  # hashed once, as it came in
    caplog.clear()
    os.utime(entry.path)  # what Snakemake does to the output after the job
    assert cache.lookup("x.tar.zst", md5(data)) == entry
    assert "computing the md5" not in caplog.text
    (tmp_path / "other").write_bytes(data + b"!")
    os.replace(tmp_path / "other", entry.path)
    assert cache.lookup("x.tar.zst", md5(data)) is None
    assert re.search(r"x\.tar\.zst: md5 \w+, not \w+ \(changed on disk\); removed", caplog.text)
    assert not entry.path.exists()


def test_an_entry_without_its_stamp_is_hashed_once(mirror, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="eopack")
    _, data = mirror
    cache = DownloadCache(tmp_path / "cache")
    path = cache.entry_path("x.tar.zst", md5(data))
    path.parent.mkdir(parents=True)
    path.write_bytes(data)  # a kill between the rename and the stamp
    assert cache.lookup("x.tar.zst", md5(data)).size == len(data)
    assert caplog.text.count("computing the md5") == 1
    assert cache.lookup("x.tar.zst", md5(data)) is not None
    assert caplog.text.count("computing the md5") == 1


def test_a_file_fetched_before_the_cache_is_adopted_not_downloaded(mirror, tmp_path):
    _, data = mirror
    resources = tmp_path / "resources"
    dest = resources / "Reference_Maps.tar.zst"
    resources.mkdir()
    dest.write_bytes(data)
    write_stamp(dest, "md5", md5(data))  # what the fetch wrote before the cache existed
    gone = Source(str(tmp_path / "nowhere"), {dest.name: md5(data)})
    fetch_verified(gone, dest.name, dest)
    entry = cache_root(resources) / "md5" / md5(data) / dest.name
    assert entry.stat().st_ino == dest.stat().st_ino


def test_extraction_is_keyed_by_the_archive_md5_and_the_bands(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="eopack")
    release = build_benworld(tmp_path / "release", s2_products=1, patches_per_product=2, s1=False)
    resources = tmp_path / "resources"
    name = benworld.S2_ARCHIVE
    digest = md5(release.files[name].read_bytes())
    archive = resources / name
    fetch_verified(Source(str(release.root), {name: digest}), name, archive)
    out = resources / "extracted" / "BigEarthNet-S2"
    assert extract_cached(archive, out, ["B02", "B03", "B04"]).extracted == 6
    tree = cache_root(resources) / "md5" / digest / "extracted" / "B02_B03_B04" / out.name
    assert out.is_symlink() and out.resolve() == tree.resolve()
    assert len(list(out.rglob("*.tif"))) == 6
    assert extract_cached(archive, out, ["B04", "B03", "B02"]) is None  # from the cache
    assert extract_cached(archive, out, ["B02", "B03", "B04", "B08"]).extracted == 8
    assert len(list(out.rglob("*.tif"))) == 8 and tree.is_dir()  # both kept


def test_an_archive_outside_the_cache_is_extracted_in_place(tmp_path):
    release = build_benworld(tmp_path / "release", s2_products=1, patches_per_product=2, s1=False)
    out = tmp_path / "elsewhere" / "extracted" / "Reference_Maps"
    extract_cached(release.files[benworld.REFERENCE_ARCHIVE], out)
    assert out.is_dir() and not out.is_symlink()
    assert len(list(out.rglob("*.tif"))) == 2


def test_a_copy_without_hard_links_still_marks_its_entries_in_use(mirror, tmp_path):
    """cp -r / rsync without -H: prune must not take the copied entries for unused ones."""
    folder, data = mirror
    resources = tmp_path / "resources"
    dest = resources / "Reference_Maps.tar.zst"
    fetch_verified(Source(str(folder), {dest.name: md5(data)}), dest.name, dest)
    copy = tmp_path / "copy"
    shutil.copytree(resources, copy, symlinks=True)
    assert [(i.kind, i.in_use) for i in cache_items(copy)] == [("file", True)]
    assert prune(copy) == [] and (cache_root(copy) / "md5" / md5(data) / dest.name).is_file()


def test_an_archive_fetched_before_the_cache_is_adopted_while_the_dag_is_built(tmp_path):
    """Upgrading: the fetch job does not run again (same rule, script and params), so the
    archive goes into the cache at DAG time, before a later md5 change would let Snakemake
    delete it; the extraction then finds it there."""
    release = build_benworld(tmp_path / "release", s2_products=1, patches_per_product=2, s1=False)
    resources = tmp_path / "resources"
    resources.mkdir()
    for name in (benworld.S2_ARCHIVE, benworld.REFERENCE_ARCHIVE):
        os.link(release.files[name], resources / name)  # as the old fetch left them
        write_stamp(resources / name, "md5", md5(release.files[name].read_bytes()))
    os.utime(resources / benworld.S2_ARCHIVE)  # Snakemake's touch: the stamp's mtime is stale
    prepare_inputs({"source": str(release.root), "hashes": "hashes.txt"}, resources)
    for name in (benworld.S2_ARCHIVE, benworld.REFERENCE_ARCHIVE):
        entry = cache_root(resources) / "md5" / md5(release.files[name].read_bytes()) / name
        assert entry.stat().st_ino == (resources / name).stat().st_ino
    out = resources / "extracted" / "Reference_Maps"
    extract_cached(resources / benworld.REFERENCE_ARCHIVE, out)
    assert out.is_symlink()
