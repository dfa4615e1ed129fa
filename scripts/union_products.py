"""Snakemake adapter: all search manifests -> results/search/products.geojson (no duplicates)
and products_by_aoi.json (AOI -> its product ids)."""

from eopack.jobs import run_job
from eopack.search.manifest import write_union

run_job(
    snakemake.log[0],
    write_union,
    list(snakemake.input),
    snakemake.output.products,
    list(snakemake.params.aois),
    snakemake.output.by_aoi,
)
