"""Snakemake adapter: a release archive -> resources/bigearthnet/extracted/{archive}/ (streamed)."""

from eopack.bigearthnet.extract import extract_dataset_archive
from eopack.jobs import run_job

run_job(
    snakemake.log[0],
    extract_dataset_archive,
    snakemake.input[0],
    snakemake.output[0],
    snakemake.params.bands,
)
