"""The Sentinel-2 bucket key -> SAFE path mapping equals sentinelhub-py's reference listings of a
whole real L1C and L2A product (processing baseline 04.00), pair for pair.

The listings (``tests/fixtures/aws-s2``, from sentinel-hub/sentinelhub-py, MIT; see
../shared/fixtures/README) name each object as ``s3://bucket/key``, or, for the metadata files
sentinelhub reads over HTTP, ``https://roda.sentinel-hub.com/bucket/key``: both are the same
object. One line of the L2A listing names the tile metadata as ``.../sentinel-s2-l2a/metadata.xml``
without its tile folder (sentinelhub builds that URL from the tile's own metadata); the object is
the tile folder's ``metadata.xml``, as in the L1C listing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from pathlib import Path

import pytest
import yaml

from eopack.errors import EopackError
from eopack.safe.manifest import failure_line, parse_manifest, verify_safe
from eopack.safe.registry import COLLECTIONS
from eopack.safe.s2 import (
    BANDS,
    KNOWN_GAPS,
    Layout,
    S2Product,
    bucket_key,
    safe_path,
    safe_paths,
)

FIXTURES = Path(__file__).parent / "fixtures" / "aws-s2"


def _listing(level: str) -> tuple[S2Product, dict[str, str]]:
    """The reference pairs as bucket key -> SAFE path, and the product they describe (folder
    names as its metadata gives them: here read off the listing's own SAFE paths)."""
    bucket = f"sentinel-s2-{level.lower()}"
    rows = [line.split(";") for line in (FIXTURES / f"sentinelhub_{level}_04.00.csv").read_text()
            .splitlines() if line]  # fmt: skip
    pairs: dict[str, str] = {}
    tile = next(re.match(rf"s3://{bucket}/(tiles/(?:[^/]+/){{7}})", k)[1] for k, _ in rows
                if k.startswith(f"s3://{bucket}/tiles/"))  # fmt: skip
    for uri, path in rows:
        key = re.sub(rf"^(s3://|https://roda\.sentinel-hub\.com/){bucket}/", "", uri)
        if key == "metadata.xml":  # the L2A listing's tile metadata (module docstring)
            key = f"{tile}metadata.xml"
        assert key not in pairs, key
        pairs[key] = path
    name = rows[0][1].split(".SAFE/", 1)[0]
    product_prefix = next(k for k in pairs if k.endswith("/manifest.safe")).rsplit("/", 1)[0]
    granule = next(p for p in pairs.values() if "/GRANULE/" in p).split("/")[2]
    datastrip = next(p for p in pairs.values() if "/DATASTRIP/" in p).split("/")[2]
    return S2Product(name, product_prefix, tile, granule, datastrip), pairs


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_mapping_equals_the_reference_listing(level):
    product, pairs = _listing(level)
    assert product.level == level and len(pairs) >= 57
    got = safe_paths(product)
    assert sorted(got.items()) == sorted(pairs.items())


def test_a_granule_of_the_other_level_is_refused():
    product, _ = _listing("L1C")
    wrong = S2Product(product.name, product.product_prefix, product.tile_prefix,
                      "L2A" + product.granule[3:], product.datastrip)  # fmt: skip
    with pytest.raises(EopackError, match=r"is not an L1C granule id$"):
        safe_paths(wrong)


def test_a_name_that_is_not_sentinel2_is_refused():
    product, _ = _listing("L2A")
    with pytest.raises(EopackError, match="not a Sentinel-2 L1C or L2A product name"):
        safe_paths(S2Product("S1A_IW_GRDH_1SDV_X", "p", "t", product.granule, product.datastrip))


# --- the rules, both ways, on the 04.00 listings --------------------------------------------------


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_rules_map_both_ways_as_the_reference_listing(level):
    """The manifest-driven rules (SAFE path -> key) and their inverse agree with every pair."""
    product, pairs = _listing(level)
    layout = Layout.of(product)
    for key, path in pairs.items():
        rel = path.split(".SAFE/", 1)[1]
        assert bucket_key(layout, rel) == key
        assert safe_path(layout, key) == rel


# --- older baselines: eodag's real key lists and a real N0209 manifest ---------------------------

CHUNKS = yaml.safe_load((FIXTURES / "eodag_aws_sentinel_chunks.yml").read_text())
OLD_L1C_MANIFEST = FIXTURES / "S2_MSI_L1C.manifest.safe"


def _old_layout(kind: str, granule: str, datastrip: str) -> tuple[Layout, list[str]]:
    entry = CHUNKS[kind]
    keys = sorted(set(entry["chunks"]))
    name = entry["properties"]["id"]
    prefix = next(k for k in keys if k.endswith(f"{name}/manifest.safe")).rsplit("/", 1)[0]
    tile = next(k for k in keys if k.startswith("tiles/")).split("/")[:8]
    layout = Layout(name, prefix, {granule: "/".join(tile)}, {datastrip: f"{prefix}/datastrip/0"})
    return layout, keys


def test_old_l1c_manifest_and_bucket_keys_map_completely():
    """Baseline 02.09 (GML masks, ``_report`` datastrip reports, ``auxiliary/ECMWFT``): the
    manifest and the key list are of the same real product; each side maps onto the other."""
    objects = parse_manifest(OLD_L1C_MANIFEST)
    paths = {o.path for o in objects}
    granule = next(p.split("/")[1] for p in paths if p.startswith("GRANULE/"))
    datastrip = next(p.split("/")[1] for p in paths if p.startswith("DATASTRIP/"))
    layout, keys = _old_layout("S2_MSI_L1C", granule, datastrip)
    assert layout.name.split("_")[3] == "N0209" and len(paths) == 97
    gaps = {p for p in paths if bucket_key(layout, p) is None}
    assert gaps == {"HTML/UserProduct_index.html", "HTML/UserProduct_index.xsl"}
    assert all(fnmatch.fnmatchcase(p, "HTML/*") for p in gaps)
    assert {bucket_key(layout, p) for p in paths - gaps} <= set(keys)
    # The other way: every key is a manifest file, manifest.safe itself, or not an ESA file.
    mapped = {k: safe_path(layout, k) for k in keys}
    assert {p for p in mapped.values() if p} == (paths - gaps) | {"manifest.safe"}
    tile = layout.granules[granule]
    not_safe = {k for k, p in mapped.items() if p is None}
    assert not_safe == {
        f"{layout.product_prefix}/productInfo.json",
        f"{tile}/productInfo.json",
        f"{tile}/tileInfo.json",
        f"{tile}/preview.jpg",
        *(f"{tile}/preview/{band}.jp2" for band in BANDS if band != "TCI"),
    }
    assert (
        mapped[f"{tile}/qi/MSK_CLOUDS_B00.gml"] == f"GRANULE/{granule}/QI_DATA/MSK_CLOUDS_B00.gml"
    )
    assert mapped[f"{tile}/auxiliary/ECMWFT"] == f"GRANULE/{granule}/AUX_DATA/AUX_ECMWFT"
    assert mapped[f"{layout.product_prefix}/datastrip/0/qi/GENERAL_QUALITY_report.xml"] == (
        f"DATASTRIP/{datastrip}/QI_DATA/GENERAL_QUALITY.xml"
    )


def test_old_l2a_bucket_keys_map_completely():
    """Baseline 02.14 L2A (GML masks, ``qi/CLD_20m.jp2`` for ``MSK_CLDPRB_20m.jp2``): every
    key of the real list is an ESA file or one of the bucket's own objects named here.

    The fixture has no metadata of this product, so its granule and datastrip folder names
    are stand-ins of ESA's form: the mapping does not depend on their value."""
    granule, datastrip = (
        "L2A_T51RVQ_A029971_20210319T024401",
        "DS_EPAE_20210319T043941_S20210319T024401",
    )
    layout, keys = _old_layout("S2_MSI_L2A", granule, datastrip)
    mapped = {k: safe_path(layout, k) for k in keys}
    tile = layout.granules[granule]
    not_safe = {k for k, p in mapped.items() if p is None}
    assert not_safe == {
        f"{layout.product_prefix}/productInfo.json",
        f"{tile}/productInfo.json",
        f"{tile}/tileInfo.json",
        f"{tile}/R20m/B08.jp2",  # ESA's L2A has B08 at 10 m only
        f"{tile}/R60m/B08.jp2",
    }
    g, stem = f"GRANULE/{granule}", "T51RVQ_20210319T023551"
    expected = {
        f"{tile}/qi/CLD_20m.jp2": f"{g}/QI_DATA/MSK_CLDPRB_20m.jp2",
        f"{tile}/qi/SNW_60m.jp2": f"{g}/QI_DATA/MSK_SNWPRB_60m.jp2",
        f"{tile}/qi/MSK_DEFECT_B8A.gml": f"{g}/QI_DATA/MSK_DEFECT_B8A.gml",
        f"{tile}/qi/L2A_PVI.jp2": f"{g}/QI_DATA/{stem}_PVI.jp2",
        f"{tile}/R60m/SCL.jp2": f"{g}/IMG_DATA/R60m/{stem}_SCL_60m.jp2",
        f"{tile}/auxiliary/AUX_ECMWFT": f"{g}/AUX_DATA/AUX_ECMWFT",
        f"{tile}/metadata.xml": f"{g}/MTD_TL.xml",
        f"{layout.product_prefix}/metadata.xml": "MTD_MSIL2A.xml",
        f"{layout.product_prefix}/datastrip/0/qi/SENSOR_QUALITY.xml": (
            f"DATASTRIP/{datastrip}/QI_DATA/SENSOR_QUALITY.xml"
        ),
    }
    assert {k: mapped[k] for k in expected} == expected
    # Every file maps back to its key (as product_files does from the manifest).
    for key, path in mapped.items():
        if path is not None:
            assert bucket_key(layout, path) == key
    assert len({p for p in mapped.values() if p}) == len(keys) - len(not_safe) == 122


def test_a_manifest_file_in_an_unknown_granule_is_refused():
    product, _ = _listing("L1C")
    with pytest.raises(EopackError, match="granule folder not in the metadata"):
        bucket_key(Layout.of(product), "GRANULE/L1C_T36MZB_A000001_20220317T075215/MTD_TL.xml")


# --- verify_safe: known gaps, JP2s by size and MD5 --------------------------------------------


def _manifest_xml(entries: dict[str, bytes]) -> bytes:
    """A manifest.safe of ESA's shape listing ``entries`` (SAFE path -> bytes)."""
    objects = "".join(
        f'<dataObject ID="o{n}"><byteStream mimeType="application/octet-stream" '
        f'size="{len(data)}"><fileLocation locatorType="URL" href="./{path}"/>'
        f'<checksum checksumName="MD5">{hashlib.md5(data).hexdigest()}</checksum>'
        "</byteStream></dataObject>"
        for n, (path, data) in enumerate(sorted(entries.items()))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1">'
        f"<dataObjectSection>{objects}</dataObjectSection></xfdu:XFDU>"
    ).encode()


def test_verify_counts_known_gaps_and_checks_jp2_by_md5(tmp_path):
    band = "GRANULE/L1C_T36MZB_A035167_20220317T075215/IMG_DATA/T36MZB_20220317T074651_B02.jp2"
    entries = {band: b"jp2" * 100, "MTD_MSIL1C.xml": b"<x/>", "HTML/UserProduct_index.html": b"h"}
    safe = tmp_path / "P.SAFE"
    (safe / band).parent.mkdir(parents=True)
    (safe / "manifest.safe").write_bytes(_manifest_xml(entries))
    (safe / band).write_bytes(entries[band])
    (safe / "MTD_MSIL1C.xml").write_bytes(entries["MTD_MSIL1C.xml"])
    gaps = COLLECTIONS["sentinel-2-l1c"].known_gaps
    report = verify_safe(safe, known_gaps=gaps)
    status = {f["path"]: f["status"] for f in report["files"]}
    assert report["ok"] and (report["checked"], report["known_gaps"]) == (2, 1)
    assert status == {
        band: "ok",
        "MTD_MSIL1C.xml": "ok",
        "HTML/UserProduct_index.html": "known_gap",
    }
    # Without the collection's gaps the HTML page is missing, as for any other collection.
    assert verify_safe(safe)["failed"] == 1
    # A JP2 of the right size with other bytes: ESA's original is expected, MD5 and all.
    (safe / band).write_bytes(b"JP2" * 100)
    report = verify_safe(safe, known_gaps=gaps)
    assert not report["ok"] and failure_line(report).startswith(f"P.SAFE/{band}: MD5 ")
    # A known-gap file that is there is checked like any other.
    (safe / band).write_bytes(entries[band])
    (safe / "HTML").mkdir()
    (safe / "HTML/UserProduct_index.html").write_bytes(b"hh")
    report = verify_safe(safe, known_gaps=gaps)
    assert failure_line(report) == "P.SAFE/HTML/UserProduct_index.html: size 2 != manifest 1"


def test_registry_entries():
    for name, bucket in (
        ("sentinel-2-l1c", "sentinel-s2-l1c"),
        ("sentinel-2-l2a", "sentinel-s2-l2a"),
    ):
        entry = COLLECTIONS[name]
        assert (entry.bucket, entry.suffix, entry.manifest) == (bucket, ".SAFE", "manifest.safe")
        assert entry.known_gaps == KNOWN_GAPS
        assert entry.is_known_gap("rep_info/S2_User_Product_Level-1C_Metadata.xsd")
        assert not entry.is_known_gap("GRANULE/G/IMG_DATA/T_B02.jp2")
    _, pairs = _listing("L2A")
    pvi = [
        p
        for p in pairs.values()
        if fnmatch.fnmatchcase(p.split(".SAFE/")[1], COLLECTIONS["sentinel-2-l2a"].quicklook[0])
    ]
    assert len(pvi) == 1 and pvi[0].endswith("_PVI.jp2")
