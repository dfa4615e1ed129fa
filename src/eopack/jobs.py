"""Glue for Snakemake ``script:`` adapters: log to the job's log file, fail with one line."""

from __future__ import annotations

import logging
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from eopack.errors import EopackError
from eopack.logs import setup_logging

T = TypeVar("T")

# The fallback start of the job where /proc is missing: when the adapter imported this module.
_IMPORTED = time.monotonic()


def run_job(log_file: str | Path | None, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``step`` with logging to ``log_file``; an :class:`EopackError` exits 1 with its line."""
    log = setup_logging(log_file)
    try:
        result = step(*args, **kwargs)
    except EopackError as err:
        log.error("%s", err)
        logging.shutdown()
        sys.exit(f"eopack: {err}")
    log.info("job time %.2f s", job_seconds())
    log.info("peak RSS %d MB", peak_rss_mb())
    return result


def job_seconds() -> float:
    """Seconds since this process started, Python's start-up and imports included: what the
    job cost. The run summary reads it from the log; log timestamps have whole seconds, and
    most jobs take less than one.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # Fields after "(comm)": state is field 3, starttime (clock ticks after boot) 22.
            started = int(stat.read().rpartition(")")[2].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime", encoding="ascii") as uptime:
            return max(0.0, float(uptime.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


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


def outlast_inputs(paths: Iterable[str | Path]) -> float:
    """Wait until the clock is in a later whole second than the newest of ``paths`` was
    modified; returns the seconds waited.

    For jobs with local inputs (``resources/``) and outputs in S3 through the storage plugin:
    S3 object times have whole seconds, local ones nanoseconds, and Snakemake compares the two.
    An output stored within the second its input changed (a render of a small product, the
    index after the last render) looks older than that input, and the next run does the job
    again. A directory's time is its ``.snakemake_timestamp``, as Snakemake reads it.
    """
    newest = 0.0
    for path in map(Path, paths):
        stamp = path / ".snakemake_timestamp"
        try:
            newest = max(newest, (stamp if stamp.is_file() else path).stat().st_mtime)
        except FileNotFoundError:
            continue
    waited = 0.0
    while (now := time.time()) < math.floor(newest) + 1:
        pause = math.floor(newest) + 1 - now
        time.sleep(pause)
        waited += pause
    return waited
