# Publishing (README, "Publishing"): results uploaded to publish.uri, then presigned GET URLs in
# results/publish/urls.tsv. Receipts hold no URL (URLs expire); urls.tsv is signed afresh from
# them by publish_urls, which first uploads again every object found missing or changed, from
# the file its receipt names: `snakemake --forcerun publish_urls` refreshes the URLs and uploads
# nothing while every object is there.


wildcard_constraints:
    object=r"[A-Za-z0-9_]+\.zip|bigearthnet/[A-Za-z0-9_]+\.(zip|csv|tsv|json)|bigearthnet/SHA256SUMS",


rule publish_upload:
    input:
        publish_source,
    output:
        # A failed re-upload (bucket read-only, credentials refused) keeps the receipt of the
        # earlier upload: the object it names is still there (keep_previous).
        keep_previous("results/publish/{object}.json"),
    log:
        "logs/publish/{object}.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=512,
        s3_transfers=1,
        runtime=60,
    params:
        # A function: the lint would take an s3:// URI for a hard-coded path.
        uri=lambda w: PUBLISH.destination and PUBLISH.destination.uri(),
        source_buckets=PUBLISH.source_buckets,
    script:
        "../scripts/publish_upload.py"


rule publish_urls:
    input:
        publish_receipts,
    output:
        "results/publish/urls.tsv",
    log:
        "logs/publish/urls.log",
    conda:
        "../envs/eopack.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=10,
    params:
        expires_s=PUBLISH.expires_s,
        max_expires_s=PUBLISH.max_expires_s,
        # Objects found missing are uploaded again here, never into a source bucket.
        source_buckets=PUBLISH.source_buckets,
    script:
        "../scripts/publish_urls.py"


rule publish:
    input:
        publish_requested,
