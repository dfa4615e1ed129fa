"""Kill a workflow run outright at seeded moments and resume it, as spot interruptions would.

A run is started, ``SIGKILL``-ed with its whole process group (Snakemake and every job it
started) once the run has written a chosen number of files under ``results/``, and resumed with
the README's commands (``snakemake --unlock``, then the same command) ``points`` times over;
then it is run to the end. The moments are progress, not seconds, so that they spread over the
whole run on a fast or a slow machine: the seed picks ``points`` file counts between 1 and the
count a finished run has, and a short random delay after each so that jobs are caught half-way.
The caller compares the result with an uninterrupted run (``tests/test_kill_resume.py``,
``bench/bench_kill_resume.py``).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RUN_DEPENDENT", "KillChain", "count_files", "kill_and_resume", "result_hashes"]

#: Files under results/ that differ between two clean runs by design: the presigned URLs
#: carry their signing time. Anything else that differs is a reproducibility defect.
RUN_DEPENDENT = frozenset({"results/publish/urls.tsv"})


def result_hashes(workdir: Path) -> dict[str, str]:
    """SHA-256 of every file under ``workdir/results`` but :data:`RUN_DEPENDENT`, by path
    relative to ``workdir``: what an interrupted or faulty run is compared on."""
    out = {}
    for path in sorted((workdir / "results").rglob("*")):
        name = path.relative_to(workdir).as_posix()
        if path.is_file() and name not in RUN_DEPENDENT:
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def count_files(folder: Path) -> int:
    """Files under ``folder`` now (a run may be creating and removing them as we walk)."""
    return sum(len(files) for _, _, files in os.walk(folder))


@dataclass
class KillChain:
    """What happened: the progress (file counts) at which each kill came, and the runs."""

    targets: list[int]
    killed_at: list[int] = field(default_factory=list)  # files under results/ at each kill
    runs: int = 0
    seconds: float = 0.0


def _snakemake(
    workdir: Path, args: Sequence[str], env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=workdir,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole
        )


def _unlock(workdir: Path, env: Mapping[str, str], log: Path) -> None:
    """The README's first resume step after a ``kill -9``."""
    with open(log, "ab") as out:
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--unlock"],
            cwd=workdir,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=300,
        )


def kill_and_resume(
    workdir: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    points: int,
    finished_files: int,
    seed: int,
    log: Path,
    timeout_s: float = 900.0,
) -> KillChain:
    """Run ``snakemake *args`` in ``workdir``, killed at ``points`` moments, then to the end.

    Raises :class:`RuntimeError` when a run ends by itself before its kill (a failed resume,
    or a run that finished early) or the final run fails; ``log`` holds every run's console.
    """
    rng = random.Random(seed)
    chain = KillChain(sorted(rng.sample(range(1, finished_files), points)))
    started = time.monotonic()
    results = workdir / "results"
    for target in chain.targets:
        _unlock(workdir, env, log)
        proc = _snakemake(workdir, args, env, log)
        chain.runs += 1
        while count_files(results) < target:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"run {chain.runs} ended (exit {proc.returncode}) at "
                    f"{count_files(results)} files, before its kill at {target}; see {log}"
                )
            if time.monotonic() - started > timeout_s:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"no progress to {target} files in {timeout_s:.0f} s; {log}")
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:
            raise RuntimeError(f"run {chain.runs} ended before its kill; see {log}")
        chain.killed_at.append(count_files(results))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _unlock(workdir, env, log)
    proc = _snakemake(workdir, args, env, log)
    chain.runs += 1
    if proc.wait(timeout=timeout_s) != 0:
        raise RuntimeError(f"the final run failed (exit {proc.returncode}); see {log}")
    chain.seconds = time.monotonic() - started
    return chain
