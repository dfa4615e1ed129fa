"""The whole demo workflow through a faulty S3: a quarter of all requests get a fault, and the
run ends with the uninterrupted run's results, byte for byte, with no corrupt file left looking
complete at any point.

Every request the local S3 server receives (source listings and reads of the SAFE products and
of the BigEarthNet release, publishing's uploads, checks and signing lookups) may be picked, by
a seeded generator, for a 503 SlowDown, a 500 InternalError, a connection reset mid-body or a
stall (see :mod:`eopack.demo.faults`). The clients' retries should absorb them; a job that gives
up fails, and the run is resumed with the same command (as a user would) up to ``MAX_RUNS``
times. Publishing goes to a fresh prefix so that every object is really uploaded.
"""

from __future__ import annotations

import hashlib
import json
import os

from conftest import DEMO_ARGS, copy_workflow, run_snakemake

from eopack.demo.faults import KINDS, Faults
from eopack.demo.killchain import result_hashes
from eopack.demo.world import PUBLISH_BUCKET

RATE, SEED, MAX_RUNS = 0.25, 7, 4
PREFIX = "faults"


def test_a_quarter_of_requests_failing_changes_no_result(world, demo_run, tmp_path, s3net):
    workdir = copy_workflow(tmp_path / "wf")
    env = {**world.env()}
    publish = f"publish={{uri: s3://{PUBLISH_BUCKET}/{PREFIX}}}"
    faults = Faults(RATE, SEED)
    s3net.hook(faults)
    runs = []
    for _ in range(MAX_RUNS):
        proc = run_snakemake(workdir, *DEMO_ARGS, "--config", publish, env=env)
        runs.append(proc.returncode)
        if proc.returncode == 0:
            break
    s3net.close()
    assert runs[-1] == 0, f"runs {runs}: {proc.stderr[-3000:]}"
    assert faults.total >= 0.2 * faults.requests and faults.total >= 50, faults.injected
    assert set(faults.injected) == set(KINDS)
    print(f"\n{faults.requests} requests, {faults.total} faults {dict(faults.injected)}")
    print(f"runs (exit codes) {runs}")

    # Everything but the receipts (they name the other prefix) is the uninterrupted run's.
    got = result_hashes(workdir)
    local = {k: v for k, v in got.items() if not k.startswith("results/publish/")}
    want = {k: v for k, v in demo_run.hashes.items() if not k.startswith("results/publish/")}
    assert sorted(local) == sorted(want)
    assert [k for k in local if local[k] != want[k]] == []
    # Every published object holds its file's bytes.
    client = world.client()
    receipts = sorted((workdir / "results" / "publish").rglob("*.json"))
    assert len(receipts) == len([k for k in demo_run.hashes if k.endswith(".json")
                                 and k.startswith("results/publish/")])  # fmt: skip
    for receipt in receipts:
        doc = json.loads(receipt.read_text())
        key = doc["uri"].removeprefix(f"s3://{PUBLISH_BUCKET}/")
        assert key.startswith(f"{PREFIX}/")
        body = client.get_object(Bucket=PUBLISH_BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == doc["sha256"]
        assert doc["sha256"] == hashlib.sha256((workdir / doc["file"]).read_bytes()).hexdigest()
    assert not list(workdir.glob("results/**/.*.part")), "a staging folder was left behind"
    assert os.path.exists(workdir / "results" / "publish" / "urls.tsv")
