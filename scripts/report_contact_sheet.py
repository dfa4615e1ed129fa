"""Snakemake adapter: an AOI's quicklooks -> results/report/contact_sheets/{aoi}.png."""

from eopack.jobs import run_job
from eopack.report.contact_sheet import write_contact_sheet

run_job(
    snakemake.log[0],
    write_contact_sheet,
    snakemake.wildcards.aoi,
    list(snakemake.input.manifests),
    list(snakemake.input.quicklooks),
    snakemake.output[0],
)
