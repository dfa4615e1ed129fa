"""Render the BigEarthNet PNG datasets: release archives -> extracted patches -> PNGs per product.

Layout under the dataset root (``results/bigearthnet``)::

    rgb/<s2_product>/<patch_id>.png    120x120 8-bit RGB (stretch: eopack.bigearthnet.render)
    mask/<s2_product>/<patch_id>.png   120x120 palette PNG: 0..18 class index, 255 unlabeled
    index.csv, skipped.tsv             eopack.bigearthnet.index
    classes.json                       eopack.bigearthnet.classes.classes_json()
    bigearthnet_pngs.zip, ...          eopack.bigearthnet.package (zips, SHA256SUMS)

:func:`render_product` renders one S2 product folder, patch by patch (memory stays flat: one
patch's files at a time), from the files ``extract.extract_dataset_archive`` extracted. Bad input:

* a selected metadata row with no files in either archive -> counted skip
  (``no files in the archives``), logged and listed in the product's report;
* a patch lacking one of the needed files (an RGB band, the reference map) -> counted skip
  naming the missing files;
* a reference map with a CLC code that is neither a class nor known-unlabeled, or an undecodable
  or wrongly sized GeoTIFF -> error naming the patch (the archive is not what we expect).

RGB bands may be any S2 band: 20 m (60x60) and 60 m (20x20) bands are brought to the 10 m grid
by pixel repetition (nearest neighbour), so every RGB PNG is 120x120.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eopack.bigearthnet.index import ReportRow, Selection, read_patches, write_report
from eopack.bigearthnet.png import deflate_version, encode_rgb
from eopack.bigearthnet.render import (
    DEFAULT_STRETCH,
    REFERENCE_MAP,
    RGB_BANDS,
    Stretch,
    read_band,
    render_patch_mask,
    render_patch_rgb,
    render_rgb,
)
from eopack.errors import EopackError
from eopack.fsutil import read_small_file, write_new_file

__all__ = [
    "BAND_SIDE",
    "PATCH_SIDE",
    "RenderStats",
    "render_product",
]

log = logging.getLogger(__name__)

PATCH_SIDE = 120
#: S2 band -> side of its patch in pixels (10 m: 120, 20 m: 60, 60 m: 20).
BAND_SIDE = {
    "B01": 20, "B02": 120, "B03": 120, "B04": 120, "B05": 60, "B06": 60,
    "B07": 60, "B08": 120, "B8A": 60, "B09": 20, "B11": 60, "B12": 60,
}  # fmt: skip
NO_FILES = "no files in the archives"


@dataclass
class RenderStats:
    """What rendering one product did."""

    product: str
    selected: int = 0
    rendered: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        skipped = sum(self.skipped.values())
        return (
            f"{self.product}: {self.selected} patches selected, {self.rendered} rendered, "
            f"{skipped} skipped" + (f" ({reasons})" if reasons else "")
        )


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _to_patch_grid(band: np.ndarray, name: str, side: int) -> np.ndarray:
    if band.shape != (side, side):
        raise EopackError(f"{name}: {band.shape[1]}x{band.shape[0]} pixels, expected {side}x{side}")
    factor = PATCH_SIDE // side
    return band if factor == 1 else np.repeat(np.repeat(band, factor, 0), factor, 1)


def _rgb_png(pid: str, bands: Sequence[str], data: Sequence[bytes], stretch: Stretch) -> bytes:
    if all(BAND_SIDE[b] == PATCH_SIDE for b in bands):
        png = render_patch_rgb(dict(zip(RGB_BANDS, data, strict=True)), stretch, patch_id=pid)
    else:
        arrays = [
            _to_patch_grid(read_band(raw, f"{pid}_{b}"), f"{pid}_{b}", BAND_SIDE[b])
            for b, raw in zip(bands, data, strict=True)
        ]
        png = encode_rgb(render_rgb(*arrays, stretch=stretch))
    if _png_size(png) != (PATCH_SIDE, PATCH_SIDE):
        width, height = _png_size(png)
        raise EopackError(
            f"patch {pid}: bands {', '.join(bands)} are {width}x{height}, expected "
            f"{PATCH_SIDE}x{PATCH_SIDE}; is it a BigEarthNet v2 patch?"
        )
    return png


def render_product(
    product: str,
    *,
    s2_root: str | Path,
    maps_root: str | Path,
    metadata: Sequence[str | Path],
    selection: Selection,
    rgb_dir: str | Path,
    mask_dir: str | Path,
    report: str | Path,
    bands: Sequence[str] = RGB_BANDS,
    stretch: Stretch = DEFAULT_STRETCH,
) -> RenderStats:
    """RGB and mask PNG of every selected patch of S2 product ``product``; its report TSV.

    ``s2_root`` / ``maps_root`` are the extracted ``BigEarthNet-S2`` / ``Reference_Maps``
    folders; ``bands`` are the red, green and blue bands.
    """
    if len(bands) != 3 or any(b not in BAND_SIDE for b in bands):
        raise EopackError(f"RGB bands must be three of {', '.join(BAND_SIDE)}, got {list(bands)}")
    patches = read_patches(metadata, selection, product)
    stats = RenderStats(product, selected=len(patches))
    rgb_dir, mask_dir = Path(rgb_dir), Path(mask_dir)
    rgb_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    rgb_folder, mask_folder = os.fspath(rgb_dir), os.fspath(mask_dir)
    s2_folder = os.path.join(os.fspath(s2_root), product)
    map_folder = os.path.join(os.fspath(maps_root), product)
    needed = list(dict.fromkeys(bands))
    rows: list[ReportRow] = []
    for patch in patches:
        pid = patch.patch_id
        files = {b: read_small_file(f"{s2_folder}/{pid}/{pid}_{b}.tif") for b in needed}
        files[REFERENCE_MAP] = read_small_file(f"{map_folder}/{pid}/{pid}_reference_map.tif")
        missing = [k.replace("_", " ") for k, v in files.items() if v is None]
        if missing:
            reason = NO_FILES if len(missing) == len(files) else f"missing {', '.join(missing)}"
            log.warning("skip %s: %s", pid, reason)
            stats.skipped[reason] += 1
            rows.append(ReportRow(pid, patch.split, patch.labels, reason))
            continue
        try:
            rgb = _rgb_png(pid, bands, [files[b] for b in bands], stretch)  # type: ignore[misc]
            mask = render_patch_mask(files, patch_id=pid)  # type: ignore[arg-type]
        except EopackError as exc:
            raise (exc if pid in str(exc) else EopackError(f"patch {pid}: {exc}")) from None
        write_new_file(f"{rgb_folder}/{pid}.png", rgb)
        write_new_file(f"{mask_folder}/{pid}.png", mask)
        stats.rendered += 1
        rows.append(ReportRow(pid, patch.split, patch.labels))
    write_report(report, rows)
    log.info("%s (PNG deflate: %s)", stats.summary(), deflate_version())
    return stats
