"""BigEarthNet Sentinel-1 patches -> greyscale PNGs of VV and VH backscatter (optional).

Each S2 patch of BigEarthNet v2 has a Sentinel-1 patch (metadata column ``s1_name``) in the
``BigEarthNet-S1`` archive: ``<s1 product>/<s1_name>/<s1_name>_{VV,VH}.tif``, 120x120 float32
backscatter in dB, where the S1 product folder is ``s1_name`` minus its last three ``_`` fields
(tile, column, row). :func:`render_s1_product` writes, for every selected patch of one S2 product,
``<s1_dir>/<patch_id>_VV.png`` and ``_VH.png``: named by the S2 patch id, as the dataset is.

dB stretch (documented contract), per polarisation, default VV ``[-25, 0]``, VH ``[-32, -5]``
(the usual display ranges of land backscatter)::

    out = floor(255 * (clip(db, low, high) - low) / (high - low) + 0.5)     # float64

so ``low`` and below -> 0, ``high`` and above -> 255; NaN (no data) -> 0.

A selected patch whose S1 files are missing is a counted skip for S1 only (it keeps its RGB and
mask PNGs; ``index.csv`` leaves its S1 columns empty), logged and listed in the S1 report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eopack.bigearthnet.dataset import PATCH_SIDE, RenderStats
from eopack.bigearthnet.index import (
    S1_BANDS,
    ReportRow,
    Selection,
    read_patches,
    write_report,
)
from eopack.bigearthnet.png import encode_gray
from eopack.bigearthnet.render import read_band
from eopack.errors import EopackError
from eopack.fsutil import read_small_file, write_new_file

__all__ = ["DEFAULT_DB_STRETCH", "S1_BANDS", "DbStretch", "render_s1_product", "stretch_db"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbStretch:
    """dB -> 0..255 per polarisation: ``{band: (low, high)}``."""

    VV: tuple[float, float] = (-25.0, 0.0)
    VH: tuple[float, float] = (-32.0, -5.0)

    def __post_init__(self) -> None:
        for band in S1_BANDS:
            low, high = self.range(band)
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise EopackError(
                    f"S1 stretch {band}: need finite low < high in dB, got [{low}, {high}]"
                )

    def range(self, band: str) -> tuple[float, float]:
        """(low, high) in dB of ``band``."""
        low, high = getattr(self, band)
        return float(low), float(high)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DbStretch:
        """From ``{VV: [low, high], VH: [low, high]}`` (either may be left out)."""
        unknown = sorted(set(cfg) - set(S1_BANDS))
        if unknown:
            raise EopackError(f"S1 stretch: unknown key(s) {', '.join(unknown)} (VV, VH)")
        try:
            return cls(**{k: (float(v[0]), float(v[1])) for k, v in cfg.items()})
        except (TypeError, ValueError, IndexError):
            raise EopackError(
                f"S1 stretch: each of VV, VH is [low, high] in dB, got {dict(cfg)}"
            ) from None

    def as_params(self) -> dict[str, list[float]]:
        """A plain dict (Snakemake params)."""
        return {band: list(self.range(band)) for band in S1_BANDS}


DEFAULT_DB_STRETCH = DbStretch()


def stretch_db(db: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 of backscatter ``db`` (see the module docstring); NaN -> 0."""
    scaled = (np.clip(db.astype(np.float64), low, high) - low) * 255.0 / (high - low)
    out = np.floor(scaled + 0.5)
    out[np.isnan(out)] = 0
    return out.astype(np.uint8)


def s1_product(s1_name: str) -> str:
    """The S1 product folder of an S1 patch: its name minus the last three ``_`` fields."""
    parts = s1_name.rsplit("_", 3)
    if len(parts) != 4 or not all(parts):
        raise EopackError(f"s1_name {s1_name!r} is not <S1 product>_<tile>_<column>_<row>")
    return parts[0]


def _s1_png(data: bytes, name: str, band: str, stretch: DbStretch) -> bytes:
    db = read_band(data, name)
    if db.dtype != np.float32 or db.shape != (PATCH_SIDE, PATCH_SIDE):
        raise EopackError(
            f"{name}: {db.dtype} {db.shape[1]}x{db.shape[0]}, expected float32 dB "
            f"{PATCH_SIDE}x{PATCH_SIDE}; is it a BigEarthNet v2 S1 patch?"
        )
    return encode_gray(stretch_db(db, *stretch.range(band)))


def render_s1_product(
    product: str,
    *,
    s1_root: str | Path,
    metadata: Sequence[str | Path],
    selection: Selection,
    s1_dir: str | Path,
    report: str | Path,
    stretch: DbStretch = DEFAULT_DB_STRETCH,
) -> RenderStats:
    """VV and VH PNGs of every selected patch of S2 product ``product``; its S1 report TSV.

    ``s1_root`` is the extracted ``BigEarthNet-S1`` folder.
    """
    patches = read_patches(metadata, selection, product, with_s1=True)
    stats = RenderStats(product, selected=len(patches))
    out = Path(s1_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder, root = os.fspath(out), os.fspath(s1_root)
    rows: list[ReportRow] = []
    for patch in patches:
        pid, name = patch.patch_id, patch.s1_name
        where = f"{root}/{s1_product(name)}/{name}/{name}"
        files = {band: read_small_file(f"{where}_{band}.tif") for band in S1_BANDS}
        missing = [band for band, data in files.items() if data is None]
        if missing:
            reason = f"missing S1 {', '.join(missing)} ({name})"
            log.warning("skip S1 of %s: %s", pid, reason)
            stats.skipped[f"missing S1 {', '.join(missing)}"] += 1
            rows.append(ReportRow(pid, patch.split, patch.labels, reason))
            continue
        pngs = {
            band: _s1_png(data, f"{name}_{band}", band, stretch)  # type: ignore[arg-type]
            for band, data in files.items()
        }
        for band, png in pngs.items():
            write_new_file(f"{folder}/{pid}_{band}.png", png)
        stats.rendered += 1
        rows.append(ReportRow(pid, patch.split, patch.labels))
    write_report(report, rows)
    log.info("S1 %s", stats.summary())
    return stats
