"""A lock left by a killed Snakemake run is told apart from a live run's (eopack.locks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eopack.locks import has_lock, snakemake_processes_in

SNAKEFILE = """
rule all:
    input:
        "slow.txt",


rule slow:
    output:
        "slow.txt",
    shell:
        "sleep 60 && touch {output}"
"""


def _start(workdir: Path) -> subprocess.Popen[bytes]:
    (workdir / "Snakefile").write_text(SNAKEFILE)
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, killed whole as a spot interruption
    )


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_killed_runs_lock_is_stale_and_a_live_runs_is_not(tmp_path: Path) -> None:
    run = _start(tmp_path)
    try:
        _wait_for(lambda: has_lock(tmp_path))
        live = snakemake_processes_in(tmp_path)
        assert run.pid in live  # a live run (and its job) works here: its lock stands
        assert snakemake_processes_in(tmp_path / "elsewhere-not-here") == []
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        _wait_for(lambda: not snakemake_processes_in(tmp_path), timeout=30)
        assert has_lock(tmp_path)  # left behind: only the lack of a process says it is stale
        again = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1"],  # refused before any job
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode != 0 and "cannot be locked" in again.stderr
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def test_no_lock_in_a_fresh_folder(tmp_path: Path) -> None:
    assert not has_lock(tmp_path)
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    assert not has_lock(tmp_path)
