"""Snakemake adapter: product -> results/safe/{folder} ({id}.SAFE, or a Landsat scene's {id})."""

from eopack.jobs import end_process, run_job
from eopack.safe.rebuild import rebuild_product

run_job(
    snakemake.log[0],
    rebuild_product,
    snakemake.input.products,
    snakemake.wildcards.folder,
    snakemake.config["sources"],
    snakemake.output.folder,
    max_workers=snakemake.config["transfer"]["max_workers"],
    listing=snakemake.output.listing,
)
# obstore's runtime must not meet the interpreter's finalization (see end_process).
end_process()
