"""results/plan.tsv: files, bytes and requester-pays cost, from two requests per product."""

from __future__ import annotations

import csv
import io
import os

import pytest
from conftest import copy_workflow, run_snakemake

from eopack.demo.s1world import DEMO_BUCKET
from eopack.errors import EopackError
from eopack.plan import Prices, write_plan
from eopack.s3 import get_bytes, make_client, source_bucket
from eopack.search.manifest import Product, write_manifest

SOURCES = {DEMO_BUCKET: {"region": "eu-central-1", "requester_pays": True}}
PRICES = Prices(usd_per_gb=0.09, usd_per_1000_requests=0.4)


def as_record(demo, bucket: str = DEMO_BUCKET, collection: str = "sentinel-1-grd") -> Product:
    return Product(
        id=demo.product_id,
        collection=collection,
        datetime="2021-03-10T05:30:24Z",
        platform="sentinel-1a",
        mode="IW",
        polarisations=("VV",),
        geometry=demo.footprint,
        bucket=bucket,
        prefix=demo.prefix,
    )


def read_tsv(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))


def test_plan_counts_every_file_and_byte(world, world_env, tmp_path):
    products = tmp_path / "products.geojson"
    write_manifest(products, [as_record(p) for p in world.products[:3]])
    out = tmp_path / "plan.tsv"
    write_plan(products, SOURCES, "s3://my-bucket/eo", PRICES, out)
    rows = read_tsv(out)
    assert [r["product"] for r in rows[:-1]] == sorted(p.product_id for p in world.products[:3])
    for row in rows[:-1]:
        demo = next(p for p in world.products if p.product_id == row["product"])
        size = sum(len(demo.objects[key]) for key in demo.filename_map.values())
        files = len(demo.filename_map)
        assert int(row["files"]) == files and int(row["bytes"]) == size
        assert row["missing"] == "0"
        assert row["source"] == f"s3://{DEMO_BUCKET}/{demo.prefix}/"
        assert row["destination"] == f"s3://my-bucket/eo/{demo.product_id}.zip"
        expected = size / 1e9 * 0.09 + (files + 1) / 1000 * 0.4
        assert float(row["est_cost_usd"]) == pytest.approx(expected, abs=1e-6)
    total = rows[-1]
    assert total["product"] == "TOTAL"
    assert int(total["bytes"]) == sum(int(r["bytes"]) for r in rows[:-1])
    assert float(total["est_cost_usd"]) == pytest.approx(
        sum(float(r["est_cost_usd"]) for r in rows[:-1]), abs=1e-5
    )


def test_plan_reports_missing_files_and_skips_optical(world, world_env, tmp_path):
    client = world.client()
    bucket = "plan-missing"
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    demo = world.products[0]
    dropped = sorted(demo.filename_map.values())[0]
    for key, body in demo.objects.items():
        if key != dropped:
            client.put_object(Bucket=bucket, Key=f"{demo.prefix}/{key}", Body=body)
    client.put_bucket_request_payment(
        Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    products = tmp_path / "products.geojson"
    optical = as_record(world.products[1], collection="sentinel-2-l2a")
    write_manifest(products, [as_record(demo, bucket), optical])
    out = tmp_path / "plan.tsv"
    sources = {**SOURCES, bucket: {"region": "eu-central-1"}}
    write_plan(products, sources, "results/zip", PRICES, out)
    rows = read_tsv(out)
    assert [r["product"] for r in rows] == [demo.product_id, "TOTAL"]
    assert rows[0]["missing"] == "1"
    assert int(rows[0]["files"]) == len(demo.filename_map)
    assert int(rows[0]["bytes"]) == sum(
        len(demo.objects[k]) for k in demo.filename_map.values() if k != dropped
    )


def test_plan_needs_requester_pays_and_a_configured_bucket(world, world_env, tmp_path):
    products = tmp_path / "products.geojson"
    write_manifest(products, [as_record(world.products[0])])
    out = tmp_path / "plan.tsv"
    no_payer = {DEMO_BUCKET: {"region": "eu-central-1", "requester_pays": False}}
    with pytest.raises(EopackError, match=r"access denied .*requester pays"):
        write_plan(products, no_payer, "results/zip", PRICES, out)
    with pytest.raises(EopackError, match="bucket 'sentinel-s1-l1c' is not configured"):
        write_plan(products, {}, "results/zip", PRICES, out)
    assert not out.exists()


def test_plan_asks_for_products_in_parallel_in_manifest_order(world, world_env, s3net, tmp_path):
    """Two requests per product are latency: at 10,000 products they are sent several at once,
    and the plan is the same as one product at a time."""
    import threading
    import time

    products = tmp_path / "products.geojson"
    write_manifest(products, [as_record(p) for p in world.products])
    serial, parallel = tmp_path / "serial.tsv", tmp_path / "parallel.tsv"

    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow_listing(environ):
        if environ.get("REQUEST_METHOD") != "GET" or "list-type" not in environ.get(
            "QUERY_STRING", ""
        ):
            return None
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return None

    s3net.hook(slow_listing)
    started = time.monotonic()
    write_plan(products, SOURCES, "results/zip", PRICES, serial, workers=1)
    one_at_a_time = time.monotonic() - started
    assert state["most"] == 1
    started = time.monotonic()
    write_plan(products, SOURCES, "results/zip", PRICES, parallel, workers=8)
    took = time.monotonic() - started
    assert parallel.read_bytes() == serial.read_bytes()
    assert len(read_tsv(parallel)) == len(world.products) + 1
    assert state["most"] > 1
    # Compared within the run (the machine is shared, the server's CPU time is the same in
    # both): asked at once, the listings' waits overlap, so at least half of them is saved.
    saved = one_at_a_time - took
    assert saved > 0.5 * 0.2 * (len(world.products) - 1), (took, one_at_a_time)


# Without AWS credentials
# --------------------------------------------------------------------------------------------

#: Where boto3 looked and how to give credentials (eopack.s3.NO_CREDENTIALS, spelled out).
LOOKED = (
    "no AWS credentials found (looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
    "~/.aws/credentials and ~/.aws/config, and the instance or container role): export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure` or `aws sso login`"
)
NO_CREDENTIALS = (
    "plan: source bucket sentinel-s1-l1c is requester pays, which needs signed requests, and "
    f"there are {LOOKED}"
)


@pytest.fixture
def no_credentials(world, monkeypatch, tmp_path) -> dict[str, str]:
    """No credentials anywhere boto3 looks (and no instance metadata request: loopback only);
    the local servers' addresses stay. Returns the environment for a Snakemake run."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ENDPOINT_URL_S3": world.s3.endpoint_url,
        "EOPACK_STAC_URL": world.env()["EOPACK_STAC_URL"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_plan_without_credentials_says_which_are_missing(world, no_credentials, s3net, tmp_path):
    products = tmp_path / "products.geojson"
    write_manifest(products, [as_record(world.products[0])])
    out = tmp_path / "plan.tsv"
    asked = s3net.log(DEMO_BUCKET)
    with pytest.raises(EopackError) as info:
        write_plan(products, SOURCES, "results/zip", PRICES, out)
    assert str(info.value) == NO_CREDENTIALS
    assert asked.keys == []  # said before any request
    assert not out.exists()


def test_plan_of_a_public_bucket_needs_no_credentials(world, tmp_path, monkeypatch):
    """A bucket that is not requester pays is planned with anonymous requests."""
    client = world.client()
    bucket = "plan-public"
    client.create_bucket(
        Bucket=bucket,
        ACL="public-read",  # as AWS open-data buckets that are not requester pays
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    demo = world.products[0]
    for key, body in demo.objects.items():
        client.put_object(Bucket=bucket, Key=f"{demo.prefix}/{key}", Body=body, ACL="public-read")
    products = tmp_path / "products.geojson"
    write_manifest(products, [as_record(demo, bucket)])
    out = tmp_path / "plan.tsv"
    sources = {bucket: {"region": "eu-central-1", "requester_pays": False}}
    empty = tmp_path / "empty"
    empty.write_text("")
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", world.s3.endpoint_url)
    write_plan(products, sources, "results/zip", PRICES, out)
    rows = read_tsv(out)
    assert [r["product"] for r in rows] == [demo.product_id, "TOTAL"]
    assert int(rows[0]["files"]) == len(demo.filename_map)
    assert int(rows[0]["bytes"]) == sum(len(demo.objects[k]) for k in demo.filename_map.values())


def test_failed_plan_keeps_the_good_plan(world, no_credentials, tmp_path):
    """A plan run without credentials: one line, exit != 0, the earlier plan.tsv untouched."""
    workdir = copy_workflow(tmp_path / "wf")
    args = ("results/plan.tsv", "--cores", "2", "--configfile", "config/demo.yaml")
    good = run_snakemake(workdir, *args, env=world.env())
    assert good.returncode == 0, good.stderr[-3000:]
    plan = workdir / "results" / "plan.tsv"
    before = plan.read_bytes()
    assert len(read_tsv(plan)) > 1

    failed = run_snakemake(workdir, *args, "--forcerun", "plan", env=no_credentials)
    assert failed.returncode != 0
    lines = [line for line in failed.stderr.splitlines() if line.startswith("eopack: ")]
    # The demo plans every collection: four requester-pays buckets, named in one line.
    every = NO_CREDENTIALS.replace(
        "source bucket sentinel-s1-l1c is",
        "source buckets sentinel-s1-l1c, sentinel-s2-l1c, sentinel-s2-l2a, usgs-landsat are",
    )
    assert lines == [f"eopack: {every}"], failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr and "NoCredentialsError" not in failed.stderr
    assert plan.read_bytes() == before
    assert "Restored previous version of results/plan.tsv" in failed.stderr  # says what it kept


def test_any_read_without_credentials_says_how_to_give_them(world, no_credentials):
    """Jobs other than the plan (a SAFE's productInfo.json here) name the object and the fix,
    not boto's NoCredentialsError."""
    key = f"{world.products[0].prefix}/productInfo.json"
    with pytest.raises(EopackError) as info:
        get_bytes(make_client(), source_bucket(SOURCES, DEMO_BUCKET), key)
    assert str(info.value) == f"s3://{DEMO_BUCKET}/{key}: {LOOKED}"
