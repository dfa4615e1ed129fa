"""Deliveries through the workflow: an s3:// destination and a local folder elsewhere."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, run_snakemake

from eopack.demo.world import PUBLISH_BUCKET
from eopack.publish import read_urls

DEST_BUCKET = "eopack-deliveries"
PREFIX = "runs/demo"


def write_config(workdir: Path, destination: dict) -> str:
    path = workdir / "config" / "deliver.yaml"
    path.write_text(yaml.safe_dump({"destination": destination}))
    return str(path.relative_to(workdir))


@pytest.fixture(scope="module")
def s3_run(world, tmp_path_factory):
    client = world.client()
    client.create_bucket(
        Bucket=DEST_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    workdir = copy_workflow(tmp_path_factory.mktemp("deliver-s3"))
    extra = write_config(workdir, {"uri": f"s3://{DEST_BUCKET}/{PREFIX}", "copy_safe": True})
    proc = run_snakemake(
        workdir,
        "--cores",
        "2",
        "--configfile",
        "config/demo.yaml",
        extra,
        env=world.env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, client


def test_zips_and_safes_land_in_the_destination_bucket(world, s3_run):
    workdir, client = s3_run
    zips = sorted((workdir / "results" / "zip").glob("*.zip"))
    assert len(zips) == 13  # 7 Sentinel-1, 4 Sentinel-2, 2 Landsat
    by_id = {p.product_id: p for p in world.products}
    for path in zips:
        pid = path.stem
        body = client.get_object(Bucket=DEST_BUCKET, Key=f"{PREFIX}/{pid}.zip")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
        receipt = json.loads((workdir / "results" / "deliver" / f"{pid}.zip.json").read_text())
        assert receipt["uri"] == f"s3://{DEST_BUCKET}/{PREFIX}/{pid}.zip"
        assert receipt["sha256"] == hashlib.sha256(body).hexdigest()
        # The folder copied bucket to bucket, complete, with its marker written last: the
        # same files as the local rebuild ({id}.SAFE/, a Landsat scene's {id}/).
        folder = f"{pid}.SAFE" if pid.startswith("S") else pid
        listing = client.list_objects_v2(Bucket=DEST_BUCKET, Prefix=f"{PREFIX}/{folder}/")
        keys = {o["Key"].removeprefix(f"{PREFIX}/{folder}/") for o in listing["Contents"]}
        local = workdir / "results" / "safe" / folder
        files = {
            p.relative_to(local).as_posix()
            for p in local.rglob("*")
            if p.is_file() and p.name != ".snakemake_timestamp"
        }
        assert keys == files, pid
        if pid in by_id:
            assert keys == set(by_id[pid].filename_map)
        marker = client.get_object(Bucket=DEST_BUCKET, Key=f"{PREFIX}/{pid}.verify.json")
        assert json.loads(marker["Body"].read())["ok"] is True
        safe_receipt = workdir / "results" / "deliver" / f"{pid}.safe.json"
        assert json.loads(safe_receipt.read_text())["ok"] is True


def test_source_buckets_untouched(world, s3_run):
    _, client = s3_run
    listing = client.list_objects_v2(Bucket="sentinel-s1-l1c", RequestPayer="requester")
    expected = sum(len(p.objects) for p in world.products)
    assert listing["KeyCount"] == expected


def test_second_run_has_nothing_to_do(world, s3_run):
    workdir, _ = s3_run
    extra = str(Path("config") / "deliver.yaml")
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", extra, env=world.env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stderr + proc.stdout


def test_source_bucket_as_destination_is_refused_before_any_job(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    extra = write_config(workdir, {"uri": "s3://sentinel-s1-l1c/mine"})
    proc = run_snakemake(workdir, "-n", "--configfile", "config/demo.yaml", extra, env=world.env())
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]
    assert lines == [
        "eopack: config: destination.uri: s3://sentinel-s1-l1c/mine/: sentinel-s1-l1c is a "
        "configured source bucket (eopack never writes to a source)"
    ]
    assert not (workdir / "results").exists()


def test_missing_destination_bucket_fails_the_delivery_job(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    extra = write_config(workdir, {"uri": "s3://no-such-bucket-here/x", "copy_safe": True})
    proc = run_snakemake(
        workdir,
        "--cores",
        "2",
        "--configfile",
        "config/demo.yaml",
        extra,
        "--keep-going",
        env=world.env(),
    )
    assert proc.returncode != 0
    logs = list((workdir / "logs" / "deliver").glob("*.log"))
    assert logs
    text = "\n".join(p.read_text() for p in logs)
    assert "s3://no-such-bucket-here/x/" in text and "destination bucket does not exist" in text
    assert not (workdir / "results" / "deliver").exists() or not any(
        (workdir / "results" / "deliver").iterdir()
    )


def test_local_destination_folder(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    extra = write_config(workdir, {"uri": "deliveries/zips"})
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", extra, env=world.env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((workdir / "deliveries" / "zips").glob("*.zip"))) == 13
    assert not (workdir / "results" / "zip").exists()
    plan = (workdir / "results" / "plan.tsv").read_text().splitlines()
    assert plan[1].split("\t")[6].startswith("deliveries/zips/")


def test_streamed_zips_match_the_local_ones_and_stage_nothing(world, s3_run, tmp_path):
    """destination.stream_zip: zips go source -> destination without a local SAFE; same bytes."""
    staged_dir, client = s3_run
    workdir = copy_workflow(tmp_path / "wf")
    dest = {"uri": f"s3://{DEST_BUCKET}/streamed", "copy_safe": False, "stream_zip": True}
    extra = write_config(workdir, dest)
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", extra, env=world.env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (workdir / "results" / "safe").exists()
    assert not (workdir / "results" / "zip").exists()
    local = {p.stem: p for p in (staged_dir / "results" / "zip").glob("*.zip")}
    assert len(local) == 13  # S2 and Landsat streamed as well, known gaps and all
    for pid, path in local.items():
        body = client.get_object(Bucket=DEST_BUCKET, Key=f"streamed/{pid}.zip")["Body"].read()
        assert body == path.read_bytes(), pid
        receipt = json.loads((workdir / "results" / "deliver" / f"{pid}.zip.json").read_text())
        assert receipt["sha256"] == hashlib.sha256(body).hexdigest()
        assert receipt["report"]["ok"] is True


def test_delivered_zips_are_presigned_where_they_are(world, s3_run):
    """With an s3:// destination the zips are not uploaded a second time for publishing:
    urls.tsv signs the delivered objects; the datasets go to publish.uri."""
    workdir, _ = s3_run
    rows = read_urls(workdir / "results" / "publish" / "urls.tsv")
    zips = {p.name: p for p in (workdir / "results" / "zip").glob("*.zip")}
    by_object = {r["object"]: r for r in rows}
    assert {name for name in by_object if not name.startswith("bigearthnet/")} == set(zips)
    assert not list((workdir / "results" / "publish").glob("*.zip.json"))
    for name, path in zips.items():
        assert by_object[name]["uri"] == f"s3://{DEST_BUCKET}/{PREFIX}/{name}"
        with urllib.request.urlopen(by_object[name]["url"], timeout=30) as response:
            assert response.read() == path.read_bytes()
    index = by_object["bigearthnet/index.csv"]
    assert index["uri"] == f"s3://{PUBLISH_BUCKET}/eopack/bigearthnet/index.csv"
