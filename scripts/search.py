"""Snakemake adapter: one AOI x date range -> results/search/{aoi}/{start}_{end}.geojson."""

from eopack.jobs import run_job
from eopack.search import run_search

run_job(
    snakemake.log[0],
    run_search,
    snakemake.input.aoi,
    snakemake.wildcards.start,
    snakemake.wildcards.end,
    {**snakemake.config["search"], **snakemake.params.search},
    snakemake.output.manifest,
)
