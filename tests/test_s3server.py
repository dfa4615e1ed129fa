"""The local S3 server refuses what AWS refuses: requests to requester-pays buckets without
``x-amz-request-payer: requester``. eopack's own requests carry it and succeed."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from eopack.demo.s1world import DEMO_BUCKET
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
