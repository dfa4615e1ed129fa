"""AWS Batch job sizes derived from each rule's own resources (``profiles/aws-batch``).

snakemake-executor-plugin-aws-basic-batch sizes a Batch job from the resources
``aws_batch_vcpu``, ``aws_batch_mem_mb`` and ``aws_batch_task_timeout`` (1 vCPU and 1024 MiB
when absent) and ignores ``threads``, ``mem_mb`` and ``runtime``. The rules state the latter
once, for every executor; :func:`add_batch_resources` (called at the end of the Snakefile) gives
each rule the former, computed per job from them, so no rule is sized twice and a user sets
nothing per rule. A value the user sets (``--set-resources rule:aws_batch_mem_mb=...``) wins.

Why the numbers differ from the rule's own:

- A Batch container also runs the Snakemake job process that starts the rule's script: it
  parses the workflow before the script runs (~350 MB peak RSS measured for eopack's, most of it
  imports), so :data:`JOB_PROCESS_MIB` is added to the rule's ``mem_mb``. Batch's MEMORY is a
  hard limit in MiB, the rule's ``mem_mb`` is in MB: converted, rounded up.
- With no shared file system the job also downloads its inputs from and uploads its outputs to
  the storage prefix, which the rule's ``runtime`` (its work) does not count:
  :data:`STAGING_SECONDS` is added (which also keeps every timeout above Batch's 60 s minimum).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from eopack.errors import EopackError

__all__ = [
    "BATCH_RESOURCES",
    "JOB_PROCESS_MIB",
    "STAGING_SECONDS",
    "BatchResources",
    "add_batch_resources",
    "batch_resources",
]

#: Memory for the Snakemake job process around the rule's script (MiB).
JOB_PROCESS_MIB = 512
#: Time to fetch a job's inputs from the storage prefix and store its outputs (s).
STAGING_SECONDS = 300
#: The resources the plugin reads, in the order of :class:`BatchResources`' fields.
BATCH_RESOURCES = ("aws_batch_vcpu", "aws_batch_mem_mb", "aws_batch_task_timeout")
_MB = 1000 * 1000
_MIB = 1024 * 1024


@dataclass(frozen=True)
class BatchResources:
    """One job's Batch request; None leaves the plugin's or the job definition's value."""

    vcpu: int
    mem_mib: int | None
    task_timeout_s: int | None

    def as_resources(self) -> dict[str, int]:
        """The plugin's resource names -> values (unset ones left out)."""
        values = (self.vcpu, self.mem_mib, self.task_timeout_s)
        return {name: v for name, v in zip(BATCH_RESOURCES, values, strict=True) if v is not None}


def batch_resources(threads: int, mem_mb: int | None, runtime_min: int | None) -> BatchResources:
    """Batch vCPU, memory (MiB) and timeout (s) for a job of ``threads``, ``mem_mb`` and
    ``runtime`` (minutes), the rule's resources as Snakemake evaluated them."""
    for name, value in (("threads", threads), ("mem_mb", mem_mb), ("runtime", runtime_min)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise EopackError(f"aws-batch: {name}: {value!r} is not a whole number")
        if value is not None and value < (1 if name == "threads" else 0):
            raise EopackError(f"aws-batch: {name}: {value!r} is out of range")
    mem_mib = None if mem_mb is None else math.ceil(mem_mb * _MB / _MIB) + JOB_PROCESS_MIB
    timeout = None if runtime_min is None else runtime_min * 60 + STAGING_SECONDS
    return BatchResources(vcpu=threads, mem_mib=mem_mib, task_timeout_s=timeout)


def add_batch_resources(rules: Iterable[Any]) -> None:
    """Give every rule the plugin's resources, evaluated per job from the rule's own.

    ``rules`` are Snakemake's rule objects (``workflow.rules``); their ``resources`` map names
    to Snakemake ``Resource`` objects, and a callable assigned there is evaluated like one
    written in a rule's ``resources:`` (with ``wildcards``, ``input``, ``threads``, ...).
    """
    for rule in rules:
        static = _static_sizes(rule)
        for index, name in enumerate(BATCH_RESOURCES):
            if name in rule.resources:
                continue
            if static is not None:
                value = (static.vcpu, static.mem_mib, static.task_timeout_s)[index]
                if value is not None:
                    rule.resources[name] = value
            else:
                rule.resources[name] = _evaluator(rule, index)


def _static_sizes(rule: Any) -> BatchResources | None:
    """The Batch sizes of a rule whose threads, mem_mb and runtime are plain numbers, or None.

    Plain values, not callables, wherever they can be: Snakemake evaluates a callable
    resource for every job (inspecting its signature each time), and three of them on every
    rule made a dry run of 30,000 jobs ~15 s slower (54 -> 39 s), on every executor
    (docs/benchmarks.md, "DAG at 10,000 products").
    """
    own = []
    for key in ("_cores", "mem_mb", "runtime"):
        resource = rule.resources.get(key)
        if resource is None or resource.is_evaluable():
            return None
        own.append(resource.value)
    threads, mem_mb, runtime = own
    if not isinstance(threads, int) or any(
        v is not None and (isinstance(v, bool) or not isinstance(v, int)) for v in (mem_mb, runtime)
    ):
        return None  # "2GB", "2h": left to the evaluator, which reads them as Snakemake does
    return batch_resources(threads, mem_mb, runtime)


def _evaluator(rule: Any, index: int) -> Callable[..., Any]:
    def evaluate(
        wildcards: Any, input: Any, attempt: int, threads: int, rulename: str, async_run: Any
    ) -> Any:
        own = {}
        for key in ("mem_mb", "runtime"):
            resource = rule.resources.get(key)  # Resource("", None) when the rule has none
            if resource.is_evaluable():
                resource = resource.evaluate(
                    wildcards,
                    input=input,
                    attempt=attempt,
                    threads=threads,
                    rulename=rulename,
                    async_run=async_run,
                )
            own[key] = resource.value
            if isinstance(own[key], str):  # to be determined (inputs not there yet): so are we
                return own[key]
        sizes = batch_resources(threads, own["mem_mb"], own["runtime"])
        return (sizes.vcpu, sizes.mem_mib, sizes.task_timeout_s)[index]

    return evaluate
