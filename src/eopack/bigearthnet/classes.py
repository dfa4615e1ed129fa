"""The 19 BigEarthNet classes: names, CORINE (CLC) level-3 codes, mask index and palette colour.

Names are exactly the strings in BigEarthNet v2 ``metadata.parquet`` ``labels`` (checked against the
real file in tests/fixtures), so a mask's classes can be compared with a patch's labels.

Colours: each class is drawn in the official CORINE Land Cover legend colour of its *first* CLC code
(the EEA ``clc_legend`` RGB values shipped with the CLC raster products; the same values are in the
Copernicus CORINE class table of Google Earth Engine, COPERNICUS/CORINE/V20/100m, and in NIBIO's CLC
documentation). Unlabeled pixels (mask value 255) are black.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from eopack.errors import EopackError

__all__ = [
    "CLASSES",
    "CLC_TO_INDEX",
    "PALETTE",
    "PALETTE_SOURCE",
    "UNKNOWN",
    "UNLABELED",
    "UNLABELED_CLC_CODES",
    "UNLABELED_RGB",
    "LandCoverClass",
    "class_index",
    "class_names_in",
    "classes_json",
    "unknown_codes_error",
]

UNLABELED = 255
"""Mask value of pixels whose CLC code belongs to no class (incl. 999 = no polygon, 0 = nodata)."""
UNKNOWN = 254
"""Sentinel in ``CLC_TO_INDEX`` for codes in neither list; never written to a mask."""
UNLABELED_RGB = (0, 0, 0)
PALETTE_SOURCE = (
    "CORINE Land Cover legend (EEA clc_legend RGB), colour of each class's first CLC code; "
    "unlabeled = black"
)


@dataclass(frozen=True)
class LandCoverClass:
    """One BigEarthNet class: mask index, metadata label, CLC level-3 codes, palette colour."""

    index: int
    name: str
    clc_codes: tuple[int, ...]
    rgb: tuple[int, int, int]


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(0, "Urban fabric", (111, 112), (230, 0, 77)),
    LandCoverClass(1, "Industrial or commercial units", (121,), (204, 77, 242)),
    LandCoverClass(2, "Arable land", (211, 212, 213), (255, 255, 168)),
    LandCoverClass(3, "Permanent crops", (221, 222, 223, 241), (230, 128, 0)),
    LandCoverClass(4, "Pastures", (231,), (230, 230, 77)),
    LandCoverClass(5, "Complex cultivation patterns", (242,), (255, 230, 77)),
    LandCoverClass(
        6,
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        (243,),
        (230, 204, 77),
    ),
    LandCoverClass(7, "Agro-forestry areas", (244,), (242, 204, 166)),
    LandCoverClass(8, "Broad-leaved forest", (311,), (128, 255, 0)),
    LandCoverClass(9, "Coniferous forest", (312,), (0, 166, 0)),
    LandCoverClass(10, "Mixed forest", (313,), (77, 255, 0)),
    LandCoverClass(
        11, "Natural grassland and sparsely vegetated areas", (321, 333), (204, 242, 77)
    ),
    LandCoverClass(
        12, "Moors, heathland and sclerophyllous vegetation", (322, 323), (166, 255, 128)
    ),
    LandCoverClass(13, "Transitional woodland, shrub", (324,), (166, 242, 0)),
    LandCoverClass(14, "Beaches, dunes, sands", (331,), (230, 230, 230)),
    LandCoverClass(15, "Inland wetlands", (411, 412), (166, 166, 255)),
    LandCoverClass(16, "Coastal wetlands", (421, 422), (204, 204, 255)),
    LandCoverClass(17, "Inland waters", (511, 512), (0, 204, 242)),
    LandCoverClass(18, "Marine waters", (521, 522, 523), (0, 255, 166)),
)

UNLABELED_CLC_CODES: tuple[int, ...] = (
    0, 122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423, 999
)  # fmt: skip


def _lookup_table() -> np.ndarray:
    """65,536 entries so that any uint16 code indexes it without a bounds check."""
    lut = np.full(65536, UNKNOWN, dtype=np.uint8)
    for cls in CLASSES:
        lut[list(cls.clc_codes)] = cls.index
    lut[list(UNLABELED_CLC_CODES)] = UNLABELED
    lut.flags.writeable = False
    return lut


def _palette() -> np.ndarray:
    """256 entries (PNG requires every used index, incl. 255, to be in PLTE); unused = black."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for cls in CLASSES:
        pal[cls.index] = cls.rgb
    pal[UNLABELED] = UNLABELED_RGB
    pal.flags.writeable = False
    return pal


CLC_TO_INDEX = _lookup_table()
"""uint8[65536]: CLC code -> class index 0..18, ``UNLABELED`` (255) or ``UNKNOWN`` (254)."""
PALETTE = _palette()
"""uint8[256, 3]: mask index -> RGB, written as the masks' PLTE chunk."""


def unknown_codes_error(codes: Iterable[int], patch_id: str) -> EopackError:
    """The error for CLC codes that are neither a class's nor known-unlabeled."""
    listed = ", ".join(str(int(c)) for c in sorted(set(codes)))
    return EopackError(
        f"patch {patch_id or '?'}: reference map has CLC code(s) {listed} that are neither in a "
        "BigEarthNet class nor in the unlabeled list; is this a BigEarthNet v2 reference map?"
    )


def class_index(code: int, patch_id: str = "") -> int:
    """Mask value of one CLC code (0..18 or 255); an unknown code is an error naming the patch."""
    value = int(CLC_TO_INDEX[code]) if 0 <= code < CLC_TO_INDEX.size else UNKNOWN
    if value == UNKNOWN:
        raise unknown_codes_error([code], patch_id)
    return value


def class_names_in(mask: np.ndarray) -> list[str]:
    """Names of the classes present in a mask, in class order (comparable to metadata labels)."""
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)[: len(CLASSES)])
    return [CLASSES[i].name for i in present]


def _entry(index: int, name: str, codes: Iterable[int], rgb: Iterable[int]) -> str:
    item = {"index": index, "name": name, "clc_codes": list(codes), "rgb": list(rgb)}
    return json.dumps(item, ensure_ascii=False)


def classes_json() -> bytes:
    """``classes.json`` bytes, reproducible and readable: one class per line, final newline."""
    rows = ",\n".join(f"    {_entry(c.index, c.name, c.clc_codes, c.rgb)}" for c in CLASSES)
    unlabeled = _entry(UNLABELED, "Unlabeled", UNLABELED_CLC_CODES, UNLABELED_RGB)
    source = json.dumps(PALETTE_SOURCE, ensure_ascii=False)
    text = (
        f'{{\n  "classes": [\n{rows}\n  ],\n  "unlabeled": {unlabeled},\n'
        f'  "palette_source": {source}\n}}\n'
    )
    return text.encode("utf-8")
