# Glue only: config pre-flight, AOI discovery, target lists. The logic lives in eopack.
import sys
from pathlib import Path

from eopack.aoi import discover_aois, load_aoi
from eopack.config import check_config
from eopack.deliver import S3Destination, check_not_source, parse_destination
from eopack.errors import EopackError
from eopack.search.manifest import read_manifest

SAFE_COLLECTIONS = ("sentinel-1-grd",)

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
    check_not_source(DESTINATION, config["sources"])
except EopackError as err:
    sys.exit(f"eopack: {err}")


wildcard_constraints:
    aoi=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    start=r"\d{4}-\d{2}-\d{2}",
    end=r"\d{4}-\d{2}-\d{2}",
    product=r"[A-Za-z0-9_]+",


def search_manifests(wildcards):
    """Every AOI x date range manifest, once the search checkpoints have run."""
    return [
        checkpoints.search.get(aoi=aoi, start=start, end=end).output.manifest
        for aoi in AOIS
        for start, end in DATE_RANGES
    ]


def product_ids(wildcards):
    """Distinct S1 product ids over all manifests (a product found twice is fetched once).

    Optical products stay search records until their SAFE rebuild exists.
    """
    return sorted(
        {
            p.id
            for path in search_manifests(wildcards)
            for p in read_manifest(path)
            if p.collection in SAFE_COLLECTIONS
        }
    )


TO_S3 = isinstance(DESTINATION, S3Destination)
# Local destination: the zips are written straight into it; S3: staged in results/zip.
ZIP_DIR = "results/zip" if TO_S3 else str(DESTINATION.path).rstrip("/")


def product_targets(wildcards):
    """What `all` delivers per product: local zips, or S3 receipts (zip, SAFE copy)."""
    ids = product_ids(wildcards)
    if not TO_S3:
        return [f"{ZIP_DIR}/{pid}.zip" for pid in ids]
    kinds = ("zip", "safe") if config["destination"]["copy_safe"] else ("zip",)
    return [f"results/deliver/{pid}.{kind}.json" for pid in ids for kind in kinds]
