"""Snakemake's working-directory lock, left behind by a run that was killed.

Snakemake locks the working directory while it runs and removes the lock when it ends. A run
killed outright (``kill -9`` of the process group, an EC2 spot interruption, an out-of-memory
kill) cannot remove it, and the next run then stops with "Directory cannot be locked" until
someone runs ``snakemake --unlock``. The lock records no process, so whether it is stale is
decided here the way a person would: no Snakemake process (nor one of its jobs) has this
folder as its working directory any more. Linux only (``/proc``); elsewhere nothing is judged
stale.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["has_lock", "snakemake_processes_in"]


def has_lock(workdir: str | Path) -> bool:
    """Whether Snakemake's lock files are present in ``workdir``."""
    locks = Path(workdir) / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def snakemake_processes_in(workdir: str | Path, proc: str | Path = "/proc") -> list[int]:
    """PIDs of the processes, other than this one and its parents, working in ``workdir`` whose
    command line names Snakemake (Snakemake itself, and the jobs it starts: their scripts live
    under ``.snakemake/scripts``). A process that cannot be read is skipped.
    """
    target = Path(workdir).resolve()
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in Path(proc).iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if Path(os.readlink(entry / "cwd")).resolve() != target:
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if b"snakemake" in cmdline:
            found.append(int(entry.name))
    return sorted(found)
