"""Snakemake adapter: one S2 product folder -> its patches' S1 VV/VH PNGs and its S1 report."""

from eopack.bigearthnet.index import Selection
from eopack.bigearthnet.s1 import DbStretch, render_s1_product
from eopack.jobs import outlast_inputs, run_job

run_job(
    snakemake.log[0],
    render_s1_product,
    snakemake.wildcards.s2_product,
    s1_root=snakemake.input.s1,
    metadata=list(snakemake.input.metadata),
    selection=Selection(**snakemake.params.selection),
    s1_dir=snakemake.output.s1,
    report=snakemake.output.report,
    stretch=DbStretch.from_config(snakemake.params.stretch),
)
if snakemake.params.outlast_inputs:
    outlast_inputs(snakemake.input)
