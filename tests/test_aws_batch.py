"""AWS Batch job sizes from a rule's own resources (eopack.aws_batch).

The mapping alone, then wired into a real Snakemake run: a small workflow whose rules size
themselves in every way Snakemake allows (constants, human-friendly strings, functions of
``attempt`` and wildcards, defaults), dry-run. tests/test_profiles.py dry-runs eopack's own
rules with the AWS Batch executor.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eopack.aws_batch import (
    BATCH_RESOURCES,
    JOB_PROCESS_MIB,
    STAGING_SECONDS,
    BatchResources,
    batch_resources,
)
from eopack.errors import EopackError


def test_threads_memory_and_runtime_map_to_batch_units():
    sizes = batch_resources(threads=4, mem_mb=1000, runtime_min=120)
    # 1000 MB = 953.7 MiB, rounded up: Batch's MEMORY is a hard limit in MiB.
    assert sizes == BatchResources(
        vcpu=4, mem_mib=954 + JOB_PROCESS_MIB, task_timeout_s=7200 + STAGING_SECONDS
    )
    assert sizes.as_resources() == {
        "aws_batch_vcpu": 4,
        "aws_batch_mem_mb": 954 + JOB_PROCESS_MIB,
        "aws_batch_task_timeout": 7200 + STAGING_SECONDS,
    }


def test_memory_is_never_below_the_rules_own():
    for mem_mb in (0, 1, 64, 300, 1049, 8000, 122_880):
        mem_mib = batch_resources(1, mem_mb, None).mem_mib
        assert mem_mib is not None
        assert (mem_mib - JOB_PROCESS_MIB) * 1024 * 1024 >= mem_mb * 1000 * 1000
        assert (mem_mib - JOB_PROCESS_MIB - 1) * 1024 * 1024 < mem_mb * 1000 * 1000 or mem_mb == 0


def test_timeout_is_at_least_batchs_minimum():
    # AWS Batch refuses attemptDurationSeconds under 60.
    assert batch_resources(1, 64, 0).task_timeout_s == STAGING_SECONDS >= 60


def test_unset_resources_are_left_to_the_plugin_and_job_definition():
    sizes = batch_resources(threads=1, mem_mb=None, runtime_min=None)
    assert sizes == BatchResources(vcpu=1, mem_mib=None, task_timeout_s=None)
    assert sizes.as_resources() == {"aws_batch_vcpu": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 64, 1), "aws-batch: threads: 0 is out of range"),
        ((1, -5, 1), "aws-batch: mem_mb: -5 is out of range"),
        ((1, 64, "2h"), "aws-batch: runtime: '2h' is not a whole number"),
        ((True, 64, 1), "aws-batch: threads: True is not a whole number"),
    ],
)
def test_bad_values_are_one_line_errors(args, message):
    with pytest.raises(EopackError) as err:
        batch_resources(*args)
    assert str(err.value) == message


# --- wired into Snakemake: add_batch_resources --------------------------------------------

SNAKEFILE = """
from eopack.aws_batch import add_batch_resources


rule all:
    input:
        "out/constant.txt",
        "out/human.txt",
        "out/attempt_3.txt",
        "out/unsized.txt",
        "out/overridden.txt",


rule constant:
    output:
        "out/constant.txt",
    threads: 4
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "touch {output}"


rule human:
    output:
        "out/human.txt",
    threads: 2
    resources:
        mem="2GB",
        runtime="2h",
    shell:
        "touch {output}"


rule scaled:
    output:
        "out/attempt_{n}.txt",
    resources:
        mem_mb=lambda wildcards, attempt: 100 * int(wildcards.n) * attempt,
        runtime=lambda wildcards, threads: 10 * threads,
    shell:
        "touch {output}"


rule unsized:
    output:
        "out/unsized.txt",
    shell:
        "touch {output}"


rule overridden:
    output:
        "out/overridden.txt",
    resources:
        mem_mb=100,
        runtime=1,
    shell:
        "touch {output}"


add_batch_resources(workflow.rules)
"""


def dry_run_resources(workdir: Path, *args: str) -> dict[str, dict[str, str]]:
    """rule -> its job's resources, from the dry run's printout."""
    proc = subprocess.run(
        # --cores above every rule's threads (a local dry run caps threads at --cores).
        [sys.executable, "-m", "snakemake", "-n", "--cores", "8", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if head and res:
            found[head.group(1)] = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
    return found


@pytest.fixture(scope="module")
def sized(tmp_path_factory) -> dict[str, dict[str, str]]:
    workdir = tmp_path_factory.mktemp("batch-sizes")
    (workdir / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    return dry_run_resources(
        workdir,
        "--set-resources", "overridden:aws_batch_mem_mb=4096",
        "--default-resources", "mem_mb=500",
    )  # fmt: skip


def batch(resources: dict[str, str]) -> dict[str, int]:
    return {name: int(resources[name]) for name in BATCH_RESOURCES if name in resources}


def test_every_rule_is_sized_from_its_own_resources(sized):
    assert batch(sized["constant"]) == batch_resources(4, 2000, 30).as_resources()
    # "2GB" and "2h" as Snakemake reads them: 2000 MB, 120 min.
    assert batch(sized["human"]) == batch_resources(2, 2000, 120).as_resources()
    # Functions of wildcards, attempt and threads are evaluated per job.
    assert batch(sized["scaled"]) == batch_resources(1, 300, 10).as_resources()


def test_a_rule_without_sizes_takes_the_default_resources(sized):
    # mem_mb from --default-resources; no runtime: the job definition's timeout.
    assert batch(sized["unsized"]) == {
        "aws_batch_vcpu": 1,
        "aws_batch_mem_mb": batch_resources(1, 500, None).mem_mib,
    }


def test_a_value_set_by_the_user_wins(sized):
    assert batch(sized["overridden"]) == {
        **batch_resources(1, 100, 1).as_resources(),
        "aws_batch_mem_mb": 4096,
    }


def test_plain_sizes_stay_plain_values(tmp_path):
    """A rule sized by plain numbers gets plain Batch numbers, not per-job callables: Snakemake
    evaluates a callable resource for every job, which cost a 30,000-job dry run ~15 s."""
    report = textwrap.dedent(
        """
        import sys
        for _rule in workflow.rules:
            _callables = [
                n for n in BATCH_RESOURCES
                if n in _rule.resources and _rule.resources[n].is_evaluable()
            ]
            print("CALLABLE", _rule.name, ",".join(_callables) or "-", file=sys.stderr)
        """
    )
    snakefile = textwrap.dedent(SNAKEFILE).replace(
        "from eopack.aws_batch import add_batch_resources",
        "from eopack.aws_batch import BATCH_RESOURCES, add_batch_resources",
    )
    (tmp_path / "Snakefile").write_text(snakefile + report)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = dict(re.findall(r"^CALLABLE (\w+) (\S+)$", proc.stderr, re.M))
    assert found["constant"] == found["overridden"] == "-"
    assert found["scaled"] == ",".join(BATCH_RESOURCES)
