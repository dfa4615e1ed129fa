"""A small, deterministic world of Sentinel-1 GRD products in the AWS `sentinel-s1-l1c` layout.

Why: the offline demo and the integration tests need products whose bucket keys,
`productInfo.json`, `manifest.safe` checksums, measurement GeoTIFFs and Earth Search STAC items
have the exact real formats (see shared/fixtures/aws-s1), without touching AWS. Every byte is a
pure function of the fixed product table below: no clock, no unseeded randomness.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import struct
import uuid
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy

DEMO_BUCKET = "sentinel-s1-l1c"

#: Measurement raster size (range samples x azimuth lines); small so the whole world builds fast.
WIDTH, HEIGHT = 256, 200

_ORBIT_PERIOD_S = 12 * 86400 / 175  # 175 orbits in the 12-day repeat cycle
# Per satellite: (reference absolute orbit, its ascending node time, relative-orbit offset,
# cycle offset, NSSDC id). S1A's reference is the real fixture product's orbit 37074.
_SATELLITES: dict[str, tuple[int, datetime, int, int, str]] = {
    "S1A": (37074, datetime(2021, 3, 19, 23, 5, 1, 291104), 73, 2377, "2014-016A"),
    "S1B": (26000, datetime(2021, 3, 14, 10, 17, 32, 512000), 27, 2873, "2016-025A"),
}
# Datatake ids grow roughly linearly with the orbit: (reference orbit, datatake, slope per orbit).
_DATATAKES: dict[str, tuple[int, int, float]] = {
    "S1A": (37074, 285999, 8.37),  # 049598 -> 0x05F6CA (390858) in the productInfo fixture
    "S1B": (26000, 204100, 8.30),
}
_POLARISATIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "DV": (("vv", 1), ("vh", 2)),
    "DH": (("hh", 1), ("hv", 2)),
    "SV": (("vv", 1),),
    "SH": (("hh", 1),),
}
# (resolution range, resolution azimuth, pixel spacing, looks range, looks azimuth, ENL), as in
# ESA's Level-1 GRD resolution table. Stripmap GRD products in the archive are GRDH
# (e.g. S1A_S3_GRDH_1SDV_20230801T152912_20230801T152931_049683_05F970_0441); GRDF is rare.
_SAR_RESOLUTION: dict[tuple[str, str], tuple[float, float, float, int, int, float]] = {
    ("IW", "H"): (20.0, 22.0, 10.0, 5, 1, 4.4),
    ("EW", "M"): (93.0, 87.0, 40.0, 6, 2, 10.7),
    ("SM", "H"): (23.0, 23.0, 10.0, 6, 6, 34.4),
}
# Near/far incidence per swath (degrees). Stripmap beams: the mean of ESA's values at minimum
# and maximum orbit altitude (SAR User Guide, "Angles for Stripmap mode beams").
_INCIDENCE: dict[str, tuple[float, float]] = {
    "IW": (30.7, 46.0),
    "EW": (19.0, 47.0),
    "S1": (19.16, 25.43),
    "S2": (22.62, 28.63),
    "S3": (28.49, 33.99),
    "S4": (33.86, 38.87),
    "S5": (38.76, 43.28),
    "S6": (41.66, 45.89),
}
_SUPPORT_XSDS: dict[str, str] = {
    "s1-level-1-calibration.xsd": "calibration",
    "s1-level-1-measurement.xsd": "measurement",
    "s1-level-1-noise.xsd": "noise",
    "s1-level-1-product.xsd": "product",
    "s1-level-1-quicklook.xsd": "quicklook",
    "s1-map-overlay.xsd": "kml",
    "s1-object-types.xsd": "",
    "s1-product-preview.xsd": "html",
}
_RFI_XSD = "s1-level-1-rfi.xsd"


@dataclass(frozen=True)
class DemoProduct:
    """One product as stored in the bucket, plus the catalogue views of it."""

    product_id: str
    prefix: str
    objects: dict[str, bytes]
    filename_map: dict[str, str]
    stac_item: dict[str, Any]
    footprint: dict[str, Any]
    #: SAFE path -> the ESA file that manifest.safe describes, for the files whose bucket copy
    #: is re-encoded (measurement TIFFs of products built with ``reencoded=True``).
    originals: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class _Spec:
    """The hand-picked facts of one demo product; everything else is derived from them."""

    mission: str  # S1A / S1B
    mode: str  # IW, EW, S1..S6 (as in the product id)
    resolution: str  # H / M
    pol: str  # DV, DH, SV, SH
    start: datetime  # naive UTC, with microseconds
    duration_s: float
    bbox: tuple[float, float, float, float]  # lon/lat box the skewed frame is drawn in
    ascending: bool
    reencoded: bool = False  # bucket holds COG re-encodings of the measurement TIFFs


def _frac_us(label: str) -> int:
    """Deterministic sub-second start offset (µs), so ids keep whole-second stop = start + N s."""
    return 1000 + zlib.crc32(label.encode()) % 400_000


def _spec(
    mission: str,
    mode: str,
    res: str,
    pol: str,
    start: str,
    bbox: tuple[float, ...],
    ascending: bool,
    seconds: int | None = None,
    reencoded: bool = False,
) -> _Spec:
    """``seconds``: slice length (default 60 s EW, 25 s otherwise; real stripmap slices vary)."""
    t0 = datetime.strptime(start, "%Y%m%dT%H%M%S")
    t0 = t0.replace(microsecond=_frac_us(f"{mission}{mode}{start}"))
    if seconds is None:
        seconds = 60 if mode == "EW" else 25
    duration = seconds - 0.001097
    box = (bbox[0], bbox[1], bbox[2], bbox[3])
    return _Spec(mission, mode, res, pol, t0, duration, box, ascending, reencoded)


# The demo world. AOIs: alps 10..11/46.5..47.2, rhine 7.5..8.5/47.5..48.5,
# lisbon -9.5..-8.8/38.6..39; date ranges 2021-03 and 2023-07. The first eight and the
# re-encoded Lisbon product are what the workflow tests expect; every other product lies
# outside every AOI or every range (S1B only until its failure on 2021-12-23; stripmap
# is flown over small islands, EW over polar seas).
_SPECS: tuple[_Spec, ...] = (
    _spec("S1A", "IW", "H", "DV", "20210310T053012", (7.0, 46.0, 11.5, 48.8), False),  # alps+rhine
    _spec("S1B", "IW", "H", "DV", "20210322T183105", (-10.5, 37.8, -7.5, 39.8), True),  # lisbon
    _spec("S1A", "IW", "H", "DV", "20230726T172041", (9.5, 46.0, 12.5, 48.0), True),  # alps, rfi
    _spec("S1A", "EW", "M", "DH", "20230714T052433", (5.0, 45.5, 12.0, 49.5), False),  # alps+rhine
    _spec("S1A", "S1", "H", "DV", "20210315T183620", (-9.8, 38.3, -8.6, 39.3), True),  # stripmap
    _spec("S1A", "IW", "H", "SV", "20230705T053450", (7.2, 47.0, 9.0, 49.0), False),  # rhine, VV
    _spec("S1A", "IW", "H", "DV", "20220501T053040", (8.8, 45.8, 12.2, 48.2), False),  # off-dates
    _spec("S1B", "IW", "H", "DV", "20210312T163502", (20.0, 50.0, 23.0, 52.0), True),  # no AOI
    # lisbon, 2023-07; its measurement TIFFs are re-encoded in the bucket (-> ok_reencoded)
    _spec(
        "S1A", "IW", "H", "DV", "20230719T063327", (-10.3, 37.9, -7.4, 39.9), False, reencoded=True
    ),
    # Stripmap beams S2..S6 (80 km swath, 19 s slices), all outside every AOI:
    # Madeira, Cape Verde, South Georgia, Galapagos, Reunion
    _spec("S1A", "S2", "H", "DV", "20220514T191207", (-17.5, 32.3, -16.6, 33.4), True, 19),
    _spec("S1B", "S3", "H", "SV", "20210608T075512", (-24.0, 14.6, -23.1, 15.7), False, 19),
    _spec("S1A", "S4", "H", "DH", "20230718T081944", (-37.4, -54.9, -35.6, -53.8), False, 19),
    _spec("S1A", "S5", "H", "SH", "20201121T000512", (-91.7, -1.2, -90.8, 0.0), True, 19),
    _spec("S1A", "S6", "H", "DV", "20210325T014352", (55.1, -21.5, 56.0, -20.6), False, 19),
    # EW single pol (HH) over Svalbard and the Barents Sea
    _spec("S1A", "EW", "M", "SH", "20220120T152208", (10.0, 75.5, 26.0, 80.0), True),
)


# --------------------------------------------------------------------------------------------
# Derived product facts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """Everything derived from a `_Spec` that more than one file needs."""

    spec: _Spec
    product_id: str
    prefix: str
    stop: datetime
    orbit: int
    relative_orbit: int
    cycle: int
    anx: datetime
    datatake: int
    unique: str
    processing_stop: datetime
    ipf: str
    corners: tuple[tuple[float, float], ...]  # (lon, lat) A, B, C, D in manifest order
    image_corners: tuple[tuple[float, float], ...]  # (lon, lat) at pixel (0,0), (0,W), (H,0), (H,W)

    @property
    def inst_mode(self) -> str:
        """Instrument mode as the manifest and STAC spell it (stripmap S1..S6 -> SM)."""
        return "SM" if self.spec.mode.startswith("S") else self.spec.mode

    @property
    def swath(self) -> str:
        return self.spec.mode.lower()

    @property
    def pols(self) -> tuple[tuple[str, int], ...]:
        return _POLARISATIONS[self.spec.pol]

    @property
    def has_rfi(self) -> bool:
        """RFI annotations exist from IPF 003.40 (late 2021) on."""
        return self.ipf >= "003.40"

    def stem(self, pol: str, number: int) -> str:
        """Lowercase SAFE file stem, e.g. s1a-iw-grd-vv-<start>-<stop>-<orbit>-<dtid>-001."""
        s = self.spec
        return (
            f"{s.mission.lower()}-{self.swath}-grd-{pol}-{s.start:%Y%m%dt%H%M%S}-"
            f"{self.stop:%Y%m%dt%H%M%S}-{self.orbit:06d}-{self.datatake:06x}-{number:03d}"
        )


def _ipf_version(t: datetime) -> str:
    if t < datetime(2021, 11, 4):
        return "003.31"
    if t < datetime(2023, 3, 1):
        return "003.52"
    return "003.61"


def _frame_corners(spec: _Spec) -> tuple[tuple[float, float], ...]:
    """Skewed quadrilateral like a real S1 frame; order as in real manifest footprints."""
    x0, y0, x1, y1 = spec.bbox
    sx, sy = 0.08 * (x1 - x0), 0.15 * (y1 - y0)
    if spec.ascending:  # heading NNW, looking ENE: east side is later (higher)
        pts = ((x0 + sx, y0), (x1, y0 + sy), (x1 - sx, y1), (x0, y1 - sy))
    else:  # heading SSW, looking WNW (as in the real fixture)
        pts = ((x1 - sx, y0), (x0, y0 + sy), (x0 + sx, y1), (x1, y1 - sy))
    return tuple((round(x, 6), round(y, 6)) for x, y in pts)


def _facts(spec: _Spec) -> _Facts:
    ref_orbit, ref_anx, rel_off, cycle_off, _ = _SATELLITES[spec.mission]
    elapsed = (spec.start - ref_anx).total_seconds()
    orbit = ref_orbit + math.floor(elapsed / _ORBIT_PERIOD_S)
    anx = ref_anx + timedelta(seconds=(orbit - ref_orbit) * _ORBIT_PERIOD_S)
    dt_orbit, dt_ref, dt_slope = _DATATAKES[spec.mission]
    datatake = dt_ref + round((orbit - dt_orbit) * dt_slope) + zlib.crc32(spec.mode.encode()) % 5
    stop = spec.start + timedelta(seconds=spec.duration_s)
    base = (
        f"{spec.mission}_{spec.mode}_GRD{spec.resolution}_1S{spec.pol}_"
        f"{spec.start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{orbit:06d}_{datatake:06X}"
    )
    unique = hashlib.sha256(base.encode()).hexdigest()[:4].upper()
    product_id = f"{base}_{unique}"
    t = spec.start
    prefix = f"GRD/{t.year}/{t.month}/{t.day}/{spec.mode}/{spec.pol}/{product_id}"
    proc = stop + timedelta(hours=1, minutes=45, seconds=zlib.crc32(base.encode()) % 900)
    corners = _frame_corners(spec)
    a, b, c, d = corners
    # pixel (line 0, sample 0) = first line, near range
    image = (a, b, d, c) if spec.ascending else (d, c, a, b)
    return _Facts(
        spec=spec,
        product_id=product_id,
        prefix=prefix,
        stop=stop,
        orbit=orbit,
        relative_orbit=(orbit - rel_off) % 175 + 1,
        cycle=(orbit + cycle_off) // 175 + 1,
        anx=anx,
        datatake=datatake,
        unique=unique,
        processing_stop=proc.replace(microsecond=0),
        ipf=_ipf_version(spec.start),
        corners=corners,
        image_corners=image,
    )


def _footprint(f: _Facts) -> dict[str, Any]:
    """GeoJSON Polygon, counter-clockwise exterior ring, closed."""
    ring = [list(p) for p in f.corners]
    area2 = sum(
        ring[i][0] * ring[(i + 1) % 4][1] - ring[(i + 1) % 4][0] * ring[i][1] for i in range(4)
    )
    if area2 < 0:
        ring.reverse()
    return {"type": "Polygon", "coordinates": [[*ring, list(ring[0])]]}


def _bilinear(f: _Facts, u: float, v: float) -> tuple[float, float]:
    """Lon/lat at fractional sample u and line v (0..1) of the image."""
    (x00, y00), (x01, y01), (x10, y10), (x11, y11) = f.image_corners
    top = (x00 + (x01 - x00) * u, y00 + (y01 - y00) * u)
    bot = (x10 + (x11 - x10) * u, y10 + (y11 - y10) * u)
    return top[0] + (bot[0] - top[0]) * v, top[1] + (bot[1] - top[1]) * v


def _grid() -> tuple[list[int], list[int]]:
    """Geolocation grid: lines x samples of the tie points (corners included)."""
    lines = [round(x) for x in np.linspace(0, HEIGHT - 1, 5)]
    samples = [round(x) for x in np.linspace(0, WIDTH - 1, 6)]
    return lines, samples


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _line_time(f: _Facts, line: int) -> datetime:
    return f.spec.start + timedelta(seconds=f.spec.duration_s * line / (HEIGHT - 1))


def _incidence(f: _Facts, u: float) -> float:
    near, far = _INCIDENCE[f.spec.mode]
    return near + (far - near) * u


# --------------------------------------------------------------------------------------------
# File contents
# --------------------------------------------------------------------------------------------


def _seed(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")


def _backscatter(f: _Facts) -> dict[str, np.ndarray]:
    """Speckled uint16 amplitudes per polarisation; cross-pol shares the co-pol scene."""
    rng = np.random.default_rng(_seed(f.product_id))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    scene = np.ones((HEIGHT, WIDTH))
    for _ in range(4):
        kx, ky, phase = rng.uniform(0.01, 0.08), rng.uniform(0.01, 0.08), rng.uniform(0, 2 * np.pi)
        scene += 0.35 * np.sin(kx * xx + ky * yy + phase)
    scene = np.clip(scene, 0.15, None)
    out: dict[str, np.ndarray] = {}
    for pol, number in f.pols:
        level = 220.0 if number == 1 else 70.0
        speckle = rng.gamma(4.4, 1 / 4.4, size=(HEIGHT, WIDTH))
        out[pol] = np.clip(level * np.sqrt(scene * speckle), 0, 65535).astype(np.uint16)
    return out


def _measurement_tiff(f: _Facts, pol: str, data: np.ndarray) -> bytes:
    """A real GeoTIFF like ESA's GRD TIFFs: uint16 strips, GCPs in EPSG:4326, TIFFTAG_* metadata."""
    lines, samples = _grid()
    gcps = []
    for line in lines:
        for sample in samples:
            lon, lat = _bilinear(f, sample / (WIDTH - 1), line / (HEIGHT - 1))
            gcps.append(
                GroundControlPoint(
                    row=line,
                    col=sample,
                    x=round(lon, 9),
                    y=round(lat, 9),
                    z=0.0,
                    id=str(len(gcps) + 1),
                )
            )
    s = f.spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(
                driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="uint16"
            ) as dst:
                dst.gcps = (gcps, CRS.from_epsg(4326))
                dst.update_tags(
                    TIFFTAG_IMAGEDESCRIPTION=(
                        f"Sentinel-1{s.mission[-1]} {f.inst_mode} GRD {s.resolution}R L1"
                    ),
                    TIFFTAG_SOFTWARE=f"Sentinel-1 IPF {f.ipf}",
                    TIFFTAG_DATETIME=f.processing_stop.strftime("%Y:%m:%d %H:%M:%S"),
                )
                dst.write(data, 1)
            return bytes(mem.read())


def _reencode_cog(tiff: bytes) -> bytes:
    """The same raster as a Cloud Optimized GeoTIFF, as the bucket's measurement TIFFs are.

    Same pixels, GCPs and TIFFTAG_* metadata; 128x128 tiles, an internal 2x overview and LZW
    with a horizontal predictor, so size and MD5 differ from the ESA file in manifest.safe.
    LZW rather than DEFLATE: libtiff's own coder, so the bytes do not depend on which zlib or
    libdeflate GDAL was built with.
    """
    with MemoryFile(tiff) as src_file, src_file.open() as src, MemoryFile() as out:
        rio_copy(
            src,
            out.name,
            driver="COG",
            BLOCKSIZE=128,
            COMPRESS="LZW",
            PREDICTOR=2,
            OVERVIEWS="AUTO",
            OVERVIEW_RESAMPLING="AVERAGE",
        )
        return bytes(out.read())


def _png(array: np.ndarray) -> bytes:
    """8-bit grey or RGB PNG with stored (uncompressed) deflate blocks.

    Written by hand rather than with PIL because PIL's bytes depend on the zlib it was built with
    (Pillow wheels now bundle zlib-ng); stored blocks are the same everywhere.
    """
    height, width = array.shape[:2]
    colour = 2 if array.ndim == 3 else 0
    rows = np.ascontiguousarray(array, dtype=np.uint8).reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter 0 per row
    stream = bytearray(b"\x78\x01")
    for i in range(0, len(raw), 65535):
        block = raw[i : i + 65535]
        stream += struct.pack("<BHH", i + 65535 >= len(raw), len(block), len(block) ^ 0xFFFF)
        stream += block
    stream += struct.pack(">I", zlib.adler32(raw))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", bytes(stream))
        + chunk(b"IEND", b"")
    )


def _quicklook(f: _Facts, bands: dict[str, np.ndarray]) -> bytes:
    """8-bit RGB (co, cross, co/cross) like ESA's quick-looks, or grey for single pol; 1/4 size."""

    def small(a: np.ndarray) -> np.ndarray:
        h, w = HEIGHT // 4 * 4, WIDTH // 4 * 4
        return a[:h, :w].astype(np.float64).reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))

    def byte(a: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(a, 2), np.percentile(a, 98)
        return np.clip((a - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)

    co = small(bands[f.pols[0][0]])
    if len(f.pols) == 1:
        return _png(byte(co))
    cross = small(bands[f.pols[1][0]])
    return _png(np.dstack([byte(co), byte(cross), byte(co / np.maximum(cross, 1.0))]))


def _logo() -> bytes:
    """The ESA logo stand-in shared by all products (a blue disc)."""
    yy, xx = np.mgrid[0:32, 0:32]
    disc = (xx - 15.5) ** 2 + (yy - 15.5) ** 2 <= 14**2
    rgb = np.full((32, 32, 3), 255, np.uint8)
    rgb[disc] = (0, 51, 153)
    return _png(rgb)


def _ads_header(f: _Facts, pol: str, number: int, indent: str = "  ") -> list[str]:
    s = f.spec
    return [
        f"{indent}<adsHeader>",
        f"{indent}  <missionId>{s.mission}</missionId>",
        f"{indent}  <productType>GRD</productType>",
        f"{indent}  <polarisation>{pol.upper()}</polarisation>",
        f"{indent}  <mode>{f.inst_mode}</mode>",
        f"{indent}  <swath>{s.mode}</swath>",
        f"{indent}  <startTime>{_iso(s.start)}</startTime>",
        f"{indent}  <stopTime>{_iso(f.stop)}</stopTime>",
        f"{indent}  <absoluteOrbitNumber>{f.orbit}</absoluteOrbitNumber>",
        f"{indent}  <missionDataTakeId>{f.datatake}</missionDataTakeId>",
        f"{indent}  <imageNumber>{number:03d}</imageNumber>",
        f"{indent}</adsHeader>",
    ]


def _xml(lines: Iterable[str]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(lines) + "\n").encode()


def _annotation_xml(f: _Facts, pol: str, number: int, data: np.ndarray) -> bytes:
    """Product annotation: header, general/image information and the geolocation grid.

    ``data`` is the measurement raster, for the size and statistics. GDAL's SAFE driver reads
    ``imageInformation`` (``outputPixels`` for the band type, ``numberOfSamples`` and
    ``numberOfLines`` for the size, the pixel spacings), the WGS84 ellipsoid of
    ``processingInformation`` for the GCP CRS and the ``geolocationGridPointList`` as GCPs:
    without them it refuses the SAFE, so they are here in the real order.
    """
    s = f.spec
    res = _SAR_RESOLUTION[(f.inst_mode, s.resolution)]
    heading = -12.4 if s.ascending else -167.6
    lines, samples = _grid()
    height, width = data.shape
    # statistics from exact integer sums, so no summation order can change a printed digit
    n, total = data.size, int(data.sum(dtype=np.int64))
    squares = int(np.square(data, dtype=np.int64).sum())
    mean, std = total / n, math.sqrt((squares * n - total * total) / (n * n))
    out = ["<product>", *_ads_header(f, pol, number)]
    out += [
        "  <qualityInformation>",
        "    <productQualityIndex>0.000000e+00</productQualityIndex>",
        "  </qualityInformation>",
        "  <generalAnnotation>",
        "    <productInformation>",
        f"      <pass>{'Ascending' if s.ascending else 'Descending'}</pass>",
        "      <timelinessCategory>Fast-24h</timelinessCategory>",
        f"      <platformHeading>{heading:.6e}</platformHeading>",
        "      <projection>Ground Range</projection>",
        "      <rangeSamplingRate>2.500000e+07</rangeSamplingRate>",
        "      <radarFrequency>5.405000e+09</radarFrequency>",
        "    </productInformation>",
        "  </generalAnnotation>",
        "  <imageAnnotation>",
        "    <imageInformation>",
        f"      <productFirstLineUtcTime>{_iso(s.start)}</productFirstLineUtcTime>",
        f"      <productLastLineUtcTime>{_iso(f.stop)}</productLastLineUtcTime>",
        f"      <ascendingNodeTime>{_iso(f.anx)}</ascendingNodeTime>",
        f"      <slantRangeTime>{5.36e-3:.15e}</slantRangeTime>",
        "      <pixelValue>Detected</pixelValue>",
        "      <outputPixels>16 bit Unsigned Integer</outputPixels>",
        f"      <rangePixelSpacing>{res[2]:.6e}</rangePixelSpacing>",
        f"      <azimuthPixelSpacing>{res[2]:.6e}</azimuthPixelSpacing>",
        f"      <azimuthTimeInterval>{s.duration_s / (height - 1):.15e}</azimuthTimeInterval>",
        f"      <numberOfSamples>{width}</numberOfSamples>",
        f"      <numberOfLines>{height}</numberOfLines>",
        f"      <incidenceAngleMidSwath>{_incidence(f, 0.5):.15e}</incidenceAngleMidSwath>",
        "      <imageStatistics>",
        "        <outputDataMean>",
        f"          <re>{mean:.6e}</re>",
        "          <im>0.000000e+00</im>",
        "        </outputDataMean>",
        "        <outputDataStdDev>",
        f"          <re>{std:.6e}</re>",
        "          <im>0.000000e+00</im>",
        "        </outputDataStdDev>",
        "      </imageStatistics>",
        "    </imageInformation>",
        "    <processingInformation>",
        "      <ellipsoidName>WGS84</ellipsoidName>",
        "      <ellipsoidSemiMajorAxis>6.378137000000000e+06</ellipsoidSemiMajorAxis>",
        "      <ellipsoidSemiMinorAxis>6.356752314245179e+06</ellipsoidSemiMinorAxis>",
        "    </processingInformation>",
        "  </imageAnnotation>",
        "  <geolocationGrid>",
        f'    <geolocationGridPointList count="{len(lines) * len(samples)}">',
    ]
    for line in lines:
        for sample in samples:
            u, v = sample / (WIDTH - 1), line / (HEIGHT - 1)
            lon, lat = _bilinear(f, u, v)
            out += [
                "      <geolocationGridPoint>",
                f"        <azimuthTime>{_iso(_line_time(f, line))}</azimuthTime>",
                f"        <slantRangeTime>{5.36e-3 + 1.6e-3 * u:.15e}</slantRangeTime>",
                f"        <line>{line}</line>",
                f"        <pixel>{sample}</pixel>",
                f"        <latitude>{lat:.12e}</latitude>",
                f"        <longitude>{lon:.12e}</longitude>",
                "        <height>0.000000000000000e+00</height>",
                f"        <incidenceAngle>{_incidence(f, u):.15e}</incidenceAngle>",
                f"        <elevationAngle>{_incidence(f, u) * 0.89:.15e}</elevationAngle>",
                "      </geolocationGridPoint>",
            ]
    out += ["    </geolocationGridPointList>", "  </geolocationGrid>", "</product>"]
    return _xml(out)


def _vector_list(f: _Facts, tag: str, fields: dict[str, Any]) -> list[str]:
    """Per grid line, one vector of LUT values sampled at the grid samples."""
    lines, samples = _grid()
    out = [f'  <{tag}List count="{len(lines)}">']
    for line in lines:
        out += [
            f"    <{tag}>",
            f"      <azimuthTime>{_iso(_line_time(f, line))}</azimuthTime>",
            f"      <line>{line}</line>",
            f'      <pixel count="{len(samples)}">{" ".join(map(str, samples))}</pixel>',
        ]
        for name, fn in fields.items():
            values = " ".join(f"{fn(s / (WIDTH - 1), line / (HEIGHT - 1)):.6e}" for s in samples)
            out.append(f'      <{name} count="{len(samples)}">{values}</{name}>')
        out.append(f"    </{tag}>")
    out.append(f"  </{tag}List>")
    return out


def _calibration_xml(f: _Facts, pol: str, number: int) -> bytes:
    k = 1.0 if number == 1 else 1.002
    out = ["<calibration>", *_ads_header(f, pol, number)]
    out += [
        "  <calibrationInformation>",
        "    <absoluteCalibrationConstant>1.000000e+00</absoluteCalibrationConstant>",
        "  </calibrationInformation>",
    ]
    out += _vector_list(
        f,
        "calibrationVector",
        {
            "sigmaNought": lambda u, v: k * (560.0 - 95.0 * u),
            "betaNought": lambda u, v: 4.740000e02,
            "gamma": lambda u, v: k * (480.0 - 60.0 * u),
            "dn": lambda u, v: 4.740000e02,
        },
    )
    return _xml([*out, "</calibration>"])


def _noise_xml(f: _Facts, pol: str, number: int) -> bytes:
    level = 60.0 if number == 1 else 45.0
    out = ["<noise>", *_ads_header(f, pol, number)]
    out += _vector_list(
        f,
        "noiseRangeVector",
        {"noiseRangeLut": lambda u, v: level * (1.0 + 0.4 * math.cos(6.0 * u) + 0.05 * v)},
    )
    return _xml([*out, "</noise>"])


def _rfi_xml(f: _Facts, pol: str, number: int) -> bytes:
    lines, _ = _grid()
    out = ["<rfi>", *_ads_header(f, pol, number)]
    out += [
        "  <rfiMitigationApplied>None</rfiMitigationApplied>",
        f'  <rfiDetectionFromNoiseReportList count="{len(lines)}">',
    ]
    for i, line in enumerate(lines):
        flag = "true" if (i + number + f.orbit) % 4 == 0 else "false"
        out += [
            "    <rfiDetectionFromNoiseReport>",
            f"      <azimuthTime>{_iso(_line_time(f, line))}</azimuthTime>",
            f"      <swath>{f.spec.mode}</swath>",
            f"      <rfiPresence>{flag}</rfiPresence>",
            "    </rfiDetectionFromNoiseReport>",
        ]
    out += ["  </rfiDetectionFromNoiseReportList>", "</rfi>"]
    return _xml(out)


def _xsd(name: str, root: str) -> bytes:
    """Small valid XSDs; the object-types one defines the header the others reference."""
    out = [
        '<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'elementFormDefault="qualified" attributeFormDefault="unqualified">',
        "  <xsd:annotation>",
        f"    <xsd:documentation>Sentinel-1 {name} (eopack demo subset)</xsd:documentation>",
        "  </xsd:annotation>",
    ]
    if not root:
        fields = [
            "missionId",
            "productType",
            "polarisation",
            "mode",
            "swath",
            "startTime",
            "stopTime",
            "absoluteOrbitNumber",
            "missionDataTakeId",
            "imageNumber",
        ]
        out += ['  <xsd:complexType name="adsHeaderType">', "    <xsd:sequence>"]
        out += [f'      <xsd:element name="{n}" type="xsd:string"/>' for n in fields]
        out += ["    </xsd:sequence>", "  </xsd:complexType>"]
    else:
        out += [
            '  <xsd:include schemaLocation="s1-object-types.xsd"/>',
            f'  <xsd:element name="{root}">',
            "    <xsd:complexType>",
            "      <xsd:sequence>",
            '        <xsd:element name="adsHeader" type="adsHeaderType" minOccurs="0"/>',
            '        <xsd:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>',
            "      </xsd:sequence>",
            '      <xsd:anyAttribute processContents="skip"/>',
            "    </xsd:complexType>",
            "  </xsd:element>",
        ]
    return _xml([*out, "</xsd:schema>"])


def _kml(f: _Facts) -> bytes:
    """Map overlay: the quick-look draped on the frame corners (lon,lat order, as in KML)."""
    coords = " ".join(f"{lon:.6f},{lat:.6f}" for lon, lat in f.corners)
    return _xml(
        [
            '<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:gx="http://www.google.com/kml/ext/2.2">',
            "  <Document>",
            "    <Folder>",
            "      <name>Sentinel-1 Map Overlay</name>",
            "      <GroundOverlay>",
            f"        <name>{f.product_id}</name>",
            "        <Icon>",
            "          <href>quick-look.png</href>",
            "        </Icon>",
            "        <gx:LatLonQuad>",
            f"          <coordinates>{coords}</coordinates>",
            "        </gx:LatLonQuad>",
            "      </GroundOverlay>",
            "    </Folder>",
            "  </Document>",
            "</kml>",
        ]
    )


def _preview_html(f: _Facts, safe_paths: Iterable[str]) -> bytes:
    links = [f'      <li><a href="../{p}">{p}</a></li>' for p in safe_paths]
    return _xml(
        [
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
            '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">',
            '<html xmlns="http://www.w3.org/1999/xhtml">',
            "  <head>",
            f"    <title>{f.product_id}</title>",
            "  </head>",
            "  <body>",
            f"    <h1>{f.product_id}.SAFE</h1>",
            '    <img src="quick-look.png" alt="quick-look"/>',
            "    <ul>",
            *links,
            "    </ul>",
            "  </body>",
            "</html>",
        ]
    )


def _pdf(lines: list[str]) -> bytes:
    """A minimal but valid one-page PDF 1.4 with a correct xref table."""
    esc = [ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for ln in lines]
    text = "BT /F1 11 Tf 50 790 Td 14 TL " + " ".join(f"({t}) '" for t in esc) + " ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# --------------------------------------------------------------------------------------------
# manifest.safe
# --------------------------------------------------------------------------------------------

_NAMESPACES = (
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:gml="http://www.opengis.net/gml" '
    'xmlns:xfdu="urn:ccsds:schema:xfdu:1" xmlns:safe="http://www.esa.int/safe/sentinel-1.0" '
    'xmlns:s1="http://www.esa.int/safe/sentinel-1.0/sentinel-1" '
    'xmlns:s1sar="http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar" '
    'xmlns:s1sarl1="http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1" '
    'xmlns:s1sarl2="http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-2" '
    'xmlns:gx="http://www.google.com/kml/ext/2.2"'
)
# kind -> (dataObject ID prefix, repID, unit type, mime type)
_KINDS: dict[str, tuple[str, str, str, str]] = {
    "product": ("product", "s1Level1ProductSchema", "Metadata Unit", "text/xml"),
    "noise": ("noise", "s1Level1NoiseSchema", "Metadata Unit", "text/xml"),
    "calibration": ("calibration", "s1Level1CalibrationSchema", "Metadata Unit", "text/xml"),
    "rfi": ("rfi", "s1Level1RfiSchema", "Metadata Unit", "text/xml"),
    "mapoverlay": ("", "s1Level1MapOverlaySchema", "Metadata Unit", "text/xml"),
    "productpreview": ("", "s1Level1ProductPreviewSchema", "Metadata Unit", "text/xml"),
    "measurement": (
        "",
        "s1Level1MeasurementSchema",
        "Measurement Data Unit",
        "application/octet-stream",
    ),
    "quicklook": (
        "",
        "s1Level1QuickLookSchema",
        "Measurement Data Unit",
        "application/octet-stream",
    ),
}
_SCHEMAS: tuple[tuple[str, str, str], ...] = (
    ("s1Level1ProductSchema", "XML Schema", "s1-level-1-product.xsd"),
    ("s1Level1NoiseSchema", "XML Schema", "s1-level-1-noise.xsd"),
    ("s1Level1CalibrationSchema", "XML Schema", "s1-level-1-calibration.xsd"),
    ("s1ObjectTypesSchema", "XML Schema", "s1-object-types.xsd"),
    ("s1Level1MeasurementSchema", "SDF", "s1-level-1-measurement.xsd"),
    ("s1Level1ProductPreviewSchema", "XML Schema", "s1-product-preview.xsd"),
    ("s1Level1QuickLookSchema", "XML Schema", "s1-level-1-quicklook.xsd"),
    ("s1Level1MapOverlaySchema", "XML Schema", "s1-map-overlay.xsd"),
)


@dataclass(frozen=True)
class _DataObject:
    id: str
    kind: str
    safe_path: str
    stem: str = ""  # the per-polarisation file stem, "" for preview objects


def _data_objects(f: _Facts) -> list[_DataObject]:
    """dataObjects in the real manifest's order: per pol (cross-pol first) metadata, then data."""
    pols = sorted(f.pols, key=lambda p: -p[1])
    meta_kinds = ["product", "noise", "calibration"] + (["rfi"] if f.has_rfi else [])
    out: list[_DataObject] = []
    for pol, number in pols:
        stem = f.stem(pol, number)
        for kind in meta_kinds:
            data_id = _KINDS[kind][0] + stem.replace("-", "")
            out.append(_DataObject(data_id, kind, _safe_path(kind, stem), stem))
    out.append(_DataObject("mapoverlay", "mapoverlay", "preview/map-overlay.kml"))
    out.append(_DataObject("productpreview", "productpreview", "preview/product-preview.html"))
    for pol, number in pols:
        stem = f.stem(pol, number)
        out.append(
            _DataObject(stem.replace("-", ""), "measurement", f"measurement/{stem}.tiff", stem)
        )
    out.append(_DataObject("quicklook", "quicklook", "preview/quick-look.png"))
    return out


def _safe_path(kind: str, stem: str) -> str:
    return {
        "product": f"annotation/{stem}.xml",
        "noise": f"annotation/calibration/noise-{stem}.xml",
        "calibration": f"annotation/calibration/calibration-{stem}.xml",
        "rfi": f"annotation/rfi/rfi-{stem}.xml",
        "measurement": f"measurement/{stem}.tiff",
    }[kind]


def _wrap(id_: str, text_info: str, body: list[str]) -> list[str]:
    return [
        f'    <metadataObject ID="{id_}" classification="DESCRIPTION" category="DMD">',
        f'      <metadataWrap mimeType="text/xml" vocabularyName="SAFE" textInfo="{text_info}">',
        "        <xmlData>",
        *("          " + ln for ln in body),
        "        </xmlData>",
        "      </metadataWrap>",
        "    </metadataObject>",
    ]


def _manifest(f: _Facts, files: dict[str, bytes]) -> bytes:
    """The XFDU manifest with true sizes and MD5s of `files` (SAFE path -> bytes)."""
    s = f.spec
    objs = _data_objects(f)
    dual = len(f.pols) == 2
    version = (
        "esa/safe/sentinel-1.0/sentinel-1/sar/level-1/grd/standard/"
        f"{f.inst_mode.lower()}{'dp' if dual else 'sp'}"
    )
    out = [
        f'<xfdu:XFDU {_NAMESPACES} version="{version}">',
        "  <informationPackageMap>",
        '    <xfdu:contentUnit unitType="SAFE Archive Information Package" '
        f'textInfo="Sentinel-1 {f.inst_mode} Level-1 GRD Product" dmdID="acquisitionPeriod '
        'platform generalProductInformation measurementOrbitReference measurementFrameSet" '
        'pdiID="processing">',
    ]
    annotations: dict[str, str] = {}  # stem -> "idAnnotation idAnnotation ... " (real spacing)
    for o in objs:
        if o.kind in ("product", "noise", "calibration", "rfi"):
            annotations[o.stem] = annotations.get(o.stem, "") + f"{o.id}Annotation "
    for o in objs:
        _, rep, unit, _ = _KINDS[o.kind]
        dmd = f' dmdID="{annotations[o.stem]}"' if o.kind == "measurement" else ""
        out += [
            f'      <xfdu:contentUnit unitType="{unit}" repID="{rep}"{dmd}>',
            f'        <dataObjectPointer dataObjectID="{o.id}"/>',
            "      </xfdu:contentUnit>",
        ]
    out += ["    </xfdu:contentUnit>", "  </informationPackageMap>", "  <metadataSection>"]
    for o in objs:
        if o.kind not in ("measurement", "quicklook"):
            out += [
                f'    <metadataObject ID="{o.id}Annotation" classification="DESCRIPTION" '
                'category="DMD">',
                f'      <dataObjectPointer dataObjectID="{o.id}"/>',
                "    </metadataObject>",
            ]
    proc_start = f.processing_stop - timedelta(minutes=16, seconds=10)
    slc = (
        f"{s.mission}_{s.mode}_SL1__1_{s.pol}_{s.start - timedelta(seconds=3):%Y%m%dT%H%M%S}_"
        f"{f.stop + timedelta(seconds=5):%Y%m%dT%H%M%S}_{f.orbit:06d}_{f.datatake:06X}_"
        f"{hashlib.sha256(f.product_id.encode()).hexdigest()[4:8].upper()}.SAFE"
    )
    out += [
        '    <metadataObject ID="processing" classification="PROVENANCE" category="PDI">',
        '      <metadataWrap mimeType="text/xml" vocabularyName="SAFE" textInfo="Processing">',
        "        <xmlData>",
        f'          <safe:processing name="GRD Post Processing" start="{_iso(proc_start)}" '
        f'stop="{_iso(f.processing_stop)}">',
        '            <safe:facility country="Germany" name="Copernicus S1 Core Ground Segment '
        '- DPA" organisation="ESA" site="DLR-Oberpfaffenhofen">',
        f'              <safe:software name="Sentinel-1 IPF" version="{f.ipf}"/>',
        "            </safe:facility>",
        f'            <safe:resource name="{slc}" role="Level-1 Intermediate SLC Product"/>',
        f'            <safe:resource name="{s.mission}_AUX_CAL_V20190228T092500.SAFE" '
        'role="AUX_CAL"/>',
        f'            <safe:resource name="{s.mission}_OPER_AUX_RESORB_OPOD_'
        f'{f.processing_stop - timedelta(hours=1):%Y%m%dT%H%M%S}.EOF" role="AUX_RES"/>',
        '            <safe:resource name="Sentinel-1 Product Specification (S1-RS-MDA-52-7441)" '
        'role="product specification"/>',
        "          </safe:processing>",
        "        </xmlData>",
        "      </metadataWrap>",
        "    </metadataObject>",
    ]
    out += _wrap(
        "platform",
        "Platform Description",
        [
            "<safe:platform>",
            f"  <safe:nssdcIdentifier>{_SATELLITES[s.mission][4]}</safe:nssdcIdentifier>",
            "  <safe:familyName>SENTINEL-1</safe:familyName>",
            f"  <safe:number>{s.mission[-1]}</safe:number>",
            "  <safe:instrument>",
            '    <safe:familyName abbreviation="SAR">Synthetic Aperture Radar</safe:familyName>',
            "    <safe:extension>",
            "      <s1sarl1:instrumentMode>",
            f"        <s1sarl1:mode>{f.inst_mode}</s1sarl1:mode>",
            f"        <s1sarl1:swath>{s.mode}</s1sarl1:swath>",
            "      </s1sarl1:instrumentMode>",
            "    </safe:extension>",
            "  </safe:instrument>",
            "</safe:platform>",
        ],
    )
    out += _wrap(
        "measurementOrbitReference",
        "Orbit Reference",
        [
            "<safe:orbitReference>",
            f'  <safe:orbitNumber type="start">{f.orbit}</safe:orbitNumber>',
            f'  <safe:orbitNumber type="stop">{f.orbit}</safe:orbitNumber>',
            *(
                f'  <safe:relativeOrbitNumber type="{t}">{f.relative_orbit}'
                "</safe:relativeOrbitNumber>"
                for t in ("start", "stop")
            ),
            f"  <safe:cycleNumber>{f.cycle}</safe:cycleNumber>",
            "  <safe:phaseIdentifier>1</safe:phaseIdentifier>",
            "  <safe:extension>",
            "    <s1:orbitProperties>",
            f"      <s1:pass>{'ASCENDING' if s.ascending else 'DESCENDING'}</s1:pass>",
            f"      <s1:ascendingNodeTime>{_iso(f.anx)}</s1:ascendingNodeTime>",
            "    </s1:orbitProperties>",
            "  </safe:extension>",
            "</safe:orbitReference>",
        ],
    )
    slice_number = 1 + zlib.crc32(f.product_id.encode()) % 12
    segment_start = s.start - timedelta(seconds=(slice_number - 1) * s.duration_s + 2.5)
    pol_lines = [
        f"  <s1sarl1:transmitterReceiverPolarisation>{p.upper()}"
        "</s1sarl1:transmitterReceiverPolarisation>"
        for p, _ in f.pols
    ]
    out += _wrap(
        "generalProductInformation",
        "General Product Information",
        [
            "<s1sarl1:standAloneProductInformation>",
            f"  <s1sarl1:instrumentConfigurationID>{6 if f.ipf < '003.40' else 7}"
            "</s1sarl1:instrumentConfigurationID>",
            f"  <s1sarl1:missionDataTakeID>{f.datatake}</s1sarl1:missionDataTakeID>",
            *pol_lines,
            "  <s1sarl1:productClass>S</s1sarl1:productClass>",
            "  <s1sarl1:productClassDescription>SAR Standard L1 Product"
            "</s1sarl1:productClassDescription>",
            "  <s1sarl1:productComposition>Slice</s1sarl1:productComposition>",
            "  <s1sarl1:productType>GRD</s1sarl1:productType>",
            "  <s1sarl1:productTimelinessCategory>Fast-24h</s1sarl1:productTimelinessCategory>",
            "  <s1sarl1:sliceProductFlag>true</s1sarl1:sliceProductFlag>",
            f"  <s1sarl1:segmentStartTime>{_iso(segment_start)}</s1sarl1:segmentStartTime>",
            f"  <s1sarl1:sliceNumber>{slice_number}</s1sarl1:sliceNumber>",
            f"  <s1sarl1:totalSlices>{slice_number + 3}</s1sarl1:totalSlices>",
            "</s1sarl1:standAloneProductInformation>",
        ],
    )
    anx_ms = (s.start - f.anx).total_seconds() * 1000
    out += _wrap(
        "acquisitionPeriod",
        "Acquisition Period",
        [
            "<safe:acquisitionPeriod>",
            f"  <safe:startTime>{_iso(s.start)}</safe:startTime>",
            f"  <safe:stopTime>{_iso(f.stop)}</safe:stopTime>",
            "  <safe:extension>",
            "    <s1:timeANX>",
            f"      <s1:startTimeANX>{anx_ms:.6e}</s1:startTimeANX>",
            f"      <s1:stopTimeANX>{anx_ms + s.duration_s * 1000:.6e}</s1:stopTimeANX>",
            "    </s1:timeANX>",
            "  </safe:extension>",
            "</safe:acquisitionPeriod>",
        ],
    )
    gml = " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in f.corners)
    out += _wrap(
        "measurementFrameSet",
        "Frame Set",
        [
            "<safe:frameSet>",
            "  <safe:frame>",
            '    <safe:footPrint srsName="http://www.opengis.net/gml/srs/epsg.xml#4326">',
            f"      <gml:coordinates>{gml}</gml:coordinates>",
            "    </safe:footPrint>",
            "  </safe:frame>",
            "</safe:frameSet>",
        ],
    )
    schemas = list(_SCHEMAS)
    if f.has_rfi:
        schemas.insert(3, ("s1Level1RfiSchema", "XML Schema", _RFI_XSD))
    for id_, vocabulary, xsd in schemas:
        out += [
            f'    <metadataObject ID="{id_}" classification="SYNTAX" category="REP">',
            f'      <metadataReference mimeType="text/xml" vocabularyName="{vocabulary}" '
            f'locatorType="URL" href="./support/{xsd}"/>',
            "    </metadataObject>",
        ]
    out += ["  </metadataSection>", "  <dataObjectSection>"]
    for o in objs:
        _, rep, _, mime = _KINDS[o.kind]
        data = files[o.safe_path]
        out += [
            f'    <dataObject ID="{o.id}" repID="{rep}">',
            f'      <byteStream mimeType="{mime}" size="{len(data)}">',
            f'        <fileLocation locatorType="URL" href="./{o.safe_path}"/>',
            f'        <checksum checksumName="MD5">{hashlib.md5(data).hexdigest()}</checksum>',
            "      </byteStream>",
            "    </dataObject>",
        ]
    out += ["  </dataObjectSection>", "</xfdu:XFDU>"]
    return _xml(out)


# --------------------------------------------------------------------------------------------
# productInfo.json and STAC
# --------------------------------------------------------------------------------------------


def jackson(value: Any, level: int = 0) -> str:
    """JSON in the Jackson pretty-printer style of the real ``*Info.json`` files
    (``"k" : v``): S1's productInfo.json, S2's productInfo.json and tileInfo.json."""
    pad = "  " * level
    if isinstance(value, dict):
        if not value:
            return "{ }"
        items = [f"{pad}  {json.dumps(k)} : {jackson(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        return "[ " + ", ".join(jackson(v, level) for v in value) + " ]" if value else "[ ]"
    return json.dumps(value)


def _ms_z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _product_info(f: _Facts, footprint: dict[str, Any], filename_map: dict[str, str]) -> bytes:
    s = f.spec
    scihub = f.processing_stop + timedelta(minutes=3, seconds=18, milliseconds=549)
    info = {
        "id": f.product_id,
        "path": f.prefix,
        "missionId": s.mission,
        "productType": "GRD",
        "resolution": s.resolution,
        "mode": s.mode,
        "polarization": s.pol,
        "startTime": f"{s.start:%Y-%m-%dT%H:%M:%S}",
        "stopTime": f"{f.stop:%Y-%m-%dT%H:%M:%S}",
        "absoluteOrbitNumber": f.orbit,
        "missionDataTakeId": f.datatake,
        "productUniqueIdentifier": f.unique,
        "sciHubIngestion": _ms_z(scihub),
        "s3Ingestion": _ms_z(scihub + timedelta(hours=2, minutes=7, seconds=30, milliseconds=22)),
        "sciHubId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eopack-demo:{f.product_id}")),
        "footprint": footprint,
        "filenameMap": filename_map,
        "version": 3,
    }
    return jackson(info).encode()


def _stac_time(t: datetime) -> str:
    return t.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stac_item(f: _Facts, footprint: dict[str, Any]) -> dict[str, Any]:
    """An Earth Search v1 `sentinel-1-grd` item: id without the unique suffix, s3:// assets."""
    s = f.spec
    root = f"s3://{DEMO_BUCKET}/{f.prefix}"
    ring = footprint["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    res_rg, res_az, spacing, looks_rg, looks_az, enl = _SAR_RESOLUTION[(f.inst_mode, s.resolution)]
    assets: dict[str, Any] = {
        "safe-manifest": {
            "href": f"{root}/manifest.safe",
            "type": "application/xml",
            "title": "Manifest File",
            "roles": ["metadata"],
        }
    }
    for pol, _ in f.pols:
        up = pol.upper()
        assets[pol] = {
            "href": f"{root}/measurement/{f.swath}-{pol}.tiff",
            "type": "image/tiff; application=geotiff",
            "title": f"{up} Data",
            "roles": ["data"],
        }
        for kind, key, title in (
            ("schema-product", f"annotation/{f.swath}-{pol}.xml", "Product Schema"),
            (
                "schema-calibration",
                f"annotation/calibration/calibration-{f.swath}-{pol}.xml",
                "Calibration Schema",
            ),
            ("schema-noise", f"annotation/calibration/noise-{f.swath}-{pol}.xml", "Noise Schema"),
        ):
            assets[f"{kind}-{pol}"] = {
                "href": f"{root}/{key}",
                "type": "application/xml",
                "title": f"{up} {title}",
                "roles": ["metadata"],
            }
    assets["thumbnail"] = {
        "href": f"{root}/preview/quick-look.png",
        "type": "image/png",
        "title": "Preview Image",
        "roles": ["thumbnail"],
    }
    mid = s.start + (f.stop - s.start) / 2
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
        ],
        "id": f.product_id[:-5],
        "collection": "sentinel-1-grd",
        "geometry": json.loads(json.dumps(footprint)),
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {
            "datetime": _stac_time(mid),
            "start_datetime": _stac_time(s.start),
            "end_datetime": _stac_time(f.stop),
            "platform": f"sentinel-1{s.mission[-1].lower()}",
            "constellation": "sentinel-1",
            "instruments": ["c-sar"],
            "sar:instrument_mode": f.inst_mode,
            "sar:frequency_band": "C",
            "sar:center_frequency": 5.405,
            "sar:polarizations": [p.upper() for p, _ in f.pols],
            "sar:product_type": "GRD",
            "sar:observation_direction": "right",
            "sar:resolution_range": res_rg,
            "sar:resolution_azimuth": res_az,
            "sar:pixel_spacing_range": spacing,
            "sar:pixel_spacing_azimuth": spacing,
            "sar:looks_range": looks_rg,
            "sar:looks_azimuth": looks_az,
            "sar:looks_equivalent_number": enl,
            "sat:orbit_state": "ascending" if s.ascending else "descending",
            "sat:absolute_orbit": f.orbit,
            "sat:relative_orbit": f.relative_orbit,
            "processing:software": {"sentinel1-ipf": f.ipf},
            "s1:product_identifier": f.product_id,
            "s1:datatake_id": str(f.datatake),
            "s1:processing_level": "1",
            "s1:product_timeliness": "Fast-24h",
            "s1:resolution": "high" if s.resolution == "H" else "medium",
            "s1:total_slices": 1 + zlib.crc32(f.product_id.encode()) % 12 + 3,
            "earthsearch:s3_path": root,
        },
        "assets": assets,
        "links": [],
    }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _build(spec: _Spec, shared: dict[str, bytes]) -> DemoProduct:
    f = _facts(spec)
    safe: dict[str, bytes] = {}  # SAFE path -> bytes, as ESA made them (what the manifest lists)
    fmap: dict[str, str] = {}  # SAFE path -> bucket key
    bucket_copy: dict[str, bytes] = {}  # SAFE path -> different bytes the bucket holds instead
    bands = _backscatter(f)

    def add(safe_path: str, key: str, data: bytes) -> None:
        safe[safe_path] = data
        fmap[safe_path] = key

    for pol, number in f.pols:
        stem, tag = f.stem(pol, number), f"{f.swath}-{pol}"
        add(
            f"annotation/{stem}.xml",
            f"annotation/{tag}.xml",
            _annotation_xml(f, pol, number, bands[pol]),
        )
        add(
            f"annotation/calibration/calibration-{stem}.xml",
            f"annotation/calibration/calibration-{tag}.xml",
            _calibration_xml(f, pol, number),
        )
        add(
            f"annotation/calibration/noise-{stem}.xml",
            f"annotation/calibration/noise-{tag}.xml",
            _noise_xml(f, pol, number),
        )
        if f.has_rfi:
            add(
                f"annotation/rfi/rfi-{stem}.xml",
                f"annotation/rfi/rfi-{tag}.xml",
                _rfi_xml(f, pol, number),
            )
        tiff = _measurement_tiff(f, pol, bands[pol])
        add(f"measurement/{stem}.tiff", f"measurement/{tag}.tiff", tiff)
        if spec.reencoded:
            bucket_copy[f"measurement/{stem}.tiff"] = _reencode_cog(tiff)
    add("preview/quick-look.png", "preview/quick-look.png", _quicklook(f, bands))
    add("preview/map-overlay.kml", "preview/map-overlay.kml", _kml(f))
    add("preview/icons/logo.png", "preview/icons/logo.png", shared["logo"])
    for xsd in sorted([*_SUPPORT_XSDS, *([_RFI_XSD] if f.has_rfi else [])]):
        add(f"support/{xsd}", f"support/{xsd}", shared[xsd])
    listed = sorted(p for p in safe if not p.startswith(("support/", "preview/icons/")))
    add("preview/product-preview.html", "preview/product-preview.html", _preview_html(f, listed))
    report_time = f"{f.processing_stop:%Y%m%dT%H%M%S}"
    add(
        f"{f.product_id}.SAFE-report-{report_time}.pdf",
        f"report-{report_time}.pdf",
        _pdf(
            [
                "Sentinel-1 Product Report (eopack demo)",
                f"Product: {f.product_id}",
                f"Sensing: {_iso(spec.start)} - {_iso(f.stop)}",
                f"Absolute orbit {f.orbit}, relative orbit {f.relative_orbit}",
                f"Processed {f.processing_stop:%Y-%m-%dT%H:%M:%S} by Sentinel-1 IPF {f.ipf}",
            ]
        ),
    )
    add("manifest.safe", "manifest.safe", _manifest(f, safe))
    footprint = _footprint(f)
    objects = {fmap[p]: bucket_copy.get(p, data) for p, data in safe.items()}
    objects["productInfo.json"] = _product_info(f, footprint, dict(fmap))
    return DemoProduct(
        product_id=f.product_id,
        prefix=f.prefix,
        objects=objects,
        filename_map=dict(fmap),
        stac_item=_stac_item(f, footprint),
        footprint=footprint,
        originals={p: safe[p] for p in bucket_copy},
    )


def build_s1_products() -> list[DemoProduct]:
    """Build the demo products (see ``_SPECS``); identical bytes on every call."""
    shared = {"logo": _logo()}
    for name, root in [*_SUPPORT_XSDS.items(), (_RFI_XSD, "rfi")]:
        shared[name] = _xsd(name, root)
    return [_build(spec, shared) for spec in _SPECS]


def seed_s1_bucket(s3_client: Any, products: list[DemoProduct], bucket: str = DEMO_BUCKET) -> None:
    """Create the bucket like the real one (eu-central-1) and upload every object.

    Requester pays is switched on last, so that a server enforcing it does not refuse the
    uploads that precede it.
    """
    s3_client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    for product in products:
        for key in sorted(product.objects):
            s3_client.put_object(
                Bucket=bucket, Key=f"{product.prefix}/{key}", Body=product.objects[key]
            )
    s3_client.put_bucket_request_payment(
        Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
    )


def write_stac_items(
    products: list[DemoProduct],
    path: pathlib.Path,
    extra_items: Iterable[dict[str, Any]] = (),
) -> None:
    """Write all items as a STAC ItemCollection for `rustac serve --create-collections PATH`.

    ``extra_items`` (e.g. the optical items of :mod:`eopack.demo.opticalworld`) are served too.
    """
    items = sorted(
        [*(p.stac_item for p in products), *extra_items],
        key=lambda item: (item["id"], item["collection"]),
    )
    collection = {"type": "FeatureCollection", "features": items}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(collection, sort_keys=True, indent=2) + "\n", encoding="utf-8")
