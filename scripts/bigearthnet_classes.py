"""Snakemake adapter: the class table -> results/bigearthnet/classes.json."""

from eopack.bigearthnet.classes import classes_json
from eopack.fsutil import atomic_write_bytes
from eopack.jobs import run_job

run_job(snakemake.log[0], lambda: atomic_write_bytes(snakemake.output[0], classes_json()))
