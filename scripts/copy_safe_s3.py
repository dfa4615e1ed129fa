"""Snakemake adapter: product -> SAFE copied server-side to the s3:// destination + receipt."""

from eopack.deliver import deliver_safe
from eopack.jobs import run_job

run_job(
    snakemake.log[0],
    deliver_safe,
    snakemake.input.products,
    snakemake.wildcards.product,
    snakemake.config["sources"],
    snakemake.params.destination,
    snakemake.output[0],
    max_workers=snakemake.config["transfer"]["max_workers"],
)
