"""eopack.console, Snakemake's ``--logger eopack``: records in, the lines a person reads out.

The whole run's console is tested in tests/test_workflow.py; here each kind of record."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from typing import Any

from snakemake.logging import DefaultFilter, DefaultFormatter
from snakemake_interface_logger_plugins.common import LogEvent

from eopack.console import ConsoleHandler

LOG = "logs/safe/P.rebuild.log"


@dataclass
class Settings:
    """What Snakemake's OutputSettings tells a logger plugin."""

    printshellcmds: bool = False
    nocolor: bool = True
    quiet: Any = None
    debug_dag: bool = False
    verbose: bool = False
    show_failed_logs: bool = False
    stdout: bool = True
    dryrun: bool = False


def console(settings: Settings, records: list[dict[str, Any]]) -> str:
    """Feed ``records`` through the handler as Snakemake sets it up (its filter, its format)."""
    handler = ConsoleHandler(settings, None)
    out = io.StringIO()
    handler.stream = out
    handler.addFilter(DefaultFilter(set(), False, False, settings.dryrun, False))
    handler.setFormatter(DefaultFormatter(set(), settings.show_failed_logs))
    for fields in records:
        msg = fields.pop("msg", None)
        level = fields.pop("level", logging.INFO)
        record = logging.LogRecord("snakemake", level, __file__, 1, msg, None, None)
        record.__dict__.update(fields)
        if handler.filter(record):
            handler.handle(record)
    return out.getvalue()


def job_info(jobid: int, rule: str, **wildcards: str) -> dict[str, Any]:
    return {
        "event": LogEvent.JOB_INFO,
        "msg": f" Rule: {rule}, Jobid: {jobid}",
        "jobid": jobid,
        "rule_name": rule,
        "rule_msg": None,
        "wildcards": wildcards,
        "log": [LOG] if rule == "rebuild_safe" else [],
        "input": [],
        "output": ["out"],
        "local": True,
        "is_checkpoint": False,
        "benchmark": None,
        "reason": "Missing output files: out",
        "priority": 0,
        "threads": 1,
        "resources": {},
        "indent": False,
    }


def finished(jobid: int, rule: str, done: int, total: int) -> list[dict[str, Any]]:
    return [
        {"event": LogEvent.JOB_FINISHED, "msg": f"Finished jobid: {jobid} (Rule: {rule})",
         "job_id": jobid},
        {"event": LogEvent.PROGRESS, "done": done, "total": total},
    ]  # fmt: skip


def failed(jobid: int, rule: str) -> list[dict[str, Any]]:
    return [
        {"event": LogEvent.ERROR, "level": logging.ERROR, "exception": "RuleException",
         "msg": "RuleException:\nCalledProcessError in file rules/safe.smk, line 17:\n"
                "Command 'set -euo pipefail;  python x.py' returned non-zero exit status 1."},
        {"event": LogEvent.JOB_ERROR, "level": logging.ERROR, "msg": f"Error in rule {rule}",
         "rule_name": rule, "jobid": jobid, "log": [LOG], "rule_msg": None, "input": [],
         "output": [], "conda_env": None, "shellcmd": None, "aux": {}, "indent": False},
    ]  # fmt: skip


def test_a_run_is_one_line_per_job_and_one_per_failure():
    text = console(
        Settings(),
        [
            {"event": LogEvent.WORKFLOW_STARTED, "msg": "SNAKEMAKE"},
            {"msg": "Building DAG of jobs..."},
            {"msg": "Select jobs to execute..."},
            job_info(3, "search", aoi="alps", start="2021-03-01"),
            {"event": LogEvent.JOB_STARTED, "msg": "Execute 2 jobs...", "jobs": [3, 4]},
            {"event": LogEvent.SHELLCMD, "msg": "Shell command: None", "shellcmd": None},
            job_info(4, "rebuild_safe", product="P"),
            *finished(3, "search", 1, 2),
            *failed(4, "rebuild_safe"),
            {"msg": "Exiting because a job execution failed. Look below for error messages"},
        ],
    )
    lines = text.splitlines()
    assert lines[0] == "Building DAG of jobs..."
    assert re.fullmatch(r"\d\d:\d\d:\d\d \[1/2\] search aoi=alps start=2021-03-01 \(\d+\.\d s\)",
                        lines[1]), lines[1]  # fmt: skip
    assert re.fullmatch(
        rf"\d\d:\d\d:\d\d FAILED rebuild_safe product=P \(exit status 1\); log: {LOG}", lines[2]
    ), lines[2]
    assert lines[3].startswith("Exiting because a job execution failed")
    assert len(lines) == 4


def test_a_killed_job_says_so():
    records = failed(4, "rebuild_safe")
    records[0]["msg"] = (
        "RuleException:\nCalledProcessError in file x:\nCommand 'y' died with <Signals.SIGKILL: 9>."
    )
    text = console(Settings(), [job_info(4, "rebuild_safe", product="P"), *records])
    assert len(text.splitlines()) == 1
    assert f"FAILED rebuild_safe product=P (killed by SIGKILL); log: {LOG}" in text


def test_show_failed_logs_adds_the_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs" / "safe").mkdir(parents=True)
    (tmp_path / LOG).write_text("2026-01-01T00:00:00 ERROR eopack: it broke\n")
    text = console(Settings(show_failed_logs=True), [job_info(4, "rebuild_safe", product="P"),
                                                     *failed(4, "rebuild_safe")])  # fmt: skip
    assert text.splitlines()[1:] == ["  | 2026-01-01T00:00:00 ERROR eopack: it broke"]


def test_a_job_whose_info_was_filtered_keeps_its_rule_name():
    text = console(Settings(), finished(7, "zip_safe", 5, 9))
    assert re.fullmatch(r"\d\d:\d\d:\d\d \[5/9\] zip_safe\n", text), text


def test_a_dry_run_is_snakemake_s_own_listing():
    text = console(Settings(dryrun=True), [job_info(3, "search", aoi="alps")])
    assert "localrule search:" in text
    assert "    wildcards: aoi=alps" in text
    assert "reason: Missing output files: out" in text
