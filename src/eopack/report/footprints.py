"""Footprint maps: an AOI's outline and the footprint of every product found for it.

The one way eopack draws footprints (matplotlib, no pyplot): a map per AOI over all date ranges
for the report, and one per AOI x date range beside it, drawn by the same job (one matplotlib
import per AOI, not one per search). Every footprint stays visible: fills first, then every
outline over all fills (a footprint inside a later one keeps its outline), the AOI, and the
numbers last, on a white halo, off the AOI where they fit. Axes are a lon/lat graticule in
degrees (no basemap: the workflow runs offline). Every product is listed: a legend up to
``MAX_LEGEND`` products, a numbered table beyond. Products are numbered in the order
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
from eopack.errors import EopackError
from eopack.report.plotting import FONT_SIZE, new_figure, rgb_float, save_png
from eopack.search.manifest import Product, read_manifest

# Matplotlib's "tab10": ten colours told apart at a glance; numbers tell the rest apart.
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

SAR = "sentinel-1-grd"
MAX_LEGEND = 30
TABLE_ROWS = 60
TABLE_COLUMNS = 3
TABLE_FONT = 6
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


def _line_style(entry: NumberedProduct) -> str:
    return "-" if entry.product.collection == SAR else "--"


def render_footprint_map(aoi: AOI, entries: Sequence[NumberedProduct], title: str) -> Figure:
    """The map: footprints coloured and numbered (optical dashed), the AOI in thick black, and
    every product listed (legend, or a numbered table past ``MAX_LEGEND``)."""
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

    # Layers, bottom to top: fills, outlines, AOI, numbers. Drawn in one pass per product, a
    # later fill tinted the outline of a footprint it contains, which then vanished.
    for entry, geom in zip(entries, footprints, strict=True):
        for polygon in _polygons(geom):
            ax.fill(*polygon.exterior.xy, facecolor=(*entry.colour, 0.12), linewidth=0, zorder=1)
    for entry, geom in zip(entries, footprints, strict=True):
        for polygon in _polygons(geom):
            ax.plot(
                *polygon.exterior.xy,
                color=entry.colour,
                linewidth=1.6,
                linestyle=_line_style(entry),
                zorder=2,
            )
    for polygon in _polygons(aoi.geometry):
        ax.plot(*polygon.exterior.xy, color="black", linewidth=2.6, zorder=3)
    spacing = 0.05 * max(maxx - minx, maxy - miny, 0.01)
    labels = _label_points(footprints, aoi.geometry, spacing)
    for entry, (lx, ly) in zip(entries, labels, strict=True):
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
            zorder=4,
        )

    ax.grid(True, color="0.8", linewidth=0.6, zorder=0)
    ax.xaxis.set_major_formatter(_degrees("lon"))
    ax.yaxis.set_major_formatter(_degrees("lat"))
    ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.set_title(title, fontsize=FONT_SIZE + 1, loc="left")
    if len(entries) <= MAX_LEGEND:
        _legend(ax, aoi, entries)
    else:
        _table(ax, aoi, entries)
    return fig


def _legend(ax, aoi: AOI, entries: Sequence[NumberedProduct]) -> None:
    handles = [Line2D([], [], color="black", linewidth=2.6, label=f"AOI {aoi.name}")]
    for entry in entries:
        handles.append(
            Patch(
                facecolor=(*entry.colour, 0.12),
                edgecolor=entry.colour,
                linestyle=_line_style(entry),
                label=f"{entry.number}  {entry.product.id}  ({entry.date}, {entry.description})",
            )
        )
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


def _table(ax, aoi: AOI, entries: Sequence[NumberedProduct]) -> None:
    """Many products: a numbered table under the map, in at most ``TABLE_COLUMNS`` columns of
    at least ``TABLE_ROWS`` rows (one text per column: hundreds of legend handles would cost
    seconds and overflow the page). The id says the date, mode and polarisations."""
    width = len(str(len(entries)))
    rows = [f"{e.number:>{width}}  {e.product.id}" for e in entries]
    per_column = max(TABLE_ROWS, math.ceil(len(rows) / TABLE_COLUMNS))
    columns = [rows[i : i + per_column] for i in range(0, len(rows), per_column)]
    # Placed in points from the map's lower left corner: the map's own size depends on the
    # AOI's shape (equal-area aspect), the table's does not.
    ax.annotate(
        f"AOI {aoi.name} in thick black; {len(entries)} products by number "
        "(solid: Sentinel-1, dashed: optical)",
        xy=(0, 0),
        xycoords="axes fraction",
        xytext=(0, -28),
        textcoords="offset points",
        fontsize=FONT_SIZE - 1,
        va="top",
    )
    column_pt = (max(len(r) for r in rows) + 3) * 0.6 * TABLE_FONT
    for index, column in enumerate(columns):
        ax.annotate(
            "\n".join(column),
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(index * column_pt, -44),
            textcoords="offset points",
            fontsize=TABLE_FONT,
            family="monospace",
            va="top",
        )


def aoi_map_title(aoi: AOI, count: int, ranges: Sequence[str]) -> str:
    return f"{aoi.name}: {count} product{'s' if count != 1 else ''}, {_ranges_text(ranges)}"


def write_aoi_maps(
    aoi_file: str | Path,
    manifests: Sequence[str | Path],
    out: str | Path,
    range_outs: Sequence[str | Path] = (),
) -> int:
    """Draw the AOI's map over all its manifests to ``out`` and, when ``range_outs`` is given
    (one per manifest, same order), one map per date range with the AOI's numbering; returns
    the AOI's product count."""
    if range_outs and len(range_outs) != len(manifests):
        raise EopackError(
            f"{aoi_file}: {len(manifests)} search manifests but {len(range_outs)} pictures"
        )
    aoi = load_aoi(aoi_file)
    entries = aoi_products(manifests)
    ranges = [date_range_label(m) for m in manifests]
    save_png(render_footprint_map(aoi, entries, aoi_map_title(aoi, len(entries), ranges)), out)
    by_id = {e.product.id: e for e in entries}
    for manifest, range_out in zip(manifests, range_outs, strict=False):
        found = [by_id[p.id] for p in read_manifest(manifest)]
        found.sort(key=lambda e: e.number)
        title = aoi_map_title(aoi, len(found), [date_range_label(manifest)])
        save_png(render_footprint_map(aoi, found, title), range_out)
    return len(entries)
