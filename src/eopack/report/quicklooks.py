"""SAFE quicklooks for the report: each product's own ``preview/quick-look.png``.

The quicklook is read from the product's zip (the delivered, verified artefact), so the report
does not depend on the SAFE folder staying on disk. Its bytes are copied unchanged: it is the
picture ESA made, checked against ``manifest.safe`` when the SAFE was verified. One job per
product, so this module stays light (PIL only, no matplotlib).
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from eopack.errors import EopackError
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


def _check_png(data: bytes, where: str) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise EopackError(f"{where}: not a readable PNG ({exc})") from None


def placeholder(title: str, message: str) -> bytes:
    """A small grey PNG that says why there is no picture."""
    image = Image.new("RGB", (640, 120), (241, 245, 249))
    draw = ImageDraw.Draw(image)
    draw.text((16, 30), title, fill=(30, 41, 59), font=ImageFont.load_default(size=14))
    draw.text((16, 70), message, fill=(100, 116, 139), font=ImageFont.load_default(size=13))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_quicklook(zip_path: str | Path, product_id: str, out: str | Path) -> bool:
    """Copy the product's quicklook to ``out``; a product without one gets a placeholder that
    says so (logged as a warning). Returns whether the product had a quicklook."""
    data = read_quicklook(zip_path, product_id)
    if data is None:
        log.warning("%s: no %s in the SAFE; the report shows a placeholder", zip_path, QUICKLOOK)
        atomic_write_bytes(out, placeholder(product_id, f"no {QUICKLOOK} in {Path(zip_path).name}"))
        return False
    _check_png(data, f"{zip_path}: {product_id}.SAFE/{QUICKLOOK}")
    atomic_write_bytes(out, data)
    return True
