"""Snakemake adapter: product -> zip streamed from the source bucket to the s3:// destination."""

from eopack.jobs import run_job
from eopack.zipstream import stream_product_zip

run_job(
    snakemake.log[0],
    stream_product_zip,
    snakemake.input.products,
    snakemake.wildcards.product,
    snakemake.config["sources"],
    snakemake.params.destination,
    snakemake.output[0],
    deflate_level=snakemake.params.deflate_level,
    on_verify_failure=snakemake.params.on_failure,
)
