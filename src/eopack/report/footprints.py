"""A footprint map per AOI: the AOI outline and every product found for it, over all date ranges.

The search already draws one picture per AOI x date range; the report wants one map per AOI
that says, at a glance, which products cover the area and which only clip it, with a lon/lat
graticule (no basemap: the workflow runs offline). Products are numbered in the order
:func:`aoi_products` gives; the AOI's quicklook contact sheet uses the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from eopack.aoi import AOI, load_aoi
from eopack.report.plotting import FONT_SIZE, new_figure, rgb_float, save_png
from eopack.search.footprints import PALETTE
from eopack.search.manifest import Product, read_manifest

SAR = "sentinel-1-grd"
MAX_LEGEND = 40
HALO = [patheffects.withStroke(linewidth=3, foreground="white")]


@dataclass(frozen=True)
class NumberedProduct:
    """A product of an AOI, its number on the map, and the date range it was first found in."""

    number: int
    product: Product
    date_range: str

    @property
    def colour(self) -> tuple[float, float, float]:
        return rgb_float(PALETTE[(self.number - 1) % len(PALETTE)])

    @property
    def date(self) -> str:
        return self.product.datetime[:10]

    @property
    def description(self) -> str:
        """Mode and polarisations (SAR) or cloud cover (optical), for legends and titles."""
        p = self.product
        if p.collection == SAR:
            return f"{p.mode} {'+'.join(p.polarisations)}".strip()
        cloud = f"{p.cloud_cover:.0f}% cloud" if p.cloud_cover is not None else ""
        return f"{p.collection} {cloud}".strip()


def date_range_label(manifest: str | Path) -> str:
    """``2023-07-01_2023-07-31.geojson`` -> ``2023-07-01 to 2023-07-31``."""
    start, _, end = Path(manifest).stem.partition("_")
    return f"{start} to {end}" if end else start


def aoi_products(manifests: Iterable[str | Path]) -> list[NumberedProduct]:
    """The AOI's products in manifest order (date ranges as configured), each once, numbered."""
    seen: dict[str, NumberedProduct] = {}
    for manifest in manifests:
        for product in read_manifest(manifest):
            if product.id not in seen:
                entry = NumberedProduct(len(seen) + 1, product, date_range_label(manifest))
                seen[product.id] = entry
    return list(seen.values())


def _polygons(geom: BaseGeometry) -> list[BaseGeometry]:
    return list(getattr(geom, "geoms", [geom]))


def _label_points(
    footprints: Sequence[BaseGeometry], aoi: BaseGeometry, spacing: float
) -> list[tuple[float, float]]:
    """Where each footprint's number goes: inside the footprint, off the AOI when possible, and
    away from the numbers already placed (near-identical footprints are common: repeat passes).
    """
    placed: list[tuple[float, float]] = []
    margin = aoi.buffer(0.02 * max(1e-6, math.sqrt(aoi.area)))
    for footprint in footprints:
        outside = footprint.difference(margin)
        first = (outside if not outside.is_empty else footprint).representative_point()
        centre = footprint.centroid
        corners = list(footprint.minimum_rotated_rectangle.exterior.coords)[:-1]
        candidates = [(first.x, first.y)] + [
            (x + 0.15 * (centre.x - x), y + 0.15 * (centre.y - y)) for x, y in corners
        ]
        free = [
            c
            for c in candidates
            if all(math.dist(c, other) >= spacing for other in placed)
            and not margin.contains(Point(c))
        ]
        placed.append(free[0] if free else candidates[0])
    return placed


def _ranges_text(ranges: Sequence[str]) -> str:
    if len(ranges) <= 2:
        return "; ".join(ranges)
    return f"{len(ranges)} date ranges, {ranges[0]} ... {ranges[-1]}"


def _degrees(axis: str):
    def fmt(value: float, _pos: int) -> str:
        hemisphere = ("E", "W") if axis == "lon" else ("N", "S")
        return f"{abs(value):g}°{hemisphere[0] if value >= 0 else hemisphere[1]}"

    return FuncFormatter(fmt)


def render_aoi_map(aoi: AOI, entries: Sequence[NumberedProduct], ranges: Sequence[str]) -> Figure:
    """The map: AOI in thick black, footprints numbered and coloured (optical dashed)."""
    footprints = [shape(e.product.geometry) for e in entries]
    fig = new_figure(8, 6.4)
    ax = fig.add_subplot()
    minx, miny, maxx, maxy = aoi.geometry.bounds
    for geom in footprints:
        bx0, by0, bx1, by1 = geom.bounds
        minx, miny, maxx, maxy = min(minx, bx0), min(miny, by0), max(maxx, bx1), max(maxy, by1)
    pad = 0.06 * max(maxx - minx, maxy - miny, 0.01)
    ax.set_xlim(minx - pad, maxx + pad)
    ax.set_ylim(miny - pad, maxy + pad)
    ax.set_aspect(1 / max(math.cos(math.radians((miny + maxy) / 2)), 0.05), adjustable="box")

    spacing = 0.05 * max(maxx - minx, maxy - miny, 0.01)
    labels = _label_points(footprints, aoi.geometry, spacing)
    for entry, geom, (lx, ly) in zip(entries, footprints, labels, strict=True):
        style = "-" if entry.product.collection == SAR else "--"
        for polygon in _polygons(geom):
            xs, ys = polygon.exterior.xy
            ax.fill(
                xs,
                ys,
                facecolor=(*entry.colour, 0.12),
                edgecolor=entry.colour,
                linewidth=1.6,
                linestyle=style,
            )
        ax.text(
            lx,
            ly,
            str(entry.number),
            color=entry.colour,
            fontsize=11,
            weight="bold",
            ha="center",
            va="center",
            path_effects=HALO,
        )
    for polygon in _polygons(aoi.geometry):
        xs, ys = polygon.exterior.xy
        ax.plot(xs, ys, color="black", linewidth=2.6, solid_joinstyle="miter")

    ax.grid(True, color="0.8", linewidth=0.6)
    ax.xaxis.set_major_formatter(_degrees("lon"))
    ax.yaxis.set_major_formatter(_degrees("lat"))
    ax.tick_params(labelsize=FONT_SIZE - 1)
    count = f"{len(entries)} product{'s' if len(entries) != 1 else ''}"
    ax.set_title(f"{aoi.name}: {count}, {_ranges_text(ranges)}", fontsize=FONT_SIZE + 1, loc="left")

    shown = min(len(entries), MAX_LEGEND)
    handles = [Line2D([], [], color="black", linewidth=2.6, label=f"AOI {aoi.name}")]
    for entry in entries[:shown]:
        style = "-" if entry.product.collection == SAR else "--"
        handles.append(
            Patch(
                facecolor=(*entry.colour, 0.12),
                edgecolor=entry.colour,
                linestyle=style,
                label=f"{entry.number}  {entry.product.id}  ({entry.date}, {entry.description})",
            )
        )
    if len(entries) > shown:
        handles.append(Patch(color="white", label=f"+{len(entries) - shown} more"))
    if not entries:
        handles.append(Patch(color="white", label="no product found in these date ranges"))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0, -0.07),
        frameon=False,
        fontsize=FONT_SIZE - 1.5,
        handlelength=2.2,
    )
    return fig


def write_aoi_map(aoi_file: str | Path, manifests: Sequence[str | Path], out: str | Path) -> int:
    """Draw the AOI's map from its file and its search manifests; returns the product count."""
    aoi = load_aoi(aoi_file)
    entries = aoi_products(manifests)
    ranges = [date_range_label(m) for m in manifests]
    save_png(render_aoi_map(aoi, entries, ranges), out)
    return len(entries)
