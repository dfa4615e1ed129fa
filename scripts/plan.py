"""Snakemake adapter: products.geojson -> results/plan.tsv (files, bytes, requester-pays cost)."""

from eopack.jobs import run_job
from eopack.plan import Prices, write_plan

run_job(
    snakemake.log[0],
    write_plan,
    snakemake.input.products,
    snakemake.config["sources"],
    snakemake.params.destination,
    Prices(**snakemake.config["plan"]),
    snakemake.output[0],
    collections=snakemake.params.collections,
)
