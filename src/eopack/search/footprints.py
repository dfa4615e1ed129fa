"""A footprint picture per search manifest: the AOI outline, each product's footprint, labels.

A glance shows whether a product covers the AOI or only clips it; the report embeds it.
Longitude/latitude are drawn as an equirectangular plot scaled by cos(latitude).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from eopack.fsutil import atomic_write_bytes
from eopack.search.manifest import Product

SIZE = 640
MARGIN = 40
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
AOI_COLOUR = (0, 0, 0)


def _rings(geom: BaseGeometry) -> Iterable[Sequence[tuple[float, float]]]:
    polygons = getattr(geom, "geoms", [geom])
    for polygon in polygons:
        yield list(polygon.exterior.coords)


class _Frame:
    """Maps lon/lat to pixels for the bounds of everything drawn."""

    def __init__(self, geoms: Sequence[BaseGeometry], width: int, height: int) -> None:
        minx = min(g.bounds[0] for g in geoms)
        miny = min(g.bounds[1] for g in geoms)
        maxx = max(g.bounds[2] for g in geoms)
        maxy = max(g.bounds[3] for g in geoms)
        self.kx = math.cos(math.radians((miny + maxy) / 2)) or 1e-6
        span_x = max((maxx - minx) * self.kx, 1e-6)
        span_y = max(maxy - miny, 1e-6)
        self.scale = min((width - 2 * MARGIN) / span_x, (height - 2 * MARGIN - 80) / span_y)
        self.minx, self.maxy = minx, maxy

    def __call__(self, lon: float, lat: float) -> tuple[float, float]:
        return (
            MARGIN + (lon - self.minx) * self.kx * self.scale,
            MARGIN + (self.maxy - lat) * self.scale,
        )


def render_footprints(
    aoi_name: str, aoi: BaseGeometry, products: Sequence[Product], title: str
) -> bytes:
    """PNG bytes of the AOI (thick black) and the footprints (coloured, numbered)."""
    footprints = [shape(p.geometry) for p in products]
    frame = _Frame([aoi, *footprints], SIZE, SIZE)
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    overlay = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=12)
    for number, geom in enumerate(footprints, start=1):
        colour = PALETTE[(number - 1) % len(PALETTE)]
        for ring in _rings(geom):
            points = [frame(x, y) for x, y in ring]
            draw.polygon(points, fill=(*colour, 40), outline=(*colour, 255), width=2)
        cx, cy = frame(geom.centroid.x, geom.centroid.y)
        draw.text((cx, cy), str(number), fill=(*colour, 255), font=font, anchor="mm")
    for ring in _rings(aoi):
        draw.line([frame(x, y) for x, y in ring], fill=(*AOI_COLOUR, 255), width=3)
    image.paste(overlay, (0, 0), overlay)
    text = ImageDraw.Draw(image)
    text.text((MARGIN, 10), f"{aoi_name}: {title}", fill=(0, 0, 0), font=font)
    legend_y = SIZE - 20 - 14 * min(len(products), 5)
    if not products:
        text.text((MARGIN, SIZE - 30), "no product found", fill=(120, 120, 120), font=font)
    for number, product in enumerate(products[:5], start=1):
        colour = PALETTE[(number - 1) % len(PALETTE)]
        line = f"{number}  {product.id}"
        text.text((MARGIN, legend_y + 14 * (number - 1)), line, fill=colour, font=font)
    if len(products) > 5:
        text.text(
            (MARGIN + 420, SIZE - 20), f"+{len(products) - 5} more", fill=(0, 0, 0), font=font
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def write_footprints(
    path: str | Path, aoi_name: str, aoi: BaseGeometry, products: Sequence[Product], title: str
) -> None:
    atomic_write_bytes(path, render_footprints(aoi_name, aoi, products, title))
