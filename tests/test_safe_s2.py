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
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from eopack.errors import EopackError
from eopack.s3 import SourceBucket, make_client
from eopack.safe.manifest import failure_line, parse_manifest, verify_safe
from eopack.safe.registry import COLLECTIONS
from eopack.safe.s2 import (
    BANDS,
    KNOWN_GAPS,
    Layout,
    S2Product,
    bucket_key,
    product_files,
    safe_path,
    safe_paths,
)
from eopack.search.manifest import Product
from eopack.transfer import TransferConfig, download_files

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


# --- against the local requester-pays S3 server ---------------------------------------------------

REGION = "eu-central-1"
GAPS = ("HTML/UserProduct_index.html", "rep_info/S2_User_Product_Level-1C_Metadata.xsd")


@dataclass
class Seeded:
    product: Product
    bucket: SourceBucket
    admin: Any
    pairs: dict[str, str]  # SAFE path -> key
    data: dict[str, bytes]  # key -> bytes

    def put(self, key: str, body: bytes) -> None:
        self.admin.put_object(Bucket=self.bucket.name, Key=key, Body=body, RequestPayer="requester")


def _seed(world: Any, level: str, edit: Callable[[dict[str, bytes]], None] | None = None) -> Seeded:
    """A product of the reference listing in a fresh requester-pays bucket: small stand-in
    bytes per object, productInfo.json/tileInfo.json of the real shape, and a manifest.safe
    listing every file with its size and MD5 plus two files the bucket never carries."""
    layout_product, pairs = _listing(level)
    name, prefix = layout_product.name, layout_product.product_prefix
    tile = layout_product.tile_prefix.rstrip("/")
    ds_id = f"S2A_OPER_MSI_{level}_{layout_product.datastrip}_N04.00"
    data: dict[str, bytes] = {}
    entries: dict[str, bytes] = {g: f"not in the bucket: {g}".encode() for g in GAPS}
    for key, path in pairs.items():
        rel = path.split(".SAFE/", 1)[1]
        if rel != "manifest.safe":
            data[key] = entries[rel] = f"{key}\n".encode() * (1 + len(key) % 7)
    datastrip = {"id": ds_id, "path": f"{prefix}/datastrip/0"}
    zone, band, square = tile.split("/")[1:4]
    data[f"{prefix}/productInfo.json"] = json.dumps({
        "name": name, "id": "3c6f1a0e", "path": prefix, "tiles": [{
            "path": tile, "utmZone": int(zone), "latitudeBand": band, "gridSquare": square,
            "datastrip": datastrip}], "datastrips": [datastrip]}).encode()  # fmt: skip
    data[f"{tile}/tileInfo.json"] = json.dumps(
        {"path": tile, "productName": name, "productPath": prefix, "datastrip": datastrip}
    ).encode()
    data[f"{tile}/preview.jpg"] = b"a bucket-only JPEG"
    data[f"{prefix}/manifest.safe"] = _manifest_xml(entries)
    if edit:
        edit(data)
    admin = world.client()
    bucket = SourceBucket(f"eopack-s2-{uuid.uuid4().hex[:12]}", REGION, requester_pays=True)
    admin.create_bucket(
        Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    admin.put_bucket_request_payment(
        Bucket=bucket.name, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    product = Product(
        id=name, collection=f"sentinel-2-{level.lower()}", datetime="2022-03-17T07:46:51Z",
        platform="sentinel-2a", mode="MSI", polarisations=(), geometry={}, bucket=bucket.name,
        prefix=prefix,
    )  # fmt: skip
    seeded = Seeded(
        product, bucket, admin, {p.split(".SAFE/", 1)[1]: k for k, p in pairs.items()}, data
    )
    for key, body in data.items():
        seeded.put(key, body)
    return seeded


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_product_files_download_and_verify(world, world_env, tmp_path, level):
    """productInfo/tileInfo/manifest.safe -> the reference pairs; downloaded as the S1 path
    does, the SAFE is complete and verifies, the two files the bucket lacks counted as gaps."""
    seeded = _seed(world, level)
    entry = COLLECTIONS[seeded.product.collection]
    client = make_client(REGION)
    files = entry.list_files(client, seeded.bucket, seeded.product)
    assert dict(files.files) == seeded.pairs
    assert files.known_gaps == GAPS and files.folder == f"{seeded.product.id}.SAFE"
    assert dict(files.sizes) == {p: len(seeded.data[k]) for p, k in seeded.pairs.items()}
    tile = next(k for k in seeded.pairs.values() if "/metadata.xml" in k and k.startswith("tiles/"))
    assert files.prefixes == (seeded.product.prefix, tile.rsplit("/", 1)[0])
    safe = tmp_path / files.folder
    jobs = [(key, safe / path) for path, key in files.files.items()]
    results = download_files(client, seeded.bucket, jobs, TransferConfig(md5=False))
    assert [size for size, _ in results] == [len(seeded.data[k]) for k, _ in jobs]
    report = entry.verify(safe, seeded.product.id)
    assert report["ok"] and report["failed"] == 0
    assert (report["checked"], report["known_gaps"]) == (len(files.files) - 1, 2)
    assert {f["path"] for f in report["files"] if f["status"] == "known_gap"} == set(GAPS)
    assert report["not_in_manifest"] == ["manifest.safe"]


def test_rebuild_lists_each_folder_once(world, world_env, tmp_path):
    """The workflow's rebuild (file list, download, check before the swap) reads each bucket
    folder's listing once: the file list's sizes and ETags stand for the download's own LIST,
    and no object is asked by HEAD."""
    from eopack.safe.rebuild import check_staged, rebuild_folder

    seeded = _seed(world, "L2A")
    entry = COLLECTIONS[seeded.product.collection]
    client = make_client(REGION)
    before = world.s3.traffic.snapshot()
    files = entry.list_files(client, seeded.bucket, seeded.product)
    dest = tmp_path / files.folder
    written = rebuild_folder(client, seeded.bucket, files, dest, check=check_staged(entry, files))
    traffic = world.s3.traffic.snapshot() - before
    name = seeded.bucket.name
    lists = sum(
        n for (b, op), n in traffic.requests.items() if b == name and op.startswith("GET bucket")
    )
    assert lists == len(files.prefixes) == 2
    assert traffic.count(name, "HeadObject") == 0
    assert set(files.etags) == set(files.files)
    assert {p: size for p, (size, _) in written.items()} == dict(files.sizes)
    assert entry.verify(dest, seeded.product.id)["ok"]


def _other_product(data: dict[str, bytes], key_end: str, field: str) -> None:
    key = next(k for k in data if k.endswith(key_end))
    doc = json.loads(data[key])
    doc[field] = doc[field].replace("T36MZB", "T36MZC")
    data[key] = json.dumps(doc).encode()


def _drop(end: str) -> Callable[[dict[str, bytes]], None]:
    return lambda data: data.pop(next(k for k in data if k.endswith(end)))


def _corrupt(end: str) -> Callable[[dict[str, bytes]], None]:
    def edit(data: dict[str, bytes]) -> None:
        key = next(k for k in data if k.endswith(end))
        data[key] = data[key][: len(data[key]) // 2]

    return edit


def _granule_renamed(data: dict[str, bytes]) -> None:
    key = next(k for k in data if k.endswith("/manifest.safe"))
    data[key] = data[key].replace(
        b"L1C_T36MZB_A035167_20220317T075215", b"L1C_T36MZB_A035167_20220317T075300"
    )


BAD = {
    "productInfo names another product": (
        lambda d: _other_product(d, "/productInfo.json", "name"),
        r"productInfo\.json: names product 'S2A_MSIL1C_\w+_T36MZC_\w+', expected S2A_MSIL1C_",
    ),
    "tileInfo names another product": (
        lambda d: _other_product(d, "/tileInfo.json", "productName"),
        r"/0/tileInfo\.json: names product 'S2A_MSIL1C_\w+_T36MZC_\w+', expected",
    ),
    "granule folder the metadata does not give": (
        _granule_renamed,
        r"manifest\.safe: granule folder GRANULE/L1C_T36MZB_A035167_20220317T075300/ is not "
        r"accounted for by productInfo\.json \(tiles: T36MZB tiles/36/M/ZB/2022/3/17/0\)$",
    ),
    "missing tile object": (
        _drop("/0/B04.jp2"),
        r"^s3://eopack-s2-\w+/tiles/36/M/ZB/2022/3/17/0/B04\.jp2: object not found \(\w+\.SAFE/"
        r"GRANULE/L1C_T36MZB_A035167_20220317T075215/IMG_DATA/T36MZB_20220317T074651_B04\.jp2 "
        r"of its manifest\.safe\): a missing tile or datastrip object$",
    ),
    "missing datastrip object": (
        _drop("/datastrip/0/metadata.xml"),
        r"/datastrip/0/metadata\.xml: object not found \(\w+\.SAFE/DATASTRIP/DS_VGS4_\w+/MTD_DS",
    ),
    "missing tileInfo.json": (_drop("/tileInfo.json"), r"/0/tileInfo\.json: object not found$"),
    "corrupt productInfo.json": (
        _corrupt("/productInfo.json"),
        r"/productInfo\.json: corrupt productInfo\.json \(",
    ),
    "corrupt tileInfo.json": (
        _corrupt("/tileInfo.json"),
        r"/tileInfo\.json: corrupt tileInfo\.json",
    ),
    "corrupt manifest.safe": (_corrupt("/manifest.safe"), r"manifest\.safe: cannot parse manifest"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_the_object(world, world_env, case):
    edit, message = BAD[case]
    seeded = _seed(world, "L1C", edit)
    with pytest.raises(EopackError, match=message) as caught:
        product_files(make_client(REGION), seeded.bucket, seeded.product)
    assert "\n" not in str(caught.value)
