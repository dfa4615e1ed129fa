"""Snakemake adapter: verified SAFE folder -> results/zip/{product}.zip (deterministic)."""

from eopack.archive import zip_safe
from eopack.jobs import run_job

run_job(
    snakemake.log[0],
    zip_safe,
    snakemake.input.safe,
    snakemake.output[0],
    snakemake.params.deflate_level,
)
