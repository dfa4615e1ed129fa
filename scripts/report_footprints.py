"""Snakemake adapter: AOI + its search manifests -> results/report/footprints/{aoi}.png."""

from eopack.jobs import run_job
from eopack.report.footprints import write_aoi_map

run_job(
    snakemake.log[0],
    write_aoi_map,
    snakemake.input.aoi,
    list(snakemake.input.manifests),
    snakemake.output[0],
)
