"""The workflow's tweaks of its Snakemake process (eopack.scheduler): exit timer, collector."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

from eopack.scheduler import cancel_scheduler_timers, freeze_startup_objects


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


def test_start_up_objects_are_frozen_out_of_later_collections() -> None:
    before = gc.get_freeze_count()
    try:
        alive = object.__new__(type("Alive", (), {}))  # a tracked object made before the call
        frozen = freeze_startup_objects()
        assert frozen >= before and frozen == gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())  # no longer walked by collections
    finally:
        gc.unfreeze()


def test_the_workflow_freezes_before_its_first_include() -> None:
    snakefile = (Path(__file__).parents[1] / "Snakefile").read_text()
    assert snakefile.index("\nfreeze_startup_objects()") < snakefile.index("\ninclude:")
