"""The local S3 server refuses what AWS refuses: requests to requester-pays buckets without
``x-amz-request-payer: requester``. eopack's own requests carry it and succeed."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from eopack.demo.s1world import DEMO_BUCKET
from eopack.demo.s3server import copy_source_bucket
from eopack.s3 import SourceBucket, get_bytes, make_client


def _error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_plain_http_get_is_refused(world, world_env):
    product = world.products[0]
    url = f"{world.s3.endpoint_url}/{DEMO_BUCKET}/{product.prefix}/manifest.safe"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert info.value.code == 403
    assert b"<Code>AccessDenied</Code>" in info.value.read()


def test_boto3_without_request_payer_is_refused(world, world_env):
    client = make_client("eu-central-1")
    product = world.products[0]
    key = f"{product.prefix}/productInfo.json"
    with pytest.raises(ClientError) as get_info:
        client.get_object(Bucket=DEMO_BUCKET, Key=key)
    assert _error_code(get_info.value) == "AccessDenied"
    with pytest.raises(ClientError) as list_info:
        client.list_objects_v2(Bucket=DEMO_BUCKET, Prefix="GRD/")
    assert _error_code(list_info.value) == "AccessDenied"
    with pytest.raises(ClientError) as head_info:
        client.head_object(Bucket=DEMO_BUCKET, Key=key)
    assert head_info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_requests_with_request_payer_succeed(world, world_env):
    client = make_client("eu-central-1")
    product = world.products[0]
    key = f"{product.prefix}/productInfo.json"
    body = client.get_object(Bucket=DEMO_BUCKET, Key=key, RequestPayer="requester")["Body"].read()
    assert body == product.objects["productInfo.json"]
    listed = client.list_objects_v2(
        Bucket=DEMO_BUCKET, Prefix=product.prefix, RequestPayer="requester"
    )
    assert listed["KeyCount"] == len(product.objects)


def test_eopack_reads_send_request_payer(world, world_env):
    client = make_client("eu-central-1")
    product = world.products[0]
    bucket = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=True)
    assert (
        get_bytes(client, bucket, f"{product.prefix}/manifest.safe")
        == product.objects["manifest.safe"]
    )
    refused_before = world.s3.middleware.refused
    not_paying = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=False)
    with pytest.raises(Exception, match="access denied"):
        get_bytes(client, not_paying, f"{product.prefix}/manifest.safe")
    assert world.s3.middleware.refused == refused_before + 1


def test_bucket_is_marked_requester_pays(world, world_env):
    client = make_client("eu-central-1")
    payment = client.get_bucket_request_payment(Bucket=DEMO_BUCKET)
    assert payment["Payer"] == "Requester"


# Copies whose source is requester pays; traffic counting; read-only buckets (test aids)
# --------------------------------------------------------------------------------------------


def _dest_bucket(world, stem: str) -> str:
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return name


@pytest.mark.parametrize(
    ("header", "bucket"),
    [
        ("sentinel-s1-l1c/GRD/a.tiff", "sentinel-s1-l1c"),
        ("/sentinel-s1-l1c/GRD/a.tiff", "sentinel-s1-l1c"),
        ("sentinel-s1-l1c/GRD/a%20b.tiff?versionId=3", "sentinel-s1-l1c"),
        ("%2Fsentinel-s1-l1c%2FGRD%2Fa.tiff", "sentinel-s1-l1c"),
    ],
)
def test_copy_source_bucket_is_parsed(header, bucket):
    assert copy_source_bucket({"HTTP_X_AMZ_COPY_SOURCE": header}) == bucket
    assert copy_source_bucket({}) is None


def test_copy_from_requester_pays_source_needs_request_payer(world, world_env):
    client = make_client("eu-central-1")
    product = world.products[0]
    dest = _dest_bucket(world, "eopack-copy-dest")
    source = {"Bucket": DEMO_BUCKET, "Key": f"{product.prefix}/manifest.safe"}
    refused_before = world.s3.middleware.refused
    with pytest.raises(ClientError) as copy_info:
        client.copy_object(Bucket=dest, Key="m.safe", CopySource=source)
    assert _error_code(copy_info.value) == "AccessDenied"
    upload_id = client.create_multipart_upload(Bucket=dest, Key="big")["UploadId"]
    with pytest.raises(ClientError) as part_info:
        client.upload_part_copy(
            Bucket=dest, Key="big", UploadId=upload_id, PartNumber=1, CopySource=source,
            CopySourceRange="bytes=0-99",
        )  # fmt: skip
    assert _error_code(part_info.value) == "AccessDenied"
    assert world.s3.middleware.refused == refused_before + 2

    client.copy_object(Bucket=dest, Key="m.safe", CopySource=source, RequestPayer="requester")
    client.upload_part_copy(
        Bucket=dest, Key="big", UploadId=upload_id, PartNumber=1, CopySource=source,
        CopySourceRange="bytes=0-99", RequestPayer="requester",
    )  # fmt: skip
    client.abort_multipart_upload(Bucket=dest, Key="big", UploadId=upload_id)
    body = client.get_object(Bucket=dest, Key="m.safe")["Body"].read()
    assert body == product.objects["manifest.safe"]


def test_traffic_counts_object_bytes_per_bucket_and_operation(world, world_env):
    client = make_client("eu-central-1")
    product = world.products[0]
    key = f"{product.prefix}/measurement/iw-vv.tiff"
    dest = _dest_bucket(world, "eopack-traffic")
    before = world.s3.traffic.snapshot()
    client.get_object(Bucket=DEMO_BUCKET, Key=key, RequestPayer="requester")["Body"].read()
    client.put_object(Bucket=dest, Key="x", Body=b"0123456789")
    client.copy_object(
        Bucket=dest,
        Key="y",
        CopySource={"Bucket": DEMO_BUCKET, "Key": key},
        RequestPayer="requester",
    )
    during = world.s3.traffic.snapshot() - before
    size = len(product.objects["measurement/iw-vv.tiff"])
    assert during.object_bytes_sent == size
    assert during.bytes_sent(bucket=DEMO_BUCKET, op="GetObject") == size
    assert during.bytes_received(bucket=dest, op="PutObject") >= 10
    assert during.bytes_received(op="CopyObject") == 0
    assert 0 < during.bytes_sent(bucket=dest, op="CopyObject") < 1024  # CopyObjectResult XML
    assert during.count(op="GetObject") == during.count(op="PutObject") == 1
    world.s3.traffic.reset()
    assert world.s3.traffic.snapshot().bytes_sent() == 0


def test_read_only_bucket_refuses_writes_only(world, world_env):
    client = make_client("eu-central-1")
    dest = _dest_bucket(world, "eopack-read-only")
    client.put_object(Bucket=dest, Key="kept", Body=b"kept")
    world.s3.set_read_only(dest)
    try:
        for call in (
            lambda: client.put_object(Bucket=dest, Key="new", Body=b"x"),
            lambda: client.delete_object(Bucket=dest, Key="kept"),
            lambda: client.create_multipart_upload(Bucket=dest, Key="new"),
        ):
            with pytest.raises(ClientError) as info:
                call()
            assert _error_code(info.value) == "AccessDenied"
        assert client.get_object(Bucket=dest, Key="kept")["Body"].read() == b"kept"
    finally:
        world.s3.set_read_only(dest, False)
    client.put_object(Bucket=dest, Key="new", Body=b"x")
