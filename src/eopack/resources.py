"""What each job asks a scheduler for: run time from the data a job moves.

Every rule declares ``threads``, ``mem_mb`` and ``runtime`` (minutes, Snakemake's standard
resource): a cluster (SLURM ``--time``, AWS Batch's task timeout) kills a job that outlives its
``runtime``, and queues a job asking for too much longer. So a job that moves data gets a run
time from the bytes it moves at a *slow* rate (a busy shared disk, a throttled network), with a
floor for start-up and retries, rather than one figure that is too short for a big product and
far too long for a small one. The rates are deliberately pessimistic: the cost of a too-long
limit is a little queue priority, the cost of a too-short one is a killed job done again.

Only where sizes differ by orders of magnitude (BigEarthNet's 59 GB archive against its 0.3 GB
of reference maps) is the run time a function of the input: Snakemake evaluates a callable
resource for every job, and the per-product rules (rebuild, verify, zip, upload: products of
0.4-2 GB) have plain numbers that cover the largest product, which keeps a 30,000-job DAG cheap
(docs/benchmarks.md, "DAG at 10,000 products").
"""

from __future__ import annotations

import math

__all__ = ["runtime_minutes"]


def runtime_minutes(size_mb: float, mb_per_s: float, floor: int = 5) -> int:
    """Minutes for moving ``size_mb`` at ``mb_per_s``, doubled for headroom, at least ``floor``."""
    if mb_per_s <= 0:
        raise ValueError("mb_per_s must be positive")
    return max(floor, math.ceil(2 * size_mb / mb_per_s / 60))
