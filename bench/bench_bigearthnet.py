"""``make bench-bigearthnet``: BigEarthNet archives -> RGB and mask PNGs, eopack against the seed.

The input is a mini BigEarthNet v2 in the real formats (``eopack.demo.benworld``: the release's
``.tar.zst`` layout, GeoTIFF byte layout and metadata parquet schema): 4 S2 products x 4,800
patches by default, products the size of the real ones (549,488 patches in 115 S2 products,
~4,780 each), so that Snakemake's per-job cost weighs what it weighs on the release and its
fixed start-up cost (~5 s) is not most of the time. It is generated once, untimed (~20 s per
5,000 patches), and cached with ``--keep --workdir``.

Three tools, timed on the same archives (wall clock, ``--runs`` runs each, the order rotating
every round, medians):

* **seed** (``taskset -c 0``): the way the project's seed did it - ``tar -I zstd -xf`` of the
  whole S2 and reference-map archives, then per patch in ``metadata.parquet``: ``rasterio.open``
  + ``read(1)`` of B04, B03, B02, ``clip(x, 0, 2000) / 2000 * 255`` rounded to uint8,
  ``skimage.io.imsave`` of the RGB PNG; the reference map read with rasterio, CLC codes mapped to
  class indices through a 1000-entry lookup table, ``skimage.io.imsave`` of the mask PNG.
* **eopack, 1 core** (``taskset -c 0``, ``--cores 1``) and **eopack, 2 cores**
  (``taskset -c 0,1``, ``--cores 2``): ``snakemake bigearthnet`` end to end from the fetched
  archives (extract, render, index, zips, SHA256SUMS) in a copy of the workflow.

``R = seed s / eopack 1-core s``, ``P = patches / eopack 1-core s``, ``S = eopack 1-core s /
eopack 2-core s``, ``M`` = the largest ``peak RSS`` any eopack job logged. Untimed checks: every
selected patch has its two PNGs from both, eopack's RGB pixels match the seed's (|diff| <= 1: the
seed rounds half to even, eopack half up) and its mask indices equal the seed's. The last line is::

    ratio_vs_seed=R patches_per_s=P peak_rss_mb=M scaling_2_cores=S
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    add_run_options,
    can_mount_volume,
    copy_workflow_files,
    find_tool,
    fresh_volume,
    reuse_world,
    rotated,
    settle,
    spread,
    stamp_world,
    workspace,
)

MIN_PATCHES = 5000
REAL_PATCHES, REAL_PRODUCTS = 549_488, 115
SETTLE_S = 2.0  # after deleting a run's files: let the (discard-mounted) disk's journal settle
BEN = Path("results/bigearthnet")
# Outputs of the steps after the fetch, deleted before every timed eopack run.
RUN_OUTPUTS = (
    "results/bigearthnet",
    "resources/bigearthnet/extracted",
    "resources/bigearthnet/rendered",
    "resources/bigearthnet/stamps",
)
EXTRACTED_TREES = "resources/bigearthnet/cache/md5/*/extracted"
RUN_LOGS = ("extract", "render", "index", "zip*", "sha256sums", "classes")
AFTER_LAST_JOB = "(snakemake after the last job)"
PEAK_RSS = re.compile(r"peak RSS (\d+) MB")
SAMPLE_PATCHES = 50  # patches whose pixels are compared between eopack and the seed
LOW, HIGH = 0, 2000  # the seed's stretch (= the workflow's default bigearthnet.stretch)


# --------------------------------------------------------------------------------------------
# The seed's converter (hidden mode --seed-convert, run under taskset in its own process)
# --------------------------------------------------------------------------------------------


def s2_product_of(patch_id: str) -> str:
    """``S2A_MSIL2A_..._T32UMD_12_34`` -> ``S2A_MSIL2A_..._T32UMD`` (drop the x and y fields)."""
    return patch_id.rsplit("_", 2)[0]


def metadata_patch_ids(metadata: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(p) for p in pq.read_table(metadata, columns=["patch_id"]).column(0).to_pylist()]


def clc_lookup() -> Any:
    """uint8[1000]: CLC code -> class index, 255 for unlabeled and unknown codes."""
    import numpy as np

    from eopack.bigearthnet.classes import CLC_TO_INDEX

    lut = np.full(1000, 255, dtype=np.uint8)
    if isinstance(CLC_TO_INDEX, dict):
        for code, index in CLC_TO_INDEX.items():
            if 0 <= int(code) < 1000 and 0 <= int(index) < 19:
                lut[int(code)] = index
    else:
        table = np.asarray(CLC_TO_INDEX)[:1000]
        lut[: len(table)] = np.where(table < 19, table, 255)
    return lut


def own_peak_rss_mb() -> int:
    """This process's peak RSS in MiB: VmHWM, of this program's memory only.

    Not ``ru_maxrss``: Linux carries it over fork and exec, so a child started by a big parent
    (this bench, Snakemake) reports at least the parent's RSS at the fork.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return (int(line.split()[1]) + 1023) // 1024
    except OSError:
        pass
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + 1023) // 1024


def seed_convert(extracted: Path, out: Path, metadata: Path) -> int:
    """The seed's per-patch loop: rasterio reads, numpy stretch, ``skimage.io.imsave``."""
    import numpy as np
    import rasterio
    from skimage import io

    lut = clc_lookup()
    by_product: dict[str, list[str]] = {}
    for patch_id in metadata_patch_ids(metadata):
        by_product.setdefault(s2_product_of(patch_id), []).append(patch_id)
    done = 0
    for product, patch_ids in by_product.items():
        rgb_dir, mask_dir = out / "rgb" / product, out / "mask" / product
        rgb_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for patch_id in patch_ids:
            folder = extracted / "BigEarthNet-S2" / product / patch_id
            bands = []
            for band in ("B04", "B03", "B02"):
                with rasterio.open(folder / f"{patch_id}_{band}.tif") as src:
                    bands.append(src.read(1))
            stack = np.stack(bands, axis=-1).astype(np.float32)
            rgb = np.round(np.clip(stack, LOW, HIGH) / HIGH * 255).astype(np.uint8)
            io.imsave(rgb_dir / f"{patch_id}.png", rgb, check_contrast=False)
            ref = extracted / "Reference_Maps" / product / patch_id
            with rasterio.open(ref / f"{patch_id}_reference_map.tif") as src:
                codes = src.read(1)
            io.imsave(mask_dir / f"{patch_id}.png", lut[codes], check_contrast=False)
            done += 1
    print(json.dumps({"patches": done, "peak_rss_mb": own_peak_rss_mb()}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The world (cached) and the workflow copy
# --------------------------------------------------------------------------------------------


def world_key(products: int, per_product: int) -> dict[str, Any]:
    """What the cached world depends on, including the generator's source."""
    from eopack.demo import benworld

    code = hashlib.sha256(Path(benworld.__file__).read_bytes()).hexdigest()[:16]
    return {"products": products, "patches_per_product": per_product, "s1": False, "code": code}


def ensure_world(root: Path, products: int, per_product: int) -> Path:
    """The mini release in ``root``: generated unless an identical one is there already."""
    from eopack.demo.benworld import build_benworld

    key = world_key(products, per_product)
    if reuse_world(root, key):
        return root
    t0 = time.perf_counter()
    build_benworld(root, s2_products=products, patches_per_product=per_product, s1=False)
    stamp_world(root, key)
    print(f"bench: generated the world in {time.perf_counter() - t0:.0f} s ({root})", flush=True)
    return root


def copy_workflow(dest: Path, world: Path) -> Path:
    """A checkout-like copy of the workflow with ``bench.yaml`` pointing at ``world``."""
    copy_workflow_files(dest)
    (dest / "bench.yaml").write_text(
        "bigearthnet:\n"
        "  enabled: true\n"
        f"  source: {json.dumps(str(world.resolve()))}\n"
        "  hashes: hashes.txt\n",
        encoding="utf-8",
    )
    return dest


def snakemake(wf: Path, cores: int, cpus: str | None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "bigearthnet", "--cores", str(cores)]
    cmd += ["--configfile", "bench.yaml"]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    env = {**os.environ}
    env.pop("AWS_PROFILE", None)
    return subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True)


def job_counts(stderr: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table (empty if nothing ran)."""
    if "Job stats:" not in stderr:
        return {}
    table = stderr.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def clean_eopack_run(wf: Path) -> None:
    """Delete what a run makes after the fetch; the fetched archives and stamps stay."""
    for name in RUN_OUTPUTS:
        shutil.rmtree(wf / name, ignore_errors=True)
    # The extracted trees live in the download cache (eopack.bigearthnet.cache), keyed by the
    # archive's md5: without this, a timed run would find them there and extract nothing.
    for tree in wf.glob(EXTRACTED_TREES):
        shutil.rmtree(tree, ignore_errors=True)
    logs = wf / "logs" / "bigearthnet"
    for pattern in RUN_LOGS:
        for path in logs.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def run_logs(wf: Path) -> list[Path]:
    """The job logs of the latest run (not the fetch's)."""
    logs = wf / "logs" / "bigearthnet"
    return sorted(p for p in logs.rglob("*.log") if p.relative_to(logs).parts[0] != "fetch")


def log_rule(log: str) -> str:
    """``extract/BigEarthNet-S2.log`` -> ``extract``; ``zip_pngs.log`` -> ``zip``."""
    name = Path(log).parts[0].removesuffix(".log")
    return "zip" if name.startswith("zip") else name


def job_times(wf: Path, start_wall: float, end_wall: float) -> dict[str, float]:
    """Seconds per job log, from the logs' mtimes (the end of each job): with one core the
    jobs run one after the other, so each job's time is its end minus the previous job's end
    (Snakemake's per-job overhead included; the first job includes start-up and the DAG)."""
    logs = wf / "logs" / "bigearthnet"
    out: dict[str, float] = {}
    previous = start_wall
    for log in sorted(run_logs(wf), key=lambda p: p.stat().st_mtime):
        end = log.stat().st_mtime
        out[str(log.relative_to(logs))] = max(0.0, end - previous)
        previous = end
    out[AFTER_LAST_JOB] = max(0.0, end_wall - previous)
    return out


def by_rule(times: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for log, seconds in times.items():
        rule = log if log == AFTER_LAST_JOB else log_rule(log)
        out[rule] = out.get(rule, 0.0) + seconds
    return out


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    """One timed run of one tool."""

    wall: float
    cpu: float  # user + system of the child processes
    patches: int
    peak_rss_mb: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Tool:
    name: str
    prepare: Callable[[], None]  # untimed: delete the previous run's output
    run: Callable[[], dict[str, Any]]  # timed; returns extra (untimed parts are not in it)
    check: Callable[[dict[str, Any]], tuple[int, int]]  # untimed: -> (patches, peak RSS MB)
    samples: list[Sample] = dataclasses.field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)


def measure(tool: Tool) -> Sample:
    tool.prepare()
    settle(SETTLE_S)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, wall0 = time.perf_counter(), time.time()
    extra = tool.run()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    extra["start"], extra["end"] = wall0, time.time()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    patches, rss = tool.check(extra)
    extra.pop("proc", None)
    sample = Sample(wall, cpu, patches, rss, extra)
    tool.samples.append(sample)
    print(
        f"  {tool.name:<16} {wall:7.2f} s  {patches / wall:7.0f} patches/s  "
        f"cpu {cpu:6.2f} s  peak RSS {rss} MB",
        flush=True,
    )
    return sample


def allocated(path: Path) -> int:
    """Bytes of disk blocks a file or folder tree takes (``du``), folders included."""
    if path.is_file():
        return path.stat().st_blocks * 512
    total = path.stat().st_blocks * 512 if path.is_dir() else 0
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def disk_lines(disk: dict[str, int], in_archive: int, rendered: int) -> list[str]:
    """The disk table: per patch as measured, and scaled to the release's 549,488 patches.

    Archives and extraction hold every patch of the archive (snow/cloud ones too); PNGs and
    zips the rendered ones. Scaled as if all 549,488 were rendered (``include_snow`` and
    ``include_cloud`` on): an upper bound.
    """
    lines = [f"disk per stage (allocated, after the last run; x {REAL_PATCHES:,} patches):"]
    scaled = 0.0
    for stage, used in disk.items():
        per = used / (in_archive if stage.startswith(("fetch", "extract")) else rendered)
        scaled += per * REAL_PATCHES
        lines.append(
            f"  {stage:<44} {used / 2**20:9.1f} MiB  {per / 1024:6.1f} KiB/patch  "
            f"-> {per * REAL_PATCHES / 1e9:6.1f} GB"
        )
    total_mib = sum(disk.values()) / 2**20
    lines.append(f"  {'total':<44} {total_mib:9.1f} MiB  -> {scaled / 1e9:6.1f} GB")
    return lines


def png_ids(folder: Path) -> set[tuple[str, str]]:
    """(product, patch id) of every PNG under ``folder/<product>/``."""
    return {(p.parent.name, p.stem) for p in folder.glob("*/*.png")}


class Bench:
    def __init__(self, work: Path, world: Path, wf: Path, wanted: set[tuple[str, str]]) -> None:
        self.work = work
        self.world = world
        self.wf = wf
        self.wanted = wanted
        self.seed_dir = work / "seed"

    def check_pngs(self, tool: str, root: Path) -> None:
        """Every selected patch has its RGB and mask PNG under ``root/{rgb,mask}/<product>/``."""
        for kind in ("rgb", "mask"):
            got = png_ids(root / kind)
            if got != self.wanted:
                raise RuntimeError(
                    f"{tool}: {len(got)} {kind} PNGs, expected {len(self.wanted)} "
                    f"(missing e.g. {sorted(self.wanted - got)[:2]})"
                )

    # seed -----------------------------------------------------------------------------------
    def seed_prepare(self) -> None:
        shutil.rmtree(self.seed_dir, ignore_errors=True)
        self.seed_dir.mkdir(parents=True)

    def seed_run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        for archive in ("BigEarthNet-S2.tar.zst", "Reference_Maps.tar.zst"):
            cmd = ["taskset", "-c", "0", "tar", "-I", "zstd", "-xf", str(self.world / archive)]
            proc = subprocess.run(cmd, cwd=self.seed_dir, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        t1 = time.perf_counter()
        cmd = ["taskset", "-c", "0", sys.executable, str(Path(__file__).resolve())]
        cmd += ["--seed-convert", str(self.seed_dir), str(self.seed_dir / "png")]
        cmd += [str(self.world / "metadata.parquet")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"seed converter failed: {proc.stderr[-3000:]}")
        converter = json.loads(proc.stdout.strip().splitlines()[-1])
        return {"converter": converter, "tar_s": t1 - t0, "convert_s": time.perf_counter() - t1}

    def seed_check(self, extra: dict[str, Any]) -> tuple[int, int]:
        self.check_pngs("seed", self.seed_dir / "png")
        if extra["converter"]["patches"] != len(self.wanted):
            raise RuntimeError(f"seed: converted {extra['converter']['patches']} patches")
        return len(self.wanted), int(extra["converter"]["peak_rss_mb"])

    # eopack ---------------------------------------------------------------------------------
    def eopack_prepare(self) -> None:
        clean_eopack_run(self.wf)

    def eopack_run(self, cores: int) -> Callable[[], dict[str, Any]]:
        cpus = ",".join(str(c) for c in range(cores))

        def run() -> dict[str, Any]:
            return {"proc": snakemake(self.wf, cores, cpus), "cores": cores}

        return run

    def eopack_check(self, extra: dict[str, Any]) -> tuple[int, int]:
        proc: subprocess.CompletedProcess[str] = extra["proc"]
        if proc.returncode != 0:
            raise RuntimeError(f"snakemake failed ({proc.returncode}): {proc.stderr[-4000:]}")
        counts = job_counts(proc.stderr)
        extra["jobs"] = counts
        if counts.get("bigearthnet_fetch"):
            raise RuntimeError("eopack: the timed run fetched the archives again")
        ben = self.wf / BEN
        self.check_pngs("eopack", ben)
        for name in ("bigearthnet_pngs.zip", "bigearthnet_mask_pngs.zip", "SHA256SUMS"):
            if not (ben / name).is_file():
                raise RuntimeError(f"eopack: {BEN / name} is missing")
        with (ben / "index.csv").open(encoding="utf-8") as handle:
            rows = sum(1 for _ in handle) - 1
        if rows != len(self.wanted):
            raise RuntimeError(f"eopack: index.csv has {rows} rows, expected {len(self.wanted)}")
        rss = {}
        for log in run_logs(self.wf):
            found = PEAK_RSS.findall(log.read_text(encoding="utf-8", errors="replace"))
            if found:
                rss[str(log.relative_to(self.wf / "logs"))] = max(int(n) for n in found)
        if not rss:
            raise RuntimeError("eopack: no job log has a 'peak RSS <n> MB' line")
        extra["peak_rss_by_log"] = rss
        if extra["cores"] == 1:
            extra["job_s"] = job_times(self.wf, extra["start"], extra["end"])
        return rows, max(rss.values())

    # disk -----------------------------------------------------------------------------------
    def disk_by_stage(self) -> dict[str, int]:
        """Bytes on disk (allocated blocks) of each stage's outputs after the last eopack run."""
        res, ben = self.wf / "resources" / "bigearthnet", self.wf / BEN
        stages = {
            "fetch: archives + metadata": [*res.glob("*.tar.zst"), *res.glob("*.parquet")],
            "extract: resources/bigearthnet/cache/md5/*/extracted": list(
                self.wf.glob(EXTRACTED_TREES)
            ),
            "render: results/bigearthnet/rgb + mask": [ben / "rgb", ben / "mask"],
            "zips: results/bigearthnet/*.zip": list(ben.glob("*.zip")),
        }
        return {stage: sum(allocated(p) for p in paths) for stage, paths in stages.items()}

    # pixels ---------------------------------------------------------------------------------
    def compare_pixels(self) -> dict[str, Any]:
        """eopack's latest PNGs against the seed's latest, on a spread of patches (untimed)."""
        import numpy as np
        from PIL import Image

        ids = sorted(self.wanted)
        step = max(1, len(ids) // SAMPLE_PATCHES)
        sample = ids[::step]
        max_diff, off_pixels, pixels = 0, 0, 0
        for product, patch_id in sample:
            name = Path(product, f"{patch_id}.png")
            ours = np.asarray(Image.open(self.wf / BEN / "rgb" / name).convert("RGB"), np.int16)
            seed = np.asarray(Image.open(self.seed_dir / "png" / "rgb" / name), np.int16)
            if ours.shape != seed.shape:
                raise RuntimeError(f"{name}: RGB shape {ours.shape} vs the seed's {seed.shape}")
            diff = np.abs(ours - seed)
            max_diff = max(max_diff, int(diff.max()))
            off_pixels += int((diff != 0).any(axis=-1).sum())
            pixels += diff.shape[0] * diff.shape[1]
            mask = Image.open(self.wf / BEN / "mask" / name)
            if mask.mode != "P":
                raise RuntimeError(f"{name}: eopack mask mode {mask.mode}, expected P")
            seed_mask = np.asarray(Image.open(self.seed_dir / "png" / "mask" / name))
            if not np.array_equal(np.asarray(mask), seed_mask):
                raise RuntimeError(f"{name}: eopack's mask indices differ from the seed's")
        if max_diff > 1:
            raise RuntimeError(f"RGB pixels differ from the seed's by up to {max_diff}")
        return {
            "patches": len(sample),
            "rgb_max_diff": max_diff,
            "rgb_pixels_off_by_one": off_pixels,
            "rgb_pixels": pixels,
        }


def table(tools: list[Tool], patches: int) -> list[str]:
    """Markdown table: medians (min, max) per tool; ``x`` = the seed's median s / this one's."""
    lines = [
        "| tool             | median s |  min s |  max s | patches/s |     x | cpu s | "
        "peak RSS MB | runs (s) |",
        "|------------------|---------:|-------:|-------:|----------:|------:|------:|"
        "------------:|----------|",
    ]
    for tool in tools:
        med, lo, hi = spread([s.wall for s in tool.samples])
        cpu = statistics.median(s.cpu for s in tool.samples)
        rss = max(s.peak_rss_mb for s in tool.samples)
        runs = " ".join(f"{s.wall:.2f}" for s in tool.samples)
        lines.append(
            f"| {tool.name:<16} | {med:8.2f} | {lo:6.2f} | {hi:6.2f} | {patches / med:9.0f} | "
            f"{tools[0].wall / med:5.2f} | {cpu:5.1f} | {rss:11d} | {runs} |"
        )
    return lines


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Real BigEarthNet v2 has {REAL_PATCHES:,} patches in {REAL_PRODUCTS} S2 products "
        f"(~{REAL_PATCHES // REAL_PRODUCTS:,} per product). The world is generated untimed "
        "(~25 s per 5,000 patches) and, with --keep --workdir DIR, cached in DIR.",
    )
    add_run_options(parser)
    parser.add_argument(
        "--products", type=int, default=4, help="S2 products (tiles) in the world (default 4)"
    )
    parser.add_argument(
        "--patches-per-product",
        type=int,
        default=4800,
        help="patches per S2 product (default 4800; the real release has ~4,780)",
    )
    parser.add_argument(
        "--allow-small",
        action="store_true",
        help=f"allow fewer than {MIN_PATCHES:,} patches in all (smoke tests; not a figure)",
    )
    parser.add_argument(
        "--no-volume",
        dest="volume",
        action="store_false",
        help="run on the work folder's file system instead of a fresh loop-mounted ext4 "
        "(the default when root; see fresh_volume)",
    )
    parser.add_argument("--seed-convert", nargs=3, metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed_convert:
        extracted, out, metadata = (Path(p) for p in args.seed_convert)
        return seed_convert(extracted, out, metadata)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.products < 1 or args.patches_per_product < 1:
        parser.error("--products and --patches-per-product must be at least 1")
    if args.products * args.patches_per_product < MIN_PATCHES and not args.allow_small:
        parser.error(
            f"{args.products} x {args.patches_per_product} patches is fewer than {MIN_PATCHES:,}; "
            "pass --allow-small for a smoke test"
        )
    find_tool("taskset", "it is in util-linux")
    find_tool("tar", "apt-get install tar")
    find_tool("zstd", "the seed's tar -I zstd needs it: apt-get install zstd")
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("bench: needs CPUs 0 and 1 (taskset -c 0 and -c 0,1)")
    started = time.perf_counter()
    volume = args.volume and can_mount_volume()
    if args.volume and not volume:
        print("bench: not root or no mkfs.ext4/loop device: running on the work folder's disk")
    with workspace(args, prefix="eopack-bench-ben-") as work:
        if not volume:
            return run_all(args, work, work, started)
        size_gb = max(8, -(-args.products * args.patches_per_product * 1_000_000 // 2**30))
        with fresh_volume(work, size_gb) as mounted:
            return run_all(args, work, mounted, started)


def run_all(args: argparse.Namespace, work: Path, disk: Path, started: float) -> int:
    """The bench in ``disk`` (``work`` or a fresh volume in it); the world is cached in
    ``--workdir`` with ``--keep`` and copied onto a volume, so both tools read it from there."""
    cache = Path(args.workdir) if args.keep and args.workdir else work
    name = f"benworld-{args.products}x{args.patches_per_product}"
    world = ensure_world(cache / name, args.products, args.patches_per_product)
    if disk != work:
        t0 = time.perf_counter()
        world = Path(shutil.copytree(world, disk / name))
        print(f"bench: world copied onto the volume in {time.perf_counter() - t0:.1f} s")
    work = disk
    patch_ids = metadata_patch_ids(world / "metadata.parquet")
    wanted = {(s2_product_of(p), p) for p in patch_ids}
    total = args.products * args.patches_per_product
    print(
        f"bench: {total} patches in {args.products} S2 products, {len(wanted)} selected "
        f"(the others have snow, cloud or shadow); work folder {work}",
        flush=True,
    )

    wf = copy_workflow(work / "wf", world)
    t0 = time.perf_counter()
    proc = snakemake(wf, 2, None)
    if proc.returncode != 0:
        raise RuntimeError(f"warm-up snakemake failed: {proc.stderr[-4000:]}")
    print(f"bench: warm-up run (fetch + full run, 2 cores) {time.perf_counter() - t0:.1f} s")

    bench = Bench(work, world, wf, wanted)
    tools = [
        Tool("seed", bench.seed_prepare, bench.seed_run, bench.seed_check),
        Tool("eopack 1 core", bench.eopack_prepare, bench.eopack_run(1), bench.eopack_check),
        Tool("eopack 2 cores", bench.eopack_prepare, bench.eopack_run(2), bench.eopack_check),
    ]
    print(f"\n{len(wanted)} patches, {args.runs} runs each", flush=True)
    for round_no in range(args.runs):
        print(f"round {round_no + 1}/{args.runs}", flush=True)
        for tool in rotated(tools, round_no):
            measure(tool)
    pixels = bench.compare_pixels()
    disk = bench.disk_by_stage()

    seed, one, two = tools
    patches = len(wanted)
    r = seed.wall / one.wall
    p = patches / one.wall
    s = one.wall / two.wall
    m = max(x.peak_rss_mb for t in (one, two) for x in t.samples)
    breakdowns = [by_rule(x.extra["job_s"]) for x in one.samples]
    rules = sorted({k for b in breakdowns for k in b}, key=lambda k: -breakdowns[0].get(k, 0))
    lines = [
        "",
        f"BigEarthNet benchmark: {patches} patches ({args.products} S2 products x "
        f"{args.patches_per_product}, snow/cloud excluded), {args.runs} runs per tool "
        f"(medians; wall time; {os.cpu_count()} cores shared; x = seed s / s)",
        "",
        *table(tools, patches),
        "",
        "eopack 1 core by rule (median s, from job-log mtimes; Snakemake's per-job overhead "
        "included, the first job includes start-up and the DAG):",
        *(
            f"  {rule:<32} {statistics.median(b.get(rule, 0.0) for b in breakdowns):7.2f}"
            for rule in rules
        ),
        f"seed by step (median s): tar -I zstd -xf "
        f"{statistics.median(x.extra['tar_s'] for x in seed.samples):.2f}, rasterio + "
        f"skimage {statistics.median(x.extra['convert_s'] for x in seed.samples):.2f}",
        "",
        f"peak RSS: eopack jobs max {m} MB "
        f"({max(one.samples[-1].extra['peak_rss_by_log'].items(), key=lambda kv: kv[1])[0]}); "
        f"seed converter {max(x.peak_rss_mb for x in seed.samples)} MB",
        f"pixels: {pixels['patches']} patches compared; RGB max |diff| {pixels['rgb_max_diff']} "
        f"({pixels['rgb_pixels_off_by_one']} of {pixels['rgb_pixels']} pixels off by one: the "
        "seed rounds half to even, eopack half up); masks equal",
        *disk_lines(disk, total, patches),
        f"R = {seed.wall:.2f} / {one.wall:.2f} s = {r:.3f}; P = {patches} / {one.wall:.2f} s; "
        f"S = {one.wall:.2f} / {two.wall:.2f} s = {s:.3f}; "
        f"bench took {time.perf_counter() - started:.0f} s",
    ]
    print("\n".join(lines), flush=True)
    if args.json:
        doc = {
            "products": args.products,
            "patches_per_product": args.patches_per_product,
            "patches": patches,
            "tools": [
                {"name": t.name, "samples": [dataclasses.asdict(x) for x in t.samples]}
                for t in tools
            ],
            "pixels": pixels,
            "disk_bytes": disk,
            "R": r,
            "P": p,
            "M": m,
            "S": s,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"ratio_vs_seed={r:.2f} patches_per_s={p:.0f} peak_rss_mb={m} scaling_2_cores={s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
