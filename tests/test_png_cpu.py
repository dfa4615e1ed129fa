"""The PNG bytes do not depend on which x86-64 instruction set the machine has.

ISA-L (the PNG deflate, see ``eopack.bigearthnet.png``) has one assembly body per x86-64
level (SSE4.2, AVX2, AVX-512) and picks one by CPUID when loaded. At level 3 those bodies
give different streams (measured: three different outputs for the three levels); at level 1,
which eopack uses, the same. This test holds eopack to that: it encodes real BigEarthNet
patches and synthetic rows of every kind natively and under QEMU's user-mode emulator with
older CPU models (``qemu-x86_64 -cpu Nehalem``: no AVX at all; ``-cpu Haswell``: AVX2, no
AVX-512), checks that the emulated CPU really lacks those features (numpy's own CPU dispatch
sees the same CPUID as ISA-L), and compares every PNG's bytes.

Other architecture families (aarch64: Graviton) have their own ISA-L code and are not
covered: the README says so. `make test` installs Debian's ``qemu-user``.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eopack.bigearthnet.png import deflate_version

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
QEMU = shutil.which("qemu-x86_64")

#: CPU model -> the features it must lack (so that ISA-L takes another body).
MODELS = {"Nehalem": ("AVX", "AVX2", "AVX512F"), "Haswell": ("AVX512F",)}

_ENCODE = """
import hashlib, sys
import numpy as np
import numpy._core._multiarray_umath as umath
from eopack.bigearthnet.png import encode_gray, encode_palette, encode_rgb
data = np.load(sys.argv[1])
print(" ".join(k for k, on in umath.__cpu_features__.items() if on))
palette = np.arange(256 * 3, dtype=np.uint8).reshape(256, 3)
for name in sorted(data.files):
    array = data[name]
    if array.ndim == 3:
        png = encode_rgb(array)
    elif name.startswith("map"):
        png = encode_palette(array, palette)
    else:
        png = encode_gray(array)
    print(name, hashlib.sha256(png).hexdigest())
"""


def _inputs() -> dict[str, np.ndarray]:
    """Real patches (RGB of three stretches, each band alone, the reference maps) and rows of
    every kind of content, at the patch sizes and larger."""
    arrays: dict[str, np.ndarray] = {}
    bands: dict[str, np.ndarray] = {}
    for tif in sorted(FIXTURES.rglob("*.tif")):
        with rasterio.open(tif) as src:
            band = src.read(1)
        name = tif.stem.rsplit("_", 1)[-1]
        if tif.stem.endswith("reference_map"):
            arrays["map_real"] = band.astype(np.uint8)
            continue
        bands[name] = band.astype(np.float64)
    for gain in (1, 4, 16):
        for name, band in bands.items():
            arrays[f"band_{name}_x{gain}"] = np.clip(band * gain / 16, 0, 255).astype(np.uint8)
        rgb = np.stack([bands["B04"], bands["B03"], bands["B02"]], axis=-1)
        arrays[f"rgb_real_x{gain}"] = np.clip(rgb * gain / 16, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(16)
    for size in (20, 60, 120, 1200):
        arrays[f"noise{size}"] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        arrays[f"flat{size}"] = np.full((size, size), 7, dtype=np.uint8)
        arrays[f"map_classes{size}"] = rng.integers(0, 5, (size, size), dtype=np.uint8)
        ramp = np.add.outer(np.arange(size), np.arange(size)) % 256
        arrays[f"ramp{size}"] = np.stack([ramp, ramp // 2, 255 - ramp], -1).astype(np.uint8)
        runs = np.repeat(rng.integers(0, 256, size * size // 30 + 1), 30)[: size * size]
        arrays[f"runs{size}"] = runs.reshape(size, size).astype(np.uint8)
    return arrays


def _encode(npz: Path, *prefix: str) -> tuple[set[str], dict[str, str]]:
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", _ENCODE, str(npz)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    first, *rest = proc.stdout.splitlines()
    return set(first.split()), dict(line.split() for line in rest)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's ISA-L bodies only")
@pytest.mark.parametrize("model", sorted(MODELS))
def test_png_bytes_are_the_same_on_every_x86_64_level(model, tmp_path):
    assert QEMU, "qemu-x86_64 is missing: `make system-deps` installs Debian's qemu-user"
    arrays = _inputs()
    assert {"map_real", "rgb_real_x4", "band_VV_x4"} <= set(arrays)
    np.savez(tmp_path / "inputs.npz", **arrays)
    _, native = _encode(tmp_path / "inputs.npz")
    emulated_features, emulated = _encode(tmp_path / "inputs.npz", QEMU, "-cpu", model)
    lacking = set(MODELS[model])
    assert not emulated_features & lacking, f"{model} still has {emulated_features & lacking}"
    assert len(native) == len(arrays)
    differ = sorted(k for k in native if native[k] != emulated.get(k))
    assert not differ, f"{deflate_version()}: PNG bytes differ under -cpu {model}: {differ}"
