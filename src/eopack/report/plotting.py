"""Figure plumbing shared by the report modules: matplotlib without pyplot, stable PNG bytes.

``matplotlib.figure.Figure`` is used directly (no pyplot): no global figure registry to leak
memory in long jobs and no display backend to pick. PNGs are written without the "Software"
text chunk, so the same inputs give the same bytes on every run.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from matplotlib.figure import Figure

from eopack.fsutil import atomic_write_bytes

DPI = 100
FONT_SIZE = 9


def new_figure(width_in: float, height_in: float) -> Figure:
    """A white figure of the given size in inches (``DPI`` pixels each)."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, facecolor="white")
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, cropped to what is drawn, without run-dependent metadata."""
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=DPI,
        facecolor="white",
        bbox_inches="tight",
        pad_inches=0.15,
        metadata={"Software": None},
    )
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path) -> None:
    """Write the figure atomically (a killed job leaves no half-written PNG)."""
    atomic_write_bytes(path, png_bytes(fig))


def message_figure(title: str, message: str, width_in: float = 8, height_in: float = 2) -> Figure:
    """A small figure that says why there is nothing to draw (e.g. an empty split)."""
    fig = new_figure(width_in, height_in)
    fig.text(0.5, 0.65, title, ha="center", va="center", fontsize=12, weight="bold")
    fig.text(0.5, 0.35, message, ha="center", va="center", fontsize=FONT_SIZE, color="0.35")
    return fig


def wrap(text: str, width: int, lines: int = 2) -> str:
    """``text`` on at most ``lines`` lines of ``width`` characters (long class names)."""
    return "\n".join(textwrap.wrap(text, width, max_lines=lines, placeholder=" …"))


def rgb_float(rgb: tuple[int, int, int] | list[int]) -> tuple[float, float, float]:
    r, g, b = rgb
    return (r / 255, g / 255, b / 255)
