"""Snakemake adapter: per-product render reports -> index.csv and skipped.tsv."""

import logging

from eopack.bigearthnet.index import write_index
from eopack.jobs import outlast_inputs, run_job


def index(reports, index_path, skipped_path, s1_reports):
    indexed, skipped = write_index(reports, index_path, skipped_path, s1_reports)
    logging.getLogger("eopack").info(
        "%s: %d patches; %s: %d skipped", index_path, indexed, skipped_path, skipped
    )


run_job(
    snakemake.log[0],
    index,
    list(snakemake.input.reports),
    snakemake.output.index,
    snakemake.output.skipped,
    list(snakemake.input.s1_reports) if snakemake.params.s1 else None,
)
if snakemake.params.outlast_inputs:
    outlast_inputs(snakemake.input)
