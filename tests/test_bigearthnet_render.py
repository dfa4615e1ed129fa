"""BigEarthNet rendering: stretch, class mask, PNG bytes and the GeoTIFF reader.

Real patches come from tests/fixtures/bigearthnet (see tests/fixtures/README.md); the edge cases
(every CLC code, every stretch boundary) are hand-built because no real patch has them all.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile
from PIL import Image

from eopack.bigearthnet.classes import (
    CLASSES,
    PALETTE,
    UNLABELED,
    UNLABELED_CLC_CODES,
    class_index,
    class_names_in,
    classes_json,
)
from eopack.bigearthnet.png import deflate_version, encode_palette, encode_rgb
from eopack.bigearthnet.render import (
    DEFAULT_STRETCH,
    Stretch,
    read_band,
    render_mask,
    render_patch,
    render_patch_mask,
    render_patch_rgb,
    render_rgb,
)
from eopack.errors import EopackError

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
PRODUCT = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
S2_PATCH = f"{PRODUCT}_75_43"
REF_PATCH = f"{PRODUCT}_26_57"
ALL_TIFFS = sorted(FIXTURES.glob("*/*/*/*.tif"))

# The DESIGN.md table, written out independently of classes.py.
DESIGN_TABLE = {
    0: (111, 112), 1: (121,), 2: (211, 212, 213), 3: (221, 222, 223, 241), 4: (231,), 5: (242,),
    6: (243,), 7: (244,), 8: (311,), 9: (312,), 10: (313,), 11: (321, 333), 12: (322, 323),
    13: (324,), 14: (331,), 15: (411, 412), 16: (421, 422), 17: (511, 512), 18: (521, 522, 523),
}  # fmt: skip
DESIGN_UNLABELED = (122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423, 999, 0)

# SHA-256 of the fixture patch's PNGs. Deflate output belongs to the zlib CPython links, so the
# pin is per zlib version: an unknown zlib fails, so a published SHA256SUMS that would no longer
# reproduce is noticed (add the new version's digests after checking the images decode the same).
#: deflate_version() -> SHA-256 of (RGB of S2 patch _75_43, mask of reference map _26_57).
PINNED_PNG_SHA256 = {
    "isal 1.9.1 x86_64": (
        "aa6bc2baa3f974eae58322dc7c076472b60e75b134090813980e9800511605a2",
        "0679251234d78585aad767a22d975ce892ea1f7b289a6359fb961ff76e3a7bd7",
    ),
}


def _tif(band: str, patch: str = S2_PATCH, top: str = "BigEarthNet-S2") -> bytes:
    return (FIXTURES / top / PRODUCT / patch / f"{patch}_{band}.tif").read_bytes()


@pytest.fixture(scope="module")
def fixture_files() -> dict[str, bytes]:
    files = {band: _tif(band) for band in ("B02", "B03", "B04")}
    files["reference_map"] = _tif("reference_map", REF_PATCH, "Reference_Maps")
    return files


def _geotiff(array: np.ndarray, **kwargs: object) -> bytes:
    """A TIFF in BigEarthNet's layout (34-row strips) unless kwargs say otherwise."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, photometric="minisblack", **{"rowsperstrip": 34, **kwargs})
    return buf.getvalue()


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", png, pos + 8 + length)
        assert crc == zlib.crc32(kind + data)
        out.append((kind, data))
        pos += 12 + length
    return out


# --- classes ------------------------------------------------------------------------------------


def test_class_table_matches_design_and_metadata_labels():
    assert {c.index: c.clc_codes for c in CLASSES} == DESIGN_TABLE
    assert sorted(UNLABELED_CLC_CODES) == sorted(DESIGN_UNLABELED)
    labels = pq.read_table(FIXTURES / "metadata.parquet", columns=["labels"]).column("labels")
    assert {c.name for c in CLASSES} == set(labels.combine_chunks().flatten().to_pylist())
    class_codes = [code for c in CLASSES for code in c.clc_codes]
    corine_level3 = set(class_codes) | (set(UNLABELED_CLC_CODES) - {0, 999})
    assert len(class_codes) + len(UNLABELED_CLC_CODES) == len(corine_level3) + 2 == 46  # 44 + 2


def test_palette_is_distinct_and_black_for_unlabeled():
    colours = [c.rgb for c in CLASSES]
    assert len(set(colours)) == 19 and (0, 0, 0) not in colours
    assert [tuple(PALETTE[i]) for i in range(19)] == colours
    assert tuple(PALETTE[UNLABELED]) == (0, 0, 0)
    assert (CLASSES[2].rgb, CLASSES[9].rgb) == ((255, 255, 168), (0, 166, 0))  # CLC 211, 312


def test_classes_json_content_and_determinism():
    raw = classes_json()
    assert raw == classes_json() and raw.endswith(b"}\n")
    doc = json.loads(raw)
    assert [c["index"] for c in doc["classes"]] == list(range(19))
    for entry, cls in zip(doc["classes"], CLASSES, strict=True):
        assert entry == {
            "index": cls.index,
            "name": cls.name,
            "clc_codes": list(cls.clc_codes),
            "rgb": list(cls.rgb),
        }
    assert doc["unlabeled"]["index"] == 255 and doc["unlabeled"]["rgb"] == [0, 0, 0]
    assert set(doc["unlabeled"]["clc_codes"]) == set(DESIGN_UNLABELED)
    assert "CORINE" in doc["palette_source"]


def test_unknown_clc_code_is_an_error_naming_code_and_patch():
    assert class_index(243) == 6 and class_index(999) == 255 and class_index(0) == 255
    with pytest.raises(EopackError, match=r"patch P_1_2: .*CLC code\(s\) 700\b"):
        class_index(700, "P_1_2")
    ref = np.full((120, 120), 211, dtype=np.uint16)
    ref[5, 5], ref[6, 6] = 700, 65535
    with pytest.raises(EopackError, match=r"patch X_9_9: .*700, 65535"):
        render_mask(ref, "X_9_9")


# --- mask ---------------------------------------------------------------------------------------


def test_hand_built_reference_map_with_every_code_maps_per_table():
    expected_of = {code: idx for idx, codes in DESIGN_TABLE.items() for code in codes}
    expected_of |= dict.fromkeys(DESIGN_UNLABELED, 255)
    codes = np.array(sorted(expected_of), dtype=np.uint16)  # 46 codes incl. 0 and 999
    ref = np.resize(codes, 120 * 120).reshape(120, 120)
    want = np.vectorize(expected_of.__getitem__)(ref).astype(np.uint8)

    assert np.array_equal(render_mask(ref), want)
    for layout in ({"compression": "adobe_deflate", "predictor": 2}, {}):
        png = render_patch_mask({"reference_map": _geotiff(ref, **layout)}, patch_id="hand")
        image = _decode(png)
        assert image.mode == "P" and image.size == (120, 120)
        assert np.array_equal(np.asarray(image), want)
    assert set(np.unique(want)) == set(range(19)) | {255}


def test_real_reference_map_classes_are_the_patch_labels(fixture_files):
    mask = _decode(render_patch_mask(fixture_files, patch_id=REF_PATCH))
    present = class_names_in(np.asarray(mask))
    table = pq.read_table(FIXTURES / "metadata.parquet", columns=["patch_id", "labels"])
    row = table.filter(pc.equal(table["patch_id"], REF_PATCH)).to_pylist()
    assert len(row) == 1
    labels = set(row[0]["labels"])
    assert set(present) <= labels
    assert (
        set(present) == labels == {"Arable land", "Broad-leaved forest", "Mixed forest", "Pastures"}
    )


def test_mask_png_palette_holds_class_colours(fixture_files):
    png = render_patch_mask(fixture_files, patch_id=REF_PATCH)
    chunks = dict(_chunks(png))
    assert [k for k, _ in _chunks(png)] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (120, 120, 8, 3, 0, 0, 0)
    plte = np.frombuffer(chunks[b"PLTE"], dtype=np.uint8).reshape(-1, 3)
    assert plte.shape == (256, 3)
    assert [tuple(plte[c.index]) for c in CLASSES] == [c.rgb for c in CLASSES]
    assert tuple(plte[255]) == (0, 0, 0)
    assert _decode(png).getpalette()[: 3 * 19] == [v for c in CLASSES for v in c.rgb]


# --- RGB ----------------------------------------------------------------------------------------

STRETCH_POINTS = {0: 0, 1: 0, 3: 0, 4: 1, 200: 26, 600: 77, 1999: 255, 2000: 255, 2001: 255,
                  10000: 255, 65535: 255}  # fmt: skip


def test_default_stretch_is_the_documented_integer_formula():
    lut = DEFAULT_STRETCH.lut()
    x = np.arange(65536, dtype=np.int64)
    assert np.array_equal(lut, (np.minimum(x, 2000) * 255 + 1000) // 2000)
    assert {v: int(lut[v]) for v in STRETCH_POINTS} == STRETCH_POINTS  # 600 -> 76.5 -> 77


def test_rgb_pixels_through_tiff_and_png(fixture_files):
    values = np.array(list(STRETCH_POINTS), dtype=np.uint16)
    rng = np.random.default_rng(7)
    b04 = rng.integers(0, 4000, (120, 120), dtype=np.uint16)
    b03, b02 = b04[::-1].copy(), b04[:, ::-1].copy()
    points = [(0, 0), (0, 119), (119, 0), (119, 119), (60, 61), (33, 34), (34, 33)]
    for i, (r, c) in enumerate(points):  # the 11 values spread over bands and strip borders
        b04[r, c] = values[i % len(values)]
        b03[r, c] = values[(i + 3) % len(values)]
        b02[r, c] = values[(i + 7) % len(values)]
    files = {"B04": _geotiff(b04), "B03": _geotiff(b03), "B02": _geotiff(b02)}
    image = _decode(render_patch_rgb(files, patch_id="synthetic"))
    assert image.mode == "RGB" and image.size == (120, 120)
    rgb = np.asarray(image)
    for r, c in points:
        got = tuple(int(v) for v in rgb[r, c])
        want = tuple(STRETCH_POINTS[int(b[r, c])] for b in (b04, b03, b02))
        assert got == want, (r, c)
    assert np.array_equal(rgb, render_rgb(b04, b03, b02))


def test_custom_stretch_and_gamma():
    band = np.array([[0, 100, 600, 1100, 5000]], dtype=np.uint16)
    out = render_rgb(band, band, band, Stretch(low=100, high=1100))[..., 0]
    assert out.tolist() == [[0, 0, 128, 255, 255]]  # 500/1000*255 = 127.5 -> 128
    gamma = render_rgb(band, band, band, Stretch(gamma=2.0))[..., 1]
    assert gamma.tolist() == [[0, 57, 140, 189, 255]]  # 255 * (x / 2000) ** 0.5, halves up
    quarter = np.array([[500]], dtype=np.uint16)
    assert int(render_rgb(quarter, quarter, quarter, Stretch(gamma=2.0))[0, 0, 2]) == 128  # 127.5
    for bad in ({"low": 5, "high": 5}, {"high": 70000}, {"gamma": 0}):
        with pytest.raises(EopackError, match="stretch"):
            Stretch(**bad)


def test_png_round_trip_random_arrays():
    rng = np.random.default_rng(1)
    for shape in ((120, 120), (1, 1), (7, 300), (60, 5)):
        rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        assert np.array_equal(np.asarray(_decode(encode_rgb(rgb))), rgb)
        idx = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(np.asarray(_decode(encode_palette(idx, PALETTE))), idx)
    with pytest.raises(EopackError, match="outside"):
        encode_palette(np.full((2, 2), 19, np.uint8), PALETTE[:19])


# --- the real patch, determinism ----------------------------------------------------------------


def test_real_patch_renders_and_bytes_are_deterministic(fixture_files):
    rgb_png, mask_png = render_patch(fixture_files, patch_id=S2_PATCH)
    assert (rgb_png, mask_png) == render_patch(dict(fixture_files), patch_id=S2_PATCH)
    bands = [tifffile.imread(io.BytesIO(fixture_files[k])) for k in ("B04", "B03", "B02")]
    assert np.array_equal(np.asarray(_decode(rgb_png)), render_rgb(*bands))
    ref = tifffile.imread(io.BytesIO(fixture_files["reference_map"]))
    assert np.array_equal(np.asarray(_decode(mask_png)), render_mask(ref))

    version = deflate_version()
    assert version in PINNED_PNG_SHA256, (
        f"{version}: PNG bytes not pinned (pinned: {sorted(PINNED_PNG_SHA256)})"
    )
    digests = tuple(hashlib.sha256(b).hexdigest() for b in (rgb_png, mask_png))
    assert digests == PINNED_PNG_SHA256[version], f"{version} now deflates differently"


def test_missing_band_names_patch_and_band(fixture_files):
    files = {k: v for k, v in fixture_files.items() if k != "B03"}
    with pytest.raises(EopackError, match=r"patch P_7_7: no B03 file \(have: B02, B04, ref"):
        render_patch(files, patch_id="P_7_7")
    with pytest.raises(EopackError, match="patch P_7_7: no reference_map"):
        render_patch_mask({}, patch_id="P_7_7")


# --- GeoTIFF reader -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_TIFFS, ids=lambda p: p.name.rsplit("_", 1)[-1])
def test_band_reader_equals_tifffile_on_fixtures(path):
    ours, theirs = read_band(path.read_bytes()), tifffile.imread(path)
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


def test_band_reader_other_layouts_fall_back_to_tifffile():
    band = np.random.default_rng(3).integers(0, 65536, (120, 120), dtype=np.uint16)
    layouts = [
        {"byteorder": ">"},
        {"tile": (16, 16)},
        {"rowsperstrip": 120},
        {"compression": "zlib", "predictor": 2, "rowsperstrip": 7},
        {"bigtiff": True},
    ]
    for layout in layouts:
        assert np.array_equal(read_band(_geotiff(band, **layout)), band), layout


def test_band_reader_damaged_input_is_an_eopack_error_or_a_clean_read(fixture_files):
    rnd = random.Random(5)
    for key in ("B02", "reference_map"):
        data = fixture_files[key]
        for cut in (*range(0, 40, 3), 200, 400, len(data) // 2, len(data) - 1):
            with pytest.raises(EopackError):
                read_band(data[:cut], key)
        for _ in range(200):
            damaged = bytearray(data)
            for _ in range(3):
                damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
            try:
                band = read_band(bytes(damaged), key)
            except EopackError:
                continue
            assert isinstance(band, np.ndarray)


def test_a_damaged_deflate_strip_is_named(fixture_files):
    data = fixture_files["reference_map"]
    tiff = tifffile.TiffFile(io.BytesIO(data))
    page = tiff.pages[0]
    assert page.compression == 8  # the release's reference maps are DEFLATE-compressed
    offset, count = page.dataoffsets[0], page.databytecounts[0]
    for at in (offset + count - 1, offset):  # the Adler-32 checksum, the zlib header
        damaged = bytearray(data)
        damaged[at] ^= 0xFF
        with pytest.raises(EopackError, match=r"^x_reference_map: corrupt DEFLATE strip \("):
            read_band(bytes(damaged), "x_reference_map")
