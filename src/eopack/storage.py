"""Results on S3 through Snakemake's storage plugin (``--default-storage-provider s3``).

The plugin writes every output under ``--default-storage-prefix``, deletes a bucket it has
emptied and sends no ``x-amz-request-payer``: pointed at a source bucket it would write into
(or remove) open data eopack only reads. So the prefix is checked before any job runs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from eopack.deliver import check_not_source, parse_destination
from eopack.errors import EopackError

WHERE = "--default-storage-prefix"


def source_buckets(config: Mapping[str, Any]) -> set[str]:
    """Every bucket eopack reads from: ``sources`` and an ``s3://`` BigEarthNet source."""
    buckets = set(config.get("sources") or {})
    ben_source = str((config.get("bigearthnet") or {}).get("source") or "")
    if ben_source.startswith("s3://"):
        buckets.add(ben_source[5:].partition("/")[0])
    return buckets


def check_storage_prefix(prefix: str | None, sources: Collection[str]) -> None:
    """Refuse an ``s3://`` storage prefix in a source bucket (other providers are not ours)."""
    if not prefix or not prefix.startswith("s3://"):
        return
    check_not_source(parse_destination(prefix, where=WHERE), sources, where=WHERE)


def check_shared_resources(bigearthnet_enabled: bool, shared_input_output: bool) -> None:
    """BigEarthNet's downloads and extracted patches stay in ``resources/`` (``local()``).

    Jobs on machines that share no working directory (AWS Batch, ``--shared-fs-usage``
    without ``input-output``) would not see them, so that combination is refused instead of
    failing job by job.
    """
    if bigearthnet_enabled and not shared_input_output:
        raise EopackError(
            "bigearthnet keeps resources/ on local disk, which jobs that share no working "
            "directory (AWS Batch, --shared-fs-usage without input-output) cannot see: set "
            "bigearthnet.enabled: false for them, or run it where jobs share one (add "
            "input-output to --shared-fs-usage)"
        )
