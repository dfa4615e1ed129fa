# With a storage prefix Snakemake matches outputs in storage without the wildcard
# constraints, so {folder} would also match {product}.verify.json.
ruleorder: verify_safe > rebuild_safe


rule rebuild_safe:
    input:
        # ancient: a new search that finds the same product must not re-download it.
        products=ancient("results/search/products.geojson"),
    output:
        # The product's folder: {id}.SAFE, or {id} for a Landsat scene (eopack.safe.registry).
        # A failed re-build keeps the previous folder (keep_previous): the new one is staged
        # beside it and replaces it only once complete and checked (eopack.safe.rebuild).
        folder=keep_previous(directory("results/safe/{folder}")),
        # What the rebuild learnt from the bucket: which object became which file, sizes,
        # STAC checksums (a Landsat scene is verified against it; eopack.safe.listing).
        listing=keep_previous("results/safe/{folder}.listing.json"),
    log:
        "logs/safe/{folder}.rebuild.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=512,
        s3_transfers=1,
        runtime=60,
    script:
        "../scripts/rebuild_safe.py"


rule verify_safe:
    input:
        folder=product_folder,
        # Where the folder's collection is read (a param from the checkpoint needs it as input).
        products=ancient("results/search/products.geojson"),
        listing=lambda w: product_folder(w) + ".listing.json",
    output:
        "results/safe/{product}.verify.json",
    log:
        "logs/safe/{product}.verify.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=15,
    params:
        on_failure=config["verify"]["on_failure"],
        collection=product_collection,
    script:
        "../scripts/verify_safe.py"


rule plan:
    input:
        products="results/search/products.geojson",
    output:
        # A plan that fails (no credentials, a source refusing) keeps the previous one.
        keep_previous("results/plan.tsv"),
    log:
        "logs/plan.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=30,
    params:
        destination=PLAN_DESTINATION,
        collections=FETCHED_COLLECTIONS,
    script:
        "../scripts/plan.py"
