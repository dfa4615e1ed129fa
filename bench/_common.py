"""Helpers shared by the benchmarks in bench/ (work folder, tools, rotating order, settling).

The bench scripts run as ``python bench/NAME.py``, so this folder is on ``sys.path`` and they
``import _common``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


#: The checkout these benches belong to.
REPO = Path(__file__).resolve().parents[1]
#: What a runnable copy of the workflow needs (as tests/conftest.py WORKFLOW_FILES).
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "envs", "profiles", "report")


def copy_workflow_files(dest: Path, repo: Path = REPO) -> Path:
    """A checkout-like copy of ``repo``'s workflow (no results) in ``dest``, to run it alone."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


#: The file in a generated world's folder naming what it was generated for.
WORLD_STAMP = "bench-world.json"


def reuse_world(root: Path, key: object) -> bool:
    """True when ``root`` holds the world generated for ``key``; otherwise ``root`` is emptied
    for a new one (a bench's worlds take seconds to minutes to generate)."""
    stamp = root / WORLD_STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == key:
        print(f"bench: reusing the world in {root}", flush=True)
        return True
    shutil.rmtree(root, ignore_errors=True)
    return False


def stamp_world(root: Path, key: object) -> None:
    """Record that ``root`` now holds the world generated for ``key`` (see reuse_world)."""
    (root / WORLD_STAMP).write_text(json.dumps(key) + "\n")


def add_run_options(parser: argparse.ArgumentParser, runs: int = 3) -> None:
    """The options every bench has: --runs, --keep, --workdir, --json."""
    parser.add_argument(
        "--runs", type=int, default=runs, help=f"runs per tool (median; default {runs})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--workdir", help="parent of the work folder (default: system temp)")
    parser.add_argument("--json", help="write every sample to this JSON file")


@contextmanager
def workspace(args: argparse.Namespace, prefix: str = "eopack-bench-") -> Iterator[Path]:
    """A fresh work folder under ``--workdir`` (or the system temp), removed unless ``--keep``."""
    base = Path(args.workdir) if args.workdir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield work
    finally:
        if args.keep:
            print(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def find_tool(name: str, hint: str) -> str:
    """``name`` from the venv's bin folder, else from PATH; exits with ``hint`` if absent."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if not found:
        sys.exit(f"bench: {name} not found; {hint}")
    return found


def rotated(items: Sequence[T], round_no: int) -> list[T]:
    """``items`` starting at ``round_no`` (mod len): every tool goes first in turn."""
    shift = round_no % len(items)
    return [*items[shift:], *items[:shift]]


def settle(seconds: float = 0.0) -> None:
    """Flush dirty pages (the previous run's writes and deletes), then wait ``seconds``."""
    os.sync()
    if seconds > 0:
        time.sleep(seconds)


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def can_mount_volume() -> bool:
    """Root with mkfs.ext4, mount and a loop device: the bench can make a fresh volume."""
    return (
        os.geteuid() == 0
        and all(shutil.which(t) for t in ("mkfs.ext4", "mount", "umount"))
        and Path("/dev/loop-control").exists()
    )


@contextmanager
def fresh_volume(parent: Path, size_gb: int) -> Iterator[Path]:
    """A new ext4 file system on a sparse image in ``parent``, loop-mounted; removed afterwards.

    Why: on the shared machine the benches were written on, the root file system (71% full,
    mounted ``discard,resv_strict``) charged 0.4-2 ms of kernel time per file created in a new
    folder - 5,000 folders x 3 empty files took 11 s there and 0.33 s on a fresh ext4 - and that
    cost varied 5x from hour to hour (``tar -xf`` of the same archive: 5 s to 37 s). A dataset
    lives on a data volume (an EBS volume on EC2); a fresh ext4 measures the tools, not the host.
    Both tools run on it. The image is written through the loop device into one big file.
    """
    image = parent / "bench-volume.ext4"
    mount_point = parent / "volume"
    mount_point.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(size_gb << 30)
    # No lazy init: the kernel would otherwise zero inode tables in the background while we time.
    mkfs = ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)]
    subprocess.run(mkfs, check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], check=True)
    try:
        print(f"bench: fresh ext4 volume ({size_gb} GB, loop-mounted) at {mount_point}", flush=True)
        yield mount_point
    finally:
        os.sync()
        subprocess.run(["umount", str(mount_point)], check=False)
        image.unlink(missing_ok=True)
