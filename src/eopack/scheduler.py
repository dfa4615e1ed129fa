"""Three tweaks of the Snakemake process itself, called from the Snakefile.

**The collector at start-up** (:func:`freeze_startup_objects`, first thing in the Snakefile):
Snakemake's start imports ~1,000 modules (sqlalchemy, pydantic, boto3, numpy...), then the
Snakefile builds the DAG. Python's cyclic garbage collector walks every tracked object in each
full pass, and the passes the allocations trigger walked those imports again and again: ~25 % of
the CPU of ``snakemake bigearthnet -n`` (1.32-1.41 s, 1.07-1.10 s with them frozen). Frozen
objects are skipped by every later pass; they are modules, classes and functions that live to
the end of the process anyway.

**The scheduler's exit timer** (:func:`cancel_scheduler_timers`, in ``onsuccess``/``onerror``):
Snakemake's default job rate limiter (``--max-jobs-per-timespan 100/1s``) re-opens the
scheduling loop through a ``threading.Timer`` after every pass
(``JobScheduler._schedule_reevalutation``). The timer's thread is not a daemon, so when the last
job is done the interpreter waits up to a second for it before the process can exit: every run
of the workflow, even "nothing to be done" with jobs to check, ends ~1 s late (a 3-job workflow:
2.0 s, 0.95 s with the timer cancelled). The limiter cannot be switched off from the command
line (the timespan is a whole number of seconds or more; ``0s`` would make the loop spin).

Once the hooks run, the scheduler has returned and nothing waits for the timer, so cancelling it
changes nothing but the exit time. Only timers whose function is the scheduler's are touched.

**The script check per job** (:func:`check_scripts_once`, before the includes): after each
DAG update Snakemake checks, for every job that runs a ``script:``, that the script is there
(``snakemake.dag.ScriptProcessor``), and does it by reading the whole script through its source
cache (smart_open URI parsing, a cache entry, the file read) once *per job*. eopack's scripts
are fixed paths, the same for every job of a rule, so the answer is the same for all of them:
at 10,000 products (30,600 jobs) that was ~20 % of a dry run. The tweak checks a fixed path
once per rule of the DAG; a path with wildcards or params (``{...}``) is checked per job as
before, and a missing script still fails the same way, before any job runs.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

__all__ = [
    "SCHEDULER_TIMER",
    "cancel_scheduler_timers",
    "check_scripts_once",
    "freeze_startup_objects",
]

#: ``__qualname__`` prefix of the function Snakemake's re-evaluation timer runs.
SCHEDULER_TIMER = "JobScheduler._schedule_reevalutation."


def cancel_scheduler_timers() -> int:
    """Cancel the scheduler's pending re-evaluation timers; returns how many were pending."""
    cancelled = 0
    for thread in threading.enumerate():
        if not isinstance(thread, threading.Timer) or thread.finished.is_set():
            continue
        name = getattr(getattr(thread, "function", None), "__qualname__", "")
        if name.startswith(SCHEDULER_TIMER):
            thread.cancel()
            cancelled += 1
    return cancelled


def freeze_startup_objects() -> int:
    """Move every object alive now to the collector's permanent generation (``gc.freeze``), so
    later collections do not walk them; returns how many are frozen in all."""
    gc.freeze()
    return gc.get_freeze_count()


def check_scripts_once() -> bool:
    """Make Snakemake check a rule's fixed ``script:`` path once per DAG, not once per job;
    returns False (nothing changed) where this Snakemake has no such check."""
    try:
        from snakemake.dag import ScriptProcessor
    except ImportError:  # pragma: no cover - another Snakemake layout
        return False
    original = ScriptProcessor.process_job
    if getattr(original, "_eopack_once", False):
        return True

    def process_job(self: Any, job: Any) -> None:
        entry = getattr(job.rule, self.script_type, None) if job.rule else None
        if entry is None or "{" in str(entry) or not getattr(job, f"is_{self.script_type}"):
            original(self, job)
            return
        checked = self.__dict__.setdefault("_eopack_checked", set())
        key = (id(job.rule), str(entry))
        if key not in checked:
            original(self, job)  # raises for a missing script, as before
            checked.add(key)

    process_job._eopack_once = True  # type: ignore[attr-defined]
    ScriptProcessor.process_job = process_job  # type: ignore[method-assign]
    return True
