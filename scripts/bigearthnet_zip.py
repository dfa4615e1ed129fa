"""Snakemake adapter: the PNG folders of every product -> one deterministic dataset zip."""

from pathlib import Path

from eopack.bigearthnet.package import zip_dataset
from eopack.jobs import run_job

output = Path(snakemake.output.zip)
folders = [Path(p) for p in snakemake.input]
run_job(
    snakemake.log[0],
    zip_dataset,
    output.parent,
    snakemake.params.folder,
    [f.name for f in folders],
    output,
    Path(snakemake.output.stamp).parent,
)
