"""results/plan.tsv: files, bytes and requester-pays cost, from two requests per product."""

from __future__ import annotations

import csv
import io

import pytest

from eopack.demo.s1world import DEMO_BUCKET
from eopack.errors import EopackError
from eopack.plan import Prices, write_plan
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
    write_plan(products, SOURCES, "results/zip", PRICES, serial, workers=1)

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
    write_plan(products, SOURCES, "results/zip", PRICES, parallel, workers=8)
    took = time.monotonic() - started
    assert parallel.read_bytes() == serial.read_bytes()
    assert len(read_tsv(parallel)) == len(world.products) + 1
    assert state["most"] > 1
    assert took < 0.2 * len(world.products) / 2
