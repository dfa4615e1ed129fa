"""Snakemake adapter: index.csv + classes.json -> class legend, pixel histogram, label counts."""

from eopack.jobs import run_job
from eopack.report.bigearthnet import write_class_figures

run_job(
    snakemake.log[0],
    write_class_figures,
    snakemake.input.index,
    snakemake.input.classes,
    list(snakemake.params.splits),
    snakemake.params.size,
    snakemake.output.legend,
    snakemake.output.pixels,
    snakemake.output.labels,
)
