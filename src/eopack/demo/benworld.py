"""A deterministic mini BigEarthNet v2 in the real archive formats.

Why: the offline demo, the integration tests and the BigEarthNet benchmarks need archives that
look exactly like the Zenodo release (record 10891137) without downloading 60 GB: the same
``.tar.zst`` layout and member order, the same GeoTIFF byte layout per band kind, reference maps
of CLC codes, and metadata parquet files with the real schema. Every byte is a pure function of
the arguments (no clock, no unseeded randomness, no hash randomisation), so two builds with the
same arguments give the same SHA-256s and tests can pin them.

Facts reproduced from the real files (tests/fixtures/bigearthnet and kai-tub/bigearthnet-pipeline):

* GeoTIFFs are little-endian classic TIFF, one IFD at offset 8, strips; out-of-line values in
  the order StripByteCounts, StripOffsets, ModelPixelScale, ModelTiepoint, GeoKeyDirectory,
  GeoAsciiParams, then the image data. S2 bands are *uncompressed* uint16 with
  ``GDAL_NODATA="0"`` (10 m: 120x120, 34 rows per strip, SHORT byte counts; 20 m: 60x60 and
  60 m: 20x20 in one strip). Reference maps are uint16 DEFLATE + horizontal predictor, 34 rows per
  strip. S1 patches are uncompressed float32 dB, 17 rows per strip, no nodata tag. CRS is WGS 84 /
  UTM (EPSG:326zz); the patch ``<x>_<y>`` indexes 1200 m steps east and south of the tile origin.
* Tar: GNU format, files only (no directory members), sorted by path, mode 0644, uid/gid 0 with
  empty user/group names, mtime 2024-01-01T00:00:00Z, GNU ``././@LongLink`` for names over 100
  bytes, padded to 10240-byte records; then zstd level 6 with checksum and content size.
* S1 members are sorted by their pre-rename path ``<s1_name>/<s1_name>_<pol>.tif``, S1 patch
  folders are the ``s1_name`` (row/col not zero-padded) under ``<s1_name minus 3 fields>``.
* ``metadata.parquet`` holds the patches without seasonal snow / cloud / shadow; the others are
  only in ``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` (disjoint, 480,038 + 69,450
  patches in the real release). Both are sorted by ``patch_id``, labels are sorted class names.
  Splits are spatial stripes within each S2 product, as in the real data.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

S2_ARCHIVE = "BigEarthNet-S2.tar.zst"
S1_ARCHIVE = "BigEarthNet-S1.tar.zst"
REFERENCE_ARCHIVE = "Reference_Maps.tar.zst"
METADATA = "metadata.parquet"
SNOW_CLOUD_METADATA = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
HASHES = "hashes.txt"

#: Band -> patch side length in pixels (10 m: 120, 20 m: 60, 60 m: 20), in spectral order.
S2_BANDS: dict[str, int] = {
    "B01": 20,
    "B02": 120,
    "B03": 120,
    "B04": 120,
    "B05": 60,
    "B06": 60,
    "B07": 60,
    "B08": 120,
    "B8A": 60,
    "B09": 20,
    "B11": 60,
    "B12": 60,
}
S1_POLARISATIONS = ("VH", "VV")

#: The 19 classes (index order) with their CLC level-3 codes; names exactly as in metadata.parquet.
CLASSES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Urban fabric", (111, 112)),
    ("Industrial or commercial units", (121,)),
    ("Arable land", (211, 212, 213)),
    ("Permanent crops", (221, 222, 223, 241)),
    ("Pastures", (231,)),
    ("Complex cultivation patterns", (242,)),
    (
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        (243,),
    ),
    ("Agro-forestry areas", (244,)),
    ("Broad-leaved forest", (311,)),
    ("Coniferous forest", (312,)),
    ("Mixed forest", (313,)),
    ("Natural grassland and sparsely vegetated areas", (321, 333)),
    ("Moors, heathland and sclerophyllous vegetation", (322, 323)),
    ("Transitional woodland, shrub", (324,)),
    ("Beaches, dunes, sands", (331,)),
    ("Inland wetlands", (411, 412)),
    ("Coastal wetlands", (421, 422)),
    ("Inland waters", (511, 512)),
    ("Marine waters", (521, 522, 523)),
)
#: CLC code -> class name, for the codes that carry a label.
CODE_TO_CLASS: dict[int, str] = {code: name for name, codes in CLASSES for code in codes}
#: Codes in reference maps that map to no class (999 = no CLC polygon, 0 = nodata).
UNLABELED_CODES: tuple[int, ...] = (
    0,
    122,
    123,
    124,
    131,
    132,
    133,
    141,
    142,
    332,
    334,
    335,
    423,
    999,
)
FLAWS = frozenset(
    {"missing_band", "orphan_metadata_row", "dotdot_member", "symlink_member", "truncated"}
)

#: The real metadata schema (DuckDB wrote it; every field nullable, list items named "element").
METADATA_SCHEMA = pa.schema(
    [
        ("patch_id", pa.string()),
        ("labels", pa.list_(pa.field("element", pa.string()))),
        ("split", pa.string()),
        ("country", pa.string()),
        ("s1_name", pa.string()),
        ("s2v1_name", pa.string()),
        ("contains_seasonal_snow", pa.bool_()),
        ("contains_cloud_or_shadow", pa.bool_()),
    ]
)

TAR_MTIME = 1704067200  # 2024-01-01T00:00:00Z, the pipeline's `tar --mtime`
ZSTD_LEVEL = 6
_GRID = 91  # patches per tile side (109.8 km / 1.2 km)
_PATCH_M = 1200


# --------------------------------------------------------------------------------------------
# Products
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Product:
    """A real BigEarthNet v2 S2 product with its real S1 products and a land-cover pool."""

    name: str
    s1_products: tuple[str, ...]
    countries: tuple[str, ...]
    flagged: str  # "snow", "cloud" or "" (which clump of flagged patches it gets)
    pool: tuple[int, ...]  # CLC codes, commonest first


def _codes(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.split())


# Real product names (metadata.parquet); the first three together use every CLC code above.
_PRODUCTS: tuple[_Product, ...] = (
    _Product(
        "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP",
        ("S1A_IW_GRDH_1SDV_20170613T165043", "S1B_IW_GRDH_1SDV_20170612T165809"),
        ("Austria",),
        "cloud",
        _codes(
            "211 311 313 231 312 242 243 112 121 512 324 111 222 321 322 411 511 122 124 133 "
            "141 142 332 335 999"
        ),
    ),
    _Product(
        "S2B_MSIL2A_20180204T094159_N9999_R036_T35VNJ",
        ("S1A_IW_GRDH_1SDV_20180204T043318", "S1A_IW_GRDH_1SDV_20180204T154856"),
        ("Finland",),
        "snow",
        _codes("312 313 324 512 411 412 211 231 311 243 112 121 333 421 521 522 131 132 334 999"),
    ),
    _Product(
        "S2A_MSIL2A_20170704T112111_N9999_R037_T29SND",
        ("S1A_IW_GRDH_1SDV_20170706T064235", "S1B_IW_GRDH_1SDV_20170701T182622"),
        ("Portugal",),
        "",
        _codes(
            "244 323 223 211 324 242 523 221 311 312 243 322 212 213 222 241 321 331 333 421 "
            "422 511 521 522 111 112 121 122 123 131 423 999"
        ),
    ),
    _Product(
        "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU",
        ("S1A_IW_GRDH_1SDV_20170617T064724", "S1B_IW_GRDH_1SDV_20170616T180538"),
        ("Ireland",),
        "cloud",
        _codes("231 243 412 322 312 112 211 324 521 331 111 512 999"),
    ),
    _Product(
        "S2A_MSIL2A_20170803T094031_N9999_R036_T34TCR",
        ("S1A_IW_GRDH_1SDV_20170802T163350", "S1A_IW_GRDH_1SDV_20170802T163325"),
        ("Serbia",),
        "",
        _codes("211 242 243 311 313 231 221 112 511 324 121 131 999"),
    ),
    _Product(
        "S2B_MSIL2A_20170808T094029_N9999_R036_T35ULA",
        ("S1A_IW_GRDH_1SDV_20170808T043459", "S1A_IW_GRDH_1SDV_20170808T043524"),
        ("Lithuania",),
        "cloud",
        _codes("211 231 312 313 324 242 411 512 311 112 521 331 999"),
    ),
    _Product(
        "S2A_MSIL2A_20170818T103021_N9999_R108_T32TMT",
        ("S1B_IW_GRDH_1SDV_20170818T054218", "S1A_IW_GRDH_1SDV_20170819T053446"),
        ("Switzerland",),
        "cloud",
        _codes("231 312 313 311 321 333 112 512 243 332 335 121 999"),
    ),
    _Product(
        "S2A_MSIL2A_20180508T104031_N9999_R008_T31UGR",
        ("S1A_IW_GRDH_1SDV_20180508T055029",),
        ("Belgium", "Luxembourg"),
        "",
        _codes("211 231 311 242 112 313 121 111 312 124 133 512 999"),
    ),
    _Product(
        "S2A_MSIL2A_20171208T093351_N9999_R136_T34TEN",
        ("S1A_IW_GRDH_1SDV_20171207T162450", "S1A_IW_GRDH_1SDV_20171207T162425"),
        ("Serbia", "Kosovo"),
        "snow",
        _codes("211 242 311 243 231 313 324 112 321 512 121 999"),
    ),
    _Product(
        "S2A_MSIL2A_20170613T101031_N9999_R022_T34VER",
        ("S1B_IW_GRDH_1SDV_20170613T044822", "S1B_IW_GRDH_1SDV_20170613T160455"),
        ("Finland",),
        "cloud",
        _codes("521 312 313 324 411 512 211 231 112 331 421 999"),
    ),
    _Product(
        "S2B_MSIL2A_20171219T095409_N9999_R079_T33TWN",
        ("S1B_IW_GRDH_1SDV_20171220T050937", "S1B_IW_GRDH_1SDV_20171220T050912"),
        ("Austria",),
        "snow",
        _codes("312 313 231 321 333 311 243 112 335 332 512 999"),
    ),
    _Product(
        "S2B_MSIL2A_20170829T105019_N9999_R051_T31UER",
        ("S1A_IW_GRDH_1SDV_20170829T055029", "S1B_IW_GRDH_1SDV_20170828T055807"),
        ("Belgium",),
        "",
        _codes("211 231 112 242 311 121 111 122 133 141 512 999"),
    ),
)


def _shift_name(name: str, index: int, days: int) -> str:
    """Move the sensing date of a product name by ``days`` (a revisit multiple)."""
    stamp = name.split("_")[index]
    t = datetime.strptime(stamp, "%Y%m%dT%H%M%S") + timedelta(days=days)
    parts = name.split("_")
    parts[index] = f"{t:%Y%m%dT%H%M%S}"
    return "_".join(parts)


def _product(i: int) -> _Product:
    """Product ``i``: the table, then the same tiles 10 days (S2) / 12 days (S1) later."""
    base = _PRODUCTS[i % len(_PRODUCTS)]
    k = i // len(_PRODUCTS)
    if k == 0:
        return base
    return _Product(
        _shift_name(base.name, 2, 10 * k),
        tuple(_shift_name(s, 4, 12 * k) for s in base.s1_products),
        base.countries,
        base.flagged,
        base.pool,
    )


_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_BAND_LETTERS = "CDEFGHJKLMNPQRSTUVWX"
_COLUMN_SETS = {1: "ABCDEFGH", 2: "JKLMNPQR", 0: "STUVWXYZ"}


def _tile_origin(tile: str) -> tuple[int, float, float]:
    """EPSG code and upper-left corner of an MGRS tile like ``33UUP`` (Sentinel-2 grid).

    The 100 km square comes from the MGRS letters; the tile corner is snapped to the 60 m grid
    (down in x, up in y), e.g. 33UUP -> (32633, 300000, 5400000) as in the fixtures.
    """
    zone, band, col, row = int(tile[:2]), tile[2], tile[3], tile[4]
    easting = (_COLUMN_SETS[zone % 3].index(col) + 1) * 100_000
    offset = 0 if zone % 2 else 5
    base = ((_ROW_LETTERS.index(row) - offset) % 20) * 100_000
    mid_lat = -80 + 8 * _BAND_LETTERS.index(band) + 4
    target = mid_lat * 110_946.0
    k = round((target - base) / 2_000_000)
    northing = base + k * 2_000_000 + 100_000
    return 32600 + zone, math.floor(easting / 60) * 60.0, math.ceil(northing / 60) * 60.0


# --------------------------------------------------------------------------------------------
# Public data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenPatch:
    """One patch as written: its names, place, metadata row and the CLC codes in its map."""

    patch_id: str
    s2_product: str
    s1_product: str
    s1_name: str
    s2v1_name: str
    x: int  # 1200 m steps east of the tile origin (first number of the id)
    y: int  # 1200 m steps south of the tile origin (second number of the id)
    country: str
    split: str
    labels: tuple[str, ...]  # sorted class names of the labeled codes in the map (any pixel)
    codes: tuple[int, ...]  # CLC codes present in the reference map, ascending (0 = nodata)
    snow: bool
    cloud: bool

    @property
    def flagged(self) -> bool:
        """True when the patch is listed in the snow/cloud parquet instead of metadata.parquet."""
        return self.snow or self.cloud


@dataclass(frozen=True)
class BenWorld:
    """Where a built world is and what it contains."""

    root: Path
    files: dict[str, Path]  # file name -> path, every file written (incl. hashes.txt)
    patches: tuple[BenPatch, ...]  # sorted by patch_id; patches with files in the archives
    #: flaw -> what it broke (member name, patch id or file name)
    flaws: dict[str, str] = field(default_factory=dict)

    @property
    def s2_products(self) -> tuple[str, ...]:
        """The S2 product folders, sorted (as the archives list them)."""
        return tuple(sorted({p.s2_product for p in self.patches}))


# --------------------------------------------------------------------------------------------
# GeoTIFF writer (the byte layout of the real files)
# --------------------------------------------------------------------------------------------

_SHORT, _LONG, _ASCII, _DOUBLE = 3, 4, 2, 12
_TYPE_SIZE = {_SHORT: 2, _LONG: 4, _ASCII: 1, _DOUBLE: 8}
_TYPE_FMT = {_SHORT: "H", _LONG: "I", _DOUBLE: "d"}


@dataclass(frozen=True)
class _Kind:
    """One TIFF flavour of the real archives."""

    size: int
    float32: bool
    rows_per_strip: int
    deflate: bool
    short_counts: bool  # StripByteCounts as SHORT (libtiff does so for small uncompressed strips)
    nodata: bool

    @property
    def row_bytes(self) -> int:
        return self.size * 4 if self.float32 else self.size * 2


_KIND_10M = _Kind(120, False, 34, False, True, True)
_KIND_20M = _Kind(60, False, 60, False, False, True)
_KIND_60M = _Kind(20, False, 20, False, False, True)
_KIND_REF = _Kind(120, False, 34, True, False, True)
_KIND_S1 = _Kind(120, True, 17, False, False, False)
_BAND_KIND = {120: _KIND_10M, 60: _KIND_20M, 20: _KIND_60M}


def _geotiff(
    kind: _Kind, strips: list[bytes], epsg: int, origin: tuple[float, float], pixel: float
) -> bytes:
    """Pre-encoded strips as a GeoTIFF with the real files' tag set and byte layout."""
    return _header(kind, epsg, origin, pixel, [len(s) for s in strips]) + b"".join(strips)


def _header(
    kind: _Kind, epsg: int, origin: tuple[float, float], pixel: float, counts: list[int]
) -> bytes:
    zone = epsg - 32600
    citation = f"WGS 84 / UTM zone {zone}N|"
    ascii_params = f"{citation}WGS 84|".encode() + b"\0"
    geokeys = (1, 1, 0, 7, 1024, 0, 1, 1, 1025, 0, 1, 1, 1026, 34737, len(citation), 0)
    geokeys += (2049, 34737, 7, len(citation), 2054, 0, 1, 9102, 3072, 0, 1, epsg)
    geokeys += (3076, 0, 1, 9001)
    count_type = _SHORT if kind.short_counts else _LONG
    bits = 32 if kind.float32 else 16
    # (tag, type, values); StripOffsets are filled in once the header length is known.
    entries: list[tuple[int, int, tuple[float, ...] | bytes]] = [
        (256, _SHORT, (kind.size,)),
        (257, _SHORT, (kind.size,)),
        (258, _SHORT, (bits,)),
        (259, _SHORT, (8 if kind.deflate else 1,)),
        (262, _SHORT, (1,)),
        (273, _LONG, tuple(0 for _ in counts)),
        (277, _SHORT, (1,)),
        (278, _SHORT, (kind.rows_per_strip,)),
        (279, count_type, tuple(counts)),
        (284, _SHORT, (1,)),
    ]
    if kind.deflate:
        entries.append((317, _SHORT, (2,)))
    entries += [
        (339, _SHORT, (3 if kind.float32 else 1,)),
        (33550, _DOUBLE, (pixel, pixel, 0.0)),
        (33922, _DOUBLE, (0.0, 0.0, 0.0, origin[0], origin[1], 0.0)),
        (34735, _SHORT, geokeys),
        (34737, _ASCII, ascii_params),
    ]
    if kind.nodata:
        entries.append((42113, _ASCII, b"0\0"))

    def payload(typ: int, values: tuple[float, ...] | bytes) -> bytes:
        if isinstance(values, bytes):
            return values
        return struct.pack(f"<{len(values)}{_TYPE_FMT[typ]}", *values)

    ifd_end = 8 + 2 + 12 * len(entries) + 4
    # Out-of-line order of the real files: byte counts, offsets, then the rest by tag.
    order = sorted(entries, key=lambda e: {279: 0, 273: 1}.get(e[0], 2))
    where: dict[int, int] = {}
    pos = ifd_end
    for tag, typ, values in order:
        size = len(payload(typ, values))
        if size > 4:
            where[tag] = pos
            pos += size + (size & 1)
    data_start = pos
    offsets = tuple(data_start + sum(counts[:i]) for i in range(len(counts)))
    entries = [(t, ty, offsets if t == 273 else v) for t, ty, v in entries]
    order = [next(e for e in entries if e[0] == tag) for tag, _, _ in order]
    ifd = bytearray(struct.pack("<2sHIH", b"II", 42, 8, len(entries)))
    ext = bytearray()
    for tag, typ, values in entries:
        data = payload(typ, values)
        count = len(data) // _TYPE_SIZE[typ]
        if len(data) > 4:
            ifd += struct.pack("<HHII", tag, typ, count, where[tag])
        else:
            ifd += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0")
    ifd += b"\0\0\0\0"
    for tag, typ, values in order:
        data = payload(typ, values)
        if len(data) > 4:
            assert ifd_end + len(ext) == where[tag]
            ext += data + b"\0" * (len(data) & 1)
    return bytes(ifd + ext)


class _HeaderCache:
    """Headers of uncompressed kinds differ only in the tiepoint: patch 16 bytes per file."""

    def __init__(self) -> None:
        self._cache: dict[tuple[_Kind, int, float], tuple[bytes, int]] = {}

    def get(self, kind: _Kind, epsg: int, origin: tuple[float, float], pixel: float) -> bytes:
        key = (kind, epsg, pixel)
        hit = self._cache.get(key)
        if hit is None:
            rows = range(0, kind.size, kind.rows_per_strip)
            counts = [kind.row_bytes * min(kind.rows_per_strip, kind.size - i) for i in rows]
            marker = (-1234567.0, -7654321.0)
            head = _header(kind, epsg, marker, pixel, counts)
            at = head.index(struct.pack("<2d", *marker))
            hit = (head, at)
            self._cache[key] = hit
        head, at = hit
        return head[:at] + struct.pack("<2d", *origin) + head[at + 16 :]


def _deflate_strips(data: np.ndarray, kind: _Kind) -> list[bytes]:
    """Horizontal-predictor (2) + zlib strips, as GDAL's DEFLATE reference maps."""
    diff = data.astype("<u2")
    diff[:, 1:] = np.diff(data, axis=1).astype("<u2")
    rps = kind.rows_per_strip
    return [zlib.compress(diff[i : i + rps].tobytes(), 6) for i in range(0, kind.size, rps)]


# --------------------------------------------------------------------------------------------
# Tar writer (GNU tar --format=gnu --numeric-owner --owner=0 --group=0 --mtime=2024-01-01)
# --------------------------------------------------------------------------------------------

_BLOCK = 512
_RECORD = 20 * _BLOCK


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


_ZERO_IDS = _octal(0, 8) * 2
_TAIL = b"\0" * (_BLOCK - 265)


def _tar_block(
    name: bytes, size: int, mode: int, mtime: int, typeflag: bytes, link: bytes
) -> bytes:
    """A GNU header block: octal fields, ``ustar  `` magic, empty user/group names."""
    head = b"".join(
        (
            name[:100].ljust(100, b"\0"),
            _octal(mode, 8),
            _ZERO_IDS,
            _octal(size, 12),
            _octal(mtime, 12),
            b"        ",
            typeflag,
            link.ljust(100, b"\0"),
            b"ustar  \0",
        )
    )
    return b"".join((head[:148], f"{sum(head):06o}".encode(), b"\0 ", head[156:], _TAIL))


def _pad(size: int) -> int:
    return -size % _BLOCK


def _tar_member(name: str, data: bytes, symlink_to: str | None = None) -> bytes:
    """One GNU-format tar member: LongLink for names over 100 bytes, then header and data."""
    raw = name.encode()
    out = b""
    if len(raw) > 100:
        long = raw + b"\0"
        out = _tar_block(b"././@LongLink", len(long), 0o644, 0, b"L", b"")
        out += long + b"\0" * _pad(len(long))
    if symlink_to is not None:
        return out + _tar_block(raw, 0, 0o777, TAR_MTIME, b"2", symlink_to.encode())
    out += _tar_block(raw, len(data), 0o644, TAR_MTIME, b"0", b"")
    return out + data + b"\0" * _pad(len(data))


def _member_size(name: str, size: int) -> int:
    n = len(name.encode())
    long = _BLOCK + n + 1 + _pad(n + 1) if n > 100 else 0
    return long + _BLOCK + size + _pad(size)


def _tar_end(size: int) -> bytes:
    """End-of-archive blocks, padded to the 10240-byte record like GNU tar."""
    end = size + 2 * _BLOCK
    return b"\0" * (2 * _BLOCK + (-end % _RECORD))


class _HashingFile:
    """A write-only file that also hashes what it writes (no second read of big archives)."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb")
        self.md5 = hashlib.md5()

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class _TarZst:
    """Streams tar bytes through md5 and zstd into ``path``; the tar is never stored.

    With the tar size known in advance the frame header records it (as the zstd CLI does for a
    file); otherwise the tar is buffered in memory, which is only done for small archives.
    """

    def __init__(self, path: Path, size: int | None) -> None:
        self.path = path
        self.expected = size
        self.size = 0
        self.md5 = hashlib.md5()
        self._out = _HashingFile(path)
        self._cctx = _compressor()
        self._buffer: list[bytes] | None = [] if size is None else None
        self._writer: zstandard.ZstdCompressionWriter | None = None
        if size is not None:
            total = size + len(_tar_end(size))
            self._writer = self._cctx.stream_writer(self._out, size=total, closefd=False)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.md5.update(data)
        if self._writer is not None:
            self._writer.write(data)
        else:
            assert self._buffer is not None
            self._buffer.append(data)

    def close(self) -> tuple[str, str]:
        """Finish the archive; return the md5s of the uncompressed tar and of the file."""
        if self.expected is not None and self.size != self.expected:
            raise AssertionError(f"{self.path.name}: planned {self.expected}, wrote {self.size}")
        self.write(_tar_end(self.size))
        if self._writer is not None:
            self._writer.close()  # ends the one frame (an extra flush would add an empty one)
        else:
            assert self._buffer is not None
            self._out.write(self._cctx.compress(b"".join(self._buffer)))
        self._out.close()
        return self.md5.hexdigest(), self._out.md5.hexdigest()


def _compressor() -> zstandard.ZstdCompressor:
    """zstd level 6 like the release; one thread and fixed parameters, so bytes are stable."""
    return zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_checksum=True, write_content_size=True, threads=0
    )


# --------------------------------------------------------------------------------------------
# Scene content
# --------------------------------------------------------------------------------------------

# Band order of the signature tables below.
_SPECTRAL = tuple(S2_BANDS)
# Typical surface reflectance x 10000 per band (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12).
_SIGNATURES: dict[str, tuple[int, ...]] = {
    "urban": (1200, 1100, 1250, 1350, 1550, 1750, 1900, 2050, 2150, 2000, 2600, 2200),
    "arable": (700, 550, 850, 750, 1300, 2600, 3100, 3400, 3500, 3300, 2400, 1400),
    "crops": (650, 500, 750, 700, 1150, 2200, 2600, 2800, 2900, 2800, 2300, 1400),
    "pasture": (550, 400, 750, 500, 1100, 2900, 3600, 3900, 4000, 3800, 2300, 1100),
    "broadleaf": (450, 300, 550, 300, 800, 2600, 3300, 3600, 3700, 3500, 1800, 800),
    "conifer": (350, 200, 400, 200, 550, 1500, 1900, 2100, 2200, 2100, 1000, 450),
    "mixed": (400, 250, 480, 250, 680, 2000, 2550, 2800, 2900, 2800, 1400, 620),
    "grass": (800, 700, 950, 1000, 1400, 2200, 2600, 2800, 2900, 2800, 3000, 2000),
    "heath": (650, 500, 700, 700, 1100, 1900, 2300, 2500, 2600, 2500, 2400, 1500),
    "shrub": (550, 400, 650, 500, 1000, 2200, 2700, 3000, 3100, 2900, 2100, 1100),
    "sand": (1800, 2000, 2400, 2800, 3000, 3200, 3300, 3400, 3500, 3200, 4200, 3600),
    "rock": (1400, 1500, 1700, 1900, 2100, 2200, 2300, 2400, 2450, 2300, 2900, 2500),
    "glacier": (7000, 7200, 7100, 6900, 6700, 6400, 6200, 6000, 5800, 3000, 600, 400),
    "burnt": (500, 400, 450, 500, 600, 800, 900, 1000, 1050, 1000, 1800, 1700),
    "wetland": (500, 400, 600, 500, 800, 1500, 1800, 1900, 2000, 1900, 1200, 600),
    "coastal": (700, 600, 800, 800, 1000, 1300, 1500, 1600, 1600, 1500, 1200, 800),
    "water": (600, 500, 500, 300, 250, 200, 180, 150, 130, 100, 60, 40),
    "nodata": (800, 700, 800, 800, 1000, 1500, 1700, 1900, 2000, 1900, 1800, 1200),
}
_SNOW = np.array((9000, 9400, 9300, 9100, 8900, 8700, 8500, 8400, 8300, 4200, 1200, 900), "f4")
_CLOUD = np.array((6800, 7200, 7100, 7000, 7000, 7100, 7200, 7300, 7300, 5000, 4600, 3600), "f4")
# (VV, VH) backscatter in dB.
_BACKSCATTER: dict[str, tuple[float, float]] = {
    "urban": (1.0, -8.0),
    "arable": (-10.5, -17.5),
    "crops": (-9.5, -16.0),
    "pasture": (-11.0, -18.0),
    "broadleaf": (-7.5, -13.5),
    "conifer": (-7.0, -13.0),
    "mixed": (-7.2, -13.2),
    "grass": (-12.0, -19.5),
    "heath": (-11.0, -18.0),
    "shrub": (-9.0, -15.5),
    "sand": (-16.0, -25.0),
    "rock": (-9.0, -17.0),
    "glacier": (-14.0, -22.0),
    "burnt": (-12.0, -20.0),
    "wetland": (-13.0, -20.0),
    "coastal": (-15.0, -22.0),
    "water": (-21.0, -28.0),
    "nodata": (-12.0, -19.0),
}
_COVER = {
    0: "nodata",
    999: "nodata",
    111: "urban",
    112: "urban",
    121: "urban",
    122: "urban",
    123: "urban",
    124: "urban",
    131: "rock",
    132: "rock",
    133: "urban",
    141: "pasture",
    142: "grass",
    211: "arable",
    212: "arable",
    213: "wetland",
    221: "crops",
    222: "crops",
    223: "crops",
    241: "crops",
    231: "pasture",
    242: "arable",
    243: "shrub",
    244: "crops",
    311: "broadleaf",
    312: "conifer",
    313: "mixed",
    321: "grass",
    322: "heath",
    323: "heath",
    324: "shrub",
    331: "sand",
    332: "rock",
    333: "grass",
    334: "burnt",
    335: "glacier",
    411: "wetland",
    412: "wetland",
    421: "coastal",
    422: "coastal",
    423: "coastal",
    511: "water",
    512: "water",
    521: "water",
    522: "water",
    523: "water",
}
#: Every code a reference map may hold; maps are built as indexes into this tuple.
_ALL_CODES: tuple[int, ...] = tuple(sorted(_COVER))
_CODE_INDEX = {c: i for i, c in enumerate(_ALL_CODES)}
_SIG = np.array([_SIGNATURES[_COVER[c]] for c in _ALL_CODES], "f4")  # (codes, 12)
_SAR = np.array([_BACKSCATTER[_COVER[c]] for c in _ALL_CODES], "f4")  # (codes, 2): VV, VH
_LABELED = np.array([c in CODE_TO_CLASS for c in _ALL_CODES])
_CODES_ARRAY = np.array(_ALL_CODES, "<u2")
assert set(CODE_TO_CLASS) | set(UNLABELED_CODES) == set(_ALL_CODES)

_NOISE_SIZE = 1 << 20


def _rng(seed: int, *labels: str) -> np.random.Generator:
    """An RNG from the seed and names (sha256, never ``hash()``, so processes agree)."""
    digest = hashlib.sha256("\0".join(labels).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


@dataclass
class _Scene:
    """Shared per-build state: a noise pool the patches take slices of (cheap and vectorised)."""

    seed: int
    noise: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.noise = _rng(self.seed, "noise").standard_normal(_NOISE_SIZE, dtype=np.float32)

    def noise_block(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        start = int(rng.integers(0, _NOISE_SIZE - n))
        return self.noise[start : start + n].reshape(shape)


_AXIS = np.arange(120, dtype=np.float32)


def _code_map(rng: np.random.Generator, product: _Product, cycle_code: int) -> np.ndarray:
    """Index map (into ``_ALL_CODES``) of warped Voronoi regions, plus occasional nodata.

    Distances are separable (row term + column term, each with its own wobble), so a region
    map costs one small argmin instead of per-pixel trigonometry.
    """
    k = int(rng.integers(3, 7))
    pool = np.array(product.pool)
    weights = 1.0 / np.arange(1, len(pool) + 1)
    codes = [cycle_code, *rng.choice(pool, size=k - 1, p=weights / weights.sum()).tolist()]
    sy, sx, fy, fx, py, px = rng.uniform(0, 1, size=(6, k, 1)).astype(np.float32)
    sy, sx = sy * 150 - 15, sx * 150 - 15
    rows = (_AXIS - sy) ** 2 + 300.0 * np.sin(_AXIS * (0.03 + 0.1 * fy) + 6.3 * py)
    cols = (_AXIS - sx) ** 2 + 300.0 * np.sin(_AXIS * (0.03 + 0.1 * fx) + 6.3 * px)
    region = np.argmin(rows[:, :, None] + cols[:, None, :], axis=0)
    lut = np.array([_CODE_INDEX[c] for c in codes], np.uint8)
    if not _LABELED[lut].any():
        lut[0] = _CODE_INDEX[next(c for c in product.pool if c in CODE_TO_CLASS)]
    idx = lut[region]
    if rng.random() < 0.1:  # a strip outside the CLC raster
        width = int(rng.integers(3, 15))
        if rng.random() < 0.5:
            idx[:, -width:] = _CODE_INDEX[0]
        else:
            idx[:width, :] = _CODE_INDEX[0]
    if not _LABELED[idx].any():
        idx[:, :] = lut[0]
    return idx


def _field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth separable field around 1 (illumination / moisture), at ``size`` x ``size``."""
    t = (np.arange(size, dtype=np.float32) + 0.5) * (120.0 / size)
    a, b, fa, fb, pa_, pb = rng.uniform(0, 1, size=6).astype(np.float32)
    col = np.sin(t * (0.02 + 0.06 * fa) + 6.3 * pa_) * (0.05 + 0.08 * a)
    row = np.cos(t * (0.02 + 0.06 * fb) + 6.3 * pb) * (0.05 + 0.08 * b)
    return 1.0 + row[:, None] + col[None, :]


def _blob(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    """A soft disc (0..1) in 120-pixel coordinates, sampled at ``size`` x ``size``."""
    t = (np.arange(size, dtype=np.float32) + 0.5) * (120.0 / size)
    d2 = (t[:, None] - cy) ** 2 + (t[None, :] - cx) ** 2
    return np.clip(1.5 - d2 / radius**2, 0.0, 1.0)


def _s2_bands(
    scene: _Scene, rng: np.random.Generator, patch: BenPatch, idx: np.ndarray
) -> dict[str, np.ndarray]:
    """uint16 reflectance x 10000 per band: class signatures, shading, noise, snow/clouds."""
    illum = {s: _field(rng, s) for s in (120, 60, 20)}
    cloud = None
    if patch.cloud:
        cy, cx = rng.uniform(20, 100, size=2)
        radius = float(rng.uniform(25, 60))
        cloud = (cy, cx, radius, cy + 25.0, cx - 20.0)
    snow_cover = None
    if patch.snow:
        snow_cover = float(rng.uniform(0.6, 0.95))
    out: dict[str, np.ndarray] = {}
    for size in (120, 60, 20):
        names = [b for b in _SPECTRAL if S2_BANDS[b] == size]
        cols = [_SPECTRAL.index(b) for b in names]
        step = 120 // size
        sub = idx[step // 2 :: step, step // 2 :: step]
        sig = _SIG[:, cols].T  # (bands, codes)
        img = sig[:, sub]  # (bands, size, size)
        noise = scene.noise_block(rng, (len(cols), size, size))
        img = img * (illum[size] + 0.05 * noise) + 25.0 * noise
        if snow_cover is not None:
            m = np.clip((illum[size] - 1.0) * 8 + snow_cover * 2 - 0.5, 0, 1)[None]
            img = img * (1 - m) + _SNOW[cols, None, None] * m * illum[size]
        if cloud is not None:
            cy, cx, r, sy, sx = cloud
            shadow = _blob(size, sy, sx, r * 0.8)[None]
            m = _blob(size, cy, cx, r)[None]
            img = img * (1 - 0.6 * shadow)
            img = img * (1 - m) + _CLOUD[cols, None, None] * m
        data = np.clip(np.rint(img), 1, 65535).astype("<u2")
        for i, name in enumerate(names):
            out[name] = data[i]
    # A few special pixels, as real scenes have: nodata 0 at the edge, saturated specular glints.
    if rng.random() < 0.15:
        out["B01"][-1, : int(rng.integers(1, 4))] = 0
    if rng.random() < 0.1:
        ys, xs = rng.integers(0, 120, size=(2, 3))
        for band in ("B02", "B03", "B04"):
            out[band][ys, xs] = 65535
    return out


def _s1_bands(scene: _Scene, rng: np.random.Generator, idx: np.ndarray) -> dict[str, np.ndarray]:
    """float32 dB backscatter per polarisation: class levels, slope shading, speckle."""
    slope = 10.0 * np.log10(_field(rng, 120))
    speckle = scene.noise_block(rng, (2, 120, 120))
    db = _SAR.T[:, idx] + slope[None] + np.array([1.6, 1.9], "f4")[:, None, None] * speckle
    return {"VV": db[0].astype("<f4"), "VH": db[1].astype("<f4")}


# --------------------------------------------------------------------------------------------
# World layout
# --------------------------------------------------------------------------------------------

_SPLIT_PATTERN = ("train", "validation", "test", "train")


@dataclass(frozen=True)
class _Cell:
    """A planned patch before its map exists."""

    product: _Product
    x: int
    y: int
    split: str
    snow: bool
    cloud: bool
    country: str
    s1_product: str
    cycle_code: int  # the pool code this patch is sure to contain (coverage of every code)

    @property
    def patch_id(self) -> str:
        return f"{self.product.name}_{self.x:02d}_{self.y:02d}"


def _plan(seed: int, s2_products: int, per_product: int) -> list[_Cell]:
    """Every patch of the world, sorted by patch id (the archives' member order)."""
    cells_out = []
    width = math.ceil(math.sqrt(per_product))
    height = math.ceil(per_product / width)
    if width > _GRID or height > _GRID:
        raise ValueError(f"at most {_GRID * _GRID} patches per product")
    for i in range(s2_products):
        product = _product(i)
        rng = _rng(seed, "product", product.name)
        x0 = int(rng.integers(0, _GRID - width + 1))
        y0 = int(rng.integers(0, _GRID - height + 1))
        cells = sorted((x0 + j % width, y0 + j // width) for j in range(per_product))
        stripe = max(1, width // 8)
        # a clump of ~12 % flagged patches around a random cell, as snow or clouds come
        # (none in products of under 5 patches, so metadata.parquet is never empty)
        cx, cy = cells[int(rng.integers(0, len(cells)))]
        radius2 = 0.12 * per_product / math.pi if per_product >= 5 else -1.0
        split_x = x0 + width / 2
        for j, (x, y) in enumerate(cells):
            flag = bool(product.flagged) and (x - cx) ** 2 + (y - cy) ** 2 <= radius2
            east = x >= split_x
            cells_out.append(
                _Cell(
                    product=product,
                    x=x,
                    y=y,
                    split=_SPLIT_PATTERN[((x - x0) // stripe) % len(_SPLIT_PATTERN)],
                    snow=flag and product.flagged == "snow",
                    cloud=flag and product.flagged == "cloud",
                    country=product.countries[-1 if east else 0],
                    s1_product=product.s1_products[-1 if east else 0],
                    cycle_code=product.pool[j % len(product.pool)],
                )
            )
    return sorted(cells_out, key=lambda c: c.patch_id)


def _s1_dir(patch: BenPatch) -> str:
    return f"BigEarthNet-S1/{patch.s1_product}/{patch.s1_name}"


def _origin(patch: BenPatch) -> tuple[int, tuple[float, float]]:
    epsg, ulx, uly = _tile_origin(patch.s2_product.rsplit("_T", 1)[1])
    return epsg, (ulx + patch.x * _PATCH_M, uly - patch.y * _PATCH_M)


def _labels(idx: np.ndarray) -> tuple[tuple[int, ...], tuple[str, ...]]:
    present = np.flatnonzero(np.bincount(idx.ravel(), minlength=len(_ALL_CODES)))
    codes = tuple(_ALL_CODES[i] for i in present)
    return codes, tuple(sorted({CODE_TO_CLASS[c] for c in codes if c in CODE_TO_CLASS}))


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def build_benworld(
    out_dir: str | Path,
    s2_products: int = 3,
    patches_per_product: int = 40,
    seed: int = 0,
    s1: bool = True,
    flaws: Iterable[str] = (),
) -> BenWorld:
    """Write a mini BigEarthNet v2 into ``out_dir`` and describe it.

    Files: ``BigEarthNet-S2.tar.zst``, ``Reference_Maps.tar.zst``, ``BigEarthNet-S1.tar.zst``
    (if ``s1``), both metadata parquet files and ``hashes.txt`` (md5 of every file and of each
    uncompressed ``.tar``, in the release's format). ``flaws`` break the world on purpose for
    bad-input tests; see :data:`FLAWS` and ``BenWorld.flaws`` for what each one broke:

    * ``missing_band``: one patch's B8A is absent from the S2 archive;
    * ``orphan_metadata_row``: metadata.parquet lists a patch that has no files anywhere;
    * ``dotdot_member``: the S2 archive has a member whose path climbs out with ``..``;
    * ``symlink_member``: one patch's B02 in the S2 archive is a symlink to ``/etc/passwd``;
    * ``truncated``: the S2 ``.tar.zst`` is cut short (hashes.txt lists the complete file).

    Every labeled CLC code, several unlabeled ones, 999 and 0 appear once the first three
    products have 40 patches each (the default).
    """
    wanted = frozenset(flaws)
    if unknown := wanted - FLAWS:
        raise ValueError(f"unknown flaws {sorted(unknown)}; choose from {sorted(FLAWS)}")
    if s2_products < 1 or patches_per_product < 1:
        raise ValueError("need at least one product and one patch per product")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    scene = _Scene(seed)
    headers = _HeaderCache()
    cells = _plan(seed, s2_products, patches_per_product)
    broken: dict[str, str] = {}
    md5s: dict[str, str] = {}

    # 1. One pass in patch-id order: code map -> labels, S2 bands, reference-map GeoTIFF.
    s2_members = _s2_plan(cells, wanted, broken)
    s2_size = sum(_member_size(n, size) for ms in s2_members for n, size, _ in ms)
    s2_sink = _TarZst(root / S2_ARCHIVE, s2_size)
    ref_sink = _TarZst(root / REFERENCE_ARCHIVE, None)
    patches: list[BenPatch] = []
    for cell, members in zip(cells, s2_members, strict=True):
        rng = _rng(seed, "patch", cell.patch_id)
        idx = _code_map(rng, cell.product, cell.cycle_code)
        patch = _patch(cell, idx)
        patches.append(patch)
        epsg, origin = _origin(patch)
        bands = _s2_bands(scene, rng, patch, idx)
        chunks = []
        for name, size, what in members:
            if what == "symlink":
                chunks.append(_tar_member(name, b"", symlink_to="/etc/passwd"))
                continue
            kind = _BAND_KIND[S2_BANDS[what]]
            data = headers.get(kind, epsg, origin, 10.0 * 120 / kind.size) + bands[what].tobytes()
            assert len(data) == size
            chunks.append(_tar_member(name, data))
        s2_sink.write(b"".join(chunks))
        ref = _CODES_ARRAY[idx]
        ref_tif = _geotiff(_KIND_REF, _deflate_strips(ref, _KIND_REF), epsg, origin, 10.0)
        stem = f"Reference_Maps/{patch.s2_product}/{patch.patch_id}/{patch.patch_id}"
        ref_sink.write(_tar_member(f"{stem}_reference_map.tif", ref_tif))
    md5s["BigEarthNet-S2.tar"], md5s[S2_ARCHIVE] = s2_sink.close()
    md5s["Reference_Maps.tar"], md5s[REFERENCE_ARCHIVE] = ref_sink.close()
    files = {S2_ARCHIVE: root / S2_ARCHIVE, REFERENCE_ARCHIVE: root / REFERENCE_ARCHIVE}

    # 2. S1 archive, sorted by the pipeline's pre-rename paths (<s1_name>/<s1_name>_<pol>.tif).
    if s1:
        by_id = {c.patch_id: c for c in cells}
        s1_order = sorted(patches, key=lambda p: f"{p.s1_name}/")
        s1_size = sum(
            _member_size(f"{_s1_dir(p)}/{p.s1_name}_{pol}.tif", _S1_FILE_SIZE)
            for p in s1_order
            for pol in S1_POLARISATIONS
        )
        s1_sink = _TarZst(root / S1_ARCHIVE, s1_size)
        for patch in s1_order:
            epsg, origin = _origin(patch)
            cell = by_id[patch.patch_id]
            # the map again (cheaper than holding every map: the S1 order differs from S2's)
            idx = _code_map(_rng(seed, "patch", cell.patch_id), cell.product, cell.cycle_code)
            pols = _s1_bands(scene, _rng(seed, "s1", patch.patch_id), idx)
            head = headers.get(_KIND_S1, epsg, origin, 10.0)
            s1_sink.write(
                b"".join(
                    _tar_member(
                        f"{_s1_dir(patch)}/{patch.s1_name}_{pol}.tif", head + pols[pol].tobytes()
                    )
                    for pol in S1_POLARISATIONS
                )
            )
        md5s["BigEarthNet-S1.tar"], md5s[S1_ARCHIVE] = s1_sink.close()
        files[S1_ARCHIVE] = root / S1_ARCHIVE
    else:  # an archive from an earlier build would contradict hashes.txt
        (root / S1_ARCHIVE).unlink(missing_ok=True)

    # 3. Metadata: flagged patches only in the snow/cloud file, as in the release.
    rows = [p for p in patches if not p.flagged]
    if "orphan_metadata_row" in wanted:
        orphan = _orphan(patches)
        broken["orphan_metadata_row"] = orphan.patch_id
        rows = sorted([*rows, orphan], key=lambda p: p.patch_id)
    for name, subset in (
        (METADATA, rows),
        (SNOW_CLOUD_METADATA, [p for p in patches if p.flagged]),
    ):
        files[name] = root / name
        _write_metadata(files[name], subset)
        md5s[name] = hashlib.md5(files[name].read_bytes()).hexdigest()

    # 4. hashes.txt (md5 of the complete files), then the truncation if asked for.
    listing = "".join(f"{md5s[n]}  {n}\n" for n in sorted(md5s, key=str.lower))
    (root / HASHES).write_text(f"md5 hashes:\n\n{listing}\n", encoding="ascii")
    files[HASHES] = root / HASHES
    if "truncated" in wanted:
        path = root / S2_ARCHIVE
        with path.open("r+b") as fh:
            fh.truncate(path.stat().st_size * 2 // 3)
        broken["truncated"] = S2_ARCHIVE
    return BenWorld(root=root, files=files, patches=tuple(patches), flaws=broken)


def _patch(cell: _Cell, idx: np.ndarray) -> BenPatch:
    """The patch record: names as in the release (S1 and v1 names without zero padding)."""
    product = cell.product.name
    codes, labels = _labels(idx)
    return BenPatch(
        patch_id=cell.patch_id,
        s2_product=product,
        s1_product=cell.s1_product,
        s1_name=f"{cell.s1_product}_{product.rsplit('_T', 1)[1]}_{cell.x}_{cell.y}",
        s2v1_name=f"{'_'.join(product.split('_')[:3])}_{cell.x}_{cell.y}",
        x=cell.x,
        y=cell.y,
        country=cell.country,
        split=cell.split,
        labels=labels,
        codes=codes,
        snow=cell.snow,
        cloud=cell.cloud,
    )


_S1_FILE_SIZE = 424 + 120 * 120 * 4
_S2_BAND_SIZE = {b: (396 if s == 120 else 372) + s * s * 2 for b, s in S2_BANDS.items()}


def _s2_plan(
    cells: list[_Cell], wanted: frozenset[str], broken: dict[str, str]
) -> list[list[tuple[str, int, str]]]:
    """Per cell, its S2 members in archive order as (name, data size, band or "symlink").

    Flaws hit the first patch (symlink, dotdot member after it) and the first patch of the
    second product (missing band); the rest of the archive stays sorted.
    """
    victim = cells[0].product.name
    second = next((c for c in cells if c.product.name != victim), cells[-1])
    plan = []
    for cell in cells:
        members = []
        folder = f"BigEarthNet-S2/{cell.product.name}/{cell.patch_id}"
        for band in sorted(S2_BANDS):  # file-name order: B8A after B12, as `sort` puts it
            name = f"{folder}/{cell.patch_id}_{band}.tif"
            if cell is second and band == "B8A" and "missing_band" in wanted:
                broken["missing_band"] = name
            elif cell is cells[0] and band == "B02" and "symlink_member" in wanted:
                broken["symlink_member"] = name
                members.append((name, 0, "symlink"))
            else:
                members.append((name, _S2_BAND_SIZE[band], band))
        if cell is cells[0] and "dotdot_member" in wanted:
            # Climbs two levels above the extraction root; the content is a real band file.
            name = f"BigEarthNet-S2/{cell.product.name}/../../../{cell.patch_id}_B01.tif"
            broken["dotdot_member"] = name
            members.append((name, _S2_BAND_SIZE["B01"], "B01"))
        plan.append(members)
    return plan


def _orphan(patches: list[BenPatch]) -> BenPatch:
    """A metadata row for a cell of the first product that has no files anywhere."""
    base = patches[0]
    taken = {(p.x, p.y) for p in patches if p.s2_product == base.s2_product}
    x, y = next(
        (x, y) for x in range(_GRID - 1, -1, -1) for y in range(_GRID) if (x, y) not in taken
    )
    tile = base.s2_product.rsplit("_T", 1)[1]
    mission_time = "_".join(base.s2_product.split("_")[:3])
    return BenPatch(
        patch_id=f"{base.s2_product}_{x:02d}_{y:02d}",
        s2_product=base.s2_product,
        s1_product=base.s1_product,
        s1_name=f"{base.s1_product}_{tile}_{x}_{y}",
        s2v1_name=f"{mission_time}_{x}_{y}",
        x=x,
        y=y,
        country=base.country,
        split="train",
        labels=base.labels,
        codes=base.codes,
        snow=False,
        cloud=False,
    )


def _write_metadata(path: Path, rows: list[BenPatch]) -> None:
    """Parquet like the release's (zstd, dictionaries for split/country, no pandas metadata).

    pyarrow stamps ``created_by`` with its own version (the release says DuckDB), so the bytes
    are stable for one pyarrow version; readers only see the schema, which is the real one.
    """
    table = pa.table(
        {
            "patch_id": [p.patch_id for p in rows],
            "labels": [list(p.labels) for p in rows],
            "split": [p.split for p in rows],
            "country": [p.country for p in rows],
            "s1_name": [p.s1_name for p in rows],
            "s2v1_name": [p.s2v1_name for p in rows],
            "contains_seasonal_snow": [p.snow for p in rows],
            "contains_cloud_or_shadow": [p.cloud for p in rows],
        },
        schema=METADATA_SCHEMA,
    )
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=["split", "country"],
        store_schema=False,
        version="1.0",
        row_group_size=122_880,
        write_statistics=True,
    )
