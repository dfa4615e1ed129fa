"""A contact sheet per AOI: the quicklooks of its SAFE products, numbered as on its footprint
map, so a glance connects a footprint with what the radar saw."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from eopack.errors import EopackError
from eopack.report.footprints import NumberedProduct, aoi_products
from eopack.report.plotting import FONT_SIZE, message_figure, new_figure, save_png

COLUMNS = 4
THUMBNAIL = 480
MAX_SHEET = 48


def _thumbnail(path: str | Path) -> Image.Image:
    """The picture scaled down to ``THUMBNAIL`` pixels wide at most (bounded memory)."""
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise EopackError(f"{path}: not a readable PNG ({exc})") from None


def _split_id(product_id: str, width: int = 34) -> str:
    """A product id on lines of at most ``width`` characters, broken after an underscore."""
    lines = [""]
    for part in product_id.split("_"):
        piece = f"{part}_"
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines).rstrip("_")


def render_contact_sheet(
    aoi_name: str, entries: Sequence[NumberedProduct], quicklooks: Mapping[str, str | Path]
) -> Figure:
    """Quicklooks of the AOI's SAFE products, numbered as on the AOI's footprint map."""
    shown = [e for e in entries if e.product.id in quicklooks]
    if not shown:
        return message_figure(f"{aoi_name}: quicklooks", "no SAFE product for this AOI")
    more = max(0, len(shown) - MAX_SHEET)
    shown = shown[:MAX_SHEET]
    columns = min(COLUMNS, len(shown))
    rows = math.ceil(len(shown) / columns)
    fig = new_figure(3.2 * columns, 2.9 * rows + 0.4)
    grid = fig.add_gridspec(rows, columns, hspace=0.35, wspace=0.08)
    for i, entry in enumerate(shown):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        ax.imshow(_thumbnail(quicklooks[entry.product.id]), interpolation="antialiased")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(entry.colour)
            spine.set_linewidth(2.5)
        ax.set_title(
            f"{entry.number}  {entry.date}  {entry.description}",
            fontsize=FONT_SIZE,
            color=entry.colour,
            weight="bold",
            loc="left",
        )
        ax.set_xlabel(_split_id(entry.product.id), fontsize=6.5, color="0.3")
    title = f"{aoi_name}: quicklooks of {len(shown) + more} SAFE product(s)"
    if more:
        title += f" (first {len(shown)} shown)"
    fig.suptitle(title, fontsize=FONT_SIZE + 2, x=0.01, ha="left")
    return fig


def write_contact_sheet(
    aoi_name: str,
    manifests: Sequence[str | Path],
    quicklooks: Sequence[str | Path],
    out: str | Path,
) -> int:
    """Contact sheet from the AOI's manifests and the quicklook PNGs (named ``{id}.png``)."""
    by_id = {Path(q).stem: q for q in quicklooks}
    entries = aoi_products(manifests)
    save_png(render_contact_sheet(aoi_name, entries, by_id), out)
    return sum(1 for e in entries if e.product.id in by_id)
