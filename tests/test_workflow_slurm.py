"""The workflow on a real single-node SLURM (eopack.demo.slurm) through profiles/slurm-local.

A reduced demo (one AOI and one date range: two SAFE products through verify, zip, delivery
to S3 and publishing, and a one-product BigEarthNet) runs with every job submitted by the
SLURM executor plugin. The first SLURM run has one job cancelled with scancel while it
downloads (the local S3 server holds its requests), which must fail the run cleanly; the next
run finishes the work, and every output then matches a local run of the same config byte for
byte. A failing rule is reported with its log.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, copy_workflow, run_snakemake

from eopack.demo.benworld import build_benworld
from eopack.demo.s1world import DEMO_BUCKET
from eopack.demo.s3server import split_path
from eopack.demo.slurm import ACTIVE_STATES, SlurmCluster, SlurmJob
from eopack.demo.world import PUBLISH_BUCKET, DemoWorld
from eopack.publish import read_urls

NOT_ROOT = (
    "SLURM WORKFLOW TESTS NOT RUN: a single-node SLURM needs root (slurmd); "
    "run `make test` as root (CI does) to run them"
)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason=NOT_ROOT)

PROFILE = ("--workflow-profile", "profiles/slurm-local")
DELIVERY_BUCKET = "eopack-slurm-delivery"
READ_ONLY_BUCKET = "eopack-slurm-read-only"
AOI = "alps"  # 2023-07: two products, one of them EW (see eopack.demo.s1world)
HELD = "S1A_IW_GRDH_1SDV_20230726T172041"  # the product whose download is held, then cancelled
RUN_TIMEOUT_S = 400

# Snakemake's lines about jobs (the main process's output).
JOB_HEADER = re.compile(
    r"^(local)?(?:rule|checkpoint) (\w+):\n(?:    .*\n)*?    jobid: (\d+)$", re.M
)
SUBMITTED = re.compile(
    r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$", re.M
)
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$", re.M)


def declared_localrules() -> set[str]:
    """Rules the workflow runs on the submit host (``localrules:``), plus ``all``."""
    names = {"all"}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.finditer(r"^localrules:(.*(?:\n[ \t]+.*)*)", text, re.M):
            names |= set(re.findall(r"\w+", block.group(1)))
    return names


def prefix(name: str) -> str:
    """A run's S3 prefix: distinct enough to be replaced in its outputs without a false hit."""
    return f"eopack-slurm-test-{name}"


def reduced_workflow(
    dest: Path, world: DemoWorld, release: Path, name: str
) -> tuple[Path, tuple[str, ...]]:
    """A workflow copy with the reduced demo config; ``name`` keeps its S3 prefixes apart."""
    workdir = copy_workflow(dest)
    aoi_dir = workdir / "config" / "slurm_aoi"
    aoi_dir.mkdir()
    (aoi_dir / f"{AOI}.geojson").write_bytes(
        (workdir / "config" / "demo" / "aoi" / f"{AOI}.geojson").read_bytes()
    )
    config = {
        "aoi_dir": "config/slurm_aoi",
        "date_ranges": [["2023-07-01", "2023-07-31"]],
        # The SAFE path as before (the optical collections share its rules and jobs; they
        # run end to end in the local demo run, tests/test_demo_products.py).
        "search": {"collections": ["sentinel-1-grd"]},
        "destination": {"uri": f"s3://{DELIVERY_BUCKET}/{prefix(name)}", "copy_safe": True},
        "bigearthnet": {"enabled": True, "source": str(release), "hashes": "hashes.txt"},
        "publish": {"uri": f"s3://{PUBLISH_BUCKET}/{prefix(name)}"},
        "report": {"enabled": False},
    }
    (workdir / "config" / "reduced.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return workdir, ("--configfile", "config/demo.yaml", "config/reduced.yaml")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as started:
        yield started


@pytest.fixture(scope="module")
def env(world: DemoWorld, cluster: SlurmCluster) -> dict[str, str]:
    return {**world.env(), **cluster.env()}


@pytest.fixture(scope="module")
def release(world: DemoWorld, tmp_path_factory) -> Path:
    """A one-product BigEarthNet release in a local folder (and the delivery bucket)."""
    world.client().create_bucket(
        Bucket=DELIVERY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    folder = tmp_path_factory.mktemp("ben-release")
    build_benworld(folder, s2_products=1, patches_per_product=8, s1=False)
    return folder


@pytest.fixture(scope="module")
def local_run(world, release, tmp_path_factory) -> Path:
    workdir, args = reduced_workflow(tmp_path_factory.mktemp("local"), world, release, "local")
    proc = run_snakemake(workdir, "--cores", "2", *args, env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


class HeldDownload:
    """Holds the local S3 server's answers to GETs of one product's objects until released,
    so that its rebuild_safe job is surely mid-download when it is cancelled."""

    def __init__(self, world: DemoWorld, product_start: str) -> None:
        product = next(p for p in world.products if p.product_id.startswith(product_start))
        self.product_id = product.product_id
        self.prefix = f"{product.prefix}/measurement/"  # only rebuild_safe reads these
        self.reached = threading.Event()
        self.released = threading.Event()
        self._remove = world.s3.add_hook(self)

    def __call__(self, environ: dict[str, Any]) -> None:
        bucket, key = split_path(environ)
        held = bucket == DEMO_BUCKET and key.startswith(self.prefix)
        if held and environ.get("REQUEST_METHOD") == "GET" and not self.released.is_set():
            self.reached.set()
            self.released.wait(RUN_TIMEOUT_S)

    def release(self) -> None:
        self.released.set()
        self._remove()


@dataclass
class SlurmRuns:
    workdir: Path
    first: str  # the cancelled run's output
    first_returncode: int
    cancelled: SlurmJob
    active_after_first: list[SlurmJob]
    safe_after_first: bool
    second: subprocess.CompletedProcess[str]


def wait_for_job(cluster: SlurmCluster, comment: str, timeout_s: float = 60) -> SlurmJob:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job in cluster.jobs("RUNNING"):
            if job.comment == comment:
                return job
        time.sleep(0.2)
    raise AssertionError(f"no RUNNING SLURM job {comment}: {cluster.jobs()}")


@pytest.fixture(scope="module")
def slurm_runs(world, cluster, env, release, tmp_path_factory) -> SlurmRuns:
    workdir, args = reduced_workflow(tmp_path_factory.mktemp("slurm-run"), world, release, "slurm")
    held = HeldDownload(world, HELD)
    out_path = workdir.parent / "first-run.out"
    try:
        with open(out_path, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "snakemake", *PROFILE, *args],
                cwd=workdir,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                assert held.reached.wait(RUN_TIMEOUT_S), "the held download never started"
                job = wait_for_job(cluster, f"rule_rebuild_safe_wildcards_{held.product_id}.SAFE")
                cluster.run("scancel", job.job_id)
                first_returncode = proc.wait(timeout=RUN_TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        held.release()
    active = cluster.jobs(ACTIVE_STATES)
    safe_left = (workdir / "results" / "safe" / f"{held.product_id}.SAFE").exists()
    cancelled = next(j for j in cluster.jobs() if j.job_id == job.job_id)
    second = run_snakemake(workdir, *PROFILE, *args, env=env)
    return SlurmRuns(
        workdir=workdir,
        first=out_path.read_text(encoding="utf-8"),
        first_returncode=first_returncode,
        cancelled=cancelled,
        active_after_first=active,
        safe_after_first=safe_left,
        second=second,
    )


# (c) a job cancelled with scancel: the run fails cleanly, the next one finishes the work
# --------------------------------------------------------------------------------------------


def test_cancelled_job_fails_the_run_cleanly(slurm_runs):
    runs = slurm_runs
    assert runs.first_returncode != 0
    assert runs.cancelled.state == "CANCELLED"
    assert f"SLURM-job '{runs.cancelled.job_id}' failed, SLURM status is: 'CANCELLED'" in runs.first
    assert "Exiting because a job execution failed" in runs.first
    assert runs.active_after_first == []  # no job of the failed run left queued or running
    assert not runs.safe_after_first  # the cancelled job's half-written SAFE was removed


def test_next_run_finishes_the_work(cluster, env, slurm_runs):
    runs = slurm_runs
    assert runs.second.returncode == 0, runs.second.stderr[-3000:]
    states = [j.state for j in cluster.jobs() if j.comment == runs.cancelled.comment]
    assert states.count("CANCELLED") == 1 and states.count("COMPLETED") == 1, states
    assert len(list((runs.workdir / "results" / "zip").glob("*.zip"))) == 2
    again = run_snakemake(
        runs.workdir, *PROFILE, "-n", "--configfile", "config/demo.yaml", "config/reduced.yaml",
        env=env,
    )  # fmt: skip
    assert "Nothing to be done" in again.stdout + again.stderr


# (a) every job that is not a local rule ran as a SLURM job
# --------------------------------------------------------------------------------------------


def test_every_job_ran_as_a_slurm_job(cluster, slurm_runs):
    runs = slurm_runs
    local_ok = declared_localrules()
    records = {job.job_id: job for job in cluster.jobs()}
    ran_on_slurm: dict[str, int] = {}
    for output in (runs.first, runs.second.stdout + runs.second.stderr):
        headers = {jobid: (bool(local), rule) for local, rule, jobid in JOB_HEADER.findall(output)}
        submitted = {jobid: (slurm_id, log) for jobid, slurm_id, log in SUBMITTED.findall(output)}
        for jobid, rule in FINISHED.findall(output):
            local, header_rule = headers[jobid]
            assert header_rule == rule
            if local:
                assert rule in local_ok, f"{rule} ran on the submit host"
                continue
            slurm_id, log = submitted[jobid]
            assert records[slurm_id].state == "COMPLETED", records[slurm_id]
            assert records[slurm_id].comment.startswith(f"rule_{rule}"), records[slurm_id]
            # The plugin's per-job log: the job step's Snakemake ran exactly this rule.
            assert f"Finished jobid: 0 (Rule: {rule})" in Path(log).read_text(), log
            ran_on_slurm[rule] = ran_on_slurm.get(rule, 0) + 1
    expected = {
        *("search", "rebuild_safe", "verify_safe", "zip_safe", "upload_zip", "copy_safe_s3"),
        *("bigearthnet_render", "bigearthnet_zip", "publish_upload"),
    }
    assert expected - local_ok <= set(ran_on_slurm), ran_on_slurm
    assert ran_on_slurm.get("rebuild_safe") == 2
    assert sum(ran_on_slurm.values()) >= 15


# (b) the outputs equal a local run's, byte for byte (publish URLs excepted)
# --------------------------------------------------------------------------------------------


def digests(workdir: Path, prefix: str) -> dict[str, str]:
    """SHA-256 of every file under results/, the run's own S3 prefix (in receipts and
    plan.tsv) neutralised; urls.tsv (presigned URLs, which differ by design) left out."""
    out = {}
    for path in sorted((workdir / "results").rglob("*")):
        rel = str(path.relative_to(workdir))
        if path.is_file() and rel != "results/publish/urls.tsv":
            data = path.read_bytes().replace(prefix.encode(), b"PREFIX")
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


def test_outputs_match_a_local_run(local_run, slurm_runs):
    local = digests(local_run, prefix("local"))
    slurm = digests(slurm_runs.workdir, prefix("slurm"))
    assert set(slurm) == set(local)
    assert {rel for rel in local if local[rel] != slurm[rel]} == set()
    assert any(rel.endswith(".zip") for rel in local) and len(local) > 40


def test_published_urls_serve_the_local_runs_bytes(local_run, slurm_runs):
    local = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (local_run / "results").rglob("*")
        if p.is_file()
    }
    rows = read_urls(slurm_runs.workdir / "results" / "publish" / "urls.tsv")
    local_rows = read_urls(local_run / "results" / "publish" / "urls.tsv")
    assert sorted(r["object"] for r in rows) == sorted(r["object"] for r in local_rows)
    for row in rows:
        with urllib.request.urlopen(row["url"], timeout=30) as response:  # the local S3
            assert hashlib.sha256(response.read()).hexdigest() in local, row["object"]


# (d) a failing rule is reported with its log
# --------------------------------------------------------------------------------------------

CLASSES = "results/publish/bigearthnet/classes.json.json"
CLASSES_LOG = "logs/publish/bigearthnet/classes.json.log"


def test_failing_rule_is_reported_with_its_log(world, cluster, env, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    # A bucket that exists (the pre-check before any job passes) but refuses writes: the
    # upload job fails on the cluster.
    world.client().create_bucket(
        Bucket=READ_ONLY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    world.s3.set_read_only(READ_ONLY_BUCKET)
    bad = workdir / "config" / "publish.yaml"
    bad.write_text(yaml.safe_dump({"publish": {"uri": f"s3://{READ_ONLY_BUCKET}/x"}}))
    # classes.json is a local rule's (Snakefile, localrules): only the failing upload is a
    # SLURM job.
    config = ("--configfile", "config/demo.yaml", "config/publish.yaml")
    proc = run_snakemake(workdir, *PROFILE, CLASSES, *config, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    message = (
        f"s3://{READ_ONLY_BUCKET}/x/bigearthnet/classes.json: access denied on the destination "
        "(not writable with these credentials)"
    )
    error = re.search(r"^Error in rule publish_upload:\n(?:    .*\n)+", output, re.M)
    assert error, output[-3000:]
    slurm_id = re.search(r"external_jobid: (\d+)", error.group(0)).group(1)
    assert f"SLURM-job '{slurm_id}' failed, SLURM status is: 'FAILED'" in error.group(0)
    state = {j.job_id: j.state for j in cluster.jobs()}[slurm_id]
    assert state == "FAILED"
    # The rule's log, shown by Snakemake (show-failed-logs), and the SLURM job's own log.
    shown = output.split(f"Logfile {CLASSES_LOG}:", 1)
    assert len(shown) == 2 and f"ERROR eopack: {message}" in shown[1]
    slurm_log = re.search(rf"log: {CLASSES_LOG}, (\S+\.log)", error.group(0)).group(1)
    assert f"eopack: {message}" in Path(slurm_log).read_text()
    assert not (workdir / CLASSES).exists()
