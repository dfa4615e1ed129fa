rule zip_safe:
    input:
        safe=product_folder,
        verify="results/safe/{product}.verify.json",
    output:
        f"{ZIP_DIR}/{{product}}.zip",
    log:
        "logs/zip/{product}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=30,
    params:
        deflate_level=config["zip"]["deflate_level"],
    script:
        "../scripts/zip_safe.py"
