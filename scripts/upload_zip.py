"""Snakemake adapter: results/zip/{product}.zip -> the s3:// destination + receipt."""

from eopack.deliver import deliver_zip
from eopack.jobs import run_job

run_job(
    snakemake.log[0],
    deliver_zip,
    snakemake.input[0],
    snakemake.params.destination,
    snakemake.config["sources"],
    snakemake.output[0],
    max_workers=snakemake.config["transfer"]["max_workers"],
)
