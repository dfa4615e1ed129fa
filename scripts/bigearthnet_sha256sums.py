"""Snakemake adapter: the dataset files -> SHA256SUMS beside them (`sha256sum -c` format)."""

from eopack.bigearthnet.package import write_sha256sums
from eopack.jobs import run_job

run_job(
    snakemake.log[0],
    write_sha256sums,
    list(snakemake.input),
    snakemake.output[0],
    snakemake.params.stamps,
)
