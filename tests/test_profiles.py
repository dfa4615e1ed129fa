"""Every profile under profiles/ dry-runs the demo workflow, and a misspelled key fails.

A dry run (``-n``) validates against the profile's executor (its plugin and settings) while
executing nothing, so cluster and cloud profiles are checked here without a cluster or AWS.
What a profile needs to run is read from the profile itself: one that stores results with
``default-storage-provider`` gets a prefix on the local S3 server, one that shares no working
directory gets the demo config without BigEarthNet (which needs one; see test_batch_*).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, run_snakemake
from test_storage_s3 import storage_env

from eopack.aws_batch import BATCH_RESOURCES, batch_resources

PROFILES = sorted(p.parent.name for p in (REPO / "profiles").glob("*/config.yaml"))
BUCKET = "eopack-profiles"
NO_BIGEARTHNET = "config/no-bigearthnet.yaml"


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text(encoding="utf-8"))


def shares_working_directory(settings: dict) -> bool:
    usage = settings.get("shared-fs-usage")
    if usage is None:  # the executor's default; AWS Batch's implies none
        return not str(settings.get("executor", "")).startswith("aws-")
    usage = usage.split() if isinstance(usage, str) else usage
    return "input-output" in usage


@pytest.fixture(scope="module")
def bucket(world) -> str:
    world.client().create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return BUCKET


def dry_run(world, workdir: Path, name: str, *extra: str):
    """``snakemake -n`` of the demo workflow with profile ``name``, set up as it needs."""
    settings = profile(name)
    args = ["-n", "--workflow-profile", f"profiles/{name}", *extra,
            "--configfile", "config/demo.yaml"]  # fmt: skip
    env = world.env()
    if settings.get("default-storage-provider"):
        env = storage_env(world)
        if not settings.get("default-storage-prefix"):
            args[3:3] = ["--default-storage-prefix", f"s3://{BUCKET}/{name}"]
    if not shares_working_directory(settings):
        (workdir / NO_BIGEARTHNET).write_text("bigearthnet:\n  enabled: false\n")
        args.append(NO_BIGEARTHNET)
    return run_snakemake(workdir, *args, env=env)


def jobs(output: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the resources (and threads) of each of its jobs in a dry run's printout."""
    found: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", output):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if not head or not res:
            continue
        values = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        values["threads"] = threads.group(1) if threads else "1"
        found.setdefault(head.group(1), []).append(values)
    return found


@pytest.mark.parametrize("name", PROFILES)
def test_profile_dry_runs_the_demo(world, bucket, tmp_path, name):
    workdir = copy_workflow(tmp_path / "wf")
    proc = dry_run(world, workdir, name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert f"Using workflow specific profile profiles/{name}" in output
    assert "This was a dry-run" in output
    assert {"search", "plan"} <= set(jobs(output)), output[-3000:]


@pytest.mark.parametrize("name", PROFILES)
def test_misspelled_profile_key_fails(world, tmp_path, name):
    workdir = copy_workflow(tmp_path / "wf")
    text = (workdir / "profiles" / name / "config.yaml").read_text(encoding="utf-8")
    key = next(k for k in profile(name) if len(k) >= 4)
    # Two letters swapped inside the key (argparse would take a shortened key as the option).
    typo = key[:1] + key[2] + key[1] + key[3:]
    assert typo != key
    (workdir / "profiles" / name / "config.yaml").write_text(
        re.sub(rf"^{re.escape(key)}:", f"{typo}:", text, count=1, flags=re.M), encoding="utf-8"
    )
    proc = dry_run(world, workdir, name)
    assert proc.returncode != 0
    assert f"unrecognized arguments: --{typo}" in proc.stderr


# --- AWS Batch ------------------------------------------------------------------------------


def test_batch_jobs_are_sized_from_their_rules(world, bucket, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    proc = dry_run(world, workdir, "aws-batch")
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = jobs(proc.stdout + proc.stderr)
    sized = [job for rule, js in found.items() if rule != "all" for job in js]
    assert len(sized) >= 3, found
    for job in sized:
        runtime = int(job["runtime"]) if "runtime" in job else None
        expected = batch_resources(int(job["threads"]), int(job["mem_mb"]), runtime)
        assert {k: int(job[k]) for k in BATCH_RESOURCES if k in job} == expected.as_resources()


def batch_refusal(proc) -> list[str]:
    assert proc.returncode != 0
    return [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]


REFUSAL = "eopack: bigearthnet keeps resources/ on local disk, which jobs that share no working"


def test_batch_profile_refuses_bigearthnet_before_any_download(world, bucket, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    args = ("-n", "--workflow-profile", "profiles/aws-batch", "--configfile", "config/demo.yaml",
            "--default-storage-prefix", f"s3://{BUCKET}/refused")  # fmt: skip
    proc = run_snakemake(workdir, *args, env=storage_env(world))
    lines = batch_refusal(proc)
    assert len(lines) == 1 and lines[0].startswith(REFUSAL), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    # Refused while the Snakefile is read: not even the metadata was fetched.
    assert not (workdir / "resources").exists()


def test_batch_executor_alone_refuses_bigearthnet(world, bucket, tmp_path):
    # Without the profile's shared-fs-usage: the executor implies no shared file system, but
    # Snakemake says so only after the Snakefile is read; the DAG's first BigEarthNet input
    # refuses then.
    workdir = copy_workflow(tmp_path / "wf")
    args = ("-n", "--executor", "aws-basic-batch", "--jobs", "4",
            "--aws-basic-batch-region", "eu-central-1",
            "--aws-basic-batch-job-queue", "q", "--aws-basic-batch-job-definition", "d",
            "--default-storage-provider", "s3", "--default-storage-prefix",
            f"s3://{BUCKET}/refused", "--configfile", "config/demo.yaml")  # fmt: skip
    proc = run_snakemake(workdir, *args, env=storage_env(world))
    lines = batch_refusal(proc)
    assert len(lines) == 1 and lines[0].startswith(REFUSAL), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "This was a dry-run" not in proc.stdout + proc.stderr
