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


CHECKED_ONCE = """
import snakemake.script
from eopack.scheduler import check_scripts_once

if config.get("once"):
    check_scripts_once()
_get_source = snakemake.script.get_source


def _counting(path, *args, **kwargs):
    print(f"SCRIPT READ {path}", file=sys.stderr)
    return _get_source(path, *args, **kwargs)


snakemake.script.get_source = _counting


rule all:
    input:
        expand("out/{n}.txt", n=range(40)),


rule fixed:
    output:
        "out/{n}.txt",
    script:
        "scripts/{script}"

"""


def _dry_run(tmp_path: Path, script: str, once: bool) -> tuple[int, str]:
    import subprocess
    import sys

    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "touch.py").write_text("open(snakemake.output[0], 'w').close()\n")
    (tmp_path / "Snakefile").write_text("import sys\n" + CHECKED_ONCE.replace("{script}", script))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", f"once={int(once)}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_a_fixed_script_is_checked_once_per_rule_not_per_job(tmp_path: Path) -> None:
    code, out = _dry_run(tmp_path, "touch.py", once=False)
    assert code == 0, out[-2000:]
    assert out.count("SCRIPT READ scripts/touch.py") == 40  # Snakemake's way: once per job
    code, out = _dry_run(tmp_path, "touch.py", once=True)
    assert code == 0, out[-2000:]
    assert out.count("SCRIPT READ scripts/touch.py") == 1


def test_a_missing_script_still_fails_before_any_job(tmp_path: Path) -> None:
    def error(out: str) -> list[str]:
        return [
            line for line in out.splitlines() if "scripts/missing.py" in line and "READ" not in line
        ]

    code, out = _dry_run(tmp_path, "missing.py", once=False)
    assert code != 0
    assert any("No such file or directory" in line for line in error(out)), out[-2000:]
    once_code, once_out = _dry_run(tmp_path, "missing.py", once=True)
    assert once_code == code and error(once_out) == error(out)


def test_the_workflow_checks_scripts_once() -> None:
    snakefile = (Path(__file__).parents[1] / "Snakefile").read_text()
    assert snakefile.index("\ncheck_scripts_once()") < snakefile.index("\ninclude:")
