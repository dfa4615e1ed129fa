rule search:
    input:
        aoi=lambda w: local(AOIS[w.aoi]),
    output:
        # update(): Snakemake keeps (and restores) the previous manifest if a re-search
        # fails, instead of deleting it before the job runs (not in storage: keep_previous).
        # Its footprint map is drawn by report_footprints: one matplotlib import per AOI,
        # not ~0.5 s more in each of the AOI x date range searches.
        manifest=keep_previous("results/search/{aoi}/{start}_{end}.geojson"),
    log:
        "logs/search/{aoi}/{start}_{end}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=10,
    params:
        # What decides the answer; URL and timeouts are read from config so changing
        # them does not invalidate earlier searches.
        search={
            k: config["search"][k]
            for k in ("backend", "collections", "filters", "images_limit")
        },
    script:
        "../scripts/search.py"


# The one checkpoint of the imagery part: the product list (and so every per-product job) is
# known once the union is made. One checkpoint, not one per AOI x date range, keeps the DAG's
# cost linear in the number of products (docs/benchmarks.md, "DAG at 10,000 products").
checkpoint union_products:
    input:
        search_manifests,
    output:
        products="results/search/products.geojson",
        by_aoi="results/search/products_by_aoi.json",
    log:
        "logs/search/products.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=10,
    params:
        # The AOI of each manifest, in input order (products_by_aoi.json).
        aois=[aoi for aoi in AOIS for _ in DATE_RANGES],
    script:
        "../scripts/union_products.py"
