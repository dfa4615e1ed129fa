"""Earth Search v1 STAC items for the optical collections of the demo world.

Why: the offline demo and the tests need search records for ``sentinel-2-l1c``,
``sentinel-2-l2a`` and ``landsat-c2-l2`` shaped exactly like Earth Search v1's, so that the
search code is exercised against the real shapes without touching the internet. The S2
products behind the items are built by :mod:`eopack.demo.s2world`.

Real shapes followed (checked against real Earth Search v1 responses):

- S2 ids ``S2B_32TPT_20210312_0_L1C``; ``s2:product_uri`` is the ESA SAFE name; ``mgrs:*``,
  ``grid:code``, ``proj:epsg``, ``s2:datatake_id`` (absolute orbit), no ``sat:*`` properties;
  assets named by common name (``red``, ``blue``, ...), not ``B04``.
- L1C assets are the original JPEG 2000 files, ``s3://sentinel-s2-l1c/tiles/...`` (requester
  pays), ``granule_metadata`` = ``metadata.xml``, ``tileinfo_metadata`` = ``tileInfo.json``,
  ``thumbnail`` = ``preview.jpg``; ``earthsearch:s3_path`` points at Earth Search's own item
  folder ``s3://earthsearch-data/sentinel-2-l1c/...``, not at the tile.
- L2A assets are the public COGs (``https://sentinel-cogs.s3.us-west-2.amazonaws.com/...``)
  plus ``<name>-jp2`` assets on ``s3://sentinel-s2-l2a/tiles/...`` (flat, as Earth Search
  writes them, although the bucket keeps them under ``R10m/`` etc.); ``earthsearch:s3_path``
  is the COG folder.
- Landsat ids drop the processing date (``LC08_L2SP_195027_20210311_02_T1``); assets are
  ``s3://usgs-landsat/collection02/level-2/standard/oli-tirs/...`` (requester pays, so s3://,
  with ``storage:*`` hints) in the folder of the full USGS product id.

Every value is a pure function of the fixed tables below (no clock, no unseeded randomness),
so :func:`build_optical_items` returns identical items on every call. Orbit numbers, sun
angles and Earth-Sun distances come from small physical models, so they are consistent with
the dates, not copied.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from rasterio.crs import CRS
from rasterio.warp import transform

EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
S2_L1C = "sentinel-2-l1c"
S2_L2A = "sentinel-2-l2a"
LANDSAT = "landsat-c2-l2"
OPTICAL_COLLECTIONS = (S2_L1C, S2_L2A, LANDSAT)

_S2_LICENSE = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"
_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_EXT = "https://stac-extensions.github.io"
_S2_EXTENSIONS = [
    f"{_EXT}/view/v1.0.0/schema.json",
    f"{_EXT}/eo/v1.1.0/schema.json",
    f"{_EXT}/mgrs/v1.0.0/schema.json",
    f"{_EXT}/projection/v1.1.0/schema.json",
    f"{_EXT}/grid/v1.0.0/schema.json",
    f"{_EXT}/raster/v1.1.0/schema.json",
    f"{_EXT}/processing/v1.1.0/schema.json",
]
_LANDSAT_EXTENSIONS = [
    f"{_EXT}/eo/v1.1.0/schema.json",
    f"{_EXT}/view/v1.0.0/schema.json",
    f"{_EXT}/projection/v1.1.0/schema.json",
    f"{_EXT}/raster/v1.1.0/schema.json",
    f"{_EXT}/scientific/v1.0.0/schema.json",
    f"{_EXT}/storage/v1.0.0/schema.json",
    "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
]


# --------------------------------------------------------------------------------------------
# Small physical models
# --------------------------------------------------------------------------------------------


def _hash_unit(label: str) -> float:
    """A deterministic number in [0, 1) for ``label``."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") / 2**64


def _sun_angles(t: datetime, lon: float, lat: float) -> tuple[float, float]:
    """(azimuth, elevation) in degrees, NOAA's low-precision solar position."""
    doy = t.timetuple().tm_yday
    hours = t.hour + t.minute / 60 + t.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hours - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    hour_angle = math.radians((hours * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = math.radians(lat)
    elevation = math.asin(
        math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    )
    azimuth = math.atan2(
        math.sin(hour_angle), math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi)
    )
    return (math.degrees(azimuth) + 180) % 360, math.degrees(elevation)


def reflectance_conversion_factor(day: date) -> float:
    """ESA's Earth-Sun distance correction 1 / d(t)^2 (``s2:reflectance_conversion_factor``)."""
    doy = day.timetuple().tm_yday
    return 1 / (1 - 0.01673 * math.cos(0.0172 * (doy - 4))) ** 2


# Sentinel-2 orbits: 143 orbits in a 10-day repeat cycle. Per satellite: a real absolute orbit,
# the UTC time of its datatake start over the Alps (S2B: S2B_MSIL1C_20210312T102019_N0209_R065_
# T32TPT, orbit 20969; S2A: orbit 41859 of 2023-06-28, shifted so that both cross R065 at the
# same local time) and k in relative = (absolute + k) % 143 + 1, which holds for real products
# of both (S2A A041859 -> R106, A035167 -> R135; S2B A036143 -> R081, A025544 -> R064).
_S2_ORBIT_S = 10 * 86400 / 143
_S2_ORBITS: dict[str, tuple[int, datetime, int]] = {
    "S2A": (41859, datetime(2023, 6, 28, 7, 9, 31), 2),
    "S2B": (20969, datetime(2021, 3, 12, 10, 20, 19), -27),
}


def s2_relative_orbit(mission: str, absolute: int) -> int:
    """Relative orbit (1..143) of an S2 absolute orbit."""
    return (absolute + _S2_ORBITS[mission][2]) % 143 + 1


def _s2_absolute_orbit(mission: str, relative: int, start: datetime) -> int:
    """The absolute orbit of ``mission`` on ``relative`` orbit nearest to ``start``."""
    ref, ref_time, _ = _S2_ORBITS[mission]
    guess = ref + round((start - ref_time).total_seconds() / _S2_ORBIT_S)
    best = min(
        (n for n in range(guess - 80, guess + 81) if s2_relative_orbit(mission, n) == relative),
        key=lambda n: abs(n - guess),
    )
    predicted = ref_time + timedelta(seconds=(best - ref) * _S2_ORBIT_S)
    if abs((predicted - start).total_seconds()) > 900:
        raise ValueError(f"{mission} is not on relative orbit {relative} at {start:%Y-%m-%d %H:%M}")
    return best


# --------------------------------------------------------------------------------------------
# Sentinel-2
# --------------------------------------------------------------------------------------------

# MGRS tile -> (100 km column index, 100 km row index) of its square in its UTM zone. The S2
# tile starts 20 m west of the square and reaches 109.8 km east and south of its top.
_TILES: dict[str, tuple[int, int]] = {
    "32TPT": (6, 52),  # alps (Tyrol)
    "32UMU": (4, 53),  # rhine (Freiburg / Strasbourg)
    "29SMC": (4, 42),  # lisbon
    "33UXP": (6, 53),  # Vienna: no demo AOI
}
_TILE_SIZE = 109_800

# (asset key, file, description, common name, centre wavelength µm, FWHM µm, gsd m)
_S2_BANDS: tuple[tuple[str, str, str, str, float, float, int], ...] = (
    ("coastal", "B01", "Coastal aerosol (band 1)", "coastal", 0.443, 0.027, 60),
    ("blue", "B02", "Blue (band 2)", "blue", 0.49, 0.098, 10),
    ("green", "B03", "Green (band 3)", "green", 0.56, 0.045, 10),
    ("red", "B04", "Red (band 4)", "red", 0.665, 0.038, 10),
    ("rededge1", "B05", "Red edge 1 (band 5)", "rededge", 0.704, 0.019, 20),
    ("rededge2", "B06", "Red edge 2 (band 6)", "rededge", 0.74, 0.018, 20),
    ("rededge3", "B07", "Red edge 3 (band 7)", "rededge", 0.783, 0.028, 20),
    ("nir", "B08", "NIR 1 (band 8)", "nir", 0.842, 0.145, 10),
    ("nir08", "B8A", "NIR 2 (band 8A)", "nir08", 0.865, 0.033, 20),
    ("nir09", "B09", "NIR 3 (band 9)", "nir09", 0.945, 0.026, 60),
    ("cirrus", "B10", "Cirrus (band 10)", "cirrus", 1.3735, 0.075, 60),  # L1C only
    ("swir16", "B11", "SWIR 1 (band 11)", "swir16", 1.61, 0.143, 20),
    ("swir22", "B12", "SWIR 2 (band 12)", "swir22", 2.19, 0.242, 20),
)
# Land cover shares (vegetation, not vegetated, water, snow) of the cloud-free part, by tile
# and season (Nov-Apr, May-Oct): the SCL percentages of L2A items.
_COVER: dict[tuple[str, bool], tuple[float, float, float, float]] = {
    ("32TPT", False): (0.22, 0.30, 0.01, 0.47),
    ("32TPT", True): (0.62, 0.30, 0.01, 0.07),
    ("32UMU", False): (0.48, 0.46, 0.02, 0.04),
    ("32UMU", True): (0.71, 0.26, 0.03, 0.0),
    ("29SMC", False): (0.28, 0.27, 0.45, 0.0),
    ("29SMC", True): (0.18, 0.37, 0.45, 0.0),
    ("33UXP", False): (0.44, 0.52, 0.02, 0.02),
}


@dataclass(frozen=True)
class _S2Spec:
    """One S2 acquisition of one tile; it yields an L1C and an L2A item."""

    mission: str  # S2A / S2B
    tile: str
    start: datetime  # datatake sensing start, as in the product name
    relative_orbit: int
    cloud_l1c: float
    cloud_l2a: float
    data_from_x: tuple[int, int] | None = None  # swath edge: data east of x(top) .. x(bottom)

    @property
    def zone(self) -> int:
        return int(self.tile[:2])


def _s2(
    mission: str,
    tile: str,
    start: str,
    orbit: int,
    cloud_l1c: float,
    cloud_l2a: float,
    data_from_x: tuple[int, int] | None = None,
) -> _S2Spec:
    t = datetime.strptime(start, "%Y%m%dT%H%M%S")
    return _S2Spec(mission, tile, t, orbit, cloud_l1c, cloud_l2a, data_from_x)


# Demo AOIs: alps 10..11/46.5..47.2, rhine 7.5..8.5/47.5..48.5, lisbon -9.5..-8.8/38.6..39;
# demo date ranges 2021-03-01..31 and 2023-07-01..31. Dates and relative orbits follow the
# real 10-day cycles (see _s2_absolute_orbit); no S2 pass covers an AOI on 2021-03-31.
_S2_SPECS: tuple[_S2Spec, ...] = (
    _s2("S2B", "32TPT", "20210312T102019", 65, 12.44, 11.87),  # alps, 2021-03: clear
    _s2("S2A", "32TPT", "20210317T102021", 65, 63.51, 61.02),  # alps, 2021-03: cloudy twin
    _s2("S2A", "29SMC", "20210328T112121", 80, 0.87, 0.12),  # lisbon, 2021-03
    _s2("S2A", "32UMU", "20210330T103021", 108, 27.83, 26.40),  # rhine, 2021-03, PB 03.00
    _s2("S2B", "33UXP", "20210313T095029", 79, 2.21, 1.93),  # Vienna: outside every AOI
    _s2("S2B", "32TPT", "20230630T102559", 65, 1.03, 0.71),  # alps, day before 2023-07
    _s2("S2A", "32TPT", "20230715T101601", 65, 95.14, 94.62),  # alps, 2023-07: overcast
    # alps tile, but the R022 swath only reaches its eastern strip (east of ~11.3 E)
    _s2("S2B", "32TPT", "20230717T100559", 22, 5.08, 4.77, (690_000, 672_000)),
    _s2("S2A", "32UMU", "20230731T103631", 8, 41.30, 39.85),  # rhine, last day of 2023-07
    _s2("S2B", "29SMC", "20230731T113319", 80, 0.64, 0.38),  # lisbon, last day, latest, clear
)


def _s2_baseline(level: str, t: datetime) -> str:
    """Processing baseline in use on ``t`` (ESA's PB history)."""
    if t < datetime(2021, 3, 30):
        return "02.09" if level == "L1C" else "02.14"
    if t < datetime(2021, 6, 30):
        return "03.00"
    if t < datetime(2022, 1, 25):
        return "03.01"
    if t < datetime(2022, 12, 6):
        return "04.00"
    return "05.09"


def _s2_centre(mission: str, t: datetime) -> str:
    """Processing centre code in datastrip and granule ids."""
    if t >= datetime(2022, 1, 1):
        return f"2{mission[-1]}PS"
    return "VGS2" if mission == "S2A" else "VGS4"


def _tile_frame(spec: _S2Spec) -> tuple[int, float, float]:
    """EPSG code and upper-left UTM corner of the tile."""
    col, row = _TILES[spec.tile]
    return 32600 + spec.zone, col * 100_000 - 20.0, (row + 1) * 100_000.0


def _ccw(ring: list[list[float]]) -> list[list[float]]:
    """Closed ring, counter-clockwise (RFC 7946)."""
    area2 = sum(
        ring[i][0] * ring[(i + 1) % len(ring)][1] - ring[(i + 1) % len(ring)][0] * ring[i][1]
        for i in range(len(ring))
    )
    if area2 < 0:
        ring = ring[::-1]
    return [*ring, list(ring[0])]


def _to_lonlat(epsg: int, xs: list[float], ys: list[float]) -> list[list[float]]:
    lons, lats = transform(CRS.from_epsg(epsg), CRS.from_epsg(4326), xs, ys)
    return [[round(lon, 9), round(lat, 9)] for lon, lat in zip(lons, lats, strict=True)]


def _s2_footprint(spec: _S2Spec) -> tuple[dict[str, Any], float]:
    """Data footprint (GeoJSON polygon) and the share of the tile without data (percent)."""
    epsg, x0, y0 = _tile_frame(spec)
    x1, y1 = x0 + _TILE_SIZE, y0 - _TILE_SIZE
    if spec.data_from_x is None:
        xs, ys = [x0, x1, x1, x0], [y0, y0, y1, y1]
        nodata = 0.0
    else:
        top, bottom = spec.data_from_x
        xs, ys = [top, x1, x1, bottom], [y0, y0, y1, y1]
        nodata = 100 * ((top + bottom) / 2 - x0) / _TILE_SIZE
    ring = _ccw(_to_lonlat(epsg, xs, ys))
    return {"type": "Polygon", "coordinates": [ring]}, nodata


def _bbox(geometry: dict[str, Any]) -> list[float]:
    ring = geometry["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return [min(lons), min(lats), max(lons), max(lats)]


def _centre(geometry: dict[str, Any]) -> tuple[float, float]:
    ring = geometry["coordinates"][0][:-1]
    return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)


def _iso(t: datetime) -> str:
    """Earth Search's timestamp form: microseconds, ``Z``."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class _S2Facts:
    """What both levels of one acquisition share."""

    spec: _S2Spec
    absolute_orbit: int
    sensing: datetime  # tile sensing time: the item datetime
    geometry: dict[str, Any]
    nodata: float

    @property
    def path(self) -> str:
        """``{zone}/{band}/{square}`` as in bucket keys."""
        t = self.spec.tile
        return f"{t[:2].lstrip('0')}/{t[2]}/{t[3:]}"

    def item_id(self, level: str) -> str:
        s = self.spec
        return f"{s.mission}_{s.tile}_{self.sensing:%Y%m%d}_0_{level}"


def _s2_facts(spec: _S2Spec) -> _S2Facts:
    absolute = _s2_absolute_orbit(spec.mission, spec.relative_orbit, spec.start)
    offset_ms = 60_000 + round(_hash_unit(f"{spec.mission}{spec.tile}{spec.start}") * 400_000)
    sensing = spec.start + timedelta(milliseconds=offset_ms)
    geometry, nodata = _s2_footprint(spec)
    return _S2Facts(spec, absolute, sensing, geometry, nodata)


def _raster_band(gsd: int, offset: float, scale: float = 0.0001) -> dict[str, Any]:
    return {
        "nodata": 0,
        "data_type": "uint16",
        "bits_per_sample": 15,
        "spatial_resolution": gsd,
        "scale": scale,
        "offset": offset,
    }


def _grid(epsg_x0_y0: tuple[int, float, float], gsd: int) -> dict[str, Any]:
    _, x0, y0 = epsg_x0_y0
    n = _TILE_SIZE // gsd
    return {"proj:shape": [n, n], "proj:transform": [gsd, 0, x0, 0, -gsd, y0]}


def _eo_band(key: str) -> dict[str, Any]:
    for name, _, description, common, centre, fwhm, _ in _S2_BANDS:
        if name == key:
            return {
                "name": name,
                "common_name": common,
                "description": description,
                "center_wavelength": centre,
                "full_width_half_max": fwhm,
            }
    raise KeyError(key)


def _s2_assets(f: _S2Facts, level: str, baseline: str) -> dict[str, Any]:
    """Assets as Earth Search v1 lists them (L1C: JPEG 2000; L2A: COGs and ``-jp2`` copies)."""
    frame = _tile_frame(f.spec)
    t = f.sensing
    offset = -0.1 if baseline >= "04.00" else 0.0
    tiles = f"{f.path}/{t.year}/{t.month}/{t.day}/0"
    jp2_root = f"s3://sentinel-s2-{level.lower()}/tiles/{tiles}"
    cog_root = (
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/"
        f"{f.path}/{t.year}/{t.month}/{f.item_id('L2A')}"
    )
    visual_bands = [_eo_band(k) for k in ("red", "green", "blue")]

    def raster_assets(root: str, ext: str, media: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, file, description, _, _, _, gsd in _S2_BANDS:
            if key == "cirrus" and level == "L2A":
                continue
            out[key] = {
                "href": f"{root}/{file}.{ext}",
                "type": media,
                "title": f"{description} - {gsd}m",
                "eo:bands": [_eo_band(key)],
                "gsd": gsd,
                **_grid(frame, gsd),
                "raster:bands": [_raster_band(gsd, offset)],
                "roles": ["data", "reflectance"],
            }
        if level == "L2A":
            out["aot"] = {
                "href": f"{root}/AOT.{ext}",
                "type": media,
                "title": "Aerosol optical thickness (AOT)",
                **_grid(frame, 20),
                "raster:bands": [_raster_band(20, 0, 0.001)],
                "roles": ["data", "reflectance"],
            }
            out["scl"] = {
                "href": f"{root}/SCL.{ext}",
                "type": media,
                "title": "Scene classification map (SCL)",
                **_grid(frame, 20),
                "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
                "roles": ["data", "reflectance"],
            }
            out["wvp"] = {
                "href": f"{root}/WVP.{ext}",
                "type": media,
                "title": "Water vapour (WVP)",
                **_grid(frame, 20),
                "raster:bands": [{**_raster_band(20, 0, 0.001), "unit": "cm"}],
                "roles": ["data", "reflectance"],
            }
        out["visual"] = {
            "href": f"{root}/TCI.{ext}",
            "type": media,
            "title": "True color image",
            "eo:bands": visual_bands,
            **_grid(frame, 10),
            "roles": ["visual"],
        }
        return out

    if level == "L1C":
        assets = raster_assets(jp2_root, "jp2", "image/jp2")
        assets["thumbnail"] = {
            "href": f"{jp2_root}/preview.jpg",
            "type": "image/jpeg",
            "title": "Thumbnail image",
            "roles": ["thumbnail"],
        }
        assets["tileinfo_metadata"] = {
            "href": f"{jp2_root}/tileInfo.json",
            "type": "application/json",
            "roles": ["metadata"],
        }
        assets["granule_metadata"] = {
            "href": f"{jp2_root}/metadata.xml",
            "type": "application/xml",
            "roles": ["metadata"],
        }
        return dict(sorted(assets.items()))
    cogs = raster_assets(cog_root, "tif", _COG)
    cogs["thumbnail"] = {
        "href": f"{cog_root}/thumbnail.jpg",
        "type": "image/jpeg",
        "title": "Thumbnail image",
        "roles": ["thumbnail"],
    }
    cogs["tileinfo_metadata"] = {
        "href": f"{cog_root}/tileinfo_metadata.json",
        "type": "application/json",
        "roles": ["metadata"],
    }
    cogs["granule_metadata"] = {
        "href": f"{cog_root}/granule_metadata.xml",
        "type": "application/xml",
        "roles": ["metadata"],
    }
    jp2 = raster_assets(jp2_root, "jp2", "image/jp2")
    return {
        **dict(sorted(cogs.items())),
        **{f"{key}-jp2": jp2[key] for key in sorted(jp2)},
    }


def _scl_percentages(f: _S2Facts, cloud: float) -> dict[str, float]:
    """The L2A scene classification shares, summing to 100 with the cloud cover."""
    label = f.item_id("L2A")
    free = 100 - cloud  # shares of the cloud-free part below
    shadow = round(free * min(0.3, cloud / 100) * (0.3 + 0.4 * _hash_unit(label + "shadow")), 6)
    dark = round(free * (0.002 + 0.008 * _hash_unit(label + "dark")), 6)
    unclassified = round(free * (0.002 + 0.013 * _hash_unit(label + "uncl")), 6)
    rest = free - shadow - dark - unclassified
    veg, bare, water, snow = _COVER[(f.spec.tile, 5 <= f.sensing.month <= 10)]
    return {
        "s2:dark_features_percentage": dark,
        "s2:cloud_shadow_percentage": shadow,
        "s2:vegetation_percentage": round(rest * veg, 6),
        "s2:not_vegetated_percentage": round(rest * bare, 6),
        "s2:water_percentage": round(rest * water, 6),
        "s2:unclassified_percentage": unclassified,
        "s2:medium_proba_clouds_percentage": round(cloud * 0.36, 6),
        "s2:high_proba_clouds_percentage": round(cloud * 0.49, 6),
        "s2:thin_cirrus_percentage": round(cloud * 0.15, 6),
        "s2:snow_ice_percentage": round(rest * snow, 6),
    }


def _s2_item(f: _S2Facts, level: str) -> dict[str, Any]:
    s = f.spec
    collection = S2_L1C if level == "L1C" else S2_L2A
    item_id = f.item_id(level)
    baseline = _s2_baseline(level, s.start)
    hours = 1.6 + 1.2 * _hash_unit(item_id) + (1.5 if level == "L2A" else 0.0)
    generation = s.start + timedelta(seconds=round(hours * 3600))
    centre = _s2_centre(s.mission, s.start)
    datastrip_start = s.start + timedelta(seconds=round(5 + 90 * _hash_unit(item_id + "ds")))
    product_uri = (
        f"{s.mission}_MSI{level}_{s.start:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_"
        f"R{s.relative_orbit:03d}_T{s.tile}_{generation:%Y%m%dT%H%M%S}.SAFE"
    )
    cloud = s.cloud_l1c if level == "L1C" else s.cloud_l2a
    lon, lat = _centre(f.geometry)
    azimuth, elevation = _sun_angles(f.sensing, lon, lat)
    created = generation + timedelta(hours=2, seconds=round(3600 * _hash_unit(item_id + "c")))
    if level == "L1C":
        s3_path = (
            f"s3://earthsearch-data/sentinel-2-l1c/{f.path}/{f.sensing.year}/"
            f"{f.sensing.month}/{item_id}"
        )
    else:
        s3_path = (
            f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/{f.path}/{f.sensing.year}/"
            f"{f.sensing.month}/{item_id}"
        )
    props: dict[str, Any] = {
        "created": _iso(_ms(created)),
        "platform": f"sentinel-2{s.mission[-1].lower()}",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": cloud,
        "proj:epsg": 32600 + s.zone,
        "mgrs:utm_zone": s.zone,
        "mgrs:latitude_band": s.tile[2],
        "mgrs:grid_square": s.tile[3:],
        "grid:code": f"MGRS-{s.tile}",
        "view:sun_azimuth": round(azimuth, 12),
        "view:sun_elevation": round(elevation, 12),
        "s2:degraded_msi_data_percentage": round(0.02 * _hash_unit(item_id + "deg"), 4),
    }
    if level == "L2A":
        props["s2:nodata_pixel_percentage"] = round(f.nodata, 6)
        props["s2:saturated_defective_pixel_percentage"] = 0
        props.update(_scl_percentages(f, cloud))
    props.update(
        {
            "s2:product_type": f"S2MSI{level[1:]}",
            "s2:processing_baseline": baseline,
            "s2:product_uri": product_uri,
            "s2:generation_time": _iso(generation),
            "s2:datatake_id": (
                f"G{s.mission}_{s.start:%Y%m%dT%H%M%S}_{f.absolute_orbit:06d}_N{baseline}"
            ),
            "s2:datatake_type": "INS-NOBS",
            "s2:datastrip_id": (
                f"{s.mission}_OPER_MSI_{level}_DS_{centre}_{generation:%Y%m%dT%H%M%S}_"
                f"S{datastrip_start:%Y%m%dT%H%M%S}_N{baseline}"
            ),
            "s2:granule_id": (
                f"{s.mission}_OPER_MSI_{level}_TL_{centre}_{generation:%Y%m%dT%H%M%S}_"
                f"A{f.absolute_orbit:06d}_T{s.tile}_N{baseline}"
            ),
            "s2:reflectance_conversion_factor": round(
                reflectance_conversion_factor(f.sensing.date()), 15
            ),
            "datetime": _iso(f.sensing),
            "s2:sequence": "0",
            "earthsearch:s3_path": s3_path,
            "earthsearch:payload_id": (
                "roda-sentinel2/workflow-sentinel2-to-stac/"
                + hashlib.sha256(item_id.encode()).hexdigest()[:32]
            ),
        }
    )
    if level == "L2A":
        props["earthsearch:boa_offset_applied"] = baseline >= "04.00"
    props["processing:software"] = {"sentinel2-to-stac": "0.1.0"}
    props["updated"] = props["created"]
    # Links the STAC server does not add itself (it adds self, parent, collection, root).
    links = [
        {"rel": "canonical", "href": f"{s3_path}/{item_id}.json", "type": "application/json"},
        {"rel": "license", "href": _S2_LICENSE},
    ]
    if level == "L2A":
        links.append(
            {
                "rel": "derived_from",
                "href": f"{EARTH_SEARCH}/collections/{S2_L1C}/items/{f.item_id('L1C')}",
                "type": "application/geo+json",
            }
        )
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "properties": props,
        "geometry": copy.deepcopy(f.geometry),
        "links": links,
        "assets": _s2_assets(f, level, baseline),
        "bbox": _bbox(f.geometry),
        "stac_extensions": list(_S2_EXTENSIONS),
        "collection": collection,
    }


# --------------------------------------------------------------------------------------------
# Landsat Collection 2 Level-2
# --------------------------------------------------------------------------------------------

# WRS-2 (path, row) -> approximate scene centre (lon, lat).
_WRS2_CENTRES: dict[tuple[int, int], tuple[float, float]] = {
    (195, 27): (7.70, 47.22),  # rhine (Basel / Freiburg)
    (193, 27): (10.79, 47.22),  # alps (Tyrol)
    (204, 33): (-8.83, 38.66),  # lisbon
    (191, 26): (14.42, 48.65),  # Linz / Budweis: no demo AOI
}
_HALF_ACROSS_KM, _HALF_ALONG_KM, _HEADING_DEG = 92.5, 90.0, 12.5

_REFLECTANCE = ("data", "reflectance")
_BITS = "bit index"
# Asset key -> (file suffix, title, roles), as stactools-landsat (Earth Search's item builder)
# names them; every file lies in the scene folder as {product id}_{suffix}.
_LANDSAT_FILES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "thumbnail": ("thumb_small.jpeg", "Thumbnail image", ("thumbnail",)),
    "reduced_resolution_browse": (
        "thumb_large.jpeg",
        "Reduced resolution browse image",
        ("overview",),
    ),
    "mtl.json": ("MTL.json", "Product Metadata File (json)", ("metadata",)),
    "mtl.txt": ("MTL.txt", "Product Metadata File (txt)", ("metadata",)),
    "mtl.xml": ("MTL.xml", "Product Metadata File (xml)", ("metadata",)),
    "ang": ("ANG.txt", "Angle Coefficients File", ("metadata",)),
    "qa_pixel": (
        "QA_PIXEL.TIF",
        "Pixel Quality Assessment Band",
        ("cloud", "cloud-shadow", "snow-ice", "water-mask"),
    ),
    "qa_radsat": (
        "QA_RADSAT.TIF",
        "Radiometric Saturation and Terrain Occlusion Quality Assessment Band",
        ("saturation",),
    ),
    "coastal": ("SR_B1.TIF", "Coastal/Aerosol Band", _REFLECTANCE),
    "blue": ("SR_B2.TIF", "Blue Band", _REFLECTANCE),
    "green": ("SR_B3.TIF", "Green Band", _REFLECTANCE),
    "red": ("SR_B4.TIF", "Red Band", _REFLECTANCE),
    "nir08": ("SR_B5.TIF", "Near Infrared Band 0.8", _REFLECTANCE),
    "swir16": ("SR_B6.TIF", "Short-wave Infrared Band 1.6", _REFLECTANCE),
    "swir22": ("SR_B7.TIF", "Short-wave Infrared Band 2.2", _REFLECTANCE),
    "qa_aerosol": ("SR_QA_AEROSOL.TIF", "Aerosol Quality Assessment Band", ("data-mask",)),
    "lwir11": ("ST_B10.TIF", "Surface Temperature Band", ("data", "temperature")),
    "atran": ("ST_ATRAN.TIF", "Atmospheric Transmittance Band", ("data",)),
    "cdist": ("ST_CDIST.TIF", "Cloud Distance Band", ("data",)),
    "qa": ("ST_QA.TIF", "Surface Temperature Quality Assessment Band", ("data",)),
}
# Spectral bands: key -> (band name, common name, centre µm, FWHM µm, gsd m)
_LANDSAT_BANDS: dict[str, tuple[str, str, float, float, int]] = {
    "coastal": ("OLI_B1", "coastal", 0.44, 0.02, 30),
    "blue": ("OLI_B2", "blue", 0.48, 0.06, 30),
    "green": ("OLI_B3", "green", 0.56, 0.06, 30),
    "red": ("OLI_B4", "red", 0.65, 0.04, 30),
    "nir08": ("OLI_B5", "nir08", 0.87, 0.03, 30),
    "swir16": ("OLI_B6", "swir16", 1.61, 0.09, 30),
    "swir22": ("OLI_B7", "swir22", 2.2, 0.19, 30),
    "lwir11": ("TIRS_B10", "lwir11", 10.9, 0.59, 100),
}
_SR = {"nodata": 0, "data_type": "uint16", "scale": 2.75e-05, "offset": -0.2}
_LANDSAT_RASTER: dict[str, dict[str, Any]] = {
    **dict.fromkeys(("coastal", "blue", "green", "red", "nir08", "swir16", "swir22"), _SR),
    "qa_pixel": {"nodata": 1, "data_type": "uint16", "unit": _BITS},
    "qa_radsat": {"data_type": "uint16", "unit": _BITS},
    "qa_aerosol": {"nodata": 1, "data_type": "uint8", "unit": _BITS},
    "lwir11": {
        "nodata": 0,
        "data_type": "uint16",
        "scale": 0.00341802,
        "offset": 149.0,
        "unit": "kelvin",
    },
    "atran": {"nodata": -9999, "data_type": "int16", "scale": 0.0001},
    "cdist": {"nodata": -9999, "data_type": "int16", "scale": 0.01, "unit": "kilometer"},
    "qa": {"nodata": -9999, "data_type": "int16", "scale": 0.01, "unit": "kelvin"},
}
_MEDIA = {
    "TIF": _COG,
    "jpeg": "image/jpeg",
    "json": "application/json",
    "xml": "application/xml",
    "txt": "text/plain",
}


@dataclass(frozen=True)
class _LandsatSpec:
    """One Landsat 8/9 OLI-TIRS scene processed to L2SP."""

    sensor: str  # LC08 / LC09
    path: int
    row: int
    centre_time: datetime  # scene centre time: the item datetime
    processed: date
    category: str  # T1 / T2
    cloud: float
    cloud_land: float


def _ls(
    sensor: str,
    path: int,
    row: int,
    centre: str,
    processed: str,
    category: str,
    cloud: float,
    cloud_land: float,
) -> _LandsatSpec:
    t = datetime.strptime(centre, "%Y%m%dT%H%M%S.%f")
    return _LandsatSpec(
        sensor,
        path,
        row,
        t,
        datetime.strptime(processed, "%Y%m%d").date(),
        category,
        cloud,
        cloud_land,
    )


# Landsat 8 and 9 each repeat a path every 16 days, 8 days apart; path p+1 (west) is imaged
# 7 days after path p. Landsat 9 data start in 2022, so 2021-03 has Landsat 8 only, and no
# pass covers an AOI on 2021-03-31.
_LANDSAT_SPECS: tuple[_LandsatSpec, ...] = (
    _ls("LC08", 195, 27, "20210311T101914.230150", "20210317", "T1", 18.37, 17.92),  # rhine
    _ls("LC08", 193, 27, "20210313T100648.812004", "20210324", "T1", 71.02, 70.11),  # alps
    _ls("LC08", 193, 27, "20210329T100640.104978", "20210407", "T1", 4.55, 4.61),  # alps twin
    _ls("LC08", 191, 26, "20210331T095358.497113", "20210409", "T1", 12.90, 13.05),  # no AOI
    _ls("LC08", 195, 27, "20210412T101858.670541", "20210420", "T1", 23.50, 24.01),  # off dates
    _ls("LC08", 195, 27, "20230707T102011.316250", "20230718", "T1", 0.71, 0.54),  # rhine
    _ls("LC09", 193, 27, "20230717T100727.590316", "20230719", "T2", 88.60, 87.44),  # alps
    _ls("LC09", 204, 33, "20230730T111705.933121", "20230801", "T1", 0.02, 0.03),  # lisbon
    _ls("LC09", 195, 27, "20230731T102003.045802", "20230802", "T1", 9.84, 9.40),  # rhine, last
)


def _landsat_footprint(spec: _LandsatSpec) -> dict[str, Any]:
    """The scene's data area: a rectangle tilted along the descending ground track."""
    lon0, lat0 = _WRS2_CENTRES[(spec.path, spec.row)]
    h = math.radians(_HEADING_DEG)
    along = (math.sin(h), math.cos(h))  # km east, km north per km towards the track's north
    across = (math.cos(h), -math.sin(h))
    ring = []
    for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        east = sa * _HALF_ACROSS_KM * across[0] + sb * _HALF_ALONG_KM * along[0]
        north = sa * _HALF_ACROSS_KM * across[1] + sb * _HALF_ALONG_KM * along[1]
        lat = lat0 + north / 110.574
        lon = lon0 + east / (111.320 * math.cos(math.radians(lat)))
        ring.append([round(lon, 9), round(lat, 9)])
    return {"type": "Polygon", "coordinates": [_ccw(ring)]}


def landsat_product_id(item: dict[str, Any]) -> str:
    """The full USGS product id (with processing date) of an Earth Search Landsat item."""
    return str(item["assets"]["red"]["href"]).rsplit("/", 2)[-2]


def _landsat_item(spec: _LandsatSpec) -> dict[str, Any]:
    t = spec.centre_time
    pr = f"{spec.path:03d}{spec.row:03d}"
    product_id = f"{spec.sensor}_L2SP_{pr}_{t:%Y%m%d}_{spec.processed:%Y%m%d}_02_{spec.category}"
    item_id = f"{spec.sensor}_L2SP_{pr}_{t:%Y%m%d}_02_{spec.category}"
    folder = (
        f"s3://usgs-landsat/collection02/level-2/standard/oli-tirs/{t.year}/"
        f"{spec.path:03d}/{spec.row:03d}/{product_id}"
    )
    geometry = _landsat_footprint(spec)
    lon, lat = _centre(geometry)
    zone = int((lon + 180) // 6) + 1
    epsg = 32600 + zone
    ring = geometry["coordinates"][0]
    lons, lats = transform(
        CRS.from_epsg(4326), CRS.from_epsg(epsg), [p[0] for p in ring], [p[1] for p in ring]
    )
    ulx = math.floor(min(lons) / 30) * 30 + 15
    uly = math.ceil(max(lats) / 30) * 30 + 15
    shape = [math.ceil((uly - min(lats)) / 30), math.ceil((max(lons) - ulx) / 30)]
    azimuth, elevation = _sun_angles(t, lon, lat)
    storage = {
        "storage:platform": "AWS",
        "storage:region": "us-west-2",
        "storage:requester_pays": True,
    }
    assets: dict[str, Any] = {}
    for key, (suffix, title, roles) in _LANDSAT_FILES.items():
        asset: dict[str, Any] = {
            "href": f"{folder}/{product_id}_{suffix}",
            "type": _MEDIA[suffix.rsplit(".", 1)[1]],
            "title": title,
        }
        if key in _LANDSAT_BANDS:
            name, common, centre, fwhm, gsd = _LANDSAT_BANDS[key]
            asset["eo:bands"] = [
                {
                    "name": name,
                    "common_name": common,
                    "center_wavelength": centre,
                    "full_width_half_max": fwhm,
                }
            ]
            asset["gsd"] = gsd
        if key in _LANDSAT_RASTER:
            # every file is on the 30 m grid (ST_B10 resampled from TIRS's 100 m)
            asset["raster:bands"] = [{**_LANDSAT_RASTER[key], "spatial_resolution": 30}]
        asset["roles"] = list(roles)
        asset.update(storage)
        assets[key] = asset
    created = datetime.combine(spec.processed, datetime.min.time()) + timedelta(
        hours=14, seconds=round(20_000 * _hash_unit(item_id))
    )
    usgs = "https://landsatlook.usgs.gov"
    links = [
        {
            "rel": "alternate",
            "href": (
                f"{usgs}/stac-browser/collection02/level-2/standard/oli-tirs/{t.year}/"
                f"{spec.path:03d}/{spec.row:03d}/{product_id}"
            ),
            "type": "text/html",
            "title": "USGS stac-browser page",
        },
        *(
            {
                "rel": "via",
                "href": f"{usgs}/stac-server/collections/landsat-c2l2-{kind}/items/"
                f"{product_id}_{kind.upper()}",
                "type": "application/geo+json",
            }
            for kind in ("sr", "st")
        ),
    ]
    properties = {
        "created": _iso(_ms(created)),
        "updated": _iso(_ms(created)),
        "datetime": _iso(t),
        "platform": f"landsat-{int(spec.sensor[2:])}",
        "instruments": ["oli", "tirs"],
        "description": "Landsat Collection 2 Level-2 Science Product",
        "eo:cloud_cover": spec.cloud,
        "view:off_nadir": 0,
        "view:sun_azimuth": round(azimuth, 8),
        "view:sun_elevation": round(elevation, 8),
        "proj:epsg": epsg,
        "proj:shape": shape,
        "proj:transform": [30.0, 0.0, float(ulx), 0.0, -30.0, float(uly)],
        "sci:doi": "10.5066/P9OGBGM6",
        "landsat:cloud_cover_land": spec.cloud_land,
        "landsat:wrs_type": "2",
        "landsat:wrs_path": f"{spec.path:03d}",
        "landsat:wrs_row": f"{spec.row:03d}",
        "landsat:collection_category": spec.category,
        "landsat:collection_number": "02",
        "landsat:correction": "L2SP",
        "landsat:scene_id": (
            f"LC{int(spec.sensor[2:])}{pr}{t.year}{t.timetuple().tm_yday:03d}LGN00"
        ),
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": list(_LANDSAT_EXTENSIONS),
        "id": item_id,
        "collection": LANDSAT,
        "geometry": geometry,
        "bbox": _bbox(geometry),
        "properties": properties,
        "links": links,
        "assets": assets,
    }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def build_optical_items() -> list[dict[str, Any]]:
    """All optical demo items (S2 L1C, S2 L2A, Landsat C2 L2), the same on every call.

    Order: by collection, then datetime.
    """
    facts = [_s2_facts(spec) for spec in _S2_SPECS]
    items = [_s2_item(f, level) for level in ("L1C", "L2A") for f in facts]
    items += [_landsat_item(spec) for spec in _LANDSAT_SPECS]
    return sorted(items, key=lambda i: (i["collection"], i["properties"]["datetime"], i["id"]))
