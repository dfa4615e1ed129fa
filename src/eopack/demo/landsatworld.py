"""The demo world's Landsat Collection 2 Level-2 scenes in the ``usgs-landsat`` layout.

Why: the demo and the tests fetch, verify and zip Landsat scenes from the local S3 server
exactly as from ``s3://usgs-landsat`` (us-west-2, requester pays), so every demo item of
:mod:`eopack.demo.opticalworld` gets a scene folder with the files a real one holds, under
the real names and in the real formats:

- ``{id}_SR_B1..7.TIF``, ``_SR_QA_AEROSOL.TIF``, ``_ST_B10.TIF``, ``_ST_ATRAN/CDIST/DRAD/EMIS/
  EMSD/QA/TRAD/URAD.TIF``, ``_QA_PIXEL.TIF``, ``_QA_RADSAT.TIF``: Cloud Optimized GeoTIFFs in
  the scene's UTM zone with 30 m pixels, the real data types, scales and nodata values, but
  100 x 100 pixels (a 3 km corner of the scene at the item's ``proj:transform`` origin), so
  the world builds fast. LZW rather than the bucket's DEFLATE: libtiff's own coder, so the
  bytes do not depend on the zlib GDAL was built with.
- ``_MTL.txt`` (ODL ``GROUP = ...``), ``_MTL.xml`` and ``_MTL.json`` from one table, so the
  three agree (as USGS writes them, the JSON holds every value as a string); ``_ANG.txt``.
- ``_thumb_small.jpeg`` / ``_thumb_large.jpeg``: true-colour renderings of the SR bands.
- ``_SR_stac.json`` / ``_ST_stac.json``: the USGS STAC items the bucket keeps in each folder.

The folder holds files that the Earth Search item does not name (``ST_DRAD``, ``ST_EMIS``,
``ST_EMSD``, ``ST_TRAD``, ``ST_URAD``, the two STAC items), as the real bucket does: only the
listing finds them. Real Earth Search ``landsat-c2-l2`` items carry no ``file:checksum``;
:func:`with_landsat_checksums` puts one on every asset of a few demo items (sha2-256 on one,
md5 on another) so that both the checked and the size-only path are exercised.

Every byte is a pure function of the items (no clock, no unseeded randomness).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform

from eopack.demo.opticalworld import LANDSAT, landsat_product_id
from eopack.safe.landsat import encode_multihash

LANDSAT_BUCKET = "usgs-landsat"
LANDSAT_REGION = "us-west-2"
#: Raster size of every demo band (pixels); 30 m pixels.
SIZE = 100
PIXEL = 30.0

#: Demo scenes whose item carries ``file:checksum`` on every asset, and with which algorithm.
CHECKSUMS: dict[str, str] = {
    "LC08_L2SP_195027_20230707_20230718_02_T1": "sha2-256",  # rhine, 2023-07, clear
    "LC09_L2SP_204033_20230730_20230801_02_T1": "md5",  # lisbon, 2023-07, clear
}
_FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"

# Band file suffix -> (numpy dtype, nodata or None, MTL data type name).
_RASTERS: dict[str, tuple[str, int | None, str]] = {
    **{f"SR_B{n}": ("uint16", 0, "UINT16") for n in range(1, 8)},
    "SR_QA_AEROSOL": ("uint8", 1, "UINT8"),
    "ST_B10": ("uint16", 0, "UINT16"),
    "ST_ATRAN": ("int16", -9999, "INT16"),
    "ST_CDIST": ("int16", -9999, "INT16"),
    "ST_DRAD": ("int16", -9999, "INT16"),
    "ST_EMIS": ("int16", -9999, "INT16"),
    "ST_EMSD": ("int16", -9999, "INT16"),
    "ST_QA": ("int16", -9999, "INT16"),
    "ST_TRAD": ("int16", -9999, "INT16"),
    "ST_URAD": ("int16", -9999, "INT16"),
    "QA_PIXEL": ("uint16", 1, "UINT16"),
    "QA_RADSAT": ("uint16", None, "UINT16"),
}
# Typical surface reflectance of the demo landscape per SR band (vegetation and bare soil).
_REFLECTANCE = {1: 0.04, 2: 0.05, 3: 0.08, 4: 0.07, 5: 0.30, 6: 0.18, 7: 0.10}
_SR_SCALE, _SR_OFFSET = 2.75e-05, -0.2
_ST_SCALE, _ST_OFFSET = 0.00341802, 149.0
# QA_PIXEL words of Collection 2 (OLI): clear land, and high-confidence cloud.
_QA_CLEAR, _QA_CLOUD = 21824, 22280


@dataclass(frozen=True)
class LandsatScene:
    """One scene folder: ``objects`` file name -> bytes under ``s3://{bucket}/{prefix}/``."""

    product_id: str
    item_id: str
    bucket: str
    prefix: str
    objects: dict[str, bytes]


class _Raw(str):
    """An MTL value written without quotes in ODL (numbers, dates)."""


def _seed(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")


def _field(product_id: str) -> np.ndarray:
    """A smooth deterministic 0..1 landscape (fields and a valley) for the scene."""
    rng = np.random.default_rng(_seed(product_id))
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    phase = rng.uniform(0, 2 * math.pi, 3)
    land = (
        0.5
        + 0.25 * np.sin(2 * math.pi * (1.5 * x + phase[0]))
        + 0.15 * np.cos(2 * math.pi * (2 * y + phase[1]))
        + 0.1 * np.sin(2 * math.pi * (x + y + phase[2]))
    )
    return np.clip(land + rng.normal(0, 0.03, (SIZE, SIZE)), 0, 1)


def _cloud_mask(product_id: str, cloud_percent: float) -> np.ndarray:
    """True where cloudy: the share of pixels the item's ``eo:cloud_cover`` says."""
    rng = np.random.default_rng(_seed(product_id + "/cloud"))
    noise = rng.random((SIZE, SIZE))
    noise = (
        noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1) + np.roll(noise, (1, 1), (0, 1))
    ) / 4
    count = round(SIZE * SIZE * cloud_percent / 100)
    mask = np.zeros(SIZE * SIZE, dtype=bool)
    if count:
        mask[np.argsort(noise, axis=None, kind="stable")[-count:]] = True
    return mask.reshape(SIZE, SIZE)


def _bands(product_id: str, cloud_percent: float, kelvin: float) -> dict[str, np.ndarray]:
    """Every raster of the scene, in its real data type and scaling."""
    land = _field(product_id)
    cloud = _cloud_mask(product_id, cloud_percent)
    out: dict[str, np.ndarray] = {}
    for n, base in _REFLECTANCE.items():
        refl = base * (0.6 + 0.8 * land) if n == 5 else base * (1.4 - 0.8 * land)
        refl = np.where(cloud, 0.55 + 0.05 * land, refl)
        out[f"SR_B{n}"] = np.round((refl - _SR_OFFSET) / _SR_SCALE).astype("uint16")
    temp = np.where(cloud, kelvin - 25, kelvin + 6 * (land - 0.5))
    out["ST_B10"] = np.round((temp - _ST_OFFSET) / _ST_SCALE).astype("uint16")
    out["SR_QA_AEROSOL"] = np.where(cloud, 228, 224).astype("uint8")
    out["ST_ATRAN"] = np.round(np.where(cloud, 5200, 8200 + 600 * land)).astype("int16")
    distance = np.where(cloud, 0, 150 + 300 * land)  # km x 100
    out["ST_CDIST"] = np.round(distance).astype("int16")
    out["ST_DRAD"] = np.round(1400 + 500 * land).astype("int16")
    out["ST_EMIS"] = np.round(9700 + 250 * land).astype("int16")
    out["ST_EMSD"] = np.round(60 + 80 * (1 - land)).astype("int16")
    out["ST_QA"] = np.round(np.where(cloud, 900, 180 + 150 * (1 - land))).astype("int16")
    out["ST_TRAD"] = np.round(8200 + 900 * land).astype("int16")
    out["ST_URAD"] = np.round(800 + 300 * land).astype("int16")
    out["QA_PIXEL"] = np.where(cloud, _QA_CLOUD, _QA_CLEAR).astype("uint16")
    out["QA_RADSAT"] = np.zeros((SIZE, SIZE), dtype="uint16")
    return out


def _cog(data: np.ndarray, epsg: int, ulx: float, uly: float, nodata: int | None) -> bytes:
    """A Cloud Optimized GeoTIFF of ``data`` on the scene's UTM grid."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": str(data.dtype),
        "crs": CRS.from_epsg(epsg),
        "transform": Affine(PIXEL, 0.0, ulx, 0.0, -PIXEL, uly),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data, 1)
        with mem.open() as src, MemoryFile() as out:
            rio_copy(src, out.name, driver="COG", BLOCKSIZE=256, COMPRESS="LZW", PREDICTOR=2)
            return bytes(out.read())


def _jpeg(rgb: np.ndarray, size: int) -> bytes:
    image = Image.fromarray(rgb, "RGB").resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, optimize=False, progressive=False)
    return buffer.getvalue()


def _true_colour(bands: dict[str, np.ndarray]) -> np.ndarray:
    rgb = np.stack([bands[f"SR_B{n}"] for n in (4, 3, 2)], axis=-1).astype("float64")
    refl = rgb * _SR_SCALE + _SR_OFFSET
    return np.clip(refl / 0.3 * 255, 0, 255).astype("uint8")


# --------------------------------------------------------------------------------------------
# Metadata: MTL (txt, xml, json) and ANG
# --------------------------------------------------------------------------------------------


def _f(value: float, digits: int) -> _Raw:
    return _Raw(f"{value:.{digits}f}")


def _mtl(item: dict[str, Any], product_id: str, files: dict[str, str]) -> dict[str, Any]:
    """The MTL's groups (``LANDSAT_METADATA_FILE``), one table for its three encodings."""
    props = item["properties"]
    t = datetime.strptime(props["datetime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    processed = datetime.strptime(product_id.split("_")[4], "%Y%m%d")
    generated = processed.replace(hour=6) + _offset(product_id)
    epsg = int(props["proj:epsg"])
    ulx, uly = props["proj:transform"][2], props["proj:transform"][5]
    xs = [ulx, ulx + SIZE * PIXEL, ulx, ulx + SIZE * PIXEL]
    ys = [uly, uly, uly - SIZE * PIXEL, uly - SIZE * PIXEL]
    lons, lats = warp_transform(CRS.from_epsg(epsg), CRS.from_epsg(4326), xs, ys)
    spacecraft = f"LANDSAT_{int(product_id[2:4])}"
    doy = t.timetuple().tm_yday
    earth_sun = 1 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))
    contents: dict[str, Any] = {
        "ORIGIN": "Image courtesy of the U.S. Geological Survey",
        "DIGITAL_OBJECT_IDENTIFIER": "https://doi.org/10.5066/P9OGBGM6",
        "LANDSAT_PRODUCT_ID": product_id,
        "PROCESSING_LEVEL": "L2SP",
        "COLLECTION_NUMBER": _Raw("02"),
        "COLLECTION_CATEGORY": props["landsat:collection_category"],
        "OUTPUT_FORMAT": "GEOTIFF",
    }
    for n in range(1, 8):
        contents[f"FILE_NAME_BAND_{n}"] = files[f"SR_B{n}"]
    contents["FILE_NAME_BAND_ST_B10"] = files["ST_B10"]
    for name, suffix in (
        ("THERMAL_RADIANCE", "ST_TRAD"),
        ("UPWELL_RADIANCE", "ST_URAD"),
        ("DOWNWELL_RADIANCE", "ST_DRAD"),
        ("ATMOSPHERIC_TRANSMITTANCE", "ST_ATRAN"),
        ("EMISSIVITY", "ST_EMIS"),
        ("EMISSIVITY_STDEV", "ST_EMSD"),
        ("CLOUD_DISTANCE", "ST_CDIST"),
        ("QUALITY_L2_AEROSOL", "SR_QA_AEROSOL"),
        ("QUALITY_L2_SURFACE_TEMPERATURE", "ST_QA"),
        ("QUALITY_L1_PIXEL", "QA_PIXEL"),
        ("QUALITY_L1_RADIOMETRIC_SATURATION", "QA_RADSAT"),
    ):
        contents[f"FILE_NAME_{name}"] = files[suffix]
    contents["FILE_NAME_ANGLE_COEFFICIENT"] = files["ANG"]
    contents["FILE_NAME_METADATA_ODL"] = files["MTL.txt"]
    contents["FILE_NAME_METADATA_XML"] = files["MTL.xml"]
    for n in range(1, 8):
        contents[f"DATA_TYPE_BAND_{n}"] = "UINT16"
    contents["DATA_TYPE_BAND_ST_B10"] = "UINT16"
    for suffix in ("ST_TRAD", "ST_URAD", "ST_DRAD", "ST_ATRAN", "ST_EMIS", "ST_EMSD", "ST_CDIST"):
        contents[f"DATA_TYPE_{suffix[3:]}"] = _RASTERS[suffix][2]
    contents["DATA_TYPE_QUALITY_L2_AEROSOL"] = "UINT8"
    contents["DATA_TYPE_QUALITY_L2_SURFACE_TEMPERATURE"] = "INT16"
    contents["DATA_TYPE_QUALITY_L1_PIXEL"] = "UINT16"
    contents["DATA_TYPE_QUALITY_L1_RADIOMETRIC_SATURATION"] = "UINT16"
    image = {
        "SPACECRAFT_ID": spacecraft,
        "SENSOR_ID": "OLI_TIRS",
        "WRS_TYPE": _Raw("2"),
        "WRS_PATH": _Raw(str(int(props["landsat:wrs_path"]))),
        "WRS_ROW": _Raw(str(int(props["landsat:wrs_row"]))),
        "NADIR_OFFNADIR": "NADIR",
        "TARGET_WRS_PATH": _Raw(str(int(props["landsat:wrs_path"]))),
        "TARGET_WRS_ROW": _Raw(str(int(props["landsat:wrs_row"]))),
        "DATE_ACQUIRED": _Raw(f"{t:%Y-%m-%d}"),
        "SCENE_CENTER_TIME": f"{t:%H:%M:%S}.{t.microsecond:06d}0Z",
        "STATION_ID": "LGN",
        "CLOUD_COVER": _f(props["eo:cloud_cover"], 2),
        "CLOUD_COVER_LAND": _f(props["landsat:cloud_cover_land"], 2),
        "IMAGE_QUALITY_OLI": _Raw("9"),
        "IMAGE_QUALITY_TIRS": _Raw("9"),
        "SUN_AZIMUTH": _f(props["view:sun_azimuth"], 8),
        "SUN_ELEVATION": _f(props["view:sun_elevation"], 8),
        "EARTH_SUN_DISTANCE": _f(earth_sun, 7),
    }
    projection = {
        "MAP_PROJECTION": "UTM",
        "DATUM": "WGS84",
        "ELLIPSOID": "WGS84",
        "UTM_ZONE": _Raw(str(epsg % 100)),
        "GRID_CELL_SIZE_REFLECTIVE": _f(PIXEL, 2),
        "GRID_CELL_SIZE_THERMAL": _f(PIXEL, 2),
        "REFLECTIVE_LINES": _Raw(str(SIZE)),
        "REFLECTIVE_SAMPLES": _Raw(str(SIZE)),
        "THERMAL_LINES": _Raw(str(SIZE)),
        "THERMAL_SAMPLES": _Raw(str(SIZE)),
        "ORIENTATION": "NORTH_UP",
    }
    for corner, i in (("UL", 0), ("UR", 1), ("LL", 2), ("LR", 3)):
        projection[f"CORNER_{corner}_LAT_PRODUCT"] = _f(lats[i], 5)
        projection[f"CORNER_{corner}_LON_PRODUCT"] = _f(lons[i], 5)
    for corner, i in (("UL", 0), ("UR", 1), ("LL", 2), ("LR", 3)):
        projection[f"CORNER_{corner}_PROJECTION_X_PRODUCT"] = _f(xs[i], 1)
        projection[f"CORNER_{corner}_PROJECTION_Y_PRODUCT"] = _f(ys[i], 1)
    record = {
        "ORIGIN": contents["ORIGIN"],
        "DIGITAL_OBJECT_IDENTIFIER": contents["DIGITAL_OBJECT_IDENTIFIER"],
        "REQUEST_ID": f"L2{_seed(product_id) % 10**12:012d}_00001",
        "LANDSAT_PRODUCT_ID": product_id,
        "PROCESSING_LEVEL": "L2SP",
        "OUTPUT_FORMAT": "GEOTIFF",
        "DATE_PRODUCT_GENERATED": _Raw(f"{generated:%Y-%m-%dT%H:%M:%S}Z"),
        "PROCESSING_SOFTWARE_VERSION": "LPGS_16.3.0" if processed.year > 2022 else "LPGS_15.4.0",
        "ALGORITHM_SOURCE_SURFACE_REFLECTANCE": "LaSRC_1.6.0",
        "DATA_SOURCE_OZONE": "VIIRS",
        "DATA_SOURCE_PRESSURE": "Calculated",
        "DATA_SOURCE_WATER_VAPOR": "VIIRS",
        "DATA_SOURCE_AIR_TEMPERATURE": "VIIRS",
        "ALGORITHM_SOURCE_SURFACE_TEMPERATURE": "st_1.5.0",
        "DATA_SOURCE_REANALYSIS": "GEOS-5 IT",
    }
    reflectance: dict[str, Any] = {}
    for n in range(1, 8):
        reflectance[f"REFLECTANCE_MAXIMUM_BAND_{n}"] = _f(65535 * _SR_SCALE + _SR_OFFSET, 6)
        reflectance[f"REFLECTANCE_MINIMUM_BAND_{n}"] = _f(1 * _SR_SCALE + _SR_OFFSET, 6)
    for n in range(1, 8):
        reflectance[f"QUANTIZE_CAL_MAX_BAND_{n}"] = _Raw("65535")
        reflectance[f"QUANTIZE_CAL_MIN_BAND_{n}"] = _Raw("1")
    for n in range(1, 8):
        reflectance[f"REFLECTANCE_MULT_BAND_{n}"] = _Raw("2.75E-05")
        reflectance[f"REFLECTANCE_ADD_BAND_{n}"] = _Raw("-0.2")
    temperature = {
        "TEMPERATURE_MAXIMUM_BAND_ST_B10": _f(65535 * _ST_SCALE + _ST_OFFSET, 6),
        "TEMPERATURE_MINIMUM_BAND_ST_B10": _f(1 * _ST_SCALE + _ST_OFFSET, 6),
        "QUANTIZE_CAL_MAXIMUM_BAND_ST_B10": _Raw("65535"),
        "QUANTIZE_CAL_MINIMUM_BAND_ST_B10": _Raw("1"),
        "TEMPERATURE_MULT_BAND_ST_B10": _Raw("0.00341802"),
        "TEMPERATURE_ADD_BAND_ST_B10": _Raw("149.0"),
    }
    return {
        "LANDSAT_METADATA_FILE": {
            "PRODUCT_CONTENTS": contents,
            "IMAGE_ATTRIBUTES": image,
            "PROJECTION_ATTRIBUTES": projection,
            "LEVEL2_PROCESSING_RECORD": record,
            "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": reflectance,
            "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS": temperature,
        }
    }


def _offset(product_id: str) -> Any:
    from datetime import timedelta

    return timedelta(seconds=_seed(product_id + "/generated") % 36_000)


def _odl(groups: dict[str, Any], indent: int = 0) -> list[str]:
    """ODL text (``GROUP = X`` ... ``END_GROUP = X``), strings quoted, _Raw values bare."""
    pad = "  " * indent
    lines: list[str] = []
    for key, value in groups.items():
        if isinstance(value, dict):
            lines.append(f"{pad}GROUP = {key}")
            lines.extend(_odl(value, indent + 1))
            lines.append(f"{pad}END_GROUP = {key}")
        elif isinstance(value, _Raw):
            lines.append(f"{pad}{key} = {value}")
        else:
            lines.append(f'{pad}{key} = "{value}"')
    return lines


def _xml(groups: dict[str, Any], indent: int = 0) -> list[str]:
    from xml.sax.saxutils import escape

    pad = "  " * indent
    lines: list[str] = []
    for key, value in groups.items():
        if isinstance(value, dict):
            lines.append(f"{pad}<{key}>")
            lines.extend(_xml(value, indent + 1))
            lines.append(f"{pad}</{key}>")
        else:
            lines.append(f"{pad}<{key}>{escape(str(value))}</{key}>")
    return lines


def _strings(groups: dict[str, Any]) -> dict[str, Any]:
    return {k: _strings(v) if isinstance(v, dict) else str(v) for k, v in groups.items()}


def mtl_files(mtl: dict[str, Any]) -> dict[str, bytes]:
    """The three encodings of one MTL: ``MTL.txt``, ``MTL.xml``, ``MTL.json``."""
    txt = "\n".join([*_odl(mtl), "END", ""])
    xml = "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', *_xml(mtl), ""])
    return {
        "MTL.txt": txt.encode(),
        "MTL.xml": xml.encode(),
        "MTL.json": (json.dumps(_strings(mtl), indent=2) + "\n").encode(),
    }


def _ang(item: dict[str, Any], product_id: str) -> bytes:
    """The angle coefficient file's header and projection groups (ODL)."""
    props = item["properties"]
    epsg = int(props["proj:epsg"])
    ulx, uly = props["proj:transform"][2], props["proj:transform"][5]
    groups = {
        "FILE_HEADER": {
            "LANDSAT_SCENE_ID": props["landsat:scene_id"],
            "SPACECRAFT_ID": f"LANDSAT_{int(product_id[2:4])}",
            "NUMBER_OF_BANDS": _Raw("11"),
            "BAND_LIST": _Raw("(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)"),
        },
        "PROJECTION": {
            "ELLIPSOID_AXES": _Raw("(6378137.000000, 6356752.314200)"),
            "MAP_PROJECTION": "UTM",
            "PROJECTION_UNITS": "METERS",
            "DATUM": "WGS84",
            "SPHEROID": "WGS84",
            "UTM_ZONE": _Raw(str(epsg % 100)),
            "PROJECTION_PARAMETERS": _Raw(
                "(0.000000000000000, 0.000000000000000, 0.000000000000000, "
                "0.000000000000000, 0.000000000000000, 0.000000000000000)"
            ),
            "UL_CORNER": _Raw(f"({ulx:.6f}, {uly:.6f})"),
            "LR_CORNER": _Raw(f"({ulx + (SIZE - 1) * PIXEL:.6f}, {uly - (SIZE - 1) * PIXEL:.6f})"),
        },
    }
    return "\n".join([*_odl(groups), "END", ""]).encode()


def _usgs_stac(item: dict[str, Any], product_id: str, kind: str, names: Iterable[str]) -> bytes:
    """The USGS STAC item (``landsat-c2l2-sr`` / ``-st``) the bucket keeps in the folder."""
    props = item["properties"]
    href = (
        "https://landsatlook.usgs.gov/data/"
        + item["assets"]["red"]["href"].removeprefix("s3://usgs-landsat/").rsplit("/", 1)[0]
    )
    doc = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/alternate-assets/v1.1.0/schema.json",
            "https://stac-extensions.github.io/storage/v1.0.0/schema.json",
        ],
        "id": f"{product_id}_{kind}",
        "description": (
            "Landsat Collection 2 Level-2 "
            + ("Surface Reflectance" if kind == "SR" else "Surface Temperature")
            + " Product"
        ),
        "bbox": item["bbox"],
        "geometry": item["geometry"],
        "properties": {
            "datetime": props["datetime"],
            "eo:cloud_cover": props["eo:cloud_cover"],
            "view:sun_azimuth": props["view:sun_azimuth"],
            "view:sun_elevation": props["view:sun_elevation"],
            "platform": f"LANDSAT_{int(product_id[2:4])}",
            "instruments": ["OLI", "TIRS"],
            "view:off_nadir": 0,
            "landsat:cloud_cover_land": props["landsat:cloud_cover_land"],
            "landsat:wrs_type": "2",
            "landsat:wrs_path": props["landsat:wrs_path"],
            "landsat:wrs_row": props["landsat:wrs_row"],
            "landsat:scene_id": props["landsat:scene_id"],
            "landsat:collection_category": props["landsat:collection_category"],
            "landsat:collection_number": "02",
            "landsat:correction": "L2SP",
            "proj:epsg": props["proj:epsg"],
            "proj:shape": [SIZE, SIZE],
            "proj:transform": props["proj:transform"],
        },
        "assets": {
            name.split("_", 7)[-1]: {
                "href": f"{href}/{name}",
                "alternate": {
                    "s3": {
                        "storage:platform": "AWS",
                        "storage:requester_pays": True,
                        "href": item["assets"]["red"]["href"].rsplit("/", 1)[0] + "/" + name,
                    }
                },
            }
            for name in sorted(names)
        },
        "links": [
            {"rel": "self", "href": f"{href}/{product_id}_{kind}_stac.json"},
            {
                "rel": "collection",
                "href": f"https://landsatlook.usgs.gov/stac-server/collections/landsat-c2l2-{kind.lower()}",
            },
        ],
        "collection": f"landsat-c2l2-{kind.lower()}",
    }
    return (json.dumps(doc, indent=4) + "\n").encode()


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _scene(item: dict[str, Any]) -> LandsatScene:
    props = item["properties"]
    product_id = landsat_product_id(item)
    folder = item["assets"]["red"]["href"].rsplit("/", 1)[0]
    bucket, _, prefix = folder.removeprefix("s3://").partition("/")
    epsg = int(props["proj:epsg"])
    ulx, uly = props["proj:transform"][2], props["proj:transform"][5]
    lat = (item["bbox"][1] + item["bbox"][3]) / 2
    month = int(props["datetime"][5:7])
    kelvin = 283 + 12 * math.cos(math.radians((month - 7) * 30)) - 0.3 * (lat - 45)
    files = {suffix: f"{product_id}_{suffix}.TIF" for suffix in _RASTERS} | {
        "ANG": f"{product_id}_ANG.txt",
        **{name: f"{product_id}_{name}" for name in ("MTL.txt", "MTL.xml", "MTL.json")},
    }
    bands = _bands(product_id, float(props["eo:cloud_cover"]), kelvin)
    objects: dict[str, bytes] = {
        files[suffix]: _cog(bands[suffix], epsg, ulx, uly, nodata)
        for suffix, (_, nodata, _) in _RASTERS.items()
    }
    for name, data in mtl_files(_mtl(item, product_id, files)).items():
        objects[files[name]] = data
    objects[files["ANG"]] = _ang(item, product_id)
    rgb = _true_colour(bands)
    objects[f"{product_id}_thumb_small.jpeg"] = _jpeg(rgb, 50)
    objects[f"{product_id}_thumb_large.jpeg"] = _jpeg(rgb, 200)
    common = [files[k] for k in ("ANG", "MTL.txt", "MTL.xml", "MTL.json", "QA_PIXEL", "QA_RADSAT")]
    sr = [*common, *(files[f"SR_B{n}"] for n in range(1, 8)), files["SR_QA_AEROSOL"]]
    st = [*common, *(files[s] for s in _RASTERS if s.startswith("ST_"))]
    objects[f"{product_id}_SR_stac.json"] = _usgs_stac(item, product_id, "SR", sr)
    objects[f"{product_id}_ST_stac.json"] = _usgs_stac(item, product_id, "ST", st)
    return LandsatScene(product_id, item["id"], bucket, prefix, dict(sorted(objects.items())))


def build_landsat_scenes(items: Iterable[dict[str, Any]]) -> list[LandsatScene]:
    """A scene folder for every ``landsat-c2-l2`` item, identical bytes on every call.

    One GDAL environment for all the COGs: a third faster than one per file.
    """
    import rasterio

    with rasterio.Env():
        return [_scene(item) for item in items if item.get("collection") == LANDSAT]


def with_landsat_checksums(
    items: Iterable[dict[str, Any]], scenes: Iterable[LandsatScene]
) -> list[dict[str, Any]]:
    """The items, with ``file:checksum`` on every asset of the scenes in :data:`CHECKSUMS`."""
    by_id = {scene.product_id: scene for scene in scenes}
    out: list[dict[str, Any]] = []
    for item in items:
        algorithm = None
        if item.get("collection") == LANDSAT:
            algorithm = CHECKSUMS.get(landsat_product_id(item))
        if algorithm is None:
            out.append(item)
            continue
        scene = by_id[landsat_product_id(item)]
        item = copy.deepcopy(item)
        for asset in item["assets"].values():
            data = scene.objects[asset["href"].rsplit("/", 1)[1]]
            digest = hashlib.new("sha256" if algorithm == "sha2-256" else "md5", data).digest()
            asset["file:checksum"] = encode_multihash(algorithm, digest)
        item["stac_extensions"] = sorted({*item["stac_extensions"], _FILE_EXTENSION})
        out.append(item)
    return out


def seed_landsat_bucket(
    s3_client: Any, scenes: Iterable[LandsatScene], bucket: str = LANDSAT_BUCKET
) -> None:
    """Create the bucket like the real one (us-west-2) and upload every scene; requester
    pays is switched on last, so that the server does not refuse the uploads."""
    s3_client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": LANDSAT_REGION}
    )
    from concurrent.futures import ThreadPoolExecutor

    uploads = [(f"{s.prefix}/{name}", data) for s in scenes for name, data in s.objects.items()]
    # ~250 small objects: on several connections, as the server answers on many threads
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(
            lambda upload: s3_client.put_object(Bucket=bucket, Key=upload[0], Body=upload[1]),
            uploads,
        ):
            pass
    s3_client.put_bucket_request_payment(
        Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
    )
