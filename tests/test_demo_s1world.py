"""The demo Sentinel-1 world must have the real AWS formats, since downstream code trusts them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rasterio.io import MemoryFile

from eopack.demo.s1world import (
    DEMO_BUCKET,
    DemoProduct,
    build_s1_products,
    seed_s1_bucket,
    write_stac_items,
)
from eopack.safe.manifest import verify_safe

XFDU = {"xfdu": "urn:ccsds:schema:xfdu:1", "gml": "http://www.opengis.net/gml"}
ID_RE = re.compile(
    r"^(S1[AB])_(IW|EW|S[1-6])_GRD([HM])_1S(DV|DH|SV|SH)_(\d{8}T\d{6})_(\d{8}T\d{6})_"
    r"(\d{6})_([0-9A-F]{6})_([0-9A-F]{4})$"
)


@pytest.fixture(scope="module")
def products() -> list[DemoProduct]:
    return build_s1_products()


def _by_id_prefix(products: list[DemoProduct], start: str) -> DemoProduct:
    (match,) = [p for p in products if p.product_id.startswith(start)]
    return match


def _safe_files(product: DemoProduct) -> dict[str, bytes]:
    return {safe: product.objects[key] for safe, key in product.filename_map.items()}


# (mode/beam, polarisation) of every demo product: IW, EW and all six stripmap beams, single and
# dual polarisation in both H and V.
COMBINATIONS = {
    ("IW", "DV"),
    ("IW", "SV"),
    ("EW", "DH"),
    ("EW", "SH"),
    ("S1", "DV"),
    ("S2", "DV"),
    ("S3", "SV"),
    ("S4", "DH"),
    ("S5", "SH"),
    ("S6", "DV"),
}
# ESA SAR User Guide, "Angles for Stripmap mode beams": incidence at max .. min orbit altitude.
SM_INCIDENCE = {
    "S1": (18.32, 26.31),
    "S2": (21.78, 29.50),
    "S3": (27.64, 34.85),
    "S4": (33.00, 39.72),
    "S5": (37.89, 44.12),
    "S6": (40.79, 46.73),
}
REENCODED = "S1A_IW_GRDH_1SDV_20230719T063327"


def _ipf(product: DemoProduct) -> str:
    manifest = ET.fromstring(product.objects["manifest.safe"])
    (software,) = [e for e in manifest.iter() if e.tag.endswith("}software")]
    return software.attrib["version"]


def test_fifteen_products_with_esa_ids(products: list[DemoProduct]) -> None:
    assert len(products) == 15
    assert len({p.product_id for p in products}) == 15
    for p in products:
        m = ID_RE.match(p.product_id)
        assert m, p.product_id
        mission, beam, resolution, pol = m.group(1), m.group(2), m.group(3), m.group(4)
        # EW GRD is medium resolution; IW and stripmap GRD high resolution, as in the real bucket
        assert resolution == ("M" if beam == "EW" else "H"), p.product_id
        info = json.loads(p.objects["productInfo.json"])
        assert (info["missionId"], info["mode"], info["resolution"], info["polarization"]) == (
            mission,
            beam,
            resolution,
            pol,
        )
        props = p.stac_item["properties"]
        assert props["sar:instrument_mode"] == ("SM" if beam.startswith("S") else beam)
        assert (
            props["sar:polarizations"]
            == {
                "DV": ["VV", "VH"],
                "DH": ["HH", "HV"],
                "SV": ["VV"],
                "SH": ["HH"],
            }[pol]
        )
        if mission == "S1B":  # Sentinel-1B failed on 2021-12-23
            assert m.group(5) < "20211223"


def test_every_mode_beam_and_polarisation(products: list[DemoProduct]) -> None:
    combos = {(p.product_id[4:6], p.product_id[14:16]) for p in products}
    assert combos == COMBINATIONS
    assert {mode for mode, _ in combos} == {"IW", "EW", "S1", "S2", "S3", "S4", "S5", "S6"}
    assert {pol for _, pol in combos} == {"DV", "DH", "SV", "SH"}
    # with and without RFI annotations, in stripmap too
    assert {_ipf(p) >= "003.40" for p in products} == {True, False}
    stripmap = [p for p in products if p.product_id[4] == "S"]
    assert {any(k.startswith("annotation/rfi/") for k in p.objects) for p in stripmap} == {
        True,
        False,
    }


def test_build_is_deterministic(products: list[DemoProduct]) -> None:
    again = build_s1_products()
    for a, b in zip(products, again, strict=True):
        assert a.product_id == b.product_id
        assert a.objects.keys() == b.objects.keys()
        for key in a.objects:
            assert a.objects[key] == b.objects[key], f"{a.product_id}/{key}"
        assert a.stac_item == b.stac_item
        assert a.originals == b.originals


def _digest(products: list[DemoProduct]) -> str:
    h = hashlib.sha256()
    for p in products:
        for name, files in (("objects", p.objects), ("originals", p.originals)):
            for key in sorted(files):
                h.update(f"{p.prefix}/{name}/{key}\0".encode())
                h.update(files[key])
        h.update(json.dumps(p.stac_item, sort_keys=True).encode())
    return h.hexdigest()


def test_build_is_deterministic_across_processes(products: list[DemoProduct]) -> None:
    """Another interpreter (other hash seed) builds the same bytes, COG re-encodings included."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from test_demo_s1world import _digest; "
        "from eopack.demo.s1world import build_s1_products; "
        "print(_digest(build_s1_products()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    assert out.stdout.strip() == _digest(products)


def test_prefix_layout(products: list[DemoProduct]) -> None:
    for p in products:
        m = ID_RE.match(p.product_id)
        assert m
        day = m.group(5)
        pol = p.product_id[14:16]
        expected = (
            f"GRD/{int(day[:4])}/{int(day[4:6])}/{int(day[6:8])}/{m.group(2)}/{pol}/{p.product_id}"
        )
        assert p.prefix == expected
        assert not p.prefix.endswith("/")
    assert _by_id_prefix(products, "S1A_EW_GRDM_1SDH").prefix.startswith("GRD/2023/7/14/EW/DH/")
    assert _by_id_prefix(products, "S1A_EW_GRDM_1SSH").prefix.startswith("GRD/2022/1/20/EW/SH/")
    assert _by_id_prefix(products, "S1A_S1").prefix.startswith("GRD/2021/3/15/S1/DV/")
    assert _by_id_prefix(products, "S1A_S2").prefix.startswith("GRD/2022/5/14/S2/DV/")
    assert _by_id_prefix(products, "S1B_S3").prefix.startswith("GRD/2021/6/8/S3/SV/")
    assert _by_id_prefix(products, "S1A_S4").prefix.startswith("GRD/2023/7/18/S4/DH/")
    assert _by_id_prefix(products, "S1A_S5").prefix.startswith("GRD/2020/11/21/S5/SH/")
    assert _by_id_prefix(products, "S1A_S6").prefix.startswith("GRD/2021/3/25/S6/DV/")
    assert _by_id_prefix(products, "S1A_IW_GRDH_1SSV").prefix.startswith("GRD/2023/7/5/IW/SV/")


def test_filename_map_matches_product_info(products: list[DemoProduct]) -> None:
    for p in products:
        text = p.objects["productInfo.json"].decode()
        assert text.startswith('{\n  "id" : "')  # Jackson pretty-printer style, as on AWS
        info = json.loads(text)
        assert info["filenameMap"] == p.filename_map
        assert info["id"] == p.product_id
        assert info["path"] == p.prefix
        assert info["polarization"] == p.product_id[14:16]
        assert info["footprint"] == p.footprint
        assert info["version"] == 3
        assert "productInfo.json" not in p.filename_map
        assert set(p.filename_map.values()) == set(p.objects) - {"productInfo.json"}
        assert len(set(p.filename_map.values())) == len(p.filename_map)  # one key per file


def test_filename_map_is_exactly_the_safe(products: list[DemoProduct]) -> None:
    """Every SAFE file (manifest objects + manifest, support, logo, report) and nothing else."""
    for p in products:
        manifest = ET.fromstring(p.objects["manifest.safe"])
        listed = {
            loc.attrib["href"].removeprefix("./")
            for loc in manifest.iterfind("dataObjectSection/dataObject/byteStream/fileLocation")
        }
        schemas = {
            ref.attrib["href"].removeprefix("./")
            for ref in manifest.iterfind("metadataSection/metadataObject/metadataReference")
        }
        report = {s for s in p.filename_map if s.endswith(".pdf")}
        assert len(report) == 1
        expected = listed | schemas | report | {"manifest.safe", "preview/icons/logo.png"}
        assert set(p.filename_map) == expected, p.product_id
        beam, pols = p.product_id[4:6].lower(), "|".join(_pols(p))
        safe_name = re.compile(
            rf"{p.product_id[:3].lower()}-{beam}-grd-({pols})-\d{{8}}t\d{{6}}-\d{{8}}t\d{{6}}-"
            r"\d{6}-[0-9a-f]{6}-00[12]\.(tiff|xml)$"
        )
        key_name = re.compile(rf"{beam}-({pols})\.(tiff|xml)$")
        for safe, key in p.filename_map.items():
            if safe.startswith(("measurement/", "annotation/")):
                safe_match, key_match = safe_name.search(safe), key_name.search(key)
                assert safe_match and key_match, (safe, key)
                assert safe_match.groups() == key_match.groups(), (safe, key)
                assert safe.split("/")[:-1] == key.split("/")[:-1]  # same folder


def test_manifest_sizes_and_md5s(products: list[DemoProduct]) -> None:
    for p in products:
        # ESA's files; the re-encoded bucket TIFFs: test_reencoded_measurements
        safe = {**_safe_files(p), **p.originals}
        root = ET.fromstring(safe["manifest.safe"])
        hrefs = []
        for obj in root.iterfind("dataObjectSection/dataObject"):
            stream = obj.find("byteStream")
            assert stream is not None
            loc, checksum = stream.find("fileLocation"), stream.find("checksum")
            assert loc is not None and checksum is not None
            href = loc.attrib["href"]
            assert href.startswith("./")
            data = safe[href[2:]]
            assert int(stream.attrib["size"]) == len(data)
            assert checksum.attrib["checksumName"] == "MD5"
            assert checksum.text == hashlib.md5(data).hexdigest()
            hrefs.append(href[2:])
        not_objects = {s for s in safe if s.startswith("support/") or s.endswith(".pdf")}
        not_objects |= {"manifest.safe", "preview/icons/logo.png"}
        assert set(hrefs) == set(safe) - not_objects
        coords = root.find(".//gml:coordinates", XFDU)
        assert coords is not None and coords.text
        lat, lon = map(float, coords.text.split()[0].split(","))
        assert [lon, lat] in p.footprint["coordinates"][0]


def test_measurements_are_geotiffs_with_gcps(products: list[DemoProduct]) -> None:
    for p in products:
        tiffs = [k for k in p.objects if k.startswith("measurement/")]
        assert tiffs
        for key in tiffs:
            with MemoryFile(p.objects[key]) as mem, mem.open() as ds:
                assert ds.driver == "GTiff"
                assert ds.dtypes == ("uint16",)
                gcps, crs = ds.gcps
                assert len(gcps) >= 4
                assert crs is not None and crs.to_epsg() == 4326


def test_previews_and_xml_are_well_formed(products: list[DemoProduct]) -> None:
    for p in products:
        with Image.open(BytesIO(p.objects["preview/quick-look.png"])) as im:
            im.load()
            assert im.format == "PNG"
            assert im.mode == ("L" if p.product_id[14] == "S" else "RGB")
        with Image.open(BytesIO(p.objects["preview/icons/logo.png"])) as im:
            im.load()
        for key, data in p.objects.items():
            if key.endswith((".xml", ".xsd", ".kml", ".html", ".safe")):
                ET.fromstring(data)  # raises on malformed XML
        for key in (k for k in p.objects if k.endswith(".xml")):
            header = ET.fromstring(p.objects[key]).find("adsHeader")
            assert header is not None
            assert header.findtext("missionId") == p.product_id[:3]


def test_annotation_image_information_matches_the_measurement(
    products: list[DemoProduct],
) -> None:
    """What GDAL's SAFE driver reads from the annotation agrees with the TIFF it describes."""
    for p in products:
        for key in (k for k in p.objects if k.startswith("measurement/")):
            annotation = ET.fromstring(
                p.objects[key.replace("measurement/", "annotation/").replace(".tiff", ".xml")]
            )
            info = annotation.find("imageAnnotation/imageInformation")
            assert info is not None, key
            with MemoryFile(p.objects[key]) as mem, mem.open() as ds:
                data = ds.read(1)
                gcps = sorted((g.row, g.col, g.y, g.x) for g in ds.gcps[0])
            assert info.findtext("outputPixels") == "16 bit Unsigned Integer"
            assert info.findtext("pixelValue") == "Detected"
            assert int(info.findtext("numberOfSamples") or 0) == data.shape[1]
            assert int(info.findtext("numberOfLines") or 0) == data.shape[0]
            mean = float(info.findtext("imageStatistics/outputDataMean/re") or 0)
            std = float(info.findtext("imageStatistics/outputDataStdDev/re") or 0)
            assert mean == pytest.approx(data.mean(), rel=1e-6)
            assert std == pytest.approx(data.std(), rel=1e-6)
            processing = annotation.find("imageAnnotation/processingInformation")
            assert processing is not None and processing.findtext("ellipsoidName") == "WGS84"
            grid = sorted(
                (
                    float(pt.findtext("line") or 0),
                    float(pt.findtext("pixel") or 0),
                    float(pt.findtext("latitude") or 0),
                    float(pt.findtext("longitude") or 0),
                )
                for pt in annotation.iterfind("geolocationGrid/geolocationGridPointList/*")
            )
            assert len(grid) == len(gcps) >= 4, key
            for point, gcp in zip(grid, gcps, strict=True):
                assert point == pytest.approx(gcp, abs=1e-8), key


def _pols(product: DemoProduct) -> list[str]:
    return {"DV": ["vv", "vh"], "DH": ["hh", "hv"], "SV": ["vv"], "SH": ["hh"]}[
        product.product_id[14:16]
    ]


def test_polarisations_and_swaths(products: list[DemoProduct]) -> None:
    for p in products:
        swath = p.product_id[4:6].lower()
        measurements = sorted(k for k in p.objects if k.startswith("measurement/"))
        assert measurements == sorted(f"measurement/{swath}-{x}.tiff" for x in _pols(p))
        others = {"vv", "vh", "hh", "hv"} - set(_pols(p))
        assert not any(f"-{x}." in k for k in p.objects for x in others), p.product_id
    ew = _by_id_prefix(products, "S1A_EW_GRDM_1SDH")
    assert {"measurement/ew-hh.tiff", "measurement/ew-hv.tiff"} <= set(ew.objects)
    single = _by_id_prefix(products, "S1A_IW_GRDH_1SSV")
    assert [k for k in single.objects if k.startswith("measurement/")] == ["measurement/iw-vv.tiff"]
    assert not any("vh" in k for k in single.objects)
    ew_hh = _by_id_prefix(products, "S1A_EW_GRDM_1SSH")
    assert [k for k in ew_hh.objects if k.startswith("measurement/")] == ["measurement/ew-hh.tiff"]


@pytest.mark.parametrize("beam", ["S1", "S2", "S3", "S4", "S5", "S6"])
def test_stripmap_names(products: list[DemoProduct], beam: str) -> None:
    (sm,) = [p for p in products if p.product_id[4:6] == beam]
    mission, low = sm.product_id[:3].lower(), beam.lower()
    pol = _pols(sm)[0]
    pairs = {s: k for s, k in sm.filename_map.items() if k == f"measurement/{low}-{pol}.tiff"}
    (safe,) = pairs
    assert re.fullmatch(
        rf"measurement/{mission}-{low}-grd-{pol}-\d{{8}}t\d{{6}}-\d{{8}}t\d{{6}}-\d{{6}}-"
        r"[0-9a-f]{6}-001\.tiff",
        safe,
    )
    assert sm.filename_map[
        safe.replace("measurement/", "annotation/").replace(".tiff", ".xml")
    ] == (f"annotation/{low}-{pol}.xml")
    assert sm.filename_map[
        safe.replace("measurement/", "annotation/calibration/noise-").replace(".tiff", ".xml")
    ] == (f"annotation/calibration/noise-{low}-{pol}.xml")
    assert sm.stac_item["assets"][pol]["href"].endswith(f"/measurement/{low}-{pol}.tiff")
    # the annotation's header names the beam as swath, SM as mode, and its incidence angles
    # lie within ESA's range for that beam
    annotation = ET.fromstring(sm.objects[f"annotation/{low}-{pol}.xml"])
    assert annotation.findtext("adsHeader/mode") == "SM"
    assert annotation.findtext("adsHeader/swath") == beam
    angles = [float(e.text or "") for e in annotation.iter("incidenceAngle")]
    low_limit, high_limit = SM_INCIDENCE[beam]
    assert low_limit <= min(angles) < max(angles) <= high_limit


def test_rfi_where_the_ipf_writes_it(products: list[DemoProduct]) -> None:
    """RFI annotations exist from IPF 003.40 (November 2021) on, in every mode."""
    for p in products:
        rfi = sorted(k for k in p.objects if k.startswith("annotation/rfi/"))
        swath = p.product_id[4:6].lower()
        if _ipf(p) >= "003.40":
            assert rfi == sorted(f"annotation/rfi/rfi-{swath}-{x}.xml" for x in _pols(p))
            assert "support/s1-level-1-rfi.xsd" in p.objects
        else:
            assert rfi == []
            assert "support/s1-level-1-rfi.xsd" not in p.objects
        year = p.prefix.split("/")[1]
        assert (_ipf(p) >= "003.40") == (year >= "2022"), p.product_id
    main = _by_id_prefix(products, "S1A_IW_GRDH_1SDV_20230726")
    assert {"annotation/rfi/rfi-iw-vv.xml", "annotation/rfi/rfi-iw-vh.xml"} <= set(main.objects)
    beam = _by_id_prefix(products, "S1A_S4")
    assert {"annotation/rfi/rfi-s4-hh.xml", "annotation/rfi/rfi-s4-hv.xml"} <= set(beam.objects)


def _gcps(data: bytes) -> list[tuple[Any, ...]]:
    with MemoryFile(data) as mem, mem.open() as ds:
        gcps, crs = ds.gcps
        assert crs is not None and crs.to_epsg() == 4326
        return [(g.row, g.col, g.x, g.y, g.z, g.id) for g in gcps]


def test_reencoded_measurements(products: list[DemoProduct]) -> None:
    """One product's bucket TIFFs are COG re-encodings: other bytes, same raster."""
    assert [p.product_id[:32] for p in products if p.originals] == [REENCODED]
    product = _by_id_prefix(products, REENCODED)
    manifest = ET.fromstring(product.objects["manifest.safe"])
    listed = {}
    for stream in manifest.iterfind("dataObjectSection/dataObject/byteStream"):
        location = stream.find("fileLocation")
        assert location is not None
        listed[location.attrib["href"].removeprefix("./")] = stream
    measurements = {s for s in product.filename_map if s.startswith("measurement/")}
    assert set(product.originals) == measurements and len(measurements) == 2
    for safe, original in product.originals.items():
        bucket = product.objects[product.filename_map[safe]]
        stream = listed[safe]
        md5 = stream.findtext("checksum")
        # manifest.safe describes ESA's file; the bucket holds other bytes
        assert int(stream.attrib["size"]) == len(original) != len(bucket)
        assert md5 == hashlib.md5(original).hexdigest() != hashlib.md5(bucket).hexdigest()
        with (
            MemoryFile(original) as a_mem,
            a_mem.open() as a,
            MemoryFile(bucket) as b_mem,
            b_mem.open() as b,
        ):
            assert not a.profile.get("tiled") and a.profile.get("compress") is None
            assert b.profile["tiled"] and b.profile["compress"] == "lzw"
            assert b.overviews(1) == [2]
            assert (b.width, b.height, b.dtypes) == (a.width, a.height, a.dtypes)
            assert (a.read() == b.read()).all()
            assert b.tags()["TIFFTAG_SOFTWARE"] == a.tags()["TIFFTAG_SOFTWARE"]
        assert _gcps(bucket) == _gcps(original)


def test_reencoded_product_verifies_as_ok_reencoded(
    products: list[DemoProduct], tmp_path: Path
) -> None:
    """A SAFE laid out from the bucket as filenameMap says: ok_reencoded exactly on the TIFFs."""
    product = _by_id_prefix(products, REENCODED)
    safe_dir = tmp_path / f"{product.product_id}.SAFE"
    for safe, key in product.filename_map.items():
        (safe_dir / safe).parent.mkdir(parents=True, exist_ok=True)
        (safe_dir / safe).write_bytes(product.objects[key])
    report = verify_safe(safe_dir)
    assert report["ok"]
    statuses = {f["path"]: f["status"] for f in report["files"]}
    assert {p for p, s in statuses.items() if s == "ok_reencoded"} == set(product.originals)
    assert {s for p, s in statuses.items() if p not in product.originals} == {"ok"}


def test_report_is_a_pdf_with_valid_xref(products: list[DemoProduct]) -> None:
    for p in products:
        (safe,) = [s for s in p.filename_map if s.endswith(".pdf")]
        key = p.filename_map[safe]
        assert safe == f"{p.product_id}.SAFE-{key}"
        pdf = p.objects[key]
        assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
        xref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
        assert pdf[xref:].startswith(b"xref")
        for n, line in enumerate(pdf[xref:].splitlines()[3:8], start=1):
            assert pdf[int(line[:10]) :].startswith(b"%d 0 obj" % n)


def test_stac_items(products: list[DemoProduct], tmp_path: Path) -> None:
    for p in products:
        item = p.stac_item
        assert item["id"] == p.product_id[:-5]
        assert item["collection"] == "sentinel-1-grd"
        assert item["properties"]["s1:product_identifier"] == p.product_id
        assert item["properties"]["earthsearch:s3_path"] == f"s3://{DEMO_BUCKET}/{p.prefix}"
        assert item["geometry"] == p.footprint
        for asset in item["assets"].values():
            key = asset["href"].removeprefix(f"s3://{DEMO_BUCKET}/{p.prefix}/")
            assert key in p.objects, asset["href"]
    out = tmp_path / "items.json"
    write_stac_items(products, out)
    written = json.loads(out.read_text())
    assert written["type"] == "FeatureCollection"
    ids = [f["id"] for f in written["features"]]
    assert ids == sorted(p.product_id[:-5] for p in products)


class _RecordingClient:
    """moto has no request-payment API (eopack.demo.s3server adds it); record that call instead."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []
        self.payment: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        if name == "put_bucket_request_payment":
            return lambda **kwargs: self.payment.update(kwargs)
        return getattr(self.client, name)


def test_seed_bucket(world: Any, products: list[DemoProduct]) -> None:
    """Seeding against the session's real server, into a bucket of its own: moto's in-process
    ``mock_aws`` would reset the backend the session server shares."""
    bucket = "seed-test"
    s3 = _RecordingClient(world.client())
    seed_s1_bucket(s3, products[:2], bucket)
    assert s3.calls[0] == "create_bucket"
    assert s3.calls[-1] == "put_bucket_request_payment"
    assert s3.payment == {
        "Bucket": bucket,
        "RequestPaymentConfiguration": {"Payer": "Requester"},
    }
    # The payment call was recorded, not sent: the bucket stays readable without the header.
    location = s3.client.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert location == "eu-central-1"
    for p in products[:2]:
        listed = s3.client.list_objects_v2(Bucket=bucket, Prefix=p.prefix + "/")
        assert {o["Key"] for o in listed["Contents"]} == {f"{p.prefix}/{k}" for k in p.objects}
        got = s3.client.get_object(Bucket=bucket, Key=f"{p.prefix}/manifest.safe")
        assert got["Body"].read() == p.objects["manifest.safe"]
