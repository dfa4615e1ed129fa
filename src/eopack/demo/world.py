"""The demo world: a local S3 server and STAC API seeded with generated real-format data.

Used by ``make demo`` and by the tests. Everything is on loopback; nothing leaves the host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

from eopack.demo.benworld import BenWorld, build_benworld
from eopack.demo.landsatworld import (
    LANDSAT_REGION,
    LandsatScene,
    build_landsat_scenes,
    seed_landsat_bucket,
    with_landsat_checksums,
)
from eopack.demo.opticalworld import build_optical_items
from eopack.demo.s1world import DEMO_BUCKET, DemoProduct, build_s1_products, seed_s1_bucket
from eopack.demo.s2world import S2DemoProduct, build_s2_products, seed_s2_buckets
from eopack.demo.s3server import LocalS3Server
from eopack.demo.service import Service
from eopack.demo.stacserver import StacServer

# Placeholder credentials for the local server only (moto accepts any).
DEMO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "eopack-demo",
    "AWS_SECRET_ACCESS_KEY": "eopack-demo-secret",
    "AWS_DEFAULT_REGION": "eu-central-1",
}
#: The mini BigEarthNet release (a Zenodo-like flat folder) on the local S3 server.
BIGEARTHNET_BUCKET = "eopack-demo-bigearthnet"
BIGEARTHNET_PREFIX = "zenodo"
#: The empty bucket config/demo.yaml publishes to (``publish.uri``), as a user's own bucket.
PUBLISH_BUCKET = "eopack-demo-publish"


class DemoWorld(Service):
    """Start both servers, seed them, expose the environment a workflow run needs."""

    def __init__(self, state_dir: str | Path = ".demo") -> None:
        self.state_dir = Path(state_dir)
        self.s3 = LocalS3Server()  # port 0: the kernel picks a free one at bind time
        self.stac: StacServer | None = None
        self.products: list[DemoProduct] = []
        self.optical_items: list[dict[str, Any]] = []  # S2 L1C/L2A and Landsat search records
        self.s2_products: list[S2DemoProduct] = []  # the S2 products the demo fetches
        self.landsat_scenes: list[LandsatScene] = []  # usgs-landsat scene folders
        self.benworld: BenWorld | None = None  # the mini BigEarthNet (3 products x 40 patches)
        self._saved_env: dict[str, str | None] = {}

    def env(self) -> dict[str, str]:
        """Variables that point boto3 and eopack at the local servers."""
        if self.stac is None:
            raise RuntimeError("DemoWorld is not started")
        return {
            **DEMO_CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": self.s3.endpoint_url,
            "EOPACK_STAC_URL": self.stac.url,
        }

    def start(self) -> DemoWorld:
        from eopack.demo.s1world import write_stac_items

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.s3.start()
        self.products = build_s1_products()
        client = self.client()
        seed_s1_bucket(client, self.products, DEMO_BUCKET)
        self.optical_items = build_optical_items()
        self.s2_products = build_s2_products()
        seed_s2_buckets(client, self.s2_products)
        # Landsat C2 L2 scene folders in usgs-landsat (us-west-2, requester pays).
        self.landsat_scenes = build_landsat_scenes(self.optical_items)
        self.optical_items = with_landsat_checksums(self.optical_items, self.landsat_scenes)
        seed_landsat_bucket(self.client(LANDSAT_REGION), self.landsat_scenes)
        items = self.state_dir / "stac-items.json"
        write_stac_items(self.products, items, extra_items=self.optical_items)
        self.stac = StacServer([items], log_file=self.state_dir / "rustac.log").start()
        self.benworld = build_benworld(self.state_dir / "bigearthnet")
        seed_bigearthnet_bucket(client, self.benworld)
        region = {"LocationConstraint": DEMO_CREDENTIALS["AWS_DEFAULT_REGION"]}
        client.create_bucket(Bucket=PUBLISH_BUCKET, CreateBucketConfiguration=region)
        return self

    def client(self, region: str | None = None) -> Any:
        """A boto3 client on the local S3 server (seeding, tests, inspection); ``region``:
        another than the demo's default, to create a bucket there."""
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint_url,
            region_name=region or DEMO_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=DEMO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DEMO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    @property
    def bigearthnet_uri(self) -> str:
        """The mini release's folder, as config/demo.yaml's ``bigearthnet.source`` names it."""
        return f"s3://{BIGEARTHNET_BUCKET}/{BIGEARTHNET_PREFIX}"

    def stop(self) -> None:
        if self.stac is not None:
            self.stac.stop()
        self.s3.stop()


def seed_bigearthnet_bucket(
    s3_client: Any,
    world: BenWorld,
    bucket: str = BIGEARTHNET_BUCKET,
    prefix: str = BIGEARTHNET_PREFIX,
) -> None:
    """Upload the mini release (archives, metadata parquets, hashes.txt) as a flat folder.

    A plain bucket (not requester pays), like a mirror of the Zenodo record.
    """
    s3_client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    for name, path in sorted(world.files.items()):
        s3_client.upload_file(str(path), bucket, f"{prefix}/{name}")
