"""Results on S3 through snakemake-storage-plugin-s3 (`--default-storage-provider s3`).

The demo workflow runs against the real local S3 server with every result and log under
``s3://eopack-storage-results/run/``; the objects are checked against the demo world's
source objects, a local rebuild of each zip, and the datasets' own SHA256SUMS.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from conftest import copy_workflow, run_snakemake

from eopack.archive import zip_safe
from eopack.errors import EopackError
from eopack.storage import check_shared_resources, check_storage_prefix, source_buckets

BUCKET = "eopack-storage-results"
PREFIX = "run"
BEN = f"{PREFIX}/results/bigearthnet"


def storage_args(prefix: str = f"s3://{BUCKET}/{PREFIX}") -> tuple[str, ...]:
    return ("--configfile", "config/demo.yaml", "--default-storage-provider", "s3",
            "--default-storage-prefix", prefix)  # fmt: skip


def storage_env(world) -> dict[str, str]:
    """The plugin's own settings as env vars (they also reach cluster jobs); eopack's
    source reads keep using AWS_ENDPOINT_URL_S3 and the standard AWS variables."""
    env = world.env()
    return {
        **env,
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": env["AWS_ENDPOINT_URL_S3"],
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": env["AWS_ACCESS_KEY_ID"],
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": env["AWS_SECRET_ACCESS_KEY"],
        "SNAKEMAKE_STORAGE_S3_REGION": env["AWS_DEFAULT_REGION"],
    }


def objects(client, prefix: str) -> dict[str, int]:
    """Key -> size of every object under ``prefix``."""
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def body(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def storage_run(world, tmp_path_factory):
    client = world.client()
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    workdir = copy_workflow(tmp_path_factory.mktemp("storage-s3"))
    proc = run_snakemake(workdir, "--cores", "2", *storage_args(), env=storage_env(world))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, client, proc


def test_results_are_in_the_bucket_not_on_local_disk(storage_run):
    workdir, client, _ = storage_run
    assert not (workdir / "results").exists()
    keys = objects(client, f"{PREFIX}/")
    for name in ("results/search/products.geojson", "results/plan.tsv"):
        assert f"{PREFIX}/{name}" in keys
    assert any(k.startswith(f"{PREFIX}/results/search/alps/") for k in keys)
    assert any(k.startswith(f"{PREFIX}/logs/safe/") for k in keys)
    # Downloads and extracted archives stay on local disk (local()), not in the bucket.
    assert not any(k.startswith(f"{PREFIX}/resources/") for k in keys)
    assert (workdir / "resources" / "bigearthnet" / "metadata.parquet").is_file()


def test_safe_zips_match_the_source_objects_and_a_local_build(world, storage_run, tmp_path):
    _, client, _ = storage_run
    zips = {
        k.removeprefix(f"{PREFIX}/results/zip/").removesuffix(".zip"): k
        for k in objects(client, f"{PREFIX}/results/zip/")
    }
    by_id = {p.product_id: p for p in world.products}
    # 7 Sentinel-1 SAFEs (checked file by file below) and the optical products (2 S2 L1C,
    # 2 S2 L2A, 2 Landsat scenes; tests/test_demo_products.py checks those in a local run).
    assert len(zips) == 13 and len(set(zips) & set(by_id)) == 7
    plan = body(client, f"{PREFIX}/results/plan.tsv").decode().splitlines()
    for pid, key in zips.items():
        verify = body(client, f"{PREFIX}/results/safe/{pid}.verify.json")
        assert b'"ok": true' in verify, pid
        if pid not in by_id:
            continue
        product = by_id[pid]
        data = body(client, key)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.testzip() is None
            members = {n.removeprefix(f"{pid}.SAFE/"): archive.read(n) for n in archive.namelist()}
        assert members == {path: product.objects[k] for path, k in product.filename_map.items()}
        # The SAFE folder in the bucket holds the same files (plus Snakemake's marker).
        safe_prefix = f"{PREFIX}/results/safe/{pid}.SAFE/"
        safe_keys = {k.removeprefix(safe_prefix) for k in objects(client, safe_prefix)}
        assert safe_keys == set(members) | {".snakemake_timestamp"}
        # Same bytes as a local build of that SAFE folder.
        safe = tmp_path / f"{pid}.SAFE"
        for path, content in members.items():
            (safe / path).parent.mkdir(parents=True, exist_ok=True)
            (safe / path).write_bytes(content)
        zip_safe(safe, tmp_path / f"{pid}.zip")
        assert (tmp_path / f"{pid}.zip").read_bytes() == data, pid
        verify = body(client, f"{PREFIX}/results/safe/{pid}.verify.json")
        assert b'"ok": true' in verify
        assert any(f"s3://{BUCKET}/{PREFIX}/results/zip/{pid}.zip" in row for row in plan), pid


def test_bigearthnet_datasets_match_their_sha256sums_and_pngs(storage_run):
    _, client, _ = storage_run
    sums = body(client, f"{BEN}/SHA256SUMS").decode().splitlines()
    assert len(sums) == 5
    for line in sums:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256(body(client, f"{BEN}/{name.lstrip('*')}")).hexdigest() == digest
    rows = list(csv.DictReader(io.StringIO(body(client, f"{BEN}/index.csv").decode())))
    assert rows
    for dataset, folder in (("pngs", "rgb"), ("mask_pngs", "mask")):
        pngs = {k for k in objects(client, f"{BEN}/{folder}/") if k.endswith(".png")}
        with zipfile.ZipFile(io.BytesIO(body(client, f"{BEN}/bigearthnet_{dataset}.zip"))) as z:
            assert z.testzip() is None
            assert {f"{BEN}/{n}" for n in z.namelist()} == pngs
            assert sorted(z.namelist()) == sorted(row[folder] for row in rows)
            name = z.namelist()[0]
            assert z.read(name) == body(client, f"{BEN}/{name}")


def test_logs_in_the_bucket_hold_no_secret(world, storage_run):
    _, client, proc = storage_run
    secret = world.env()["AWS_SECRET_ACCESS_KEY"].encode()
    logs = objects(client, f"{PREFIX}/logs/")
    assert len(logs) > 20
    assert not any(secret in body(client, key) for key in logs)
    assert secret.decode() not in proc.stdout + proc.stderr


def test_second_run_has_nothing_to_do(world, storage_run):
    workdir, _, _ = storage_run
    # The search manifests are read while the DAG is built: they come back from the bucket.
    assert not list(Path(workdir, ".snakemake", "storage").rglob("*.geojson"))
    proc = run_snakemake(workdir, "--cores", "2", *storage_args(), env=storage_env(world))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("bucket", ["sentinel-s1-l1c", "eopack-demo-bigearthnet"])
def test_source_bucket_as_storage_prefix_is_refused(world, tmp_path, bucket):
    client = world.client()
    before = objects_in(client, bucket)
    workdir = copy_workflow(tmp_path / "wf")
    proc = run_snakemake(
        workdir, "--cores", "1", *storage_args(f"s3://{bucket}/results"), env=storage_env(world)
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]
    assert lines == [
        f"eopack: --default-storage-prefix: s3://{bucket}/results/: {bucket} is a configured "
        "source bucket (eopack never writes to a source)"
    ]
    assert objects_in(client, bucket) == before
    assert not (workdir / "resources").exists()


def test_no_shared_working_directory_is_refused_with_bigearthnet(world, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    args = (*storage_args(), "-n", "--shared-fs-usage", "persistence", "sources")
    proc = run_snakemake(workdir, *args, env=storage_env(world))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("eopack: ")]
    assert len(lines) == 1 and "add input-output to --shared-fs-usage" in lines[0]


def objects_in(client, bucket: str) -> int:
    listing = client.list_objects_v2(Bucket=bucket, RequestPayer="requester")
    return listing["KeyCount"]


# eopack.storage, without Snakemake
# --------------------------------------------------------------------------------------------


def test_source_buckets_include_an_s3_bigearthnet_source():
    config = {"sources": {"sentinel-s1-l1c": {}}, "bigearthnet": {"source": "s3://ben-mirror/x"}}
    assert source_buckets(config) == {"sentinel-s1-l1c", "ben-mirror"}
    config["bigearthnet"]["source"] = "https://zenodo.org/records/10891137/files"
    assert source_buckets(config) == {"sentinel-s1-l1c"}


def test_check_storage_prefix():
    sources = {"sentinel-s1-l1c"}
    for fine in (None, "", "s3://my-results/run", "gs://sentinel-s1-l1c/x", "/mnt/shared"):
        check_storage_prefix(fine, sources)
    with pytest.raises(EopackError, match=r"^--default-storage-prefix: s3://sentinel-s1-l1c/"):
        check_storage_prefix("s3://sentinel-s1-l1c", sources)
    with pytest.raises(EopackError, match="not a valid S3 bucket name"):
        check_storage_prefix("s3://Not_A_Bucket/run", sources)


def test_check_shared_resources():
    check_shared_resources(bigearthnet_enabled=True, shared_input_output=True)
    check_shared_resources(bigearthnet_enabled=False, shared_input_output=False)
    with pytest.raises(EopackError, match="--shared-fs-usage"):
        check_shared_resources(bigearthnet_enabled=True, shared_input_output=False)
