"""Snakemake adapter: publish and delivery receipts -> results/publish/urls.tsv (fresh URLs),
missing or changed objects uploaded again first."""

from eopack.jobs import run_job
from eopack.publish import write_urls

run_job(
    snakemake.log[0],
    write_urls,
    list(snakemake.input),
    snakemake.output[0],
    expires_s=snakemake.params.expires_s,
    max_expires_s=snakemake.params.max_expires_s,
    source_buckets=snakemake.params.source_buckets,
    max_workers=snakemake.config["transfer"]["max_workers"],
)
