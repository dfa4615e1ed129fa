"""Snakemake adapter: product -> results/safe/{product}.SAFE rebuilt through filenameMap."""

from eopack.jobs import end_process, run_job
from eopack.safe.s1 import rebuild_product

run_job(
    snakemake.log[0],
    rebuild_product,
    snakemake.input.products,
    snakemake.wildcards.product,
    snakemake.config["sources"],
    snakemake.output[0],
    max_workers=snakemake.config["transfer"]["max_workers"],
)
# obstore's runtime must not meet the interpreter's finalization (see end_process).
end_process()
