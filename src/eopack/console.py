"""A console a person reads: Snakemake's ``--logger eopack`` (the default profile uses it).

Snakemake's own console prints about ten lines per job (its inputs, outputs, reason,
resources, and ``Shell command: None`` for every ``script:`` rule), then each failure's rule
block, the exception of the script's exit and the whole log (``--show-failed-logs``): about
1,500 lines for the demo, with each error two or three times. Here each finished job is one
line, each failed job one line with its log path, and everything else is as Snakemake prints
it. The job's own error line (``eopack: ...``, from :func:`eopack.jobs.run_job`) is the one
place the error itself is printed. The complete record stays in ``.snakemake/log/`` (Snakemake
writes it with its default format whatever the console shows) and in each job's ``log:``.

Dry runs, ``--verbose`` and ``--debug-dag`` are left to Snakemake's format: there the
details of every job are what is asked for.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

#: Scheduler chatter (before every batch of jobs; around a checkpoint) that tells a reader
#: nothing. Matched by text: should Snakemake reword one, it is printed again, nothing worse.
_CHATTER = frozenset(
    {
        "Select jobs to execute...",
        "DAG of jobs will be updated after completion.",
        "Updating checkpoint dependencies.",
    }
)
#: How Snakemake reports a script that failed (``print_exception`` of a ``CalledProcessError``).
_EXIT = re.compile(r"returned non-zero exit status (\d+)")
_SIGNAL = re.compile(r"died with <Signals\.(\w+): \d+>")
#: The rule in Snakemake's "Finished jobid: 12 (Rule: search)".
_RULE = re.compile(r"\(Rule: (\w+)\)")


@dataclass
class _Job:
    rule: str
    wildcards: str
    log: list[str] = field(default_factory=list)
    started: float = 0.0


def _wildcards(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value or "")


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.1f} s" if elapsed < 60 else f"{elapsed / 60:.1f} min"


class ConsoleHandler(LogHandlerBase):
    """One line per finished or failed job; Snakemake's filter (``--quiet``,
    ``--printshellcmds``) and its formatter for everything else."""

    def __post_init__(self) -> None:
        settings = self.common_settings
        self.stream: TextIO = sys.stdout if settings.stdout else sys.stderr
        self.snakemake_format = bool(settings.dryrun or settings.verbose or settings.debug_dag)
        self.jobs: dict[int, _Job] = {}
        self.finished: list[int] = []
        self.cause = ""  # the exit status of the script whose failure is reported next

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False  # Snakemake adds its own: --quiet and --printshellcmds work as usual

    @property
    def has_formatter(self) -> bool:
        return False  # Snakemake's formatter for every record not shortened here

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) if self.snakemake_format else self.render(record)
            if text:
                self.stream.write(text + "\n")
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def render(self, record: logging.LogRecord) -> str | None:
        """The console's text for ``record`` (None: nothing to print)."""
        event = getattr(record, "event", None)
        if event == LogEvent.JOB_INFO:
            self.jobs[record.jobid] = _Job(  # type: ignore[attr-defined]
                rule=record.rule_name,  # type: ignore[attr-defined]
                wildcards=_wildcards(getattr(record, "wildcards", None)),
                log=list(getattr(record, "log", None) or []),
                started=record.created,
            )
            return None
        if event in (LogEvent.JOB_STARTED, LogEvent.WORKFLOW_STARTED):
            return None  # "Execute 2 jobs..." and the run's header (in .snakemake/log/)
        if event == LogEvent.SHELLCMD:
            return getattr(record, "shellcmd", None) or None  # `script:` rules have none
        if event == LogEvent.JOB_FINISHED:
            jobid = record.job_id  # type: ignore[attr-defined]
            if jobid not in self.jobs:  # its JOB_INFO was filtered out (--quiet rules)
                named = _RULE.search(record.getMessage())
                self.jobs[jobid] = _Job(rule=named[1] if named else f"job {jobid}", wildcards="")
            self.finished.append(jobid)
            return None
        if event == LogEvent.PROGRESS:
            return self.render_finished(record)
        if event == LogEvent.ERROR and self.take_cause(record.getMessage()):
            return None
        if event == LogEvent.JOB_ERROR:
            return self.render_failed(record)
        if event is None and record.getMessage() in _CHATTER:
            return None
        return self.format(record)

    def render_finished(self, record: logging.LogRecord) -> str:
        done, total = record.done, record.total  # type: ignore[attr-defined]
        lines = []
        for jobid in self.finished:
            job = self.jobs.pop(jobid, None) or _Job(rule=f"job {jobid}", wildcards="")
            took = _seconds(record.created - job.started) if job.started else ""
            lines.append(
                " ".join(
                    part
                    for part in (
                        time.strftime("%H:%M:%S", time.localtime(record.created)),
                        f"[{done}/{total}]",
                        job.rule,
                        job.wildcards,
                        f"({took})" if took else "",
                    )
                    if part
                )
            )
        self.finished.clear()
        return "\n".join(lines) or f"{done} of {total} steps done"

    def take_cause(self, message: str) -> bool:
        """A script's exit reported as an exception: kept as the next failure's cause."""
        if "CalledProcessError" not in message:
            return False
        if found := _EXIT.search(message):
            self.cause = f"exit status {found[1]}"
        elif found := _SIGNAL.search(message):
            self.cause = f"killed by {found[1]}"
        else:
            return False
        return True

    def render_failed(self, record: logging.LogRecord) -> str:
        info = record.__dict__
        job = self.jobs.pop(info.get("jobid", -1), None)
        logs = list(info.get("log") or [])
        where = f"log: {', '.join(logs)}" if logs else "no log (see the complete log below)"
        cause = f" ({self.cause})" if self.cause else ""
        self.cause = ""
        parts = (
            time.strftime("%H:%M:%S", time.localtime(record.created)),
            "FAILED",
            info.get("rule_name", ""),
            job.wildcards if job else "",
        )
        lines = [" ".join(p for p in parts if p) + f"{cause}; {where}"]
        if self.common_settings.show_failed_logs:
            lines.extend(_log_text(logs))
        return "\n".join(lines)


def _log_text(logs: list[str]) -> list[str]:
    """The logs of a failed job, as ``--show-failed-logs`` asks."""
    lines = []
    for path in logs:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                body = handle.read().splitlines()
        except OSError:
            lines.append(f"  (log {path} cannot be read)")
            continue
        lines.extend(f"  | {line}" for line in body)
    return lines
