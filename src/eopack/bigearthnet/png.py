"""A minimal PNG encoder: fast, and byte-for-byte deterministic for a given deflate library.

Why not Pillow: Pillow always chooses a filter per row adaptively (slow: ~1,600 µs per 120x120 RGB
patch at level 1) and its wheels bundle zlib-ng, so its bytes depend on the Pillow build. Here every
row uses filter SUB (type 1) and the one IDAT is deflated by ISA-L (``isal``, Intel's assembly
deflate) at level 1. Per 120x120 RGB patch on one core (the IDAT of 43 KB of filtered rows), CPU µs
and output size measured on 1,000 demo patches:

=====================  =========  ========
deflate                µs/patch   KiB
=====================  =========  ========
ISA-L level 1               119     29.3
zlib-ng level 1, RLE        205     29.2
libdeflate level 1          278     29.4
zlib level 1, RLE           321     29.2
zlib level 6                914     30.1
=====================  =========  ========

Image rows hold few long matches, so every level-1 coder gets the same size; ISA-L codes them 2.7x
faster than CPython's zlib. It is a PyPI wheel with ISA-L built in (no system library).

Determinism: the chunk layout is fixed (IHDR, [PLTE], IDAT, IEND; no time or text chunks), so the
bytes depend only on the pixels and on ISA-L's level-1 coder, i.e. on the ``isal`` version (it
bundles a fixed ISA-L) and the CPU architecture family (x86-64 and aarch64 have separate assembly).
Within x86-64, ISA-L picks an SSE4.2, AVX2 or AVX-512 body by CPUID; at level 1 they give the same
bytes (at level 3 they do not): tests/test_png_cpu.py encodes under QEMU with older CPU models.
The tests pin the hashes together with :func:`deflate_version` so any change is noticed.
"""

from __future__ import annotations

import platform
import struct

import isal
import numpy as np
from isal import isal_zlib

from eopack.errors import EopackError

__all__ = ["PNG_SIGNATURE", "deflate_version", "encode_gray", "encode_palette", "encode_rgb"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_GRAY = 0
_COLOUR_RGB = 2
_COLOUR_PALETTE = 3
_FILTER_SUB = 1


def deflate_version() -> str:
    """What the PNG bytes depend on besides the pixels, e.g. ``isal 1.9.1 x86_64``."""
    return f"isal {isal.__version__} {platform.machine()}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    crc = isal_zlib.crc32(data, isal_zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _sub_filtered(rows: np.ndarray, bpp: int) -> bytes:
    """Scanlines with filter byte 1 (SUB): each byte minus the byte ``bpp`` to its left, mod 256."""
    height, width = rows.shape
    out = np.empty((height, width + 1), dtype=np.uint8)
    out[:, 0] = _FILTER_SUB
    out[:, 1 : bpp + 1] = rows[:, :bpp]
    np.subtract(rows[:, bpp:], rows[:, :-bpp], out=out[:, bpp + 1 :])
    return out.tobytes()


def _deflate(raw: bytes) -> bytes:
    """zlib stream (32 KiB window) from ISA-L at level 1 (see the module docstring)."""
    return isal_zlib.compress(raw, 1)


def _png(width: int, height: int, colour_type: int, idat: bytes, plte: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", ihdr)]
    if plte:
        parts.append(_chunk(b"PLTE", plte))
    parts += [_chunk(b"IDAT", idat), _chunk(b"IEND", b"")]
    return b"".join(parts)


def _check(array: np.ndarray, ndim: int, what: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != ndim or 0 in array.shape:
        raise EopackError(
            f"cannot encode {what} PNG: expected a non-empty {ndim}-D uint8 array, "
            f"got {array.dtype} with shape {array.shape}"
        )
    return np.ascontiguousarray(array)


def encode_rgb(rgb: np.ndarray) -> bytes:
    """PNG (8-bit RGB, colour type 2) of an (H, W, 3) uint8 array."""
    rgb = _check(rgb, 3, "RGB")
    height, width, bands = rgb.shape
    if bands != 3:
        raise EopackError(f"cannot encode RGB PNG: expected 3 bands, got shape {rgb.shape}")
    raw = _sub_filtered(rgb.reshape(height, width * 3), 3)
    return _png(width, height, _COLOUR_RGB, _deflate(raw))


def encode_gray(gray: np.ndarray) -> bytes:
    """PNG (8-bit greyscale, colour type 0) of an (H, W) uint8 array."""
    gray = _check(gray, 2, "greyscale")
    height, width = gray.shape
    return _png(width, height, _COLOUR_GRAY, _deflate(_sub_filtered(gray, 1)))


def encode_palette(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """PNG (8-bit palette, colour type 3) of an (H, W) uint8 index array.

    ``palette`` is (N, 3) uint8 with N <= 256 and must cover every index used (PNG requires it;
    pass 256 entries to make any uint8 index valid). No tRNS chunk: every colour is opaque.
    """
    indices = _check(indices, 2, "palette")
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= palette.shape[0] <= 256:
        raise EopackError(
            f"cannot encode palette PNG: palette shape {palette.shape}, need (1..256, 3)"
        )
    if palette.shape[0] < 256 and int(indices.max()) >= palette.shape[0]:
        raise EopackError(
            f"cannot encode palette PNG: index {int(indices.max())} is outside the "
            f"{palette.shape[0]}-entry palette"
        )
    height, width = indices.shape
    raw = _sub_filtered(indices, 1)
    return _png(width, height, _COLOUR_PALETTE, _deflate(raw), palette.tobytes())
