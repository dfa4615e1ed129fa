"""Snakemake adapter: AOI + its search manifests -> results/report/footprints/{aoi}.png and one
map per date range, results/report/footprints/{aoi}/{start}_{end}.png."""

from eopack.jobs import run_job
from eopack.report.footprints import write_aoi_maps

run_job(
    snakemake.log[0],
    write_aoi_maps,
    snakemake.input.aoi,
    list(snakemake.input.manifests),
    snakemake.output.map,
    list(snakemake.output.ranges),
)
