"""The demo world's Landsat scene folders: the real usgs-landsat layout and formats, consistent
with the STAC items, seeded into a requester-pays bucket in us-west-2."""

from __future__ import annotations

import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
import rasterio
from botocore.exceptions import ClientError
from PIL import Image

from eopack.demo.landsatworld import (
    CHECKSUMS,
    LANDSAT_BUCKET,
    LANDSAT_REGION,
    build_landsat_scenes,
)
from eopack.demo.opticalworld import LANDSAT, build_optical_items, landsat_product_id
from eopack.safe.landsat import decode_multihash

SUFFIXES = sorted(
    [
        *(f"SR_B{n}.TIF" for n in range(1, 8)),
        "SR_QA_AEROSOL.TIF",
        *(
            f"ST_{b}.TIF"
            for b in ("ATRAN", "B10", "CDIST", "DRAD", "EMIS", "EMSD", "QA", "TRAD", "URAD")
        ),
        "QA_PIXEL.TIF",
        "QA_RADSAT.TIF",
        "ANG.txt",
        "MTL.txt",
        "MTL.xml",
        "MTL.json",
        "thumb_small.jpeg",
        "thumb_large.jpeg",
        "SR_stac.json",
        "ST_stac.json",
    ]
)
DTYPES = {"SR_QA_AEROSOL": "uint8", "SR_B": "uint16", "ST_B10": "uint16", "ST_": "int16",
          "QA_": "uint16"}  # fmt: skip


@pytest.fixture(scope="module")
def scenes(world):
    return {scene.product_id: scene for scene in world.landsat_scenes}


@pytest.fixture(scope="module")
def items(world):
    return {landsat_product_id(i): i for i in world.optical_items if i["collection"] == LANDSAT}


def odl(text: str) -> dict:
    """A small ODL reader: nested GROUPs of KEY = value (quotes stripped)."""
    stack: list[dict] = [{}]
    for line in text.splitlines():
        line = line.strip()
        if line == "END" or not line:
            continue
        key, _, value = (part.strip() for part in line.partition(" = "))
        if key == "GROUP":
            stack[-1][value] = {}
            stack.append(stack[-1][value])
        elif key == "END_GROUP":
            stack.pop()
        else:
            stack[-1][key] = value.strip('"')
    return stack[0]


def xml_dict(element: ET.Element) -> dict | str:
    if len(element) == 0:
        return element.text or ""
    return {child.tag: xml_dict(child) for child in element}


def test_a_scene_for_every_item_with_the_real_file_names(scenes, items):
    assert set(scenes) == set(items) and len(scenes) == 9
    for product_id, scene in scenes.items():
        assert sorted(n.removeprefix(f"{product_id}_") for n in scene.objects) == SUFFIXES
        assert scene.bucket == LANDSAT_BUCKET
        assert (
            scene.prefix
            == items[product_id]["assets"]["red"]["href"]
            .removeprefix(f"s3://{LANDSAT_BUCKET}/")
            .rsplit("/", 1)[0]
        )
        # every asset of the item is a file of the folder
        for asset in items[product_id]["assets"].values():
            assert asset["href"].rsplit("/", 1)[1] in scene.objects


def test_build_is_deterministic(scenes):
    again = build_landsat_scenes(build_optical_items())
    assert {s.product_id: s.objects for s in again} == {k: s.objects for k, s in scenes.items()}


def test_mtl_encodings_agree_with_each_other_and_the_item(scenes, items):
    for product_id, scene in scenes.items():
        props = items[product_id]["properties"]
        txt = odl(scene.objects[f"{product_id}_MTL.txt"].decode())
        as_json = json.loads(scene.objects[f"{product_id}_MTL.json"])
        as_xml = {
            "LANDSAT_METADATA_FILE": xml_dict(ET.fromstring(scene.objects[f"{product_id}_MTL.xml"]))
        }
        assert txt == as_json == as_xml
        mtl = txt["LANDSAT_METADATA_FILE"]
        assert mtl["PRODUCT_CONTENTS"]["LANDSAT_PRODUCT_ID"] == product_id
        for key, value in mtl["PRODUCT_CONTENTS"].items():
            if key.startswith("FILE_NAME_"):
                assert value in scene.objects, key
        image = mtl["IMAGE_ATTRIBUTES"]
        assert int(image["WRS_PATH"]) == int(props["landsat:wrs_path"])
        assert int(image["WRS_ROW"]) == int(props["landsat:wrs_row"])
        assert (
            image["DATE_ACQUIRED"]
            == props["datetime"][:10]
            == (f"{product_id[17:21]}-{product_id[21:23]}-{product_id[23:25]}")
        )
        assert image["SCENE_CENTER_TIME"].startswith(props["datetime"][11:26])
        assert float(image["CLOUD_COVER"]) == props["eo:cloud_cover"]
        assert float(image["CLOUD_COVER_LAND"]) == props["landsat:cloud_cover_land"]
        assert float(image["SUN_ELEVATION"]) == pytest.approx(props["view:sun_elevation"])
        assert float(image["SUN_AZIMUTH"]) == pytest.approx(props["view:sun_azimuth"])
        assert image["SPACECRAFT_ID"] == f"LANDSAT_{int(product_id[2:4])}"
        proj = mtl["PROJECTION_ATTRIBUTES"]
        assert int(proj["UTM_ZONE"]) == props["proj:epsg"] - 32600
        assert float(proj["CORNER_UL_PROJECTION_X_PRODUCT"]) == props["proj:transform"][2]
        # ODL quotes strings and leaves numbers and dates bare, as USGS writes it
        raw = scene.objects[f"{product_id}_MTL.txt"].decode()
        assert raw.startswith("GROUP = LANDSAT_METADATA_FILE\n  GROUP = PRODUCT_CONTENTS\n")
        assert raw.endswith("END_GROUP = LANDSAT_METADATA_FILE\nEND\n")
        assert re.search(r"^    DATE_ACQUIRED = \d{4}-\d\d-\d\d$", raw, re.M)
        assert re.search(r'^    SPACECRAFT_ID = "LANDSAT_[89]"$', raw, re.M)


def test_rasters_are_cogs_on_the_scene_grid(scenes, items):
    product_id = "LC09_L2SP_204033_20230730_20230801_02_T1"  # lisbon: UTM zone 29
    props = items[product_id]["properties"]
    for name, data in scenes[product_id].objects.items():
        if not name.endswith(".TIF"):
            continue
        band = name.removeprefix(f"{product_id}_").removesuffix(".TIF")
        with rasterio.MemoryFile(data) as mem, mem.open() as ds:
            assert ds.crs.to_epsg() == props["proj:epsg"] == 32629
            assert ds.res == (30.0, 30.0) and ds.shape == (100, 100)
            assert (ds.transform.c, ds.transform.f) == (
                props["proj:transform"][2],
                props["proj:transform"][5],
            )
            expected = next(t for prefix, t in DTYPES.items() if band.startswith(prefix))
            assert ds.dtypes[0] == expected, band
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", band
            assert ds.read(1).any() or band == "QA_RADSAT"


def test_qa_pixel_clouds_match_the_cloud_cover(scenes, items):
    for product_id, scene in scenes.items():
        data = scene.objects[f"{product_id}_QA_PIXEL.TIF"]
        with rasterio.MemoryFile(data) as mem, mem.open() as ds:
            qa = ds.read(1)
        cloudy = ((qa >> 3) & 1).mean() * 100  # bit 3: cloud
        assert cloudy == pytest.approx(items[product_id]["properties"]["eo:cloud_cover"], abs=0.01)


def test_thumbnails_are_jpegs(scenes):
    for product_id, scene in scenes.items():
        small = Image.open(io.BytesIO(scene.objects[f"{product_id}_thumb_small.jpeg"]))
        large = Image.open(io.BytesIO(scene.objects[f"{product_id}_thumb_large.jpeg"]))
        assert (small.format, large.format) == ("JPEG", "JPEG")
        assert small.size[0] < large.size[0] and large.mode == "RGB"


def test_ang_and_usgs_stac_items(scenes, items):
    for product_id, scene in scenes.items():
        props = items[product_id]["properties"]
        ang = odl(scene.objects[f"{product_id}_ANG.txt"].decode())
        assert ang["FILE_HEADER"]["LANDSAT_SCENE_ID"] == props["landsat:scene_id"]
        assert int(ang["PROJECTION"]["UTM_ZONE"]) == props["proj:epsg"] - 32600
        for kind in ("SR", "ST"):
            doc = json.loads(scene.objects[f"{product_id}_{kind}_stac.json"])
            assert doc["id"] == f"{product_id}_{kind}"
            assert doc["collection"] == f"landsat-c2l2-{kind.lower()}"
            for asset in doc["assets"].values():
                assert asset["alternate"]["s3"]["href"].rsplit("/", 1)[1] in scene.objects


def test_checksums_on_a_subset_of_items(world, scenes, items):
    with_sums = {pid for pid, item in items.items() if any(
        "file:checksum" in a for a in item["assets"].values())}  # fmt: skip
    assert with_sums == set(CHECKSUMS)
    assert len(items) - len(with_sums) == 7  # the size-only path, as real Earth Search items
    for product_id in with_sums:
        item = items[product_id]
        assert (
            "https://stac-extensions.github.io/file/v2.1.0/schema.json" in item["stac_extensions"]
        )
        for asset in item["assets"].values():
            algorithm, digest = decode_multihash(asset["file:checksum"], asset["href"])
            assert algorithm == CHECKSUMS[product_id]
            data = scenes[product_id].objects[asset["href"].rsplit("/", 1)[1]]
            lib = "sha256" if algorithm == "sha2-256" else "md5"
            assert hashlib.new(lib, data).hexdigest() == digest


def test_bucket_is_requester_pays_in_us_west_2(world, scenes):
    client = world.client(LANDSAT_REGION)
    payer = world.client(LANDSAT_REGION)  # GetBucketLocation takes no RequestPayer argument
    payer.meta.events.register(
        "before-sign.s3.GetBucketLocation",
        lambda request, **_: request.headers.__setitem__("x-amz-request-payer", "requester"),
    )
    location = payer.get_bucket_location(Bucket=LANDSAT_BUCKET)["LocationConstraint"]
    assert location == LANDSAT_REGION
    payment = client.get_bucket_request_payment(Bucket=LANDSAT_BUCKET)
    assert payment["Payer"] == "Requester"
    scene = scenes["LC08_L2SP_195027_20210311_20210317_02_T1"]
    listed = client.list_objects_v2(
        Bucket=LANDSAT_BUCKET, Prefix=f"{scene.prefix}/", RequestPayer="requester"
    )["Contents"]
    assert {o["Key"].rsplit("/", 1)[1]: o["Size"] for o in listed} == {
        n: len(d) for n, d in scene.objects.items()
    }
    with pytest.raises(ClientError, match="AccessDenied"):
        client.list_objects_v2(Bucket=LANDSAT_BUCKET, Prefix=f"{scene.prefix}/")


def test_stac_server_serves_the_checksums(world):
    import urllib.request

    item_id = "LC08_L2SP_195027_20230707_02_T1"
    url = f"{world.stac.url}/collections/{LANDSAT}/items/{item_id}"
    with urllib.request.urlopen(url, timeout=30) as response:  # loopback only
        item = json.load(response)
    assert item["assets"]["red"]["file:checksum"].startswith("1220")
