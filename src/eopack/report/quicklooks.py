"""Product quicklooks for the report: each product's own preview picture.

Sentinel-1's ``preview/quick-look.png``, Sentinel-2's ``QI_DATA/*_PVI.jp2``, a Landsat scene's
``*_thumb_large.jpeg``: where each collection keeps it is the registry's
(:mod:`eopack.safe.registry`, ``quicklook``). The quicklook is read from the product's zip
(the delivered, verified artefact), so the report does not depend on the product folder
staying on disk. A PNG is copied unchanged (the picture ESA made, checked when the product was
verified); a JPEG 2000 or JPEG is converted to PNG, pixels unchanged. One job per product, so
this module stays light (PIL only, no matplotlib). A quicklook that is missing or unreadable
gets a placeholder and one warning: a report figure never fails the data run.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import textwrap
import zipfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from eopack.errors import EopackError, plain
from eopack.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

QUICKLOOK = "preview/quick-look.png"


def read_quicklook(
    zip_path: str | Path,
    product_id: str,
    patterns: Sequence[str] = (QUICKLOOK,),
    top: str | None = None,
) -> bytes | None:
    """The quicklook's bytes from the zip: the first member under ``top/`` (``{id}.SAFE``
    unless given) matching one of ``patterns``, in pattern order (None: absent)."""
    top = top or f"{product_id}.SAFE"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = sorted(archive.namelist())
            for pattern in patterns:
                for name in names:
                    if fnmatch.fnmatchcase(name, f"{top}/{pattern}"):
                        return archive.read(name)
            return None
    except (OSError, zipfile.BadZipFile) as exc:
        raise EopackError(f"{zip_path}: cannot read the product zip ({exc})") from None


def as_png(data: bytes) -> bytes:
    """A PNG of a JPEG 2000 / JPEG preview (8-bit RGB or grey, pixels unchanged)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            picture = image if image.mode in ("RGB", "L") else image.convert("RGB")
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG", compress_level=6)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        why = plain(str(exc)) or type(exc).__name__
        raise EopackError(f"not a readable picture ({why})") from None
    return buffer.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problem(data: bytes) -> str | None:
    """Why ``data`` is not a readable PNG, in words (None: it is one)."""
    if not data.startswith(PNG_SIGNATURE):
        return "not a PNG (it does not start with the PNG signature)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"not a readable PNG ({plain(str(exc)) or type(exc).__name__})"
    return None


def placeholder(title: str, message: str) -> bytes:
    """A small grey PNG that says why there is no picture."""
    lines = textwrap.wrap(message, 84) or [""]
    image = Image.new("RGB", (640, 90 + 18 * len(lines)), (241, 245, 249))
    draw = ImageDraw.Draw(image)
    draw.text((16, 30), title, fill=(30, 41, 59), font=ImageFont.load_default(size=14))
    font = ImageFont.load_default(size=13)
    for row, line in enumerate(lines):
        draw.text((16, 66 + 18 * row), line, fill=(100, 116, 139), font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_quicklook(
    zip_path: str | Path,
    product_id: str,
    out: str | Path,
    patterns: Sequence[str] = (QUICKLOOK,),
    top: str | None = None,
) -> bool:
    """Copy the product's quicklook to ``out`` (as PNG); a product without a readable one
    gets a placeholder that says why (logged as one warning). Returns whether the quicklook
    was used."""
    top = top or f"{product_id}.SAFE"
    data = read_quicklook(zip_path, product_id, patterns, top)
    problem = "not in the zip" if data is None else None
    png_expected = all(p.lower().endswith(".png") for p in patterns)
    if data is not None and not png_expected and not data.startswith(PNG_SIGNATURE):
        try:
            data = as_png(data)
        except EopackError as exc:
            problem = str(exc)
    if data is not None and problem is None:
        problem = png_problem(data)
    if data is None or problem is not None:
        wanted = " or ".join(patterns)
        log.warning("%s: %s/%s: %s; the report shows a placeholder", zip_path, top, wanted, problem)
        message = f"{wanted} in {Path(zip_path).name}: {problem}"
        atomic_write_bytes(out, placeholder(product_id, message))
        return False
    atomic_write_bytes(out, data)
    return True
