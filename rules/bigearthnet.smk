# BigEarthNet v2 -> RGB and class-mask PNG datasets (results/bigearthnet/). The S2 product
# folders (one render job each) come from the metadata, read while the DAG is built.
# mem_mb: each job's peak RSS at the release's size, with headroom (README, "1-GB instance"),
# so that `--resources mem_mb=700` keeps a 1-GB machine from running two big jobs at once.

BIGEARTHNET = bigearthnet_setup(config["bigearthnet"])


wildcard_constraints:
    archive="|".join(BIGEARTHNET_ARCHIVES),
    s2_product=r"[A-Za-z0-9_]+",
    dataset="|".join(BIGEARTHNET_ZIP_FOLDERS),


# The fetched files and their extracted trees live in resources/bigearthnet/cache/ (by md5,
# eopack.bigearthnet.cache), which no job owns: the outputs below are links to it, so Snakemake's
# clean-up of an output it is about to rebuild (an md5 changed) never deletes a verified file.


rule bigearthnet_fetch:
    output:
        local("resources/bigearthnet/{archive}.tar.zst"),
    log:
        "logs/bigearthnet/fetch/{archive}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=300,
        s3_transfers=1,
        runtime=720,
    params:
        # The md5 says which file it is; the source is read from config, so that moving to
        # a mirror does not fetch 59 GB again.
        md5=lambda w: bigearthnet_md5(w.archive),
    script:
        "../scripts/bigearthnet_fetch.py"


rule bigearthnet_extract:
    input:
        local("resources/bigearthnet/{archive}.tar.zst"),
    output:
        local(directory("resources/bigearthnet/extracted/{archive}")),
    log:
        "logs/bigearthnet/extract/{archive}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=128,
        runtime=lambda w, input: runtime_minutes(input.size_mb, 20, 10),
    params:
        bands=lambda w: bigearthnet_extract_bands(w.archive),
    script:
        "../scripts/bigearthnet_extract.py"


rule bigearthnet_render:
    input:
        s2=local("resources/bigearthnet/extracted/BigEarthNet-S2"),
        maps=local("resources/bigearthnet/extracted/Reference_Maps"),
        metadata=bigearthnet_metadata,
    output:
        rgb=directory("results/bigearthnet/rgb/{s2_product}"),
        mask=directory("results/bigearthnet/mask/{s2_product}"),
        report=local("resources/bigearthnet/rendered/{s2_product}.tsv"),
    log:
        "logs/bigearthnet/render/{s2_product}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=192,
        runtime=30,
    params:
        selection=lambda w: BIGEARTHNET.selection.as_params(),
        bands=config["bigearthnet"]["rgb_bands"],
        stretch=config["bigearthnet"]["stretch"],
        # Outputs in S3 have whole-second times: see eopack.jobs.outlast_inputs.
        outlast_inputs=bool(STORAGE_PREFIX),
    script:
        "../scripts/bigearthnet_render.py"


rule bigearthnet_render_s1:
    input:
        s1=local("resources/bigearthnet/extracted/BigEarthNet-S1"),
        metadata=bigearthnet_metadata,
    output:
        s1=directory("results/bigearthnet/s1/{s2_product}"),
        report=local("resources/bigearthnet/rendered_s1/{s2_product}.tsv"),
    log:
        "logs/bigearthnet/render_s1/{s2_product}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=224,
        runtime=30,
    params:
        selection=lambda w: BIGEARTHNET.selection.as_params(),
        stretch=config["bigearthnet"].get("s1_stretch", {}),
        outlast_inputs=bool(STORAGE_PREFIX),
    script:
        "../scripts/bigearthnet_render_s1.py"


rule bigearthnet_index:
    input:
        reports=bigearthnet_reports,
        s1_reports=bigearthnet_s1_reports,
    output:
        index="results/bigearthnet/index.csv",
        skipped="results/bigearthnet/skipped.tsv",
    log:
        "logs/bigearthnet/index.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=128,
        runtime=30,
    params:
        s1=BIGEARTHNET_S1,
        outlast_inputs=bool(STORAGE_PREFIX),
    script:
        "../scripts/bigearthnet_index.py"


rule bigearthnet_classes:
    output:
        "results/bigearthnet/classes.json",
    log:
        "logs/bigearthnet/classes.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=64,
        runtime=5,
    script:
        "../scripts/bigearthnet_classes.py"


rule bigearthnet_zip:
    input:
        bigearthnet_png_folders,
    output:
        zip="results/bigearthnet/bigearthnet_{dataset}.zip",
        # Declared after the zip: Snakemake touches it after the zip (eopack.stamps).
        stamp=local(f"{BIGEARTHNET_STAMPS}/bigearthnet_{{dataset}}.zip.sha256.json"),
    log:
        "logs/bigearthnet/zip_{dataset}.log",
    # The RGB zip is the last long job: started before the index, it ends sooner on 2+ cores.
    priority: 1
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=120,
    params:
        folder=lambda w: BIGEARTHNET_ZIP_FOLDERS[w.dataset],
    script:
        "../scripts/bigearthnet_zip.py"


rule bigearthnet_sha256sums:
    input:
        bigearthnet_dataset_files,
    output:
        "results/bigearthnet/SHA256SUMS",
    log:
        "logs/bigearthnet/sha256sums.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=64,
        runtime=30,
    params:
        stamps=BIGEARTHNET_STAMPS,
    script:
        "../scripts/bigearthnet_sha256sums.py"


rule bigearthnet:
    input:
        bigearthnet_requested,
