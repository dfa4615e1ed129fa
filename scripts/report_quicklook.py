"""Snakemake adapter: product zip -> results/report/quicklooks/{product}.png (ESA's quicklook)."""

from eopack.jobs import run_job
from eopack.report.quicklooks import write_quicklook

run_job(
    snakemake.log[0],
    write_quicklook,
    snakemake.input[0],
    snakemake.wildcards.product,
    snakemake.output[0],
)
