"""SAFE quicklooks for the report: each product's own ``preview/quick-look.png``, and a contact
sheet per AOI with the footprint map's numbers.

The quicklook is read from the product's zip (the delivered, verified artefact), so the report
does not depend on the SAFE folder staying on disk. Its bytes are copied unchanged: it is the
picture ESA made, checked against ``manifest.safe`` when the SAFE was verified.
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from eopack.errors import EopackError
from eopack.fsutil import atomic_write_bytes
from eopack.report.footprints import NumberedProduct, aoi_products
from eopack.report.plotting import FONT_SIZE, message_figure, new_figure, png_bytes, save_png

log = logging.getLogger(__name__)

QUICKLOOK = "preview/quick-look.png"
COLUMNS = 4
THUMBNAIL = 480
MAX_SHEET = 48


def read_quicklook(zip_path: str | Path, product_id: str) -> bytes | None:
    """The quicklook's bytes from ``{id}.SAFE/preview/quick-look.png`` in the zip (None: absent)."""
    member = f"{product_id}.SAFE/{QUICKLOOK}"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            try:
                return archive.read(member)
            except KeyError:
                return None
    except (OSError, zipfile.BadZipFile) as exc:
        raise EopackError(f"{zip_path}: cannot read the product zip ({exc})") from None


def _check_png(data: bytes, where: str) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise EopackError(f"{where}: not a readable PNG ({exc})") from None


def write_quicklook(zip_path: str | Path, product_id: str, out: str | Path) -> bool:
    """Copy the product's quicklook to ``out``; a product without one gets a placeholder that
    says so (logged as a warning). Returns whether the product had a quicklook."""
    data = read_quicklook(zip_path, product_id)
    if data is None:
        log.warning("%s: no %s in the SAFE; the report shows a placeholder", zip_path, QUICKLOOK)
        fig = message_figure(product_id, f"no {QUICKLOOK} in {Path(zip_path).name}", 8, 1.6)
        atomic_write_bytes(out, png_bytes(fig))
        return False
    _check_png(data, f"{zip_path}: {product_id}.SAFE/{QUICKLOOK}")
    atomic_write_bytes(out, data)
    return True


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
