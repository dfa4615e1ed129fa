"""Snakemake adapter: one S2 product folder -> its RGB and mask PNGs and its render report."""

from eopack.bigearthnet.dataset import render_product
from eopack.bigearthnet.index import Selection
from eopack.bigearthnet.render import Stretch
from eopack.jobs import outlast_inputs, run_job

run_job(
    snakemake.log[0],
    render_product,
    snakemake.wildcards.s2_product,
    s2_root=snakemake.input.s2,
    maps_root=snakemake.input.maps,
    metadata=list(snakemake.input.metadata),
    selection=Selection(**snakemake.params.selection),
    rgb_dir=snakemake.output.rgb,
    mask_dir=snakemake.output.mask,
    report=snakemake.output.report,
    bands=snakemake.params.bands,
    stretch=Stretch(**snakemake.params.stretch),
)
if snakemake.params.outlast_inputs:
    outlast_inputs(snakemake.input)
