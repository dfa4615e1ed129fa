"""Snakemake adapter: index.csv -> results/report/bigearthnet/samples_{split}.png."""

from eopack.jobs import run_job
from eopack.report.bigearthnet import write_sample_grid

run_job(
    snakemake.log[0],
    write_sample_grid,
    snakemake.input.index,
    snakemake.input.classes,
    snakemake.wildcards.split,
    snakemake.params.size,
    snakemake.output[0],
)
