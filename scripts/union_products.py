"""Snakemake adapter: all search manifests -> results/search/products.geojson (no duplicates)."""

from eopack.jobs import run_job
from eopack.search.manifest import write_union

run_job(snakemake.log[0], write_union, list(snakemake.input), snakemake.output[0])
