"""Snakemake adapter: a release archive -> resources/bigearthnet/extracted/{archive}/ (streamed),
a link to the archive's extracted tree in the download cache (eopack.bigearthnet.cache)."""

from eopack.bigearthnet.cache import extract_cached
from eopack.jobs import run_job

run_job(
    snakemake.log[0],
    extract_cached,
    snakemake.input[0],
    snakemake.output[0],
    snakemake.params.bands,
)
