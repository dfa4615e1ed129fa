"""Run times a job asks a scheduler for (eopack.resources), and every rule declaring them."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from eopack.resources import runtime_minutes, tree_size_mb


def test_runtime_scales_with_the_bytes_and_has_a_floor():
    assert runtime_minutes(0, 20) == 5
    assert runtime_minutes(0, 20, floor=10) == 10
    # 59 GB at 20 MB/s, doubled: 98.3 -> 99 minutes.
    assert runtime_minutes(59_000, 20) == 99
    assert runtime_minutes(1_200, 1) == 40
    with pytest.raises(ValueError):
        runtime_minutes(1, 0)


def test_tree_size_walks_folders_and_skips_missing(tmp_path):
    safe = tmp_path / "P.SAFE"
    (safe / "measurement").mkdir(parents=True)
    (safe / "manifest.safe").write_bytes(b"x" * 500_000)
    (safe / "measurement" / "a.tiff").write_bytes(b"x" * 1_500_000)
    single = tmp_path / "P.verify.json"
    single.write_bytes(b"x" * 1_000_000)
    assert tree_size_mb([safe]) == pytest.approx(2.0)
    assert tree_size_mb([safe, single, tmp_path / "missing"]) == pytest.approx(3.0)


RULE = re.compile(r"^\s*(?:rule|checkpoint) (\w+):$")


def rule_blocks() -> dict[str, str]:
    """Rule name -> its declaration text, over rules/*.smk."""
    blocks: dict[str, str] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        name = None
        for line in smk.read_text().splitlines():
            match = RULE.match(line)
            if match:
                name = match.group(1)
                blocks[name] = ""
            elif name and (line.startswith(" ") or not line):
                blocks[name] += line + "\n"
            else:
                name = None
    return blocks


def test_every_job_rule_declares_threads_memory_and_runtime():
    """A scheduler sizes and kills jobs by these: none may be left to a profile's guess.
    Target-only rules (input only, no output) run no job."""
    blocks = rule_blocks()
    assert len(blocks) > 20
    for name, text in blocks.items():
        if "output:" not in text:
            continue
        assert re.search(r"^\s+threads: \d+$", text, re.M), name
        assert re.search(r"^\s+mem_mb=\d+,$", text, re.M), name
        assert re.search(r"^\s+runtime=", text, re.M), name


def test_local_rules_exist():
    """The localrules list names real rules (a typo would silently send a job to the cluster)."""
    snakefile = (REPO / "Snakefile").read_text()
    listed = re.search(r"^localrules:\n((?:    \w+,\n)+)", snakefile, re.M)
    assert listed, "Snakefile has no localrules list"
    names = re.findall(r"(\w+),", listed.group(1))
    assert set(names) <= set(rule_blocks())
    assert {"search", "union_products", "plan", "publish_urls", "report_summary"} <= set(names)
