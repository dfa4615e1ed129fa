"""Snakemake adapter: product zip -> results/report/quicklooks/{product}.png (its own preview)."""

from eopack.jobs import run_job
from eopack.report.quicklooks import write_quicklook

run_job(
    snakemake.log[0],
    write_quicklook,
    snakemake.input.zip,
    snakemake.wildcards.product,
    snakemake.output[0],
    patterns=snakemake.params.quicklook["patterns"],
    top=snakemake.params.quicklook["top"],
)
