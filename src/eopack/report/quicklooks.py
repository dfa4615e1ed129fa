"""SAFE quicklooks for the report: each product's own ``preview/quick-look.png``.

The quicklook is read from the product's zip (the delivered, verified artefact), so the report
does not depend on the SAFE folder staying on disk. Its bytes are copied unchanged: it is the
picture ESA made, checked against ``manifest.safe`` when the SAFE was verified. One job per
product, so this module stays light (PIL only, no matplotlib). A quicklook that is missing or
not a readable PNG gets a placeholder and one warning: a report figure never fails the data run.
"""

from __future__ import annotations

import io
import logging
import textwrap
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from eopack.errors import EopackError, plain
from eopack.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

QUICKLOOK = "preview/quick-look.png"


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


def write_quicklook(zip_path: str | Path, product_id: str, out: str | Path) -> bool:
    """Copy the product's quicklook to ``out``; a product without a readable one gets a
    placeholder that says why (logged as one warning). Returns whether the quicklook was used."""
    data = read_quicklook(zip_path, product_id)
    problem = "not in the zip" if data is None else png_problem(data)
    if data is None or problem is not None:
        log.warning(
            "%s: %s.SAFE/%s: %s; the report shows a placeholder",
            zip_path,
            product_id,
            QUICKLOOK,
            problem,
        )
        message = f"{QUICKLOOK} in {Path(zip_path).name}: {problem}"
        atomic_write_bytes(out, placeholder(product_id, message))
        return False
    atomic_write_bytes(out, data)
    return True
