# Deliveries to an s3:// destination. Their receipts (local JSON) are the Snakemake outputs;
# the objects themselves live in the user's bucket.


rule copy_safe_s3:
    input:
        # ancient: a new search that finds the same product must not copy it again.
        products=ancient("results/search/products.geojson"),
    output:
        "results/deliver/{product}.safe.json",
    log:
        "logs/deliver/{product}.safe.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        s3_transfers=1,
        runtime=60,
    params:
        # A function: the lint would take a local destination for a hard-coded path.
        destination=lambda w: config["destination"]["uri"],
    script:
        "../scripts/copy_safe_s3.py"


if config["destination"]["stream_zip"]:

    rule stream_zip_s3:
        input:
            products=ancient("results/search/products.geojson"),
        output:
            "results/deliver/{product}.zip.json",
        log:
            "logs/deliver/{product}.zip.log",
        conda:
            "../envs/eopack.yaml"
        threads: 1
        resources:
            mem_mb=512,
            s3_transfers=1,
            runtime=120,
        params:
            destination=lambda w: config["destination"]["uri"],
            deflate_level=config["zip"]["deflate_level"],
            on_failure=config["verify"]["on_failure"],
        script:
            "../scripts/stream_zip_s3.py"

else:

    rule upload_zip:
        input:
            f"{ZIP_DIR}/{{product}}.zip",
        output:
            "results/deliver/{product}.zip.json",
        log:
            "logs/deliver/{product}.zip.log",
        conda:
            "../envs/eopack.yaml"
        threads: 1
        resources:
            mem_mb=512,
            s3_transfers=1,
            runtime=lambda w, input: runtime_minutes(input.size_mb, 20, 10),
        params:
            # A function: the lint would take a local destination for a hard-coded path.
            destination=lambda w: config["destination"]["uri"],
        script:
            "../scripts/upload_zip.py"
