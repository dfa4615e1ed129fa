checkpoint search:
    input:
        aoi=lambda w: local(AOIS[w.aoi]),
    output:
        # update(): Snakemake keeps (and restores) the previous manifest if a re-search
        # fails, instead of deleting it before the job runs (not in storage: keep_previous).
        manifest=keep_previous("results/search/{aoi}/{start}_{end}.geojson"),
        picture=keep_previous("results/search/{aoi}/{start}_{end}.png"),
    log:
        "logs/search/{aoi}/{start}_{end}.log",
    conda:
        "../envs/eopack.yaml"
    params:
        # What decides the answer; URL and timeouts are read from config so changing
        # them does not invalidate earlier searches.
        search={
            k: config["search"][k]
            for k in ("backend", "collections", "filters", "images_limit")
        },
    script:
        "../scripts/search.py"


rule union_products:
    input:
        search_manifests,
    output:
        "results/search/products.geojson",
    log:
        "logs/search/products.log",
    conda:
        "../envs/eopack.yaml"
    script:
        "../scripts/union_products.py"
