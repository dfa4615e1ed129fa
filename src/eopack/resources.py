"""What each job asks a scheduler for: run time from the data a job moves.

Every rule declares ``threads``, ``mem_mb`` and ``runtime`` (minutes, Snakemake's standard
resource): a cluster (SLURM ``--time``, AWS Batch's task timeout) kills a job that outlives its
``runtime``, and queues a job asking for too much longer. So a job that moves data gets a run
time from the bytes it moves at a *slow* rate (a busy shared disk, a throttled network), with a
floor for start-up and retries, rather than one figure that is too short for a big product and
far too long for a small one. The rates are deliberately pessimistic: the cost of a too-long
limit is a little queue priority, the cost of a too-short one is a killed job done again.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["runtime_minutes", "tree_size_mb"]

MB = 1_000_000


def runtime_minutes(size_mb: float, mb_per_s: float, floor: int = 5) -> int:
    """Minutes for moving ``size_mb`` at ``mb_per_s``, doubled for headroom, at least ``floor``."""
    if mb_per_s <= 0:
        raise ValueError("mb_per_s must be positive")
    return max(floor, math.ceil(2 * size_mb / mb_per_s / 60))


def tree_size_mb(paths: Iterable[str | os.PathLike[str]]) -> float:
    """Bytes of the files under ``paths`` (files or folders, walked), in MB; missing = 0.

    Snakemake's ``input.size_mb`` counts a ``directory()`` input as its folder entry only,
    while a SAFE folder's weight is its files."""
    total = 0
    for path in paths:
        path = Path(path)
        try:
            if not path.is_dir():
                total += path.stat().st_size
                continue
        except OSError:
            continue
        for folder, _, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(folder, name)).st_size
    return total / MB
