"""Publishing through Snakemake: bad publish settings stop before any job with one line, and
a missing publish bucket stops the run before any job (receipts kept), a read-only one fails
its job with one line in its log; objects missing from the bucket (deleted, a restarted
server) are uploaded again in one run. The demo run's urls.tsv is checked in test_workflow.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, run_snakemake

from eopack.demo.s1world import DEMO_BUCKET
from eopack.publish import read_urls

# One small published object: the class table (no SAFE is built for it).
CLASSES = "results/publish/bigearthnet/classes.json.json"
CLASSES_LOG = Path("logs/publish/bigearthnet/classes.json.log")


def write_publish(workdir: Path, publish: dict) -> str:
    path = workdir / "config" / "publish.yaml"
    path.write_text(yaml.safe_dump({"publish": publish}))
    return str(path.relative_to(workdir))


def eopack_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("eopack: ")]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


@pytest.mark.parametrize(
    ("publish", "message"),
    [
        ({"expires_s": 30}, "config: publish.expires_s: 30 s is below the minimum of 60 s"),
        (
            {"expires_s": 86400},
            "config: publish.expires_s: 86400 s is above publish.max_expires_s, 43200 s (12 h); "
            "raise publish.max_expires_s, up to 604800 s (7 days), for longer-lived URLs",
        ),
        (
            {"expires_s": 86400, "max_expires_s": 1209600},
            "config: publish.max_expires_s: 1209600 s is above the SigV4 maximum of "
            "604800 s (7 days)",
        ),
        (
            {"uri": f"s3://{DEMO_BUCKET}/shared"},
            f"config: publish.uri: s3://{DEMO_BUCKET}/shared/: {DEMO_BUCKET} is a configured "
            "source bucket (eopack never writes to a source)",
        ),
        (
            {"uri": "results/shared"},
            "config: publish.uri: 'results/shared' is not s3://bucket/prefix "
            "(presigned URLs need an S3 bucket)",
        ),
        ({"expires_s": "12h"}, "config: publish.expires_s: '12h' is not of type 'integer'"),
    ],
    ids=["below-min", "above-cap", "above-sigv4", "source-bucket", "local-folder", "not-int"],
)
def test_bad_publish_settings_stop_before_any_job(world, workdir, publish, message):
    extra = write_publish(workdir, publish)
    proc = run_snakemake(workdir, "-n", "--configfile", "config/demo.yaml", extra, env=world.env())
    assert proc.returncode != 0
    assert eopack_lines(proc.stderr) == [f"eopack: {message}"]
    assert "Traceback" not in proc.stderr
    assert not (workdir / "results").exists()


def test_longer_urls_need_the_cap_raised(world, workdir):
    extra = write_publish(workdir, {"expires_s": 86400, "max_expires_s": 604800})
    proc = run_snakemake(workdir, "-n", "--configfile", "config/demo.yaml", extra, env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule publish_urls:" in proc.stdout + proc.stderr


def test_publish_target_when_publishing_is_off(world, workdir):
    extra = write_publish(workdir, {"uri": None})
    proc = run_snakemake(
        workdir, "publish", "-n", "--configfile", "config/demo.yaml", extra, env=world.env()
    )
    assert proc.returncode != 0
    assert (
        "eopack: publish.uri is not set in the config; set it to s3://bucket/prefix to publish "
        "the results" in proc.stdout + proc.stderr
    )
    everything = run_snakemake(
        workdir, "-n", "--configfile", "config/demo.yaml", extra, env=world.env()
    )
    assert everything.returncode == 0, everything.stderr[-3000:]
    output = everything.stdout + everything.stderr
    assert "rule publish_" not in output and "results/publish/" not in output


def _publish_classes(world, workdir: Path, uri: str):
    extra = write_publish(workdir, {"uri": uri})
    return run_snakemake(
        workdir, CLASSES, "--cores", "1", "--configfile", "config/demo.yaml", extra,
        env=world.env(),
    )  # fmt: skip


NO_BUCKET = (
    "config: publish.uri: s3://eopack-no-such-publish/x: publish bucket does not exist; "
    "stopped before any job ran, every result and receipt of earlier runs is kept"
)


def test_missing_publish_bucket_stops_before_any_job_with_one_line(world, workdir):
    proc = _publish_classes(world, workdir, "s3://eopack-no-such-publish/x")
    assert proc.returncode != 0
    assert eopack_lines(proc.stderr) == [f"eopack: {NO_BUCKET}"]
    assert "Traceback" not in proc.stderr
    assert not (workdir / CLASSES).exists() and not (workdir / CLASSES_LOG).exists()


def test_read_only_publish_bucket_fails_the_job_with_one_line(world, workdir):
    bucket = f"eopack-pub-ro-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    world.s3.set_read_only(bucket)
    try:
        proc = _publish_classes(world, workdir, f"s3://{bucket}/x")
    finally:
        world.s3.set_read_only(bucket, False)
    assert proc.returncode != 0
    message = (
        f"s3://{bucket}/x/bigearthnet/classes.json: access denied on the destination "
        "(not writable with these credentials)"
    )
    assert eopack_lines(proc.stderr) == [f"eopack: {message}"]
    log = (workdir / CLASSES_LOG).read_text()
    assert f"ERROR eopack: {message}" in log
    assert world.env()["AWS_SECRET_ACCESS_KEY"] not in log + proc.stderr + proc.stdout
    assert not (workdir / CLASSES).exists()


def test_missing_bucket_stops_before_any_job_and_keeps_the_receipts(world, workdir):
    """A publish.uri changed to a bucket that does not exist reruns every upload: Snakemake
    would remove their receipts first. The run stops before any job, receipts untouched."""
    bucket = f"eopack-pub-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    first = _publish_classes(world, workdir, f"s3://{bucket}/x")
    assert first.returncode == 0, first.stderr[-3000:]
    receipt = (workdir / CLASSES).read_bytes()

    proc = _publish_classes(world, workdir, "s3://eopack-no-such-publish/x")
    assert proc.returncode != 0
    assert eopack_lines(proc.stderr) == [f"eopack: {NO_BUCKET}"]
    assert "Traceback" not in proc.stderr
    assert (workdir / CLASSES).read_bytes() == receipt
    # No lock is left behind: the right bucket works at once.
    again = _publish_classes(world, workdir, f"s3://{bucket}/x")
    assert again.returncode == 0, again.stderr[-3000:]


# Objects gone from the bucket: deleted, expired, or a restarted demo server
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published_run(world, tmp_path_factory):
    """The demo's run (`make demo`: every target), publishing to a bucket of its own."""
    workdir = copy_workflow(tmp_path_factory.mktemp("publish") / "wf")
    bucket = f"eopack-pub-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    extra = write_publish(workdir, {"uri": f"s3://{bucket}/shared"})
    args = ("--cores", "2", "--configfile", "config/demo.yaml", extra)
    proc = run_snakemake(workdir, *args, env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, bucket, args


def _published_keys(world, bucket: str) -> list[str]:
    listing = world.client().list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def _local(workdir: Path, name: str) -> Path:
    folder, _, base = name.rpartition("/")
    return workdir / "results" / ("bigearthnet" if folder else "zip") / base


def _check_urls(workdir: Path) -> list[dict[str, str]]:
    """Every URL of urls.tsv serves its local file's bytes."""
    rows = read_urls(workdir / "results" / "publish" / "urls.tsv")
    for row in rows:
        assert row["url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(row["url"], timeout=30) as response:
            assert response.read() == _local(workdir, row["object"]).read_bytes(), row
    return rows


def test_objects_deleted_between_runs_are_uploaded_again_in_one_run(world, published_run):
    """The README's refresh command finds every deleted object and uploads them all again."""
    workdir, bucket, args = published_run
    keys = _published_keys(world, bucket)
    gone = [keys[0], keys[-1], next(k for k in keys if k.endswith("index.csv"))]
    for key in gone:
        world.client().delete_object(Bucket=bucket, Key=key)
    before = world.s3.traffic.snapshot()
    proc = run_snakemake(workdir, *args, "--forcerun", "publish_urls", env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    during = world.s3.traffic.snapshot() - before
    assert sum(during.count(op=op) for op in ("PutObject", "UploadPart")) == len(gone)
    assert "publish_upload" not in proc.stderr
    assert _published_keys(world, bucket) == keys
    log = (workdir / "logs" / "publish" / "urls.log").read_text()
    (warning,) = [line for line in log.splitlines() if " WARNING " in line]
    assert f"3 of {len(keys)} published objects are missing or changed" in warning
    for key in gone:
        assert f"s3://{bucket}/{key} (missing)" in warning
    assert len(_check_urls(workdir)) == len(keys)

    # All there: the refresh signs new URLs and uploads nothing.
    before = world.s3.traffic.snapshot()
    proc = run_snakemake(workdir, *args, "--forcerun", "publish_urls", env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    during = world.s3.traffic.snapshot() - before
    assert sum(during.count(op=op) for op in ("PutObject", "UploadPart")) == 0


def test_deleted_zip_and_emptied_bucket_finish_in_one_run(world, published_run):
    """A deleted SAFE zip is rebuilt while every published object is gone (a restarted demo
    server): the one run rebuilds the zip, republishes everything and writes urls.tsv."""
    workdir, bucket, args = published_run
    keys = _published_keys(world, bucket)
    for key in keys:
        world.client().delete_object(Bucket=bucket, Key=key)
    zip_path = sorted((workdir / "results" / "zip").glob("*.zip"))[0]
    zip_path.unlink()
    proc = run_snakemake(workdir, *args, env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert zip_path.is_file()
    assert _published_keys(world, bucket) == keys
    assert len(_check_urls(workdir)) == len(keys)
    again = run_snakemake(workdir, *args, env=world.env())
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def _demo(workdir: Path, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """`make demo`'s command in ``workdir``, in a process group of its own (servers too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "eopack.cli", "demo", "--cores", "2", "--state-dir", str(state)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_demo_resumes_after_kill_9_of_its_process_group(tmp_path):
    """SIGKILL of the whole demo (as a spot interruption does) once some objects are published:
    the demo's S3 server comes back empty, and the next `make demo` finishes all the same."""
    workdir = copy_workflow(tmp_path / "wf")
    state, log = tmp_path / "state", tmp_path / "demo.log"
    first = _demo(workdir, state, log)
    receipts = workdir / "results" / "publish"
    try:
        deadline = time.monotonic() + 600
        while len(list(receipts.rglob("*.json"))) < 3 and first.poll() is None:
            assert time.monotonic() < deadline, "no publish receipt within 600 s"
            time.sleep(0.2)
        assert first.poll() is None, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (receipts / "urls.tsv").exists()
    second = _demo(workdir, state, log)
    try:
        assert second.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.pid, signal.SIGKILL)
    rows = read_urls(receipts / "urls.tsv")
    assert len(rows) == len(list(receipts.rglob("*.json")))
    urls_log = (workdir / "logs" / "publish" / "urls.log").read_text()
    assert "published objects are missing or changed, uploading them again" in urls_log
