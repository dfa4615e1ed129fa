"""The demo Sentinel-1 world must have the real AWS formats, since downstream code trusts them."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image
from rasterio.io import MemoryFile

from eopack.demo.s1world import (
    DEMO_BUCKET,
    DemoProduct,
    build_s1_products,
    seed_s1_bucket,
    write_stac_items,
)

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


def test_eight_products_with_esa_ids(products: list[DemoProduct]) -> None:
    assert len(products) == 8
    assert len({p.product_id for p in products}) == 8
    for p in products:
        assert ID_RE.match(p.product_id), p.product_id


def test_build_is_deterministic(products: list[DemoProduct]) -> None:
    again = build_s1_products()
    for a, b in zip(products, again, strict=True):
        assert a.product_id == b.product_id
        assert a.objects.keys() == b.objects.keys()
        for key in a.objects:
            assert a.objects[key] == b.objects[key], f"{a.product_id}/{key}"
        assert a.stac_item == b.stac_item


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
    assert _by_id_prefix(products, "S1A_EW").prefix.startswith("GRD/2023/7/14/EW/DH/")
    assert _by_id_prefix(products, "S1A_S1").prefix.startswith("GRD/2021/3/15/S1/DV/")
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


def test_manifest_sizes_and_md5s(products: list[DemoProduct]) -> None:
    for p in products:
        safe = _safe_files(p)
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


def test_polarisations_and_swaths(products: list[DemoProduct]) -> None:
    ew = _by_id_prefix(products, "S1A_EW")
    assert {"measurement/ew-hh.tiff", "measurement/ew-hv.tiff"} <= set(ew.objects)
    single = _by_id_prefix(products, "S1A_IW_GRDH_1SSV")
    assert [k for k in single.objects if k.startswith("measurement/")] == ["measurement/iw-vv.tiff"]
    assert not any("vh" in k for k in single.objects)


def test_stripmap_names(products: list[DemoProduct]) -> None:
    sm = _by_id_prefix(products, "S1A_S1")
    pairs = {s: k for s, k in sm.filename_map.items() if k == "measurement/s1-vv.tiff"}
    (safe,) = pairs
    assert re.fullmatch(
        r"measurement/s1a-s1-grd-vv-\d{8}t\d{6}-\d{8}t\d{6}-\d{6}-[0-9a-f]{6}-001\.tiff", safe
    )
    assert sm.filename_map[
        safe.replace("measurement/", "annotation/").replace(".tiff", ".xml")
    ] == ("annotation/s1-vv.xml")


def test_rfi_only_on_2023_products(products: list[DemoProduct]) -> None:
    for p in products:
        rfi = sorted(k for k in p.objects if k.startswith("annotation/rfi/"))
        year = p.prefix.split("/")[1]
        if year == "2023":
            pols = [
                k.rsplit("-", 1)[-1].removesuffix(".tiff")
                for k in p.objects
                if k.startswith("measurement/")
            ]
            assert rfi == sorted(
                f"annotation/rfi/rfi-{p.prefix.split('/')[4].lower()}-{x}.xml" for x in pols
            )
            assert "support/s1-level-1-rfi.xsd" in p.objects
        elif year == "2021":
            assert rfi == []
            assert "support/s1-level-1-rfi.xsd" not in p.objects
    main = _by_id_prefix(products, "S1A_IW_GRDH_1SDV_20230726")
    assert {"annotation/rfi/rfi-iw-vv.xml", "annotation/rfi/rfi-iw-vh.xml"} <= set(main.objects)


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


def test_seed_bucket(products: list[DemoProduct]) -> None:
    with mock_aws():
        s3 = _RecordingClient(boto3.client("s3", region_name="eu-central-1"))
        seed_s1_bucket(s3, products[:2])
        assert s3.calls[0] == "create_bucket"
        assert s3.calls[-1] == "put_bucket_request_payment"
        assert s3.payment == {
            "Bucket": DEMO_BUCKET,
            "RequestPaymentConfiguration": {"Payer": "Requester"},
        }
        location = s3.client.get_bucket_location(Bucket=DEMO_BUCKET)["LocationConstraint"]
        assert location == "eu-central-1"
        for p in products[:2]:
            listed = s3.client.list_objects_v2(Bucket=DEMO_BUCKET, Prefix=p.prefix + "/")
            assert {o["Key"] for o in listed["Contents"]} == {f"{p.prefix}/{k}" for k in p.objects}
            got = s3.client.get_object(Bucket=DEMO_BUCKET, Key=f"{p.prefix}/manifest.safe")
            assert got["Body"].read() == p.objects["manifest.safe"]
