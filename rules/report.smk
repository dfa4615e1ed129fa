# Figures of the Snakemake report: `snakemake --report report.html` after a run. They are part
# of `all` (report.enabled) wherever their inputs are, so the report finds them; each is cheap,
# deterministic and bounded in memory (BigEarthNet figures sample patches by id).


rule report_summary:
    input:
        manifests=search_manifests,
        plan="results/plan.tsv",
        deliveries=product_targets,
        verify=report_verify_reports,
        bigearthnet=report_bigearthnet_files,
        # Last of the run: its job table then covers every other job.
        figures=report_figures,
    output:
        summary=report(
            f"{REPORT_DIR}/summary.html",
            caption="../report/summary.rst",
            category="1. Run summary",
            labels={"page": "run summary"},
        ),
        # A record of this run (times, memory), so not under results/: see the caption.
        job_times=report(
            "logs/report/job_times.html",
            caption="../report/job_times.rst",
            category="1. Run summary",
            labels={"page": "job times"},
        ),
    log:
        "logs/report/summary.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=128,
        runtime=10,
    params:
        prices=config["plan"],
        # Not inputs: deleting the downloaded archives must not make Snakemake fetch them again.
        downloads=[
            f"{BIGEARTHNET_RESOURCES}/{a}.tar.zst"
            for a in (BIGEARTHNET_ARCHIVES if BIGEARTHNET is not None else [])
        ],
        log_patterns=lambda w: report_log_patterns(),
    script:
        "../scripts/report_summary.py"


rule report_footprints:
    input:
        aoi=lambda w: local(AOIS[w.aoi]),
        manifests=aoi_manifests,
    output:
        map=report(
            f"{REPORT_DIR}/footprints/{{aoi}}.png",
            caption="../report/footprints.rst",
            category="2. Areas of interest",
            subcategory="{aoi}",
            labels={"figure": "footprint map"},
        ),
        # One map per date range, numbered as the AOI's (files only: not in the report).
        ranges=[
            f"{REPORT_DIR}/footprints/{{aoi}}/{start}_{end}.png"
            for start, end in DATE_RANGES
        ],
    log:
        "logs/report/footprints/{aoi}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=10,
    script:
        "../scripts/report_footprints.py"


rule report_quicklook:
    input:
        zip=f"{ZIP_DIR}/{{product}}.zip",
        # Where the product's collection is read (a param from the checkpoint needs it as input).
        products=ancient("results/search/products.geojson"),
    output:
        report(
            f"{REPORT_DIR}/quicklooks/{{product}}.png",
            caption="../report/quicklook.rst",
            category="3. Product quicklooks",
            labels={"product": "{product}"},
        ),
    log:
        "logs/report/quicklooks/{product}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=64,
        runtime=5,
    params:
        about=lambda w: describe_product(w.product),
        quicklook=product_quicklook,
    script:
        "../scripts/report_quicklook.py"


rule report_contact_sheet:
    input:
        manifests=aoi_manifests,
        quicklooks=aoi_quicklooks,
    output:
        report(
            f"{REPORT_DIR}/contact_sheets/{{aoi}}.png",
            caption="../report/contact_sheet.rst",
            category="2. Areas of interest",
            subcategory="{aoi}",
            labels={"figure": "SAFE quicklooks"},
        ),
    log:
        "logs/report/contact_sheets/{aoi}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=10,
    script:
        "../scripts/report_contact_sheet.py"


rule report_bigearthnet_samples:
    input:
        index=f"{BIGEARTHNET_RESULTS}/index.csv",
        classes=f"{BIGEARTHNET_RESULTS}/classes.json",
        folders=report_bigearthnet_folders,
    output:
        report(
            f"{REPORT_DIR}/bigearthnet/samples_{{split}}.png",
            caption="../report/bigearthnet_samples.rst",
            category="4. BigEarthNet",
            subcategory="Sample patches",
            labels={"split": "{split}"},
        ),
    log:
        "logs/report/bigearthnet/samples_{split}.log",
    wildcard_constraints:
        split=r"[A-Za-z0-9_-]+",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=10,
    params:
        size=config["report"]["sample_patches"],
    script:
        "../scripts/report_bigearthnet_samples.py"


rule report_bigearthnet_classes:
    input:
        index=f"{BIGEARTHNET_RESULTS}/index.csv",
        classes=f"{BIGEARTHNET_RESULTS}/classes.json",
        folders=report_bigearthnet_folders,
    output:
        legend=report(
            f"{REPORT_DIR}/bigearthnet/legend.png",
            caption="../report/bigearthnet_legend.rst",
            category="4. BigEarthNet",
            subcategory="Classes",
            labels={"figure": "legend"},
        ),
        pixels=report(
            f"{REPORT_DIR}/bigearthnet/class_pixels.png",
            caption="../report/bigearthnet_class_pixels.rst",
            category="4. BigEarthNet",
            subcategory="Classes",
            labels={"figure": "class pixel histogram"},
        ),
        labels=report(
            f"{REPORT_DIR}/bigearthnet/label_frequencies.png",
            caption="../report/bigearthnet_label_frequencies.rst",
            category="4. BigEarthNet",
            subcategory="Classes",
            labels={"figure": "label frequencies per split"},
        ),
    log:
        "logs/report/bigearthnet/classes.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=10,
    params:
        splits=config["bigearthnet"]["splits"],
        size=config["report"]["histogram_patches"],
    script:
        "../scripts/report_bigearthnet_classes.py"
