"""S3 access for source buckets (AWS open data, requester pays) through boto3.

Credentials come from the standard AWS chain (env, ~/.aws, instance profile). A custom
endpoint (MinIO, the local demo server) is set the boto3 way: ``AWS_ENDPOINT_URL_S3``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from eopack.errors import EopackError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    pass

CHUNK = 1024 * 1024

#: Where boto3 looks for credentials, and how to give them: the end of every "no credentials"
#: line (no secret is ever part of it).
NO_CREDENTIALS = (
    "no AWS credentials found (looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
    "~/.aws/credentials and ~/.aws/config, and the instance or container role): export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure` or `aws sso login`"
)


@dataclass(frozen=True)
class SourceBucket:
    """A bucket we read from, with the settings AWS needs for it."""

    name: str
    region: str
    requester_pays: bool = True

    @property
    def extra_args(self) -> dict[str, str]:
        """Arguments every request to this bucket carries (requester pays where set)."""
        return {"RequestPayer": "requester"} if self.requester_pays else {}


def source_bucket(sources: Mapping[str, Mapping[str, Any]], name: str) -> SourceBucket:
    """The configured settings of bucket ``name``; unknown buckets are an error, not a guess."""
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise EopackError(
            f"config: sources: bucket {name!r} is not configured (configured: {known})"
        )
    entry = sources[name]
    return SourceBucket(name, entry["region"], bool(entry.get("requester_pays", True)))


def has_credentials() -> bool:
    """Whether boto3's credential chain finds any (env, files, SSO, instance or container role)."""
    return boto3.session.Session().get_credentials() is not None


def signed_requests(buckets: Iterable[SourceBucket], purpose: str) -> bool:
    """Whether requests to ``buckets`` are signed (False: there are no credentials, and none of
    the buckets needs them, so they are read anonymously).

    A requester-pays bucket needs signed requests: AWS bills the requester's account, and
    refuses anonymous requests with 403. Without credentials that is one line naming the
    bucket and how to give credentials, raised before any request is sent.
    """
    if has_credentials():
        return True
    paying = sorted({b.name for b in buckets if b.requester_pays})
    if paying:
        names = ", ".join(paying)
        which = f"bucket {names} is" if len(paying) == 1 else f"buckets {names} are"
        raise EopackError(
            f"{purpose}: source {which} requester pays, which needs signed requests, "
            f"and there are {NO_CREDENTIALS}"
        )
    return False


def make_client(
    region: str | None = None,
    max_pool: int = 16,
    signature_version: str | None = None,
    unsigned: bool = False,
) -> Any:
    """A boto3 S3 client with adaptive retries and a pool big enough for parallel files.

    ``signature_version="s3v4"`` pins SigV4 (presigned URLs: its 7-day limit is the one we check);
    ``unsigned``: anonymous requests (public buckets, without credentials).
    """
    if unsigned:
        signature_version = UNSIGNED  # type: ignore[assignment]
    config = Config(
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "eu-central-1",
        retries={"mode": "adaptive", "max_attempts": 10},
        max_pool_connections=max_pool,
        connect_timeout=20,
        read_timeout=120,
        **({"signature_version": signature_version} if signature_version else {}),
    )
    return boto3.session.Session().client("s3", config=config)


def bucket_region(client: Any, bucket: str) -> str | None:
    """The region S3 says ``bucket`` is in (``x-amz-bucket-region``), or None if it says none.

    HeadBucket carries the header on success and also on the 301 (another region) and 403 (no
    ``s3:ListBucket``) answers, so a caller that may not list the bucket learns it too.
    """
    try:
        response: Mapping[str, Any] = client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        response = exc.response
    except BotoCoreError:
        return None
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return headers.get("x-amz-bucket-region") or None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    if not uri.startswith("s3://"):
        raise EopackError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise EopackError(f"{uri!r} has no bucket name")
    return bucket, key


def describe_error(exc: Exception, bucket: str, key: str) -> EopackError:
    """Turn a boto error into one line naming the object and what the user can do."""
    uri = f"s3://{bucket}/{key}"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound"):
            return EopackError(f"{uri}: object not found")
        if code == "NoSuchBucket":
            return EopackError(f"{uri}: bucket {bucket} does not exist")
        if code == "PreconditionFailed" or status == 412:
            return EopackError(f"{uri}: object changed during the download; try again")
        if code in ("AccessDenied", "403", "Forbidden") or status == 403:
            return EopackError(
                f"{uri}: access denied (check AWS credentials; source buckets are requester pays)"
            )
        return EopackError(f"{uri}: S3 error {code or status}")
    if isinstance(exc, NoCredentialsError):
        return EopackError(f"{uri}: {NO_CREDENTIALS}")
    return EopackError(f"{uri}: {type(exc).__name__}: {exc}")


#: A response body that broke after its headers: botocore retries requests, not bodies.
TRANSIENT_STREAM_ERRORS = (
    ResponseStreamingError,
    ReadTimeoutError,
    IncompleteReadError,
    ConnectionClosedError,
)
#: Whole-object reads of a small object whose body broke (then one line names the object).
GET_ATTEMPTS = 5


def get_bytes(client: Any, bucket: SourceBucket, key: str) -> bytes:
    """Read a small object whole (productInfo.json, manifest.safe), again when its body breaks
    mid-way (a reset connection: seen in the fault runs, docs/reliability.md)."""
    for attempt in range(1, GET_ATTEMPTS + 1):
        try:
            response = client.get_object(Bucket=bucket.name, Key=key, **bucket.extra_args)
            return response["Body"].read()
        except TRANSIENT_STREAM_ERRORS as exc:
            if attempt == GET_ATTEMPTS:
                raise EopackError(
                    f"s3://{bucket.name}/{key}: download kept failing ({exc})"
                ) from None
            log.warning("s3://%s/%s: read broke (%s); reading it again", bucket.name, key, exc)
            time.sleep(0.1 * 2**attempt)
        except (ClientError, BotoCoreError) as exc:
            raise describe_error(exc, bucket.name, key) from None
    raise AssertionError("unreachable")
