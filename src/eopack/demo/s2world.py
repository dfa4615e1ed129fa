"""Sentinel-2 L1C / L2A products of the demo world, in the AWS ``sentinel-s2-l1c/l2a`` layout.

Why: the S2 pipeline (rebuild ``{name}.SAFE`` from a product folder and a tile folder, verify it
against ``manifest.safe``, zip, deliver) needs bucket objects with the real keys, shapes and
checksums, and SAFE folders that GDAL's ``SENTINEL2`` driver opens as a user's tools would.
Every product is built from one Earth Search item of :mod:`eopack.demo.opticalworld` (its
``s2:product_uri``, ``s2:granule_id``, ``s2:datastrip_id``, ``s2:datatake_id`` and asset hrefs),
so that the search records, the bucket and the SAFE agree.

Ground truth per processing baseline (the key lists in ``tests/fixtures/aws-s2``):

- >= 04.00: the keys of sentinelhub-py's reference listings (``sentinelhub_L*_04.00.csv``),
  mapped to the SAFE exactly as :func:`eopack.safe.s2.safe_paths`; QI masks are JPEG 2000
  (``MSK_CLASSI_B00``, ``MSK_DETFOO_Bxx``, ``MSK_QUALIT_Bxx``).
- older baselines: eodag's full key lists of a real L1C N0209 and a real L2A N0214 product
  (``eodag_aws_sentinel_chunks.yml``) and the N0209 ``manifest.safe``: QI masks are GML
  (``MSK_CLOUDS_B00``, ``MSK_DEFECT/DETFOO/NODATA/SATURA/TECQUA_Bxx``), the L1C tile keeps
  ``preview/Bxx.jp2`` band previews.
- both: ``productInfo.json`` (product and tile folder), ``tileInfo.json``, L1C ``preview.jpg``:
  bucket-only objects, not SAFE files. ``HTML/`` (and ``rep_info/`` from 04.00) are listed by
  ``manifest.safe`` but never in the bucket: the known gaps (:attr:`S2DemoProduct.gaps`).

The rasters are small (10 m bands 120 x 120 px, 20 m 60 x 60, 60 m 20 x 20: the tile's
north-west 1.2 km) and their geocoding in ``MTD_TL.xml`` says so; JPEG 2000 is lossless
(JP2OpenJPEG, reversible, GMLJP2 georeferencing). Every byte is a pure function of the item:
no clock, no unseeded randomness.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.transform import from_origin
from rasterio.warp import transform

from eopack.demo.opticalworld import build_optical_items
from eopack.demo.s1world import jackson as _jackson
from eopack.safe.s2 import BANDS, S2Product, safe_paths

__all__ = [
    "DEMO_S2_ITEMS",
    "L1C_BUCKET",
    "L2A_BUCKET",
    "S2DemoProduct",
    "build_s2_products",
    "seed_s2_buckets",
]

L1C_BUCKET = "sentinel-s2-l1c"
L2A_BUCKET = "sentinel-s2-l2a"
#: The S2 items config/demo.yaml's search keeps (3 AOIs x 2 date ranges, max_cloud_cover 1):
#: an L1C and an L2A of an older baseline (N0209, N0214) and of a recent one (N0509). The world
#: seeds only these (each product costs ~5 jobs in every demo run); tests build any other.
DEMO_S2_ITEMS = (
    "S2A_29SMC_20210328_0_L1C",
    "S2A_29SMC_20210328_0_L2A",
    "S2B_29SMC_20230731_0_L1C",
    "S2B_29SMC_20230731_0_L2A",
)
#: Raster size per resolution: the tile's north-west 1.2 km.
SIZES = {10: 120, 20: 60, 60: 20}
EXTENT_M = 1200
_RES_OF_BAND = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
# (central wavelength nm, min, max, solar irradiance W/m2/um), ESA's S2A spectral table.
_SPECTRAL = {
    "B01": (442.7, 430, 457, 1884.69),
    "B02": (492.4, 440, 538, 1959.66),
    "B03": (559.8, 537, 582, 1823.24),
    "B04": (664.6, 646, 684, 1512.06),
    "B05": (704.1, 694, 713, 1424.64),
    "B06": (740.5, 731, 749, 1287.61),
    "B07": (782.8, 769, 797, 1162.08),
    "B08": (832.8, 760, 908, 1041.63),
    "B8A": (864.7, 848, 881, 955.32),
    "B09": (945.1, 932, 958, 812.92),
    "B10": (1373.5, 1337, 1412, 367.15),
    "B11": (1613.7, 1539, 1682, 245.59),
    "B12": (2202.4, 2078, 2320, 85.25),
}
# Top-of-atmosphere reflectance of vegetation / bare soil / cloud per band (plausible values).
_SPECTRA = {
    "B01": (0.12, 0.14, 0.55),
    "B02": (0.09, 0.13, 0.56),
    "B03": (0.08, 0.15, 0.57),
    "B04": (0.05, 0.18, 0.58),
    "B05": (0.11, 0.20, 0.58),
    "B06": (0.24, 0.22, 0.59),
    "B07": (0.29, 0.23, 0.59),
    "B08": (0.32, 0.24, 0.60),
    "B8A": (0.33, 0.25, 0.60),
    "B09": (0.10, 0.08, 0.35),
    "B10": (0.002, 0.003, 0.05),
    "B11": (0.16, 0.30, 0.45),
    "B12": (0.08, 0.25, 0.35),
}
_GML_MASKS = ("DEFECT", "DETFOO", "NODATA", "SATURA", "TECQUA")
_TILE_REPORTS = ("FORMAT_CORRECTNESS", "GENERAL_QUALITY", "GEOMETRIC_QUALITY", "SENSOR_QUALITY")
_DS_REPORTS = (*_TILE_REPORTS[:3], "RADIOMETRIC_QUALITY", "SENSOR_QUALITY")
# L2A bands per resolution folder before 04.00 (eodag's N0214 list; B08 at 20 and 60 m too).
_L2A_OLD_BANDS = {
    10: ("B02", "B03", "B04", "B08"),
    20: ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
}
_L2A_NEW_BANDS = {
    10: ("B02", "B03", "B04", "B08"),
    20: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"),
    60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"),
}
_L2A_EXTRA = {10: ("AOT", "TCI", "WVP"), 20: ("AOT", "SCL", "TCI", "WVP")}
_L2A_EXTRA[60] = _L2A_EXTRA[20]
_SCL_CLASSES = (
    "NO_DATA",
    "SATURATED_DEFECTIVE",
    "DARK_FEATURE_SHADOW",
    "CLOUD_SHADOW",
    "VEGETATION",
    "NOT_VEGETATED",
    "WATER",
    "UNCLASSIFIED",
    "CLOUD_MEDIUM_PROBA",
    "CLOUD_HIGH_PROBA",
    "THIN_CIRRUS",
    "SNOW_ICE",
)


@dataclass
class S2DemoProduct:
    """One S2 product as stored in its bucket, plus the SAFE it rebuilds to.

    ``objects``: bucket key -> bytes (everything the bucket holds for the product);
    ``safe_paths``: bucket key -> path in ``{name}.SAFE/`` for the objects that are SAFE files;
    ``gaps``: path inside the SAFE -> bytes of the files ``manifest.safe`` lists that the bucket
    never carries (``HTML/``, ``rep_info/``).
    """

    item: dict[str, Any]
    name: str
    level: str
    baseline: str
    bucket: str
    product_prefix: str
    tile_prefix: str
    granule: str
    datastrip: str
    objects: dict[str, bytes] = field(default_factory=dict)
    safe_paths: dict[str, str] = field(default_factory=dict)
    gaps: dict[str, bytes] = field(default_factory=dict)

    @property
    def safe_files(self) -> dict[str, bytes]:
        """Path inside ``{name}.SAFE/`` -> bytes of every file of the SAFE (gaps included)."""
        root = f"{self.name}.SAFE/"
        files = {
            path.removeprefix(root): self.objects[key] for key, path in self.safe_paths.items()
        }
        return {**files, **self.gaps}

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.objects.values())


# --------------------------------------------------------------------------------------------
# Facts from the item
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    item: dict[str, Any]
    level: str
    baseline: str
    name: str  # without .SAFE
    mission: str
    tile: str
    epsg: int
    ulx: float
    uly: float
    start: datetime  # datatake sensing start
    sensing: datetime  # tile sensing time
    generation: datetime
    datastrip_start: datetime
    absolute_orbit: int
    relative_orbit: int
    centre: str
    granule: str
    datastrip: str
    granule_long: str
    datastrip_long: str
    product_prefix: str
    tile_prefix: str
    cloud: float

    @property
    def new(self) -> bool:
        """Baseline 04.00 or later: JPEG 2000 masks, radiometric offsets."""
        return self.baseline >= "04.00"

    @property
    def stem(self) -> str:
        return f"T{self.tile}_{self.start:%Y%m%dT%H%M%S}"

    @property
    def safe(self) -> str:
        return f"{self.name}.SAFE"


def _t(text: str) -> datetime:
    return datetime.strptime(text[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")


def _facts(item: dict[str, Any]) -> _Facts:
    p = item["properties"]
    level = p["s2:product_type"][-3:].replace("MSI", "").upper()
    level = "L1C" if p["s2:product_type"] == "S2MSI1C" else "L2A"
    name = p["s2:product_uri"].removesuffix(".SAFE")
    fields = name.split("_")
    start = datetime.strptime(fields[2], "%Y%m%dT%H%M%S")
    generation = datetime.strptime(fields[6], "%Y%m%dT%H%M%S")
    ds_fields = p["s2:datastrip_id"].split("_")  # S2B_OPER_MSI_L1C_DS_VGS4_<gen>_S<start>_N..
    datastrip_start = datetime.strptime(ds_fields[7][1:], "%Y%m%dT%H%M%S")
    centre = ds_fields[5]
    absolute = int(p["s2:datatake_id"].split("_")[2])
    tile = fields[5][1:]
    epsg = int(p["proj:epsg"])
    transform_ = item["assets"]["blue" if level == "L1C" else "blue-jp2"]["proj:transform"]
    jp2 = item["assets"]["granule_metadata" if level == "L1C" else "blue-jp2"]["href"]
    tile_prefix = jp2.split("/", 3)[3].rsplit("/", 1)[0]
    stamp = f"{datastrip_start:%Y%m%dT%H%M%S}"
    return _Facts(
        item=item,
        level=level,
        baseline=p["s2:processing_baseline"],
        name=name,
        mission=fields[0],
        tile=tile,
        epsg=epsg,
        ulx=float(transform_[2]),
        uly=float(transform_[5]),
        start=start,
        sensing=_t(p["datetime"]),
        generation=generation,
        datastrip_start=datastrip_start,
        absolute_orbit=absolute,
        relative_orbit=int(fields[4][1:]),
        centre=centre,
        granule=f"{level}_T{tile}_A{absolute:06d}_{stamp}",
        datastrip=f"DS_{centre}_{generation:%Y%m%dT%H%M%S}_S{stamp}",
        granule_long=p["s2:granule_id"],
        datastrip_long=p["s2:datastrip_id"],
        product_prefix=f"products/{start.year}/{start.month}/{start.day}/{name}",
        tile_prefix=tile_prefix,
        cloud=float(p["eo:cloud_cover"]),
    )


def _iso_ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _seed(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")


# --------------------------------------------------------------------------------------------
# Rasters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scene:
    """Surface fractions on the 10 m grid: vegetation, cloud, water (0..1)."""

    veg: np.ndarray
    cloud: np.ndarray
    water: np.ndarray


def _smooth_field(rng: np.random.Generator, n: int, waves: int = 5) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) / n
    out = np.zeros((n, n))
    for _ in range(waves):
        kx, ky = rng.uniform(0.5, 4.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        out += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * (kx * xx + ky * yy) + phase)
    out -= out.min()
    return out / max(float(out.max()), 1e-9)


def _scene(f: _Facts) -> _Scene:
    """The acquisition's ground and clouds; L1C and L2A of one acquisition share them."""
    rng = np.random.default_rng(_seed(f"{f.mission}{f.tile}{f.start}"))
    n = SIZES[10]
    veg = _smooth_field(rng, n)
    clouds = _smooth_field(rng, n, 3)
    threshold = float(np.quantile(clouds, 1 - f.cloud / 100)) if f.cloud > 0 else 2.0
    cloud = np.clip((clouds - threshold) * 8, 0, 1)
    water = (_smooth_field(rng, n, 2) > 0.93).astype(np.float64)
    return _Scene(veg, cloud, water)


def _block_mean(a: np.ndarray, res: int) -> np.ndarray:
    k = res // 10
    n = a.shape[0] // k
    return a.reshape(n, k, n, k).mean(axis=(1, 3))


def _reflectance(f: _Facts, scene: _Scene, band: str, res: int) -> np.ndarray:
    veg, soil, cloud = _SPECTRA[band]
    water = 0.02 if band not in ("B01", "B02", "B03") else 0.06
    ground = scene.veg * veg + (1 - scene.veg) * soil
    ground = ground * (1 - scene.water) + water * scene.water
    if f.level == "L2A":  # surface reflectance: a little less haze in the blue
        ground = ground * (0.92 if band in ("B01", "B02") else 1.0)
    refl = ground * (1 - scene.cloud) + cloud * scene.cloud
    return _block_mean(refl, res)


def _digital(f: _Facts, refl: np.ndarray, label: str) -> np.ndarray:
    rng = np.random.default_rng(_seed(f"{f.name}/{label}"))
    offset = 1000 if f.new else 0
    dn = refl * 10000 + offset + rng.normal(0, 25, refl.shape)
    return np.clip(np.rint(dn), 1, 32767).astype(np.uint16)


def _tci(f: _Facts, scene: _Scene, res: int) -> np.ndarray:
    """True colour (B04, B03, B02) as 8 bit: reflectance 0..0.25 -> 1..255."""
    bands = [_reflectance(f, scene, b, res) for b in ("B04", "B03", "B02")]
    rgb = np.stack([np.clip(b / 0.25 * 254 + 1, 1, 255) for b in bands])
    return np.rint(rgb).astype(np.uint8)


def _jp2(f: _Facts, data: np.ndarray, res: int, nbits: int | None = None) -> bytes:
    """Lossless JPEG 2000 with GMLJP2 georeferencing on the tile's grid."""
    if data.ndim == 2:
        data = data[np.newaxis]
    count, height, width = data.shape
    geo = from_origin(f.ulx, f.uly, res, res)
    opts: dict[str, Any] = {"QUALITY": 100, "REVERSIBLE": "YES", "YCBCR420": "NO"}
    opts.update({"GMLJP2": "YES", "GeoJP2": "NO"})
    if nbits is not None:
        opts["NBITS"] = nbits
    with MemoryFile() as src:
        with src.open(
            driver="GTiff",
            width=width,
            height=height,
            count=count,
            dtype=data.dtype,
            crs=CRS.from_epsg(f.epsg),
            transform=geo,
        ) as dst:
            dst.write(data)
        with src.open() as dataset, MemoryFile(ext=".jp2") as out:
            rio_copy(dataset, out.name, driver="JP2OpenJPEG", **opts)
            return out.read()


def _jpeg(rgb: np.ndarray) -> bytes:
    """``preview.jpg``: the quicklook as baseline JPEG (no georeferencing, as on AWS)."""
    with MemoryFile() as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with src.open(
            driver="GTiff",
            width=rgb.shape[2],
            height=rgb.shape[1],
            count=3,
            dtype="uint8",
        ) as dst:
            dst.write(rgb)
        with src.open() as dataset, MemoryFile(ext=".jpg") as out:
            rio_copy(dataset, out.name, driver="JPEG", QUALITY=85, WORLDFILE="NO")
            return out.read().rstrip(b"\0")


def _rasters(f: _Facts) -> dict[str, bytes]:
    """Granule-relative path (``IMG_DATA/...``, ``QI_DATA/...``) -> JPEG 2000 bytes."""
    scene = _scene(f)
    out: dict[str, bytes] = {}
    rng = np.random.default_rng(_seed(f"{f.name}/masks"))
    if f.level == "L1C":
        for band in BANDS:
            res = _RES_OF_BAND[band]
            dn = _digital(f, _reflectance(f, scene, band, res), band)
            out[f"IMG_DATA/{f.stem}_{band}.jp2"] = _jp2(f, dn, res, 15)
        out[f"IMG_DATA/{f.stem}_TCI.jp2"] = _jp2(f, _tci(f, scene, 10), 10)
    else:
        bands = _L2A_NEW_BANDS if f.new else _L2A_OLD_BANDS
        for res in (10, 20, 60):
            folder = f"IMG_DATA/R{res}m/{f.stem}"
            for band in bands[res]:
                dn = _digital(f, _reflectance(f, scene, band, res), f"{band}_{res}")
                out[f"{folder}_{band}_{res}m.jp2"] = _jp2(f, dn, res, 15)
            aot = np.full((SIZES[res],) * 2, 120, np.uint16) + (
                _block_mean(scene.veg, res) * 40
            ).astype(np.uint16)
            out[f"{folder}_AOT_{res}m.jp2"] = _jp2(f, aot, res)
            wvp = (1200 + _block_mean(scene.cloud, res) * 800).astype(np.uint16)
            out[f"{folder}_WVP_{res}m.jp2"] = _jp2(f, wvp, res)
            out[f"{folder}_TCI_{res}m.jp2"] = _jp2(f, _tci(f, scene, res), res)
            if res != 10:
                out[f"{folder}_SCL_{res}m.jp2"] = _jp2(f, _scl(scene, res), res)
        for res in (20, 60):
            cld = np.rint(_block_mean(scene.cloud, res) * 100).astype(np.uint8)
            out[f"QI_DATA/MSK_CLDPRB_{res}m.jp2"] = _jp2(f, cld, res)
            snw = np.zeros_like(cld)
            out[f"QI_DATA/MSK_SNWPRB_{res}m.jp2"] = _jp2(f, snw, res)
    if f.new:
        classi = np.stack(
            [
                (_block_mean(scene.cloud, 60) > 0.5).astype(np.uint8),
                np.zeros((SIZES[60],) * 2, np.uint8),
                np.zeros((SIZES[60],) * 2, np.uint8),
            ]
        )
        out["QI_DATA/MSK_CLASSI_B00.jp2"] = _jp2(f, classi, 60)
        for band in BANDS:
            res = _RES_OF_BAND[band]
            n = SIZES[res]
            detector = np.full((n, n), 1 + rng.integers(0, 12), np.uint8)
            out[f"QI_DATA/MSK_DETFOO_{band}.jp2"] = _jp2(f, detector, res)
            out[f"QI_DATA/MSK_QUALIT_{band}.jp2"] = _jp2(f, np.zeros((8, n, n), np.uint8), res)
    pvi = _tci(f, scene, 20)
    out[f"QI_DATA/{f.stem}_PVI.jp2"] = _jp2(f, pvi, 20)
    return out


def _scl(scene: _Scene, res: int) -> np.ndarray:
    veg, cloud, water = (_block_mean(a, res) for a in (scene.veg, scene.cloud, scene.water))
    scl = np.where(veg > 0.45, 4, 5).astype(np.uint8)
    scl[water > 0.5] = 6
    scl[cloud > 0.2] = 8
    scl[cloud > 0.6] = 9
    return scl


# --------------------------------------------------------------------------------------------
# XML and JSON documents
# --------------------------------------------------------------------------------------------

_PSD = "https://psd-14.sentinel2.eo.esa.int/PSD"


def _xml(lines: Iterable[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + "\n".join(lines) + "\n"
    ).encode()


def _image_files(f: _Facts, rasters: dict[str, bytes]) -> list[str]:
    """``IMAGE_FILE`` entries: SAFE-relative paths of the band images, without ``.jp2``."""
    base = f"GRANULE/{f.granule}/"
    return [
        base + path.removesuffix(".jp2") for path in sorted(rasters) if path.startswith("IMG_DATA")
    ]


def _footprint_lonlat(f: _Facts) -> list[tuple[float, float]]:
    xs = [f.ulx, f.ulx + EXTENT_M, f.ulx + EXTENT_M, f.ulx, f.ulx]
    ys = [f.uly, f.uly, f.uly - EXTENT_M, f.uly - EXTENT_M, f.uly]
    lons, lats = transform(CRS.from_epsg(f.epsg), CRS.from_epsg(4326), xs, ys)
    return [(round(lon, 9), round(lat, 9)) for lon, lat in zip(lons, lats, strict=True)]


def _product_metadata(f: _Facts, rasters: dict[str, bytes]) -> bytes:
    """``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``: what GDAL's SENTINEL2 driver reads."""
    lvl = "1C" if f.level == "L1C" else "2A"
    mission = f"Sentinel-2{f.mission[-1]}"
    stop = f.start + timedelta(seconds=0)
    props = f.item["properties"]
    out = [
        f'<n1:Level-{lvl}_User_Product xmlns:n1="{_PSD}/User_Product_Level-{lvl}.xsd" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{_PSD}/User_Product_Level-{lvl}.xsd">',
        "  <n1:General_Info>",
        "    <Product_Info>",
        f"      <PRODUCT_START_TIME>{_iso_ms(f.start)}</PRODUCT_START_TIME>",
        f"      <PRODUCT_STOP_TIME>{_iso_ms(stop)}</PRODUCT_STOP_TIME>",
        f"      <PRODUCT_URI>{f.safe}</PRODUCT_URI>",
        f"      <PROCESSING_LEVEL>Level-{lvl}</PROCESSING_LEVEL>",
        f"      <PRODUCT_TYPE>S2MSI{lvl}</PRODUCT_TYPE>",
        f"      <PROCESSING_BASELINE>{f.baseline}</PROCESSING_BASELINE>",
        f"      <GENERATION_TIME>{f.generation:%Y-%m-%dT%H:%M:%S}.000000Z</GENERATION_TIME>",
        "      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>",
        "      <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>",
        f'      <Datatake datatakeIdentifier="{props["s2:datatake_id"]}">',
        f"        <SPACECRAFT_NAME>{mission}</SPACECRAFT_NAME>",
        "        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>",
        f"        <DATATAKE_SENSING_START>{_iso_ms(f.start)}</DATATAKE_SENSING_START>",
        f"        <SENSING_ORBIT_NUMBER>{f.relative_orbit}</SENSING_ORBIT_NUMBER>",
        "        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>",
        "      </Datatake>",
        '      <Query_Options completeSingleTile="true">',
        "        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>",
        "      </Query_Options>",
        "      <Product_Organisation>",
        "        <Granule_List>",
        f'          <Granule datastripIdentifier="{f.datastrip_long}" '
        f'granuleIdentifier="{f.granule_long}" imageFormat="JPEG2000">',
        *(f"            <IMAGE_FILE>{p}</IMAGE_FILE>" for p in _image_files(f, rasters)),
        "          </Granule>",
        "        </Granule_List>",
        "      </Product_Organisation>",
        "    </Product_Info>",
        "    <Product_Image_Characteristics>",
        "      <Special_Values>",
        "        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>",
        "        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>",
        "      </Special_Values>",
        "      <Special_Values>",
        "        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>",
        "        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>",
        "      </Special_Values>",
        "      <Image_Display_Order>",
        "        <RED_CHANNEL>3</RED_CHANNEL>",
        "        <GREEN_CHANNEL>2</GREEN_CHANNEL>",
        "        <BLUE_CHANNEL>1</BLUE_CHANNEL>",
        "      </Image_Display_Order>",
    ]
    if f.level == "L1C":
        out.append('      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>')
        if f.new:
            out.append("      <Radiometric_Offset_List>")
            out += [
                f'        <RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>'
                for i in range(len(BANDS))
            ]
            out.append("      </Radiometric_Offset_List>")
    else:
        out += [
            "      <QUANTIFICATION_VALUES_LIST>",
            '        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>',
            '        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>',
            '        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>',
            "      </QUANTIFICATION_VALUES_LIST>",
        ]
        if f.new:
            out.append("      <BOA_ADD_OFFSET_VALUES_LIST>")
            out += [
                f'        <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>'
                for i in range(len(BANDS))
            ]
            out.append("      </BOA_ADD_OFFSET_VALUES_LIST>")
    u = props["s2:reflectance_conversion_factor"]
    out += [
        "      <Reflectance_Conversion>",
        f"        <U>{u}</U>",
        "        <Solar_Irradiance_List>",
    ]
    out += [
        f'          <SOLAR_IRRADIANCE bandId="{i}" unit="W/m²/µm">{_SPECTRAL[b][3]}'
        "</SOLAR_IRRADIANCE>"
        for i, b in enumerate(BANDS)
    ]
    out += ["        </Solar_Irradiance_List>", "      </Reflectance_Conversion>"]
    out.append("      <Spectral_Information_List>")
    for i, band in enumerate(BANDS):
        central, low, high, _ = _SPECTRAL[band]
        physical = "B" + band[1:].lstrip("0")
        out += [
            f'        <Spectral_Information bandId="{i}" physicalBand="{physical}">',
            f"          <RESOLUTION>{_RES_OF_BAND[band]}</RESOLUTION>",
            "          <Wavelength>",
            f'            <MIN unit="nm">{low}</MIN>',
            f'            <MAX unit="nm">{high}</MAX>',
            f'            <CENTRAL unit="nm">{central}</CENTRAL>',
            "          </Wavelength>",
            "        </Spectral_Information>",
        ]
    out.append("      </Spectral_Information_List>")
    if f.level == "L2A":
        out.append("      <Scene_Classification_List>")
        for i, text in enumerate(_SCL_CLASSES):
            out += [
                "        <Scene_Classification_ID>",
                f"          <SCENE_CLASSIFICATION_TEXT>SC_{text}</SCENE_CLASSIFICATION_TEXT>",
                f"          <SCENE_CLASSIFICATION_INDEX>{i}</SCENE_CLASSIFICATION_INDEX>",
                "        </Scene_Classification_ID>",
            ]
        out.append("      </Scene_Classification_List>")
    out += [
        "      <REFERENCE_BAND>2</REFERENCE_BAND>",
        "    </Product_Image_Characteristics>",
        "  </n1:General_Info>",
        "  <n1:Geometric_Info>",
        "    <Product_Footprint>",
        "      <Product_Footprint>",
        "        <Global_Footprint>",
        "          <EXT_POS_LIST>"
        + " ".join(f"{lat} {lon}" for lon, lat in _footprint_lonlat(f))
        + " </EXT_POS_LIST>",
        "        </Global_Footprint>",
        "      </Product_Footprint>",
        "      <RASTER_CS_TYPE>POINT</RASTER_CS_TYPE>",
        "      <PIXEL_ORIGIN>1</PIXEL_ORIGIN>",
        "    </Product_Footprint>",
        "    <Coordinate_Reference_System>",
        '      <GEO_TABLES version="1">EPSG</GEO_TABLES>',
        "      <HORIZONTAL_CS_TYPE>GEOGRAPHIC</HORIZONTAL_CS_TYPE>",
        "    </Coordinate_Reference_System>",
        "  </n1:Geometric_Info>",
        "  <n1:Quality_Indicators_Info>",
        f"    <Cloud_Coverage_Assessment>{f.cloud}</Cloud_Coverage_Assessment>",
        "    <Technical_Quality_Assessment>",
        "      <DEGRADED_ANC_DATA_PERCENTAGE>0.0</DEGRADED_ANC_DATA_PERCENTAGE>",
        "      <DEGRADED_MSI_DATA_PERCENTAGE>"
        f"{props['s2:degraded_msi_data_percentage']}</DEGRADED_MSI_DATA_PERCENTAGE>",
        "    </Technical_Quality_Assessment>",
        "  </n1:Quality_Indicators_Info>",
        f"</n1:Level-{lvl}_User_Product>",
    ]
    return _xml(out)


def _tile_metadata(f: _Facts, qi_files: list[str]) -> bytes:
    """``MTD_TL.xml``: ``Tile_Geocoding`` (EPSG, sizes and corners per resolution) first,
    within the 3 kB GDAL reads before it parses the whole file."""
    lvl = "1C" if f.level == "L1C" else "2A"
    zone = f.epsg % 100
    out = [
        f'<n1:Level-{lvl}_Tile_ID xmlns:n1="{_PSD}/S2_PDI_Level-{lvl}_Tile_Metadata.xsd" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{_PSD}/S2_PDI_Level-{lvl}_Tile_Metadata.xsd">',
        "  <n1:General_Info>",
        f'    <TILE_ID metadataLevel="Brief">{f.granule_long}</TILE_ID>',
        f'    <DATASTRIP_ID metadataLevel="Standard">{f.datastrip_long}</DATASTRIP_ID>',
        '    <DOWNLINK_PRIORITY metadataLevel="Standard">NOMINAL</DOWNLINK_PRIORITY>',
        f'    <SENSING_TIME metadataLevel="Standard">{_iso_ms(f.sensing)}</SENSING_TIME>',
        '    <Archiving_Info metadataLevel="Expertise">',
        f"      <ARCHIVING_CENTRE>{f.centre}</ARCHIVING_CENTRE>",
        f"      <ARCHIVING_TIME>{_iso_ms(f.generation + timedelta(minutes=21))}</ARCHIVING_TIME>",
        "    </Archiving_Info>",
        "  </n1:General_Info>",
        '  <n1:Geometric_Info metadataLevel="Standard">',
        '    <Tile_Geocoding metadataLevel="Brief">',
        f"      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {zone}N</HORIZONTAL_CS_NAME>",
        f"      <HORIZONTAL_CS_CODE>EPSG:{f.epsg}</HORIZONTAL_CS_CODE>",
    ]
    for res, n in SIZES.items():
        out += [
            f'      <Size resolution="{res}">',
            f"        <NROWS>{n}</NROWS>",
            f"        <NCOLS>{n}</NCOLS>",
            "      </Size>",
        ]
    for res in SIZES:
        out += [
            f'      <Geoposition resolution="{res}">',
            f"        <ULX>{f.ulx:.0f}</ULX>",
            f"        <ULY>{f.uly:.0f}</ULY>",
            f"        <XDIM>{res}</XDIM>",
            f"        <YDIM>-{res}</YDIM>",
            "      </Geoposition>",
        ]
    props = f.item["properties"]
    zenith = 90 - float(props["view:sun_elevation"])
    out += [
        "    </Tile_Geocoding>",
        '    <Tile_Angles metadataLevel="Standard">',
        "      <Mean_Sun_Angle>",
        f'        <ZENITH_ANGLE unit="deg">{zenith:.10f}</ZENITH_ANGLE>',
        f'        <AZIMUTH_ANGLE unit="deg">{float(props["view:sun_azimuth"]):.10f}'
        "</AZIMUTH_ANGLE>",
        "      </Mean_Sun_Angle>",
        "    </Tile_Angles>",
        "  </n1:Geometric_Info>",
        '  <n1:Quality_Indicators_Info metadataLevel="Standard">',
        "    <Image_Content_QI>",
        f"      <CLOUDY_PIXEL_PERCENTAGE>{f.cloud}</CLOUDY_PIXEL_PERCENTAGE>",
        "      <DEGRADED_MSI_DATA_PERCENTAGE>0</DEGRADED_MSI_DATA_PERCENTAGE>",
        "    </Image_Content_QI>",
        '    <Pixel_Level_QI geometry="FULL_RESOLUTION">',
    ]
    granule = f"GRANULE/{f.granule}/"
    for path in qi_files:
        stem = path.rsplit("/", 1)[1].split(".")[0]
        if not stem.startswith("MSK_"):
            continue
        kind = "_".join(stem.split("_")[:2])
        band = stem.split("_")[2]
        band_attr = f' bandId="{BANDS.index(band)}"' if band in BANDS else ""
        out.append(f'      <MASK_FILENAME type="{kind}"{band_attr}>{granule}{path}</MASK_FILENAME>')
    out += [
        "    </Pixel_Level_QI>",
        f"    <PVI_FILENAME>{granule}QI_DATA/{f.stem}_PVI.jp2</PVI_FILENAME>",
        "  </n1:Quality_Indicators_Info>",
        f"</n1:Level-{lvl}_Tile_ID>",
    ]
    return _xml(out)


def _gml_mask(f: _Facts, kind: str, band: str) -> bytes:
    """A pre-04.00 vector mask: an empty ``eop:Mask`` over the tile, as most masks are."""
    x0, y0 = f.ulx, f.uly
    return _xml(
        [
            '<eop:Mask xmlns:eop="http://www.opengis.net/eop/2.0" '
            'xmlns:gml="http://www.opengis.net/gml/3.2" '
            f'gml:id="{kind}_{band}_{f.tile}">',
            "  <gml:boundedBy>",
            f'    <gml:Envelope srsName="urn:ogc:def:crs:EPSG::{f.epsg}">',
            f"      <gml:lowerCorner>{x0:.0f} {y0 - EXTENT_M:.0f}</gml:lowerCorner>",
            f"      <gml:upperCorner>{x0 + EXTENT_M:.0f} {y0:.0f}</gml:upperCorner>",
            "    </gml:Envelope>",
            "  </gml:boundedBy>",
            "  <eop:maskMembers/>",
            "</eop:Mask>",
        ]
    )


def _report(f: _Facts, check: str, scope: str) -> bytes:
    """A quality report (``Earth_Explorer_File``) that passed its checks."""
    return _xml(
        [
            '<Earth_Explorer_File xmlns="http://gs2.esa.int/DATA_STRUCTURE/olqcReport">',
            "  <Earth_Explorer_Header>",
            "    <Fixed_Header>",
            f"      <File_Name>{scope}</File_Name>",
            "      <File_Description>Report produced by OLQC-SC</File_Description>",
            f"      <Mission>{f.mission}</Mission>",
            "      <File_Type>REP_OLQCPA</File_Type>",
            "    </Fixed_Header>",
            "  </Earth_Explorer_Header>",
            "  <Data_Block>",
            f'    <report date="{_iso_ms(f.generation)}" gippVersion="1.0" globalStatus="PASSED">',
            f"      <checkList><parentID>{scope}</parentID><name>{check}</name>",
            '        <check><inspection execution="'
            f'{_iso_ms(f.generation)}" id="{check}" status="PASSED"/></check>',
            "      </checkList>",
            "    </report>",
            "  </Data_Block>",
            "</Earth_Explorer_File>",
        ]
    )


def _datastrip_metadata(f: _Facts) -> bytes:
    lvl = "1C" if f.level == "L1C" else "2A"
    return _xml(
        [
            f'<n1:Level-{lvl}_DataStrip_ID xmlns:n1="{_PSD}/S2_PDI_Level-{lvl}_'
            'Datastrip_Metadata.xsd">',
            "  <n1:General_Info>",
            f'    <DATASTRIP_ID metadataLevel="Brief">{f.datastrip_long}</DATASTRIP_ID>',
            f"    <SPACECRAFT_NAME>Sentinel-2{f.mission[-1]}</SPACECRAFT_NAME>",
            "    <Datastrip_Time_Info>",
            f"      <DATASTRIP_SENSING_START>{_iso_ms(f.datastrip_start)}"
            "</DATASTRIP_SENSING_START>",
            "    </Datastrip_Time_Info>",
            "    <Processing_Info>",
            f"      <UTC_DATE_TIME>{_iso_ms(f.generation)}</UTC_DATE_TIME>",
            f"      <PROCESSING_BASELINE>{f.baseline}</PROCESSING_BASELINE>",
            "    </Processing_Info>",
            "  </n1:General_Info>",
            f"</n1:Level-{lvl}_DataStrip_ID>",
        ]
    )


def _inspire(f: _Facts) -> bytes:
    (w, n), (e, _), (_, s) = (p for p in _footprint_lonlat(f)[:3])
    return _xml(
        [
            '<gmd:MD_Metadata xmlns:gmd="http://www.isotc211.org/2005/gmd" '
            'xmlns:gco="http://www.isotc211.org/2005/gco">',
            f"  <gmd:fileIdentifier><gco:CharacterString>{f.name}</gco:CharacterString>"
            "</gmd:fileIdentifier>",
            f"  <gmd:dateStamp><gco:Date>{f.generation:%Y-%m-%d}</gco:Date></gmd:dateStamp>",
            "  <gmd:identificationInfo><gmd:MD_DataIdentification><gmd:extent><gmd:EX_Extent>",
            "    <gmd:geographicElement><gmd:EX_GeographicBoundingBox>",
            f"      <gmd:westBoundLongitude><gco:Decimal>{min(w, e)}</gco:Decimal>"
            "</gmd:westBoundLongitude>",
            f"      <gmd:eastBoundLongitude><gco:Decimal>{max(w, e)}</gco:Decimal>"
            "</gmd:eastBoundLongitude>",
            f"      <gmd:southBoundLatitude><gco:Decimal>{s}</gco:Decimal>"
            "</gmd:southBoundLatitude>",
            f"      <gmd:northBoundLatitude><gco:Decimal>{n}</gco:Decimal>"
            "</gmd:northBoundLatitude>",
            "    </gmd:EX_GeographicBoundingBox></gmd:geographicElement>",
            "  </gmd:EX_Extent></gmd:extent></gmd:MD_DataIdentification></gmd:identificationInfo>",
            "</gmd:MD_Metadata>",
        ]
    )


def _grib(f: _Facts, kind: str) -> bytes:
    """Auxiliary ECMWF / CAMS fields: GRIB framing around seeded bytes (small)."""
    body = np.random.default_rng(_seed(f"{f.name}/{kind}")).integers(0, 256, 1500, np.uint8)
    length = 8 + len(body) + 4
    return b"GRIB" + length.to_bytes(3, "big") + b"\x01" + body.tobytes() + b"7777"


def _html(f: _Facts, name: str) -> bytes:
    if name.endswith(".xsl"):
        return _xml(
            [
                '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">',
                '  <xsl:template match="/"><html><body><xsl:value-of select="."/></body></html>'
                "</xsl:template>",
                "</xsl:stylesheet>",
            ]
        )
    return (
        f"<html><head><title>{escape(f.name)}</title></head>"
        f"<body><h1>{escape(f.name)}</h1></body></html>\n"
    ).encode()


def _rep_info(f: _Facts, name: str) -> bytes:
    return _xml(
        [
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            f'targetNamespace="{_PSD}/{name}">',
            "</xs:schema>",
        ]
    )


def _manifest(f: _Facts, files: dict[str, bytes]) -> bytes:
    """``manifest.safe``: XFDU with the true size and MD5 of every other SAFE file."""
    lvl = "1C" if f.level == "L1C" else "2A"
    level_word = f"Level-{lvl}"
    props = f.item["properties"]
    coords = " ".join(f"{lat} {lon}" for lon, lat in _footprint_lonlat(f))
    out = [
        '<xfdu:XFDU xmlns:gml="http://www.opengis.net/gml" '
        'xmlns:safe="http://www.esa.int/safe/sentinel/1.1" '
        'xmlns:xfdu="urn:ccsds:schema:xfdu:1" '
        f'version="esa/safe/sentinel/1.1/sentinel-2/msi/archive_l{lvl.lower()}_user_product">',
        "  <informationPackageMap>",
        f'    <xfdu:contentUnit ID="S2_{level_word}_Product" dmdID="acquisitionPeriod platform" '
        f'pdiID="processing" textInfo="SENTINEL-2 MSI {level_word} User Product" '
        'unitType="Product_Level-1C">',
    ]
    ids: dict[str, str] = {}
    for i, path in enumerate(sorted(files)):
        ids[path] = f"{path.rsplit('/', 1)[-1].split('.')[0]}_{i}"
        out += [
            f'      <xfdu:contentUnit ID="{ids[path]}_Unit" unitType="Data Unit">',
            f'        <dataObjectPointer dataObjectID="{ids[path]}"/>',
            "      </xfdu:contentUnit>",
        ]
    out += [
        "    </xfdu:contentUnit>",
        "  </informationPackageMap>",
        "  <metadataSection>",
        '    <metadataObject ID="acquisitionPeriod" category="DMD" classification="DESCRIPTION">',
        '      <metadataWrap mimeType="text/xml" textInfo="Acquisition Period" '
        'vocabularyName="Sentinel-SAFE"><xmlData><safe:acquisitionPeriod>',
        f"        <safe:startTime>{_iso_ms(f.start)}</safe:startTime>",
        "      </safe:acquisitionPeriod></xmlData></metadataWrap>",
        "    </metadataObject>",
        '    <metadataObject ID="measurementOrbitReference" category="DMD" '
        'classification="DESCRIPTION">',
        '      <metadataWrap mimeType="text/xml" textInfo="Orbit Reference" '
        'vocabularyName="Sentinel-SAFE"><xmlData><safe:orbitReference>',
        '        <safe:orbitNumber groundTrackDirection="descending" type="start">'
        f"{f.absolute_orbit:06d}</safe:orbitNumber>",
        f'        <safe:relativeOrbitNumber type="start">{f.relative_orbit:03d}'
        "</safe:relativeOrbitNumber>",
        "      </safe:orbitReference></xmlData></metadataWrap>",
        "    </metadataObject>",
        '    <metadataObject ID="platform" category="DMD" classification="DESCRIPTION">',
        '      <metadataWrap mimeType="text/xml" textInfo="Platform Description" '
        'vocabularyName="Sentinel-SAFE"><xmlData><safe:platform>',
        "        <safe:familyName>SENTINEL</safe:familyName>",
        f"        <safe:number>{f.mission[1:]}</safe:number>",
        '        <safe:instrument><safe:familyName abbreviation="MSI">Multi-Spectral Instrument'
        "</safe:familyName></safe:instrument>",
        "      </safe:platform></xmlData></metadataWrap>",
        "    </metadataObject>",
        '    <metadataObject ID="processing" category="PDI" classification="PROVENANCE">',
        '      <metadataWrap mimeType="text/xml" textInfo="Processing" '
        'vocabularyName="Sentinel-SAFE"><xmlData>',
        f'        <safe:processing name="Generation of {level_word} User Product" '
        f'start="{f.generation:%Y-%m-%dT%H:%M:%S}.000000Z"/>',
        "      </xmlData></metadataWrap>",
        "    </metadataObject>",
        '    <metadataObject ID="measurementFrameSet" category="DMD" classification="DESCRIPTION">',
        '      <metadataWrap mimeType="text/xml" textInfo="Frame Set" '
        'vocabularyName="Sentinel-SAFE"><xmlData><safe:frameSet>',
        '        <safe:footPrint srsName="http://www.opengis.net/gml/srs/epsg.xml#4326">'
        f"<gml:coordinates>{coords}</gml:coordinates></safe:footPrint>",
        "      </safe:frameSet></xmlData></metadataWrap>",
        "    </metadataObject>",
        "  </metadataSection>",
        "  <dataObjectSection>",
    ]
    del props
    for path in sorted(files):
        data = files[path]
        mime = "application/xml" if path.endswith((".xml", ".gml", ".xsd")) else "octet"
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        out += [
            f'    <dataObject ID="{ids[path]}">',
            f'      <byteStream mimeType="{mime}" size="{len(data)}">',
            f'        <fileLocation href="./{path}" locatorType="URL"/>',
            f'        <checksum checksumName="MD5">{md5}</checksum>',
            "      </byteStream>",
            "    </dataObject>",
        ]
    out += ["  </dataObjectSection>", "</xfdu:XFDU>"]
    return _xml(out)


def _utm_polygon(f: _Facts) -> dict[str, Any]:
    x0, y0, x1, y1 = f.ulx, f.uly, f.ulx + EXTENT_M, f.uly - EXTENT_M
    return {
        "type": "Polygon",
        "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG:8.8.1:{f.epsg}"}},
        "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
    }


def _datastrip_ref(f: _Facts) -> dict[str, str]:
    return {"id": f.datastrip_long, "path": f"{f.product_prefix}/datastrip/0"}


def _tile_ref(f: _Facts) -> dict[str, Any]:
    zone, band, square = f.tile_prefix.split("/")[1:4]
    return {
        "path": f.tile_prefix,
        "timestamp": _iso_ms(f.sensing),
        "utmZone": int(zone),
        "latitudeBand": band,
        "gridSquare": square,
        "datastrip": _datastrip_ref(f),
    }


def _product_info(f: _Facts) -> bytes:
    ingestion = f.generation + timedelta(minutes=29, seconds=44)
    info = {
        "name": f.name,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eopack-demo:{f.name}")),
        "path": f.product_prefix,
        "timestamp": _iso_ms(ingestion),
        "datatakeIdentifier": f.item["properties"]["s2:datatake_id"],
        "sciHubIngestion": _iso_ms(ingestion),
        "s3Ingestion": _iso_ms(ingestion + timedelta(minutes=12, seconds=3)),
        "tiles": [_tile_ref(f)],
        "datastrips": [_datastrip_ref(f)],
    }
    return _jackson(info).encode()


def _tile_info(f: _Facts) -> bytes:
    polygon = _utm_polygon(f)
    info = {
        **_tile_ref(f),
        "tileGeometry": polygon,
        "tileDataGeometry": polygon,
        "tileOrigin": {"type": "Point", "crs": polygon["crs"], "coordinates": [f.ulx, f.uly]},
        "dataCoveragePercentage": 100.0,
        "cloudyPixelPercentage": f.cloud,
        "productName": f.name,
        "productPath": f.product_prefix,
    }
    return _jackson(info).encode()


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def _old_key(level: str, granule_path: str) -> str:
    """Tile-folder key of a granule file for baselines before 04.00 (eodag's lists)."""
    folder, _, name = granule_path.partition("/")
    if granule_path == "MTD_TL.xml":
        return "metadata.xml"
    if folder == "IMG_DATA":
        if level == "L1C":
            return name.rsplit("_", 1)[1]  # T32TPT_..._B01.jp2 -> B01.jp2
        res, _, file = name.partition("/")
        return f"{res}/{file.split('_')[2]}.jp2"  # R10m/T.._B02_10m.jp2 -> R10m/B02.jp2
    if folder == "AUX_DATA":
        return f"auxiliary/{name.removeprefix('AUX_') if level == 'L1C' else name}"
    if name.endswith("_PVI.jp2"):
        return "preview.jp2" if level == "L1C" else "qi/L2A_PVI.jp2"
    for mask, short in (("CLDPRB", "CLD"), ("SNWPRB", "SNW")):
        if name.startswith(f"MSK_{mask}_"):
            return f"qi/{short}_{name.rsplit('_', 1)[1]}"
    return f"qi/{name}"


def _build(item: dict[str, Any]) -> S2DemoProduct:
    f = _facts(item)
    rasters = _rasters(f)
    granule: dict[str, bytes] = dict(rasters)
    if not f.new:
        granule["QI_DATA/MSK_CLOUDS_B00.gml"] = _gml_mask(f, "MSK_CLOUDS", "B00")
        for kind in _GML_MASKS:
            for band in BANDS:
                granule[f"QI_DATA/MSK_{kind}_{band}.gml"] = _gml_mask(f, f"MSK_{kind}", band)
    tile_reports = _TILE_REPORTS if f.level == "L1C" or f.new else _DS_REPORTS
    for report in tile_reports:
        granule[f"QI_DATA/{report}.xml"] = _report(f, report, f.granule_long)
    if f.level == "L2A" and f.new:
        granule["QI_DATA/L2A_QUALITY.xml"] = _report(f, "L2A_QUALITY", f.granule_long)
    granule["AUX_DATA/AUX_ECMWFT"] = _grib(f, "ECMWFT")
    if f.new:
        granule["AUX_DATA/AUX_CAMSFO"] = _grib(f, "CAMSFO")
    qi = sorted(p for p in granule if p.startswith("QI_DATA/"))
    granule["MTD_TL.xml"] = _tile_metadata(f, qi)

    files: dict[str, bytes] = {f"GRANULE/{f.granule}/{p}": b for p, b in granule.items()}
    ds = f"DATASTRIP/{f.datastrip}"
    files[f"{ds}/MTD_DS.xml"] = _datastrip_metadata(f)
    for report in _DS_REPORTS:
        files[f"{ds}/QI_DATA/{report}.xml"] = _report(f, report, f.datastrip_long)
    files[f"MTD_MSI{f.level}.xml"] = _product_metadata(f, rasters)
    files["INSPIRE.xml"] = _inspire(f)
    gaps = {f"HTML/UserProduct_index.{ext}": _html(f, f"x.{ext}") for ext in ("html", "xsl")}
    if f.new:
        for xsd in (
            f"S2_User_Product_Level-{f.level[1:]}_Metadata.xsd",
            "S2_PDI_Level-1C_Tile_Metadata.xsd",
        ):
            gaps[f"rep_info/{xsd}"] = _rep_info(f, xsd)
    files.update(gaps)
    files["manifest.safe"] = _manifest(f, files)

    product = S2DemoProduct(
        item=item,
        name=f.name,
        level=f.level,
        baseline=f.baseline,
        bucket=L1C_BUCKET if f.level == "L1C" else L2A_BUCKET,
        product_prefix=f.product_prefix,
        tile_prefix=f.tile_prefix,
        granule=f.granule,
        datastrip=f.datastrip,
    )
    product.gaps = {p: files[p] for p in gaps}
    safe = f"{f.safe}/"
    if f.new:
        mapping = safe_paths(
            S2Product(f.name, f.product_prefix, f.tile_prefix, f.granule, f.datastrip)
        )
    else:
        mapping = _old_mapping(f, files)
    for key, path in mapping.items():
        rel = path.removeprefix(safe)
        product.objects[key] = files[rel]
        product.safe_paths[key] = path
    missing = sorted(set(files) - {p.removeprefix(safe) for p in mapping.values()} - set(gaps))
    if missing:
        raise RuntimeError(f"{f.name}: SAFE files without a bucket key: {missing[:5]}")
    # Bucket-only objects.
    info = _product_info(f)
    product.objects[f"{f.product_prefix}/productInfo.json"] = info
    product.objects[f"{f.tile_prefix}/productInfo.json"] = info
    product.objects[f"{f.tile_prefix}/tileInfo.json"] = _tile_info(f)
    if f.level == "L1C":
        product.objects[f"{f.tile_prefix}/preview.jpg"] = _jpeg(_tci(f, _scene(f), 20))
        if not f.new:
            scene = _scene(f)
            for band in BANDS:
                dn = _digital(f, _reflectance(f, scene, band, 60), f"preview/{band}")
                product.objects[f"{f.tile_prefix}/preview/{band}.jp2"] = _jp2(f, dn, 60, 15)
    return product


def _old_mapping(f: _Facts, files: dict[str, bytes]) -> dict[str, str]:
    """Bucket key -> SAFE path before 04.00 (eodag's lists, the N0209 manifest)."""
    p, t, safe = f.product_prefix, f.tile_prefix, f.safe
    out = {
        f"{p}/metadata.xml": f"{safe}/MTD_MSI{f.level}.xml",
        f"{p}/inspire.xml": f"{safe}/INSPIRE.xml",
        f"{p}/manifest.safe": f"{safe}/manifest.safe",
        f"{p}/datastrip/0/metadata.xml": f"{safe}/DATASTRIP/{f.datastrip}/MTD_DS.xml",
    }
    suffix = "_report" if f.level == "L1C" else ""
    for report in _DS_REPORTS:
        out[f"{p}/datastrip/0/qi/{report}{suffix}.xml"] = (
            f"{safe}/DATASTRIP/{f.datastrip}/QI_DATA/{report}.xml"
        )
    prefix = f"GRANULE/{f.granule}/"
    for path in files:
        if path.startswith(prefix):
            out[f"{t}/{_old_key(f.level, path.removeprefix(prefix))}"] = f"{safe}/{path}"
    return out


@functools.cache
def _build_item(item_id: str) -> S2DemoProduct:
    for item in build_optical_items():
        if item["id"] == item_id and item["collection"].startswith("sentinel-2"):
            return _build(item)
    raise KeyError(f"no demo S2 item {item_id!r}")


def s2_item_ids() -> list[str]:
    """Ids of every S2 item of the demo world (L1C and L2A)."""
    return [i["id"] for i in build_optical_items() if i["collection"].startswith("sentinel-2")]


def build_s2_products(item_ids: Iterable[str] = DEMO_S2_ITEMS) -> list[S2DemoProduct]:
    """The S2 products of the given demo items (default: the ones the demo fetches), each
    built once per process: the world is built at every test session start."""
    return [_build_item(item_id) for item_id in item_ids]


def seed_s2_buckets(s3_client: Any, products: Iterable[S2DemoProduct]) -> None:
    """Create ``sentinel-s2-l1c`` and ``sentinel-s2-l2a`` like the real ones (eu-central-1) and
    upload every object; requester pays is switched on last, as for Sentinel-1."""
    region = {"LocationConstraint": "eu-central-1"}
    for bucket in (L1C_BUCKET, L2A_BUCKET):
        s3_client.create_bucket(Bucket=bucket, CreateBucketConfiguration=region)
    uploads = [(p.bucket, key, p.objects[key]) for p in products for key in sorted(p.objects)]
    # Small objects: the round trips dominate, so upload a few at a time (the world is built
    # at every test session start).
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(
            lambda u: s3_client.put_object(Bucket=u[0], Key=u[1], Body=u[2]), uploads
        ):
            pass
    for bucket in (L1C_BUCKET, L2A_BUCKET):
        s3_client.put_bucket_request_payment(
            Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
        )
