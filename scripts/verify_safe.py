"""Snakemake adapter: product folder -> results/safe/{product}.verify.json (per collection)."""

from eopack.jobs import run_job
from eopack.safe.manifest import verify_to_report

run_job(
    snakemake.log[0],
    verify_to_report,
    snakemake.input.folder,
    snakemake.output[0],
    fail=snakemake.params.on_failure == "fail",
    collection=snakemake.params.collection,
)
