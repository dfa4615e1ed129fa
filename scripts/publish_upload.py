"""Snakemake adapter: a result file -> publish.uri/{object} (unless already there) + receipt."""

from eopack.jobs import run_job
from eopack.publish import publish_file

run_job(
    snakemake.log[0],
    publish_file,
    snakemake.input[0],
    snakemake.wildcards.object,
    snakemake.params.uri,
    snakemake.params.source_buckets,
    snakemake.output[0],
    max_workers=snakemake.config["transfer"]["max_workers"],
)
