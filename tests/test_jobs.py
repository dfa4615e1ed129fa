"""eopack.jobs: the glue every Snakemake script adapter goes through."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time

import pytest

from eopack.errors import EopackError
from eopack.jobs import outlast_inputs, peak_rss_mb, run_job

CHILD = "from eopack.jobs import peak_rss_mb; print(peak_rss_mb())"


def test_job_log_ends_with_peak_rss_and_errors_exit_with_one_line(tmp_path):
    log = tmp_path / "job.log"
    assert run_job(log, lambda x: x * 2, 21) == 42
    lines = log.read_text().splitlines()
    assert re.search(r"peak RSS \d+ MB$", lines[-1])
    assert re.search(r"job time \d+\.\d\d s$", lines[-2])

    def fail() -> None:
        raise EopackError("bad.tif: not a GeoTIFF")

    with pytest.raises(SystemExit) as stop:
        run_job(tmp_path / "fail.log", fail)
    assert stop.value.code == "eopack: bad.tif: not a GeoTIFF"


def test_peak_rss_is_the_jobs_own_not_inherited_from_a_big_parent():
    """Linux carries ru_maxrss over fork and exec; a job started by a big Snakemake must not
    report Snakemake's memory as its own."""
    ballast = bytearray(400 << 20)  # the parent touches 400 MiB
    ballast[::4096] = b"x" * len(ballast[::4096])
    assert peak_rss_mb() >= 400
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout
    assert int(out) < 200, out
    del ballast


def test_outlast_inputs_waits_into_the_next_second_only_when_needed(tmp_path):
    old = tmp_path / "old.tsv"
    old.write_text("x")
    os.utime(old, (time.time() - 5, time.time() - 5))
    folder = tmp_path / "extracted"
    folder.mkdir()
    (folder / "new-file").write_text("y")  # the folder changed just now...
    stamp = folder / ".snakemake_timestamp"
    stamp.write_text("")
    os.utime(stamp, (time.time() - 3, time.time() - 3))  # ...but Snakemake dates it by its stamp
    assert outlast_inputs([old, folder, tmp_path / "missing"]) == 0

    fresh = tmp_path / "fresh.tsv"
    fresh.write_text("z")
    changed = fresh.stat().st_mtime
    waited = outlast_inputs([old, fresh])
    assert time.time() >= math.floor(changed) + 1  # an object stored now is dated after it
    assert 0 <= waited <= 1.05  # none if the second turned before the call


def test_job_time_counts_from_the_process_start():
    """A job's time includes Python's start-up and imports (what the job cost), not only the
    step: the child sleeps 0.3 s before it asks."""
    code = "import time; time.sleep(0.3); from eopack.jobs import job_seconds; print(job_seconds())"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    took = time.monotonic() - started
    seconds = float(out.stdout)
    assert 0.3 <= seconds <= took + 0.02, (seconds, took)
