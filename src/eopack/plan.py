"""The transfer plan: what a run would fetch and what it would cost, before paying for it.

Source buckets are requester pays, so the user is billed for every GET and every byte that
leaves the bucket's region. Per product the plan costs a few cheap requests (its metadata as
its collection reads it, eopack.safe.registry, and one listing per folder), never the data
itself. The buckets are in different regions (Sentinel in eu-central-1, Landsat in
us-west-2), so the price per GB can be set per region.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from eopack.fsutil import atomic_write_bytes
from eopack.s3 import SourceBucket, describe_error, make_client, signed_requests, source_bucket
from eopack.safe.registry import collection
from eopack.search.manifest import Product, read_manifest

log = logging.getLogger(__name__)

#: Products planned at once (boto3 clients are thread-safe; one connection each).
PLAN_WORKERS = 16

COLUMNS = (
    "product",
    "collection",
    "files",
    "bytes",
    "missing",
    "source",
    "destination",
    "est_cost_usd",
)


@dataclass(frozen=True)
class Prices:
    """What the requester pays: per GB out of the bucket's region and per 1,000 GETs."""

    usd_per_gb: float
    usd_per_1000_requests: float
    #: Region -> USD per GB, where it differs (0 for the region your EC2 instance is in).
    usd_per_gb_by_region: Mapping[str, float] = field(default_factory=dict)

    def cost(self, files: int, size: int, region: str = "") -> float:
        per_gb = self.usd_per_gb_by_region.get(region, self.usd_per_gb)
        return size / 1e9 * per_gb + files / 1000 * self.usd_per_1000_requests


@dataclass(frozen=True)
class PlanRow:
    """One product of the plan."""

    product: str
    collection: str
    files: int
    bytes: int
    missing: int
    source: str
    destination: str
    est_cost_usd: float


def list_sizes(client: Any, bucket: SourceBucket, prefix: str) -> dict[str, int]:
    """Key (relative to ``prefix``) -> size of every object under ``prefix/``."""
    return {key: size for key, (size, _) in list_versions(client, bucket, prefix).items()}


def list_versions(client: Any, bucket: SourceBucket, prefix: str) -> dict[str, tuple[int, str]]:
    """Key (relative to ``prefix``) -> (size, ETag) of every object under ``prefix/``: the
    ETags let the download that follows skip its own listing (``download_files(versions=)``)."""
    versions: dict[str, tuple[int, str]] = {}
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(
            Bucket=bucket.name, Prefix=f"{prefix}/", **bucket.extra_args
        ):
            for obj in page.get("Contents", []):
                versions[obj["Key"][len(prefix) + 1 :]] = (int(obj["Size"]), str(obj["ETag"]))
    except (ClientError, BotoCoreError) as exc:
        raise describe_error(exc, bucket.name, f"{prefix}/") from None
    return versions


def destination_of(destination: str, product_id: str) -> str:
    """Where the product's zip goes: a local folder or ``s3://bucket/prefix``."""
    return f"{destination.rstrip('/')}/{product_id}.zip"


def plan_product(
    client: Any, bucket: SourceBucket, product: Product, destination: str, prices: Prices
) -> PlanRow:
    """Files, bytes and estimated cost of fetching one product (its collection's file list)."""
    files = collection(product.collection).list_files(client, bucket, product)
    sizes: dict[str, int] = {}
    if files.files and set(files.sizes) >= set(files.files):
        # The file list was read from the listing already (S2, Landsat): no second LIST.
        sizes = {files.files[path]: size for path, size in files.sizes.items()}
    else:
        for prefix in files.prefixes:
            listed = list_sizes(client, bucket, prefix)
            sizes.update((f"{prefix}/{k}", n) for k, n in listed.items())
    keys = list(files.files.values())
    present = [key for key in keys if key in sizes]
    size = sum(sizes[key] for key in present)
    missing = len(keys) - len(present)
    if missing:
        log.warning("%s: %d of %d files are missing in the bucket", product.id, missing, len(keys))
    # +1 request: the product's metadata (productInfo.json and the like).
    return PlanRow(
        product=product.id,
        collection=product.collection,
        files=len(keys),
        bytes=size,
        missing=missing,
        source=f"s3://{bucket.name}/{product.prefix}/",
        destination=destination_of(destination, product.id),
        est_cost_usd=round(prices.cost(len(present) + 1, size, bucket.region), 6),
    )


def plan_tsv(rows: Iterable[PlanRow]) -> bytes:
    """The plan as TSV with a header and a TOTAL line."""
    rows = list(rows)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, column) for column in COLUMNS])
    writer.writerow(
        [
            "TOTAL",
            "",
            sum(r.files for r in rows),
            sum(r.bytes for r in rows),
            sum(r.missing for r in rows),
            "",
            "",
            round(sum(r.est_cost_usd for r in rows), 6),
        ]
    )
    return out.getvalue().encode()


def write_plan(
    products_file: str | Path,
    sources: Mapping[str, Mapping[str, Any]],
    destination: str,
    prices: Prices,
    out: str | Path,
    collections: Iterable[str] = ("sentinel-1-grd",),
    workers: int = PLAN_WORKERS,
) -> list[PlanRow]:
    """``results/plan.tsv`` for every product of ``products_file`` eopack would fetch.

    The two requests per product are latency, not bandwidth: ``workers`` products are asked
    at once (10,000 products one after another would take ~10-15 minutes from EC2); the rows
    keep the manifest's order.
    """
    wanted = set(collections)
    products = [p for p in read_manifest(products_file) if p.collection in wanted]
    # Every bucket is checked (and named in the error) before any request is sent.
    buckets = [source_bucket(sources, product.bucket) for product in products]
    # Without credentials: one line before any request if a bucket is requester pays;
    # public buckets are planned with anonymous requests.
    unsigned = not signed_requests(buckets, "plan")
    clients = {
        region: make_client(region, max_pool=max(10, workers), unsigned=unsigned)
        for region in sorted({bucket.region for bucket in buckets})
    }
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(
            pool.map(
                lambda job: plan_product(
                    clients[job[1].region], job[1], job[0], destination, prices
                ),
                zip(products, buckets, strict=True),
            )
        )
    atomic_write_bytes(out, plan_tsv(rows))
    total = sum(r.bytes for r in rows)
    cost = sum(r.est_cost_usd for r in rows)
    log.info(
        "%d products, %d files, %.3f GB, estimated requester-pays cost $%.4f",
        len(rows),
        sum(r.files for r in rows),
        total / 1e9,
        cost,
    )
    return rows
