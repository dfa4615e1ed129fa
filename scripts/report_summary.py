"""Snakemake adapter: the run's records -> results/report/summary.html (the report's first page)
and logs/report/job_times.html."""

from pathlib import Path

from eopack.jobs import run_job
from eopack.report.summary import write_summary

files = {Path(f).name: f for f in snakemake.input.bigearthnet}
bigearthnet = None
if files:
    bigearthnet = {
        "index": files["index.csv"],
        "skipped": files.get("skipped.tsv"),
        "datasets": [f for name, f in sorted(files.items()) if name.endswith(".zip")],
        "downloads": snakemake.params.downloads,
    }

run_job(
    snakemake.log[0],
    write_summary,
    snakemake.output.summary,
    list(snakemake.input.manifests),
    snakemake.input.plan,
    list(snakemake.input.verify),
    list(snakemake.input.deliveries),
    dict(snakemake.params.prices),
    bigearthnet,
    "logs",
    dict(snakemake.params.log_patterns),
    exclude=snakemake.log[0],  # this job's own log, still being written
    job_times=snakemake.output.job_times,
)
