"""The scheduler's exit timer is cancelled by the workflow's hooks (eopack.scheduler)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

from eopack.scheduler import cancel_scheduler_timers


def test_the_timer_snakemake_leaves_at_exit_is_cancelled_and_others_are_not() -> None:
    released = threading.Event()
    scheduler = SimpleNamespace(_open_jobs=SimpleNamespace(release=released.set))
    # What Snakemake's scheduler does after each pass (the installed version's own code).
    JobScheduler._schedule_reevalutation(scheduler, 30)  # type: ignore[arg-type]
    fired = threading.Event()
    other = threading.Timer(30, fired.set)
    other.start()
    try:
        pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        assert len(pending) == 2, "Snakemake no longer starts a re-evaluation timer"
        assert cancel_scheduler_timers() == 1
        scheduler_timer = next(t for t in pending if t is not other)
        scheduler_timer.join(5)
        assert not scheduler_timer.is_alive() and not released.is_set()
        assert other.is_alive() and not other.finished.is_set()
        assert cancel_scheduler_timers() == 0
    finally:
        other.cancel()
        other.join(5)
    assert not fired.is_set()


def test_the_workflow_cancels_it_on_success_and_on_error() -> None:
    snakefile = (Path(__file__).parents[1] / "Snakefile").read_text()
    for hook in ("onsuccess:", "onerror:"):
        body = snakefile.split(hook, 1)[1].split("\n\n", 1)[0]
        assert "cancel_scheduler_timers()" in body, hook
