"""Every collection end to end in `make demo`'s run: a zip of each, verified, read by GDAL as a
user's tools would, planned, previewed and published (issue 17's "done when").

The run is the session's `demo_run` (config/demo.yaml: all four collections).
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import DemoRun

from eopack.demo.landsatworld import build_landsat_scenes
from eopack.demo.opticalworld import build_optical_items
from eopack.demo.s2world import build_s2_products
from eopack.safe.registry import COLLECTIONS

S2_NAMES = [p.name for p in build_s2_products()]
LANDSAT_IDS = sorted(
    s.product_id
    for s in build_landsat_scenes(build_optical_items())
    if s.product_id.startswith(("LC08_L2SP_195027_20230707", "LC09_L2SP_204033_20230730"))
)


def _collection(product: str) -> str:
    if product.startswith("S1"):
        return "sentinel-1-grd"
    if product.startswith("S2"):
        return "sentinel-2-l1c" if "_MSIL1C_" in product else "sentinel-2-l2a"
    return "landsat-c2-l2"


@pytest.fixture(scope="module")
def results(demo_run: DemoRun) -> Path:
    return demo_run.workdir / "results"


def test_demo_makes_a_zip_of_every_kind(results: Path) -> None:
    zips = sorted(p.stem for p in (results / "zip").glob("*.zip"))
    assert set(S2_NAMES) | set(LANDSAT_IDS) <= set(zips)
    baselines = {(n.split("_")[1], n.split("_")[3] >= "N0400") for n in zips if n[:2] == "S2"}
    # L1C and L2A, each with a baseline before 04.00 and one after.
    assert baselines == {("MSIL1C", True), ("MSIL1C", False), ("MSIL2A", True), ("MSIL2A", False)}
    assert {_collection(z) for z in zips} == set(COLLECTIONS)


@pytest.mark.parametrize("product", S2_NAMES + LANDSAT_IDS)
def test_zip_has_the_single_top_folder_of_its_collection(results: Path, product: str) -> None:
    top = COLLECTIONS[_collection(product)].folder(product)
    with zipfile.ZipFile(results / "zip" / f"{product}.zip") as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert names and all(n.startswith(f"{top}/") for n in names)
    folder = results / "safe" / top
    on_disk = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".snakemake_timestamp"
    )
    assert sorted(n.removeprefix(f"{top}/") for n in names) == on_disk


@pytest.mark.parametrize("product", S2_NAMES)
def test_s2_verifies_against_manifest_with_known_gaps(results: Path, product: str) -> None:
    report = json.loads((results / "safe" / f"{product}.verify.json").read_text())
    assert report["ok"] and report["failed"] == 0
    gaps = [f["path"] for f in report["files"] if f["status"] == "known_gap"]
    assert gaps and report["known_gaps"] == len(gaps)
    assert all(g.startswith(("HTML/", "rep_info/")) for g in gaps)
    assert {f["status"] for f in report["files"]} == {"ok", "known_gap"}
    log = (results.parent / "logs" / "safe" / f"{product}.verify.log").read_text()
    assert f"{len(gaps)} known gaps (not in the source bucket)" in log
    jp2s = [f for f in report["files"] if f["path"].endswith(".jp2")]
    assert jp2s and all(f["md5"] == f["expected_md5"] for f in jp2s)


@pytest.mark.parametrize("product", LANDSAT_IDS)
def test_landsat_verifies_against_listing_and_checksums(results: Path, product: str) -> None:
    report = json.loads((results / "safe" / f"{product}.verify.json").read_text())
    assert report["ok"] and report["checked"] == 27
    checked = [f for f in report["files"] if f.get("expected_md5") or f.get("expected_checksum")]
    assert checked  # both demo scenes carry STAC checksums (md5 or sha2-256)
    for tif in sorted((results / "safe" / product).glob("*.TIF")):
        with rasterio.open(tif) as ds:
            assert ds.driver == "GTiff" and ds.crs is not None and ds.read(1).size


@pytest.mark.parametrize("product", S2_NAMES)
def test_gdal_sentinel2_driver_reads_the_rebuilt_safe(results: Path, product: str) -> None:
    """rasterio (GDAL's SENTINEL2 driver) on MTD_MSIL1C.xml / MTD_MSIL2A.xml: its subdatasets
    list the bands, and their pixels equal the JP2s'."""
    safe = results / "safe" / f"{product}.SAFE"
    level = product.split("_")[1][3:]
    with rasterio.open(safe / f"MTD_MSI{level}.xml") as ds:
        assert ds.driver == "SENTINEL2"
        subdatasets = list(ds.subdatasets)
    resolutions = {s.split(":")[-2] for s in subdatasets}
    assert {"10m", "20m", "60m"} <= resolutions
    compared = 0
    for name in subdatasets:
        if ":TCI:" in name:
            continue
        with rasterio.open(name) as sub:
            for index, description in enumerate(sub.descriptions, start=1):
                # GDAL says "B4, central wavelength 665 nm"; the file is *_B04.jp2.
                found = re.match(r"B(\d+A?)\b|(AOT|WVP|SCL)\b", description or "")
                if found is None:
                    continue
                number, other = found.groups()
                band = other or (f"B{number}" if number.endswith("A") else f"B{int(number):02d}")
                res = name.split(":")[-2]
                pattern = f"GRANULE/*/IMG_DATA/*_{band}.jp2"
                if level == "L2A":
                    pattern = f"GRANULE/*/IMG_DATA/R{res}/*_{band}_{res}.jp2"
                (jp2,) = safe.glob(pattern)
                with rasterio.open(jp2) as direct:
                    assert np.array_equal(sub.read(index), direct.read(1)), (name, description)
                compared += 1
    assert compared >= 12


def test_plan_report_and_publish_cover_every_collection(results: Path) -> None:
    with open(results / "plan.tsv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["product"] != "TOTAL"]
    assert {r["collection"] for r in rows} == set(COLLECTIONS)
    landsat = [r for r in rows if r["collection"] == "landsat-c2-l2"]
    assert all(r["source"].startswith("s3://usgs-landsat/") and int(r["bytes"]) for r in landsat)
    assert all(int(r["missing"]) == 0 for r in rows)
    for product in S2_NAMES + LANDSAT_IDS:
        quicklook = results / "report" / "quicklooks" / f"{product}.png"
        assert quicklook.read_bytes().startswith(b"\x89PNG")
        log = results.parent / "logs" / "report" / "quicklooks" / f"{product}.log"
        assert "placeholder" not in log.read_text(), product  # the product's own preview
    with open(results / "publish" / "urls.tsv", encoding="utf-8", newline="") as handle:
        published = {r["object"] for r in csv.DictReader(handle, delimiter="\t")}
    assert {f"{p}.zip" for p in S2_NAMES + LANDSAT_IDS} <= published
