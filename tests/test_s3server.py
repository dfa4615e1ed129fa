"""The local S3 server refuses what AWS refuses: requests to requester-pays buckets without
``x-amz-request-payer: requester``. eopack's own requests carry it and succeed."""

from __future__ import annotations

import hashlib
import random
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

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


def test_anonymous_requests_are_refused_with_request_payer(world, world_env):
    """AWS bills the requester's account, so it refuses an unsigned request to a requester-pays
    bucket even when it accepts the charges."""
    client = make_client("eu-central-1", unsigned=True)
    key = f"{world.products[0].prefix}/productInfo.json"
    with pytest.raises(ClientError) as get_info:
        client.get_object(Bucket=DEMO_BUCKET, Key=key, RequestPayer="requester")
    assert _error_code(get_info.value) == "AccessDenied"
    with pytest.raises(ClientError) as list_info:
        client.list_objects_v2(Bucket=DEMO_BUCKET, Prefix="GRD/", RequestPayer="requester")
    assert _error_code(list_info.value) == "AccessDenied"


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


def _kms(client, bucket: str) -> None:
    """Default encryption SSE-KMS, as a bucket whose policy demands it."""
    rule = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/eopack-test"}
    client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]},
    )


def test_kms_objects_have_etags_that_are_not_md5s(world, world_env):
    """As on AWS: SSE-KMS and SSE-C ETags are opaque; conditions on them still work."""
    client = make_client("eu-central-1")
    kms = _dest_bucket(world, "eopack-kms")
    _kms(client, kms)
    plain = _dest_bucket(world, "eopack-plain")
    body = b"encrypted at rest"
    md5 = hashlib.md5(body).hexdigest()
    client.put_object(Bucket=kms, Key="k", Body=body)
    client.put_object(Bucket=plain, Key="k", Body=body)
    head = client.head_object(Bucket=kms, Key="k")
    assert head["ServerSideEncryption"] == "aws:kms"
    etag = head["ETag"].strip('"')
    assert len(etag) == 32 and etag != md5
    assert client.get_object(Bucket=kms, Key="k")["ETag"] == head["ETag"]
    assert client.head_object(Bucket=plain, Key="k")["ETag"].strip('"') == md5
    got = client.get_object(Bucket=kms, Key="k", IfMatch=head["ETag"])["Body"].read()
    assert got == body
    client.copy_object(
        Bucket=plain, Key="copy", CopySource={"Bucket": kms, "Key": "k"},
        CopySourceIfMatch=head["ETag"],
    )  # fmt: skip
    key = "A" * 43 + "="  # a 256-bit customer key, base64
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    client.put_object(Bucket=plain, Key="c", Body=body, **sse_c)
    assert client.head_object(Bucket=plain, Key="c", **sse_c)["ETag"].strip('"') != md5


# Ranged reads at the cost of the range (the server's performance shim)
# --------------------------------------------------------------------------------------------

SPOOLED = 6 * 1024 * 1024  # above moto's in-memory limit (5 MiB - 1 KiB): a temp file
# Per-request headers: the rest must be the same with the shim as without.
VOLATILE = {"date", "x-amz-request-id", "x-amzn-requestid", "x-amz-id-2"}


class ValueReads:
    """Records which keys had their whole value read (``FakeKey.value``) while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.s3.models import FakeKey

        self.names: list[str] = []
        original = FakeKey.value

        def value(key: FakeKey) -> bytes:
            self.names.append(str(key.name))
            return original.fget(key)

        monkeypatch.setattr(FakeKey, "value", property(value, original.fset))


@pytest.fixture
def shim(world):
    """The server's range shim, switched back on after a test that turns it off."""
    yield world.s3
    world.s3.range_reads = True


@pytest.fixture
def ranged_source(world) -> tuple[str, bytes, bytes]:
    """A requester-pays bucket with a spooled object and a small (in-memory) one."""
    admin = world.client()
    bucket = _dest_bucket(world, "eopack-ranges")
    admin.put_bucket_request_payment(
        Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    big = random.Random(11).randbytes(SPOOLED + 12345)
    small = random.Random(12).randbytes(1000)
    for key, data in (("big.bin", big), ("small.bin", small)):
        admin.put_object(
            Bucket=bucket, Key=key, Body=data, RequestPayer="requester", ChecksumAlgorithm="SHA256"
        )
    return bucket, big, small


def _answer(client, **kwargs) -> tuple[int, dict[str, str], bytes | str]:
    """Status, headers (less the per-request ones) and body or error code of a GetObject."""
    try:
        response = client.get_object(**kwargs)
        body: bytes | str = response["Body"].read()
    except ClientError as exc:
        response, body = exc.response, _error_code(exc)
    meta = response["ResponseMetadata"]
    headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in VOLATILE}
    return meta["HTTPStatusCode"], headers, body


def _with_and_without_shim(shim, client, **kwargs):
    shim.range_reads = False
    moto = _answer(client, **kwargs)
    shim.range_reads = True
    return _answer(client, **kwargs), moto


@pytest.mark.parametrize("key", ["big.bin", "small.bin"])
@pytest.mark.parametrize(
    ("spec", "piece"),
    [
        ("bytes=0-99", slice(0, 100)),
        ("bytes=5-5", slice(5, 6)),
        ("bytes=700-", slice(700, None)),
        ("bytes=-300", slice(-300, None)),
        ("bytes=0-", slice(0, None)),
        ("bytes=900-99999999", slice(900, None)),  # end past the object: up to the last byte
        ("bytes=-99999999", slice(0, None)),
        ("bytes=5-3", slice(0, None)),  # moto ignores it: 200, the whole object
        ("bytes=0-1,5-6", slice(0, None)),  # several ranges: passed through, moto answers 200
    ],
)
def test_ranged_get_equals_moto_and_reads_only_the_range(
    shim, ranged_source, world_env, monkeypatch, key, spec, piece
):
    bucket, big, small = ranged_source
    data = big if key == "big.bin" else small
    client = make_client("eu-central-1")
    args = {"Bucket": bucket, "Key": key, "Range": spec, "RequestPayer": "requester"}
    reads = ValueReads(monkeypatch)
    shimmed, moto = _with_and_without_shim(shim, client, **args)
    assert shimmed == moto
    status, headers, body = shimmed
    assert body == data[piece]
    assert headers["content-length"] == str(len(body))
    assert headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert headers["accept-ranges"] == "bytes"
    if status == 206:
        first = len(data) - len(body) if spec.startswith("bytes=-") else int(spec[6:].split("-")[0])
        assert headers["content-range"] == f"bytes {first}-{first + len(body) - 1}/{len(data)}"
        assert reads.names == [key]  # moto's answer only: the shim read just the range
    else:
        assert status == 200 and reads.names == [key, key]  # moto's whole-object answer


def test_ranged_get_headers_follow_the_request_as_moto_does(shim, ranged_source, world_env):
    bucket, big, _ = ranged_source
    client = make_client("eu-central-1")
    base = {"Bucket": bucket, "Key": "big.bin", "RequestPayer": "requester"}
    for extra in (
        {"Range": "bytes=0-"},  # the whole object as a range: the checksum is sent
        {"Range": "bytes=10-19", "ChecksumMode": "ENABLED"},  # a part of it: no checksum
        {"Range": "bytes=0-", "ChecksumMode": "ENABLED"},
        {"Range": "bytes=10-19", "ResponseContentType": "image/tiff", "ResponseCacheControl": "x"},
    ):
        shimmed, moto = _with_and_without_shim(shim, client, **base, **extra)
        assert shimmed == moto, extra
        assert shimmed[2] == (big[10:20] if extra["Range"] == "bytes=10-19" else big)


def test_unsatisfiable_range_is_416(shim, ranged_source, world_env):
    bucket, big, _ = ranged_source
    client = make_client("eu-central-1")
    for spec in (f"bytes={len(big)}-", f"bytes={len(big) + 5}-{len(big) + 9}", "bytes=-0"):
        args = {"Bucket": bucket, "Key": "big.bin", "Range": spec, "RequestPayer": "requester"}
        (status, headers, code), moto = _with_and_without_shim(shim, client, **args)
        assert (status, code) == (416, "InvalidRange"), spec
        assert (status, headers, code) == moto


def test_ranged_get_preconditions(shim, ranged_source, world_env):
    bucket, big, _ = ranged_source
    client = make_client("eu-central-1")
    etag = f'"{hashlib.md5(big).hexdigest()}"'
    past, future = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    base = {"Bucket": bucket, "Key": "big.bin", "Range": "bytes=8-15", "RequestPayer": "requester"}
    for extra, status in (
        ({"IfMatch": '"0123456789abcdef0123456789abcdef"'}, 412),
        ({"IfUnmodifiedSince": past}, 412),
        ({"IfNoneMatch": etag}, 304),
        ({"IfModifiedSince": future}, 304),
        ({"IfMatch": etag, "IfModifiedSince": past}, 206),
        ({"IfNoneMatch": '"0123456789abcdef0123456789abcdef"'}, 206),
    ):
        shimmed, moto = _with_and_without_shim(shim, client, **base, **extra)
        assert shimmed == moto, extra
        assert shimmed[0] == status, extra
        if status == 206:
            assert shimmed[2] == big[8:16]


def test_ranged_get_of_a_version(shim, world, world_env):
    client = make_client("eu-central-1")
    bucket = _dest_bucket(world, "eopack-versions")
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old, new = random.Random(21).randbytes(SPOOLED), random.Random(22).randbytes(SPOOLED)
    first = client.put_object(Bucket=bucket, Key="v.bin", Body=old)["VersionId"]
    client.put_object(Bucket=bucket, Key="v.bin", Body=new)
    args = {"Bucket": bucket, "Key": "v.bin", "Range": "bytes=100-199"}
    shimmed, moto = _with_and_without_shim(shim, client, **args, VersionId=first)
    assert shimmed == moto and shimmed[2] == old[100:200]
    assert shimmed[1]["x-amz-version-id"] == first
    assert _answer(client, **args)[2] == new[100:200]


def test_ranged_get_traffic_and_requester_pays(shim, ranged_source, world, world_env):
    bucket, big, _ = ranged_source
    client = make_client("eu-central-1")
    before = world.s3.traffic.snapshot()
    for spec in ("bytes=0-999", "bytes=4096-", "bytes=-10"):
        client.get_object(Bucket=bucket, Key="big.bin", Range=spec, RequestPayer="requester")[
            "Body"
        ].read()
    during = world.s3.traffic.snapshot() - before
    assert during.object_bytes_sent == 1000 + (len(big) - 4096) + 10
    assert during.count(bucket=bucket, op="GetObject") == 3
    refused = world.s3.middleware.refused
    with pytest.raises(ClientError) as info:
        client.get_object(Bucket=bucket, Key="big.bin", Range="bytes=0-9")
    assert _error_code(info.value) == "AccessDenied"
    assert world.s3.middleware.refused == refused + 1


def test_upload_part_copy_reads_only_the_source_range(shim, ranged_source, world, monkeypatch):
    bucket, big, _ = ranged_source
    client = world.client()
    dest = _dest_bucket(world, "eopack-part-copy")
    source = {"Bucket": bucket, "Key": "big.bin"}
    ranges = [(0, 5 * 1024 * 1024 - 1), (5 * 1024 * 1024, len(big) - 1)]
    reads = ValueReads(monkeypatch)
    etags = {}
    for on in (True, False):
        shim.range_reads = on
        key = f"copy-{on}"
        upload = client.create_multipart_upload(Bucket=dest, Key=key)["UploadId"]
        parts = []
        for number, (first, last) in enumerate(ranges, start=1):
            copied = client.upload_part_copy(
                Bucket=dest, Key=key, UploadId=upload, PartNumber=number, CopySource=source,
                CopySourceRange=f"bytes={first}-{last}", RequestPayer="requester",
            )  # fmt: skip
            parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
        if on:
            assert "big.bin" not in reads.names
        client.complete_multipart_upload(
            Bucket=dest, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        assert client.get_object(Bucket=dest, Key=key)["Body"].read() == big
        etags[on] = [p["ETag"] for p in parts]
    assert etags[True] == etags[False]
    assert reads.names.count("big.bin") == len(ranges)  # moto as is: the source, per part
