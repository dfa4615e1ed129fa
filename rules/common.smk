# Glue only: config pre-flight, AOI discovery, target lists. The logic lives in eopack.
import sys
from pathlib import Path

from eopack.aoi import discover_aois, load_aoi
from eopack.bigearthnet.source import S1_ARCHIVE, archive_name, archives, prepare_inputs
from eopack.config import check_config
from eopack.deliver import S3Destination, check_not_source, parse_destination
from eopack.errors import EopackError
from eopack.publish import check_publish_bucket, publish_settings
from eopack.report.products import describe_product
from eopack.resources import runtime_minutes
from eopack.safe.registry import collection_of, fetched_collections
from eopack.search.manifest import aoi_product_ids, ids_in_collections
from eopack.storage import (
    check_shared_resources,
    check_storage_prefix,
    source_buckets,
)

# The collections whose products are fetched (eopack.safe.registry): the rules below are the
# same for all of them.
FETCHED_COLLECTIONS = fetched_collections()

try:
    DATE_RANGES = check_config(
        config, Path(workflow.basedir) / "config" / "schema.yaml"
    )
    AOIS = discover_aois(config["aoi_dir"])
    for _aoi_file in AOIS.values():
        load_aoi(_aoi_file)
    DESTINATION = parse_destination(
        config.get("destination", {}).get("uri", "results/zip")
    )
    check_not_source(DESTINATION, source_buckets(config))
    PUBLISH = publish_settings(config)
except EopackError as err:
    sys.exit(f"eopack: {err}")

# --- Results on S3 through the storage plugin (README, "Results on S3") -------------------
# --default-storage-provider s3 maps every output and log under --default-storage-prefix;
# inputs that are ours to keep on local disk (AOIs, resources/) are marked local().
_storage = getattr(workflow, "storage_settings", None)
STORAGE_PREFIX = (
    _storage.default_storage_prefix
    if _storage is not None and _storage.default_storage_provider
    else None
)
try:
    check_storage_prefix(STORAGE_PREFIX, source_buckets(config))
except EopackError as err:
    sys.exit(f"eopack: {err}")


def check_bigearthnet_shared_fs():
    """Refuse BigEarthNet where jobs share no working directory (eopack.storage). Called
    here and again while the DAG is built: an executor that implies no shared file system
    (AWS Batch) clears --shared-fs-usage only after the Snakefile is parsed."""
    if not STORAGE_PREFIX:
        return
    try:
        check_shared_resources(
            config["bigearthnet"]["enabled"],
            "INPUT_OUTPUT" in {usage.name for usage in _storage.shared_fs_usage},
        )
    except EopackError as err:
        sys.exit(f"eopack: {err}")


check_bigearthnet_shared_fs()


def fetched(output):
    """A checkpoint output read while the DAG is built, on local disk.

    With a storage prefix, Snakemake keeps no local copy between runs and its own
    IOFile.open() does not fetch one: download it when it is missing or older."""
    if not getattr(output, "is_storage", False):
        return output
    obj = output.storage_object
    local_copy = obj.local_path()
    if not local_copy.exists() or local_copy.stat().st_mtime < obj.mtime():
        local_copy.parent.mkdir(parents=True, exist_ok=True)
        obj.retrieve_object()
    return output


def keep_previous(path):
    """update(): a failed re-run keeps the previous file. Snakemake cannot back up an
    update() output that lives in storage (it copies a local file that is not there), so
    with a storage prefix the output is a plain one (README, "Results on S3")."""
    return path if STORAGE_PREFIX else update(path)


wildcard_constraints:
    aoi=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    start=r"\d{4}-\d{2}-\d{2}",
    end=r"\d{4}-\d{2}-\d{2}",
    product=r"[A-Za-z0-9_]+",
    # A product's folder under results/safe/: {id}.SAFE or {id} (eopack.safe.registry).
    folder=r"[A-Za-z0-9_]+(?:\.SAFE)?",


def search_manifests(wildcards):
    """Every AOI x date range manifest (plain outputs of the search jobs: no checkpoint to ask)."""
    return [
        f"results/search/{aoi}/{start}_{end}.geojson"
        for aoi in AOIS
        for start, end in DATE_RANGES
    ]


def union_outputs():
    """The union checkpoint's outputs, on local disk (products, by_aoi), once it has run."""
    out = checkpoints.union_products.get().output
    return fetched(out.products), fetched(out.by_aoi)


def product_ids(wildcards):
    """Distinct product ids over all manifests (a product found twice is fetched once), of
    the collections eopack fetches."""
    products, _ = union_outputs()
    return ids_in_collections(products, FETCHED_COLLECTIONS)


def product_folder(wildcards):
    """results/safe/{id}.SAFE or results/safe/{id}: the product's folder, as its collection
    names it (eopack.safe.registry)."""
    products, _ = union_outputs()
    entry = collection_of(products, wildcards.product)
    return f"results/safe/{entry.folder(wildcards.product)}"


def product_quicklook(wildcards):
    """Where the product's zip keeps its preview picture (the registry's patterns)."""
    products, _ = union_outputs()
    entry = collection_of(products, wildcards.product)
    return {"top": entry.folder(wildcards.product), "patterns": list(entry.quicklook)}


def product_collection(wildcards):
    """The STAC collection of a searched product (its verifier is the registry's)."""
    products, _ = union_outputs()
    return collection_of(products, wildcards.product).name


TO_S3 = isinstance(DESTINATION, S3Destination)
# Local destination: the zips are written straight into it; S3: staged in results/zip.
ZIP_DIR = "results/zip" if TO_S3 else str(DESTINATION.path).rstrip("/")
# Where plan.tsv says each zip goes; with a storage prefix ZIP_DIR lives under it.
if TO_S3:
    PLAN_DESTINATION = config["destination"]["uri"]
elif STORAGE_PREFIX:
    PLAN_DESTINATION = "{}/{}".format(STORAGE_PREFIX.rstrip("/"), ZIP_DIR)
else:
    PLAN_DESTINATION = ZIP_DIR


def product_targets(wildcards):
    """What `all` delivers per product: local zips, or S3 receipts (zip, SAFE copy)."""
    ids = product_ids(wildcards)
    if not TO_S3:
        return [f"{ZIP_DIR}/{pid}.zip" for pid in ids]
    kinds = ("zip", "safe") if config["destination"]["copy_safe"] else ("zip",)
    return [f"results/deliver/{pid}.{kind}.json" for pid in ids for kind in kinds]


# --- BigEarthNet (rules/bigearthnet.smk) ---------------------------------------------------

BIGEARTHNET_S1 = bool(config["bigearthnet"].get("s1_pngs"))
BIGEARTHNET_ARCHIVES = archives(config["bigearthnet"])
BIGEARTHNET_RESOURCES = "resources/bigearthnet"
BIGEARTHNET_RESULTS = "results/bigearthnet"
# The dataset zips' SHA-256, stamped as they are written, read by SHA256SUMS (eopack.stamps).
BIGEARTHNET_STAMPS = f"{BIGEARTHNET_RESOURCES}/stamps"
# {dataset} wildcard of bigearthnet_{dataset}.zip -> the PNG folder it holds.
BIGEARTHNET_ZIP_FOLDERS = {"pngs": "rgb", "mask_pngs": "mask"}
if BIGEARTHNET_S1:
    BIGEARTHNET_ZIP_FOLDERS["s1_pngs"] = "s1"


def bigearthnet_setup(cfg):
    """Source, selection, local metadata and S2 products (None: bigearthnet is disabled)."""
    if not cfg["enabled"]:
        return None
    try:
        return prepare_inputs(cfg, BIGEARTHNET_RESOURCES)
    except EopackError as err:
        sys.exit(f"eopack: {err}")


def bigearthnet_md5(archive):
    return BIGEARTHNET.source.md5(archive_name(archive))


def bigearthnet_extract_bands(archive):
    """The S2 bands extracted: the RGB ones plus bigearthnet.extract_bands (none for maps)."""
    if archive == "Reference_Maps":
        return []
    if archive == S1_ARCHIVE:
        return ["VH", "VV"]
    cfg = config["bigearthnet"]
    return sorted({*cfg["rgb_bands"], *cfg["extract_bands"]})


def bigearthnet_metadata(wildcards):
    check_bigearthnet_shared_fs()
    return [local(str(path)) for path in BIGEARTHNET.metadata]


def bigearthnet_reports(wildcards):
    return [
        local(f"{BIGEARTHNET_RESOURCES}/rendered/{product}.tsv")
        for product in BIGEARTHNET.products
    ]


def bigearthnet_s1_reports(wildcards):
    """The S1 render reports (none unless bigearthnet.s1_pngs)."""
    if not BIGEARTHNET_S1:
        return []
    return [
        local(f"{BIGEARTHNET_RESOURCES}/rendered_s1/{product}.tsv")
        for product in BIGEARTHNET.products
    ]


def bigearthnet_png_folders(wildcards):
    folder = BIGEARTHNET_ZIP_FOLDERS[wildcards.dataset]
    return [
        f"{BIGEARTHNET_RESULTS}/{folder}/{product}" for product in BIGEARTHNET.products
    ]


def bigearthnet_dataset_files(wildcards):
    """Everything SHA256SUMS lists: the dataset zips, index, skipped list, class table."""
    names = [f"bigearthnet_{dataset}.zip" for dataset in BIGEARTHNET_ZIP_FOLDERS]
    names += ["index.csv", "skipped.tsv", "classes.json"]
    return [f"{BIGEARTHNET_RESULTS}/{name}" for name in names]


def bigearthnet_targets(wildcards):
    """The BigEarthNet outputs of `all` (none when bigearthnet.enabled is false)."""
    if BIGEARTHNET is None:
        return []
    check_bigearthnet_shared_fs()
    return [*bigearthnet_dataset_files(wildcards), f"{BIGEARTHNET_RESULTS}/SHA256SUMS"]


def bigearthnet_requested(wildcards):
    """Target `bigearthnet`: its outputs, or a clear error when it is switched off."""
    if BIGEARTHNET is None:
        raise WorkflowError(
            "eopack: bigearthnet.enabled is false in the config; set it to true to build "
            "the BigEarthNet datasets (the real release is ~60 GB to download)"
        )
    return bigearthnet_targets(wildcards)


# --- Publishing (rules/publish.smk) --------------------------------------------------------


def publish_targets(wildcards):
    """What `all` publishes: urls.tsv when publish.uri is set, else nothing."""
    return ["results/publish/urls.tsv"] if PUBLISH.enabled else []


def publish_requested(wildcards):
    """Target `publish`: urls.tsv, or a clear error when publishing is off."""
    if not PUBLISH.enabled:
        raise WorkflowError(
            "eopack: publish.uri is not set in the config; set it to s3://bucket/prefix "
            "to publish the results"
        )
    return publish_targets(wildcards)


def publish_receipts(wildcards):
    """The receipts urls.tsv is made from. SAFE zips already delivered to an s3://
    destination are presigned where they are (their delivery receipts), not uploaded again.
    """
    receipts = []
    if PUBLISH.includes("safe_zips"):
        folder = "results/deliver" if TO_S3 else "results/publish"
        receipts += [f"{folder}/{pid}.zip.json" for pid in product_ids(wildcards)]
    if PUBLISH.includes("bigearthnet") and BIGEARTHNET is not None:
        names = [Path(path).name for path in bigearthnet_targets(wildcards)]
        receipts += [f"results/publish/bigearthnet/{name}.json" for name in names]
    return receipts


def check_publish_before_jobs():
    """onstart (real runs only, before any job): when publishing jobs are to run, one
    HeadBucket of publish.uri's bucket, so a missing bucket stops the run before Snakemake
    removes any receipt of a job it would run again (eopack.publish.check_publish_bucket).
    """
    rules = {job.rule.name for job in workflow.dag.needrun_jobs()}
    if PUBLISH.enabled and rules & {"publish_upload", "publish_urls"}:
        try:
            check_publish_bucket(PUBLISH)
        except EopackError as err:
            sys.exit(f"eopack: {err}")


def publish_source(wildcards):
    """The local file behind a published object: {id}.zip or bigearthnet/{name}."""
    folder, _, name = wildcards.object.rpartition("/")
    return f"{BIGEARTHNET_RESULTS}/{name}" if folder else f"{ZIP_DIR}/{name}"


# --- Report figures (rules/report.smk) -----------------------------------------------------

REPORT_DIR = "results/report"
# Quicklooks are read from the product zips: none exist locally when zips are streamed to S3.
REPORT_QUICKLOOKS = not (TO_S3 and config["destination"]["stream_zip"])


def aoi_manifests(wildcards):
    """The search manifests of one AOI, in date-range order (the maps' product numbering)."""
    return [
        f"results/search/{wildcards.aoi}/{start}_{end}.geojson"
        for start, end in DATE_RANGES
    ]


def aoi_quicklooks(wildcards):
    """Quicklook PNGs of the AOI's fetched products, once the union checkpoint has run."""
    products, by_aoi = union_outputs()
    safe_ids = set(ids_in_collections(products, FETCHED_COLLECTIONS))
    ids = [pid for pid in aoi_product_ids(by_aoi, wildcards.aoi) if pid in safe_ids]
    return [f"{REPORT_DIR}/quicklooks/{pid}.png" for pid in sorted(ids)]


def report_verify_reports(wildcards):
    """verify.json of every product whose SAFE was rebuilt locally (not with stream_zip)."""
    if not REPORT_QUICKLOOKS:
        return []
    return [f"results/safe/{pid}.verify.json" for pid in product_ids(wildcards)]


def report_bigearthnet_files(wildcards):
    return [] if BIGEARTHNET is None else bigearthnet_dataset_files(wildcards)


def report_bigearthnet_folders(wildcards):
    """Every rendered RGB and mask folder (the sample figures read patches from them)."""
    return [
        f"{BIGEARTHNET_RESULTS}/{kind}/{product}"
        for kind in BIGEARTHNET_ZIP_FOLDERS.values()
        for product in BIGEARTHNET.products
    ]


def report_log_patterns():
    """Rule -> its log file patterns, so the run summary can group job logs by rule."""
    return {r.name: [str(f) for f in r.log] for r in workflow.rules if r.log}


def report_targets(wildcards):
    """The report's pages in `all` (report.enabled), for those parts the run builds."""
    if not config["report"]["enabled"]:
        return []
    return [f"{REPORT_DIR}/summary.html", *report_figures(wildcards)]


def report_figures(wildcards):
    """The report's figures: maps and quicklooks, BigEarthNet figures when it is built."""
    targets = [f"{REPORT_DIR}/footprints/{aoi}.png" for aoi in AOIS]
    if REPORT_QUICKLOOKS:
        targets += [f"{REPORT_DIR}/contact_sheets/{aoi}.png" for aoi in AOIS]
        targets += [
            f"{REPORT_DIR}/quicklooks/{pid}.png" for pid in product_ids(wildcards)
        ]
    if BIGEARTHNET is not None:
        ben = f"{REPORT_DIR}/bigearthnet"
        targets += [
            f"{ben}/samples_{split}.png" for split in config["bigearthnet"]["splits"]
        ]
        targets += [
            f"{ben}/{name}.png"
            for name in ("legend", "class_pixels", "label_frequencies")
        ]
    return targets
