"""A workaround for Snakemake's scheduler, called from the Snakefile's ``onsuccess``/``onerror``.

Snakemake's default job rate limiter (``--max-jobs-per-timespan 100/1s``) re-opens the
scheduling loop through a ``threading.Timer`` after every pass
(``JobScheduler._schedule_reevalutation``). The timer's thread is not a daemon, so when the last
job is done the interpreter waits up to a second for it before the process can exit: every run
of the workflow, even "nothing to be done" with jobs to check, ends ~1 s late (a 3-job workflow:
2.0 s, 0.95 s with the timer cancelled). The limiter cannot be switched off from the command
line (the timespan is a whole number of seconds or more; ``0s`` would make the loop spin).

Once the hooks run, the scheduler has returned and nothing waits for the timer, so cancelling it
changes nothing but the exit time. Only timers whose function is the scheduler's are touched.
"""

from __future__ import annotations

import threading

__all__ = ["SCHEDULER_TIMER", "cancel_scheduler_timers"]

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
