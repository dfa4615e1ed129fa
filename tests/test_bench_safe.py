"""bench/bench_safe.py's S2 L2A row at a tiny size: it seeds, fetches with both tools, checks
eopack's SAFE (seeded MD5s, the collection's verifier) and reports ``ratio_vs_s5cmd_s2``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def _s5cmd() -> str | None:
    local = Path(sys.executable).parent / "s5cmd"
    return str(local) if local.is_file() else shutil.which("s5cmd")


def test_s2_row_at_a_tiny_size(tmp_path):
    assert _s5cmd() is not None, "s5cmd is missing: the test extra installs it (make install)"
    out = tmp_path / "samples.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_safe.py"),
            *("--only", "s2", "--s2-size-mb", "12", "--runs", "1", "--no-context"),
            *("--no-volume", "--workdir", str(tmp_path), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "manifest sizes/MD5s updated" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    figures = dict(pair.split("=") for pair in last.split())
    assert set(figures) == {"ratio_vs_s5cmd_s2"} and float(figures["ratio_vs_s5cmd_s2"]) > 0
    doc = json.loads(out.read_text())
    product = doc["s2_product"]
    eopack, s5cmd = doc["s2_series"]
    assert [len(eopack["samples"]), len(s5cmd["samples"])] == [1, 1]
    # eopack wrote the SAFE's files; s5cmd every object of both folders (productInfo.json and
    # tileInfo.json too); the enlarged JP2s make up most of it.
    safe_bytes = sum(product["objects"][key] for key in product["paths"].values())
    assert eopack["samples"][0]["nbytes"] == safe_bytes
    assert s5cmd["samples"][0]["nbytes"] == sum(product["objects"].values())
    assert 11e6 < safe_bytes < 13e6
    assert doc["R_S2"] == pytest.approx(float(figures["ratio_vs_s5cmd_s2"]), abs=0.006)
