rule zip_safe:
    input:
        safe="results/safe/{product}.SAFE",
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
        runtime=lambda w, input: runtime_minutes(tree_size_mb(input), 20, 10),
    params:
        deflate_level=config["zip"]["deflate_level"],
    script:
        "../scripts/zip_safe.py"
