"""bench/bench_dag.py on a small world: it generates, searches, times and reports consistently."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

AOIS, MONTHS, PER_SEARCH = 3, 2, 17


def test_small_dag_bench(tmp_path):
    out = tmp_path / "samples.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_dag.py"),
            *("--aois", str(AOIS), "--months", str(MONTHS), "--per-search", str(PER_SEARCH)),
            *("--runs", "1", "--workdir", str(tmp_path), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = dict(pair.split("=") for pair in proc.stdout.strip().splitlines()[-1].split())
    products = AOIS * MONTHS * PER_SEARCH
    assert set(figures) == {
        "dry_run_s",
        "dry_run_peak_rss_mb",
        "jobs",
        "products",
        "search_to_download_s",
    }
    assert int(figures["products"]) == products
    # Per product rebuild, verify, zip; then plan and all (report off; the union has run).
    assert int(figures["jobs"]) == 3 * products + 2
    assert 0 < float(figures["dry_run_s"]) < 60
    assert 50 < int(figures["dry_run_peak_rss_mb"]) < 2000
    doc = json.loads(out.read_text())
    assert doc["jobs"] == {
        "plan": 1,
        "rebuild_safe": products,
        "verify_safe": products,
        "zip_safe": products,
        "all": 1,
    }
    (sample,) = doc["downloads"]
    # The re-run search ended before the first download started, and the run started before.
    assert 0 < sample["start_to_search_end_s"] < sample["start_to_download_s"]
    assert sample["search_to_download_s"] == pytest.approx(
        sample["start_to_download_s"] - sample["start_to_search_end_s"]
    )
    assert float(figures["search_to_download_s"]) == pytest.approx(
        sample["search_to_download_s"], abs=0.05
    )
    # Nothing left behind: the work folder is removed without --keep.
    assert not list(tmp_path.glob("eopack-bench-dag-*"))
