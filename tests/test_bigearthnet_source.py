"""Release source, md5s and the inputs known before any job (a local folder as the source)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eopack.bigearthnet.fetch import load_hashes
from eopack.bigearthnet.index import METADATA, SNOW_CLOUD_METADATA, Selection
from eopack.bigearthnet.source import (
    ZENODO_FILES,
    fetch_release_file,
    load_source,
    prepare_inputs,
)
from eopack.demo import benworld
from eopack.demo.benworld import build_benworld
from eopack.errors import EopackError

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
REAL_MD5 = "55687065e77b6d0b0f1ff604a6e7b49c"  # metadata.parquet in the release's hashes.txt


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return build_benworld(
        tmp_path_factory.mktemp("release"), s2_products=2, patches_per_product=6, s1=False
    )


def test_default_source_is_zenodo_and_md5s_come_from_the_config(tmp_path):
    source = load_source({"md5s": {"metadata.parquet": REAL_MD5.upper()}}, tmp_path)
    assert source.base == ZENODO_FILES
    assert source.uri("metadata.parquet") == f"{ZENODO_FILES}/metadata.parquet?download=1"
    assert source.md5("metadata.parquet") == REAL_MD5
    with pytest.raises(
        EopackError, match=re.escape("no md5 for Reference_Maps.tar.zst; add it to")
    ):
        source.md5("Reference_Maps.tar.zst")


def test_hashes_file_wins_over_md5s_and_is_fetched_again_when_its_uri_changes(tmp_path):
    resources = tmp_path / "resources"
    other = {"md5s": {"metadata.parquet": "0" * 32, "extra.bin": "1" * 32}}
    source = load_source({"source": str(FIXTURES), "hashes": "hashes.txt", **other}, resources)
    assert source.md5("metadata.parquet") == REAL_MD5
    assert source.md5("extra.bin") == "1" * 32  # not in the hashes file
    assert (resources / "hashes.txt").read_bytes() == (FIXTURES / "hashes.txt").read_bytes()
    mine = tmp_path / "mine.txt"
    mine.write_text(f"{'2' * 32}  metadata.parquet\n", encoding="ascii")
    source = load_source({"source": str(FIXTURES), "hashes": str(mine)}, resources)
    assert source.md5("metadata.parquet") == "2" * 32
    mine.write_text("not a hashes file\n", encoding="ascii")
    with pytest.raises(EopackError, match=re.escape("mine.txt")):
        load_source({"source": str(FIXTURES), "hashes": str(tmp_path / "mine.txt")}, tmp_path)


def test_real_metadata_gives_115_products(tmp_path):
    cfg = {"source": str(FIXTURES), "hashes": "hashes.txt"}
    inputs = prepare_inputs(cfg, tmp_path)
    assert inputs.metadata == (tmp_path / METADATA,)
    assert len(inputs.products) == 115
    both = prepare_inputs({**cfg, "include_snow": True, "include_cloud": True}, tmp_path)
    assert both.metadata == (tmp_path / METADATA, tmp_path / SNOW_CLOUD_METADATA)
    assert both.products == inputs.products
    assert both.selection == Selection(include_snow=True, include_cloud=True)


def test_products_follow_the_selection(release, tmp_path):
    cfg = {"source": str(release.root), "hashes": "hashes.txt"}
    assert prepare_inputs(cfg, tmp_path / "a").products == release.s2_products
    one = {p.s2_product for p in release.patches if p.split == "validation"}
    assert prepare_inputs({**cfg, "splits": ["validation"]}, tmp_path / "b").products == tuple(
        sorted(one)
    )


def test_bad_md5_missing_md5_or_bad_stretch_stop_before_any_job(release, tmp_path):
    cfg = {"source": str(release.root), "hashes": "hashes.txt"}
    hashes = (release.root / "hashes.txt").read_text(encoding="ascii")
    bad = tmp_path / "bad.txt"
    line = next(x for x in hashes.splitlines() if x.endswith(f"  {METADATA}"))
    bad.write_text(hashes.replace(line, f"{'f' * 32}  {METADATA}"), encoding="ascii")
    with pytest.raises(EopackError, match=re.escape("metadata.parquet: md5 mismatch")):
        prepare_inputs({**cfg, "hashes": str(bad)}, tmp_path / "r1")
    assert not list((tmp_path / "r1").glob("metadata.parquet*"))
    partial = tmp_path / "partial.txt"
    partial.write_text(
        "\n".join(line for line in hashes.splitlines() if "Reference_Maps.tar.zst" not in line),
        encoding="ascii",
    )
    with pytest.raises(EopackError, match=re.escape("no md5 for Reference_Maps.tar.zst")):
        prepare_inputs({**cfg, "hashes": str(partial)}, tmp_path / "r2")
    with pytest.raises(EopackError, match=re.escape("bigearthnet.stretch: RGB stretch: need")):
        prepare_inputs({**cfg, "stretch": {"low": 3000, "high": 2000}}, tmp_path / "r3")


def test_fetch_release_file_verifies_and_reuses(release, tmp_path):
    md5s = load_hashes(release.root / "hashes.txt")
    cfg = {"source": str(release.root)}
    dest = tmp_path / benworld.REFERENCE_ARCHIVE
    fetch_release_file(cfg, dest.name, md5s[dest.name], dest)
    assert dest.read_bytes() == release.files[benworld.REFERENCE_ARCHIVE].read_bytes()
    fetch_release_file(cfg, dest.name, md5s[dest.name], dest)  # present: nothing moves
    with pytest.raises(EopackError, match=f"{benworld.S2_ARCHIVE}: md5 mismatch"):
        fetch_release_file(cfg, benworld.S2_ARCHIVE, "0" * 32, tmp_path / benworld.S2_ARCHIVE)
    assert not (tmp_path / benworld.S2_ARCHIVE).exists()
