"""Snakemake adapter: publish and delivery receipts -> results/publish/urls.tsv (fresh URLs)."""

from eopack.jobs import run_job
from eopack.publish import write_urls

run_job(
    snakemake.log[0],
    write_urls,
    list(snakemake.input),
    snakemake.output[0],
    expires_s=snakemake.params.expires_s,
    max_expires_s=snakemake.params.max_expires_s,
)
