# eopack: Earth-observation open data on AWS -> verified SAFE zips and BigEarthNet datasets.
from snakemake.utils import min_version, validate

from eopack.aws_batch import add_batch_resources
from eopack.scheduler import (
    cancel_scheduler_timers,
    check_scripts_once,
    freeze_startup_objects,
)

# Before the includes and the DAG: the collector stops re-walking start-up's imports (~0.3 s).
freeze_startup_objects()
# A rule's script is checked once per DAG pass, not once per job (eopack.scheduler).
check_scripts_once()
min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


validate(config, "config/schema.yaml")


include: "rules/search.smk"
include: "rules/safe.smk"
include: "rules/archive.smk"
include: "rules/deliver.smk"
include: "rules/bigearthnet.smk"
include: "rules/publish.smk"
include: "rules/report.smk"


# Cheap aggregation jobs run where Snakemake runs, never as cluster jobs: a submission costs
# more than their seconds of work (README, "Profiles"). Every rule declares threads, mem_mb and
# runtime for the others.
localrules:
    search,
    union_products,
    plan,
    bigearthnet_index,
    bigearthnet_classes,
    bigearthnet_sha256sums,
    publish_urls,
    report_summary,
    report_footprints,
    report_quicklook,
    report_contact_sheet,
    report_bigearthnet_samples,
    report_bigearthnet_classes,


rule all:
    default_target: True
    input:
        "results/search/products.geojson",
        "results/plan.tsv",
        product_targets,
        bigearthnet_targets,
        publish_targets,
        report_targets,


# AWS Batch sizes jobs by aws_batch_* resources: derived here from each rule's own
# threads, mem_mb and runtime (eopack.aws_batch; README, "Profiles").
add_batch_resources(workflow.rules)


# Before any job of a real run: a missing publish bucket stops it while every receipt is there.
onstart:
    check_publish_before_jobs()


# Snakemake's rate limiter leaves a timer that holds the exit for up to 1 s (eopack.scheduler).
onsuccess:
    cancel_scheduler_timers()


onerror:
    cancel_scheduler_timers()
