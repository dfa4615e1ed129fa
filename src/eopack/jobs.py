"""Glue for Snakemake ``script:`` adapters: log to the job's log file, fail with one line."""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from eopack.errors import EopackError
from eopack.logs import setup_logging

T = TypeVar("T")


def run_job(log_file: str | Path | None, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``step`` with logging to ``log_file``; an :class:`EopackError` exits 1 with its line."""
    log = setup_logging(log_file)
    try:
        result = step(*args, **kwargs)
    except EopackError as err:
        log.error("%s", err)
        logging.shutdown()
        sys.exit(f"eopack: {err}")
    log.info("peak RSS %d MB", peak_rss_mb())
    return result


def end_process(status: int = 0) -> NoReturn:
    """Leave the process now, with ``status``, its files closed and its log flushed.

    For processes that used obstore (``eopack.transfer``): its Rust runtime keeps worker
    threads to the end, and the interpreter's finalization with them still running aborted
    (SIGABRT, no message, after the job's last log line) ~15 % of the demo's SAFE download
    jobs, and 1 in 30-60 minimal obstore programs. Nothing is left for finalization to do
    once the outputs are written, so it is skipped.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def peak_rss_mb() -> int:
    """This process's peak resident set size in MiB (``VmHWM``), logged at the end of every job
    so memory budgets (1 GB instances) can be checked per job.

    Not ``ru_maxrss``: Linux carries it over fork and exec, so a job started by Snakemake would
    report at least Snakemake's own size. ``ru_maxrss`` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return (int(line.split()[1]) + 1023) // 1024
    except OSError:
        pass
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + 1023) // 1024
