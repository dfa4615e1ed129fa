"""``make bench-dag``: the workflow's own cost at tens of thousands of jobs (issue 15).

A user with 50 AOI files and 12 monthly date ranges (``images_limit: 20``) asks Snakemake for
~10,000 S1 products: the DAG then holds ~30,000 jobs (rebuild, verify, zip per product). This
bench measures what Snakemake and the rules cost before a single byte is downloaded:

* **dry run**: ``snakemake -n --quiet all`` (``--quiet all``: nothing printed, the default
  target ``all``) once every search and the union of their manifests
  (``results/search/products.geojson``) have run - wall time and peak RSS (``wait4``'s
  ``ru_maxrss`` of the Snakemake process) - and the number of jobs (from an untimed
  ``-n --quiet rules`` run's "Job stats" table);
* **last search -> first download**: a real ``snakemake all`` after one search's outputs and
  the union's were deleted, as in a first run. That search runs last, then ``union_products``,
  then Snakemake builds the product jobs; the time from the search job's end to the start of
  the first ``rebuild_safe`` job is what a user waits between "searches done" and "downloads
  started" (the other 599 searches would not change it: they ran before). Each Snakemake line
  is time-stamped as it arrives; the run is ended (SIGKILL to its process group) as soon as
  ``rebuild_safe`` starts. S3 points at a closed loopback port: nothing is downloaded.

The world is generated (seeded, deterministic): ``--aois`` AOI GeoJSON files (0.6 x 0.4 deg
boxes on a 10-column grid over Europe, 3.6 x 3.2 deg apart) and, per AOI x month of 2023,
``--per-search`` Earth Search ``sentinel-1-grd`` items (the demo world's item shape,
``eopack.demo.s1world``) whose IW frames cover that AOI only: every search finds exactly
``--per-search`` distinct products, all kept under ``images_limit: 20``. They are served by the
real STAC server (``rustac serve``); the searches and the union run for real (``snakemake
--cores 2`` with the manifests and ``products.geojson`` as targets), untimed. The config is
``config/demo.yaml``'s shape with BigEarthNet off, publishing off and the report off
(``--report`` turns it on). The last line::

    dry_run_s=D dry_run_peak_rss_mb=M jobs=J products=P search_to_download_s=T

(medians of ``--runs`` runs).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    add_run_options,
    copy_workflow_files,
    reuse_world,
    settle,
    spread,
    stamp_world,
    workspace,
)

YEAR = 2023  # S1A only (S1B failed on 2021-12-23)
IMAGES_LIMIT = 20
COLUMNS = 10  # AOI grid: 10 columns, as many rows as needed
LON0, LAT0, DLON, DLAT = -8.0, 37.0, 3.6, 3.2  # grid origin and spacing (deg)
AOI_W, AOI_H = 0.6, 0.4  # AOI box size (deg)
FRAME_W, FRAME_H = 2.8, 1.6  # IW frame box (deg): covers its AOI, never a neighbour
SHIFT_W, SHIFT_H = 0.4, 0.3  # largest offset of a frame's centre from its AOI's centre
# The union of the search manifests (and, since the product-list checkpoint, its per-AOI index).
UNION = "results/search/products.geojson"
UNION_OUTPUTS = (UNION, "results/search/products_by_aoi.json")
SEARCH_TIMEOUT_S = 3600
DOWNLOAD_TIMEOUT_S = 1800
# Snakemake's job header ("rule NAME:" / "localrule NAME:") and its job-finished line.
RULE_START = re.compile(r"^(?:local)?(?:checkpoint|rule) (\w+):$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


# --------------------------------------------------------------------------------------------
# The world: AOI files and STAC items (cached)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shape:
    """The size of a generated world."""

    aois: int
    months: int
    per_search: int
    seed: int

    @property
    def searches(self) -> int:
        return self.aois * self.months

    @property
    def products(self) -> int:
        return self.searches * self.per_search


def monthly_ranges(months: int) -> list[tuple[str, str]]:
    """The first ``months`` months of YEAR as [first day, last day] pairs."""
    out = []
    for month in range(1, months + 1):
        last = calendar.monthrange(YEAR, month)[1]
        out.append((f"{YEAR}-{month:02d}-01", f"{YEAR}-{month:02d}-{last:02d}"))
    return out


def aoi_centres(count: int) -> list[tuple[str, float, float]]:
    """(name, lon, lat) of each AOI on the grid."""
    return [
        (f"aoi{i:03d}", LON0 + DLON * (i % COLUMNS), LAT0 + DLAT * (i // COLUMNS))
        for i in range(count)
    ]


def box(lon: float, lat: float, w: float, h: float) -> tuple[float, float, float, float]:
    return (
        round(lon - w / 2, 6),
        round(lat - h / 2, 6),
        round(lon + w / 2, 6),
        round(lat + h / 2, 6),
    )


def aoi_geojson(name: str, lon: float, lat: float) -> dict[str, Any]:
    x0, y0, x1, y1 = box(lon, lat, AOI_W, AOI_H)
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": name},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }


def world_items(shape: Shape) -> list[dict[str, Any]]:
    """``per_search`` S1A IW GRD items per AOI x month, each frame covering that AOI only.

    Start times are drawn (seeded) within the month, whole seconds, all distinct, so the
    product ids are too.
    """
    from eopack.demo import s1world

    rng = random.Random(shape.seed)
    starts: set[str] = set()
    items = []
    for _, lon, lat in aoi_centres(shape.aois):
        for first, last in monthly_ranges(shape.months):
            year, month = int(first[:4]), int(first[5:7])
            days = int(last[8:])
            for _ in range(shape.per_search):
                while True:
                    day = rng.randint(1, days)
                    # 25 s slices end before midnight: the product stays in its month
                    second = rng.randrange(0, 86400 - 60)
                    start = (
                        f"{year}{month:02d}{day:02d}T"
                        f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"
                    )
                    if start not in starts:
                        starts.add(start)
                        break
                cx = lon + rng.uniform(-SHIFT_W, SHIFT_W)
                cy = lat + rng.uniform(-SHIFT_H, SHIFT_H)
                ascending = rng.random() < 0.5
                spec = s1world._spec(
                    "S1A", "IW", "H", "DV", start, box(cx, cy, FRAME_W, FRAME_H), ascending
                )
                facts = s1world._facts(spec)
                items.append(s1world._stac_item(facts, s1world._footprint(facts)))
    return items


def world_key(shape: Shape) -> dict[str, Any]:
    """What the cached world depends on, including the generators' source."""
    from eopack.demo import s1world

    code = hashlib.sha256(
        Path(s1world.__file__).read_bytes() + Path(__file__).read_bytes()
    ).hexdigest()[:16]
    return {**dataclasses.asdict(shape), "code": code}


def ensure_world(root: Path, shape: Shape) -> Path:
    """AOI files (``root/aoi``) and STAC items (``root/items.json``), generated unless an
    identical world is there already."""
    from eopack.demo.s1world import write_stac_items

    key = world_key(shape)
    if reuse_world(root, key):
        return root
    t0 = time.perf_counter()
    (root / "aoi").mkdir(parents=True)
    for name, lon, lat in aoi_centres(shape.aois):
        doc = aoi_geojson(name, lon, lat)
        (root / "aoi" / f"{name}.geojson").write_text(json.dumps(doc, indent=1) + "\n")
    items = world_items(shape)
    write_stac_items([], root / "items.json", extra_items=items)
    stamp_world(root, key)
    print(
        f"bench: generated {shape.aois} AOIs and {len(items):,} STAC items in "
        f"{time.perf_counter() - t0:.1f} s ({root})",
        flush=True,
    )
    return root


# --------------------------------------------------------------------------------------------
# The workflow copy and Snakemake
# --------------------------------------------------------------------------------------------


def copy_workflow(dest: Path, world: Path, shape: Shape, report: bool) -> Path:
    """A checkout-like copy of the workflow with ``bench.yaml``: config/demo.yaml's shape,
    the world's AOIs and months, BigEarthNet, publishing and (unless ``report``) the report off.
    """
    copy_workflow_files(dest)
    config = {
        "aoi_dir": str((world / "aoi").resolve()),
        "date_ranges": [list(r) for r in monthly_ranges(shape.months)],
        "search": {
            "images_limit": IMAGES_LIMIT,
            "filters": {
                "platforms": [],
                "instrument_modes": [],
                "polarisations": [],
                "orbit_states": [],
            },
        },
        "transfer": {"max_workers": 4},
        "bigearthnet": {"enabled": False},
        "publish": {"uri": None},
        "report": {"enabled": report},
    }
    (dest / "bench.yaml").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return dest


def bench_env(stac_url: str) -> dict[str, str]:
    """The STAC server; S3 at a loopback port nobody listens on (no request leaves the host)."""
    from eopack.demo.stacserver import free_port
    from eopack.demo.world import DEMO_CREDENTIALS

    env = {**os.environ, **DEMO_CREDENTIALS}
    env.pop("AWS_PROFILE", None)
    env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["EOPACK_STAC_URL"] = stac_url
    return env


def snakemake_cmd(*args: str) -> list[str]:
    """``--configfile`` last: it takes several files, and ``--quiet`` several choices."""
    return [sys.executable, "-m", "snakemake", *args, "--configfile", "bench.yaml"]


def search_targets(shape: Shape) -> list[str]:
    return [
        f"results/search/{name}/{first}_{last}.geojson"
        for name, _, _ in aoi_centres(shape.aois)
        for first, last in monthly_ranges(shape.months)
    ]


def run_searches(wf: Path, env: dict[str, str], shape: Shape) -> float:
    """Every search and their union for real, 2 cores (untimed); checks each manifest."""
    targets = search_targets(shape)
    t0 = time.perf_counter()
    proc = subprocess.run(
        snakemake_cmd(*targets, UNION, "--cores", "2", "--quiet", "rules"),
        cwd=wf,
        env=env,
        capture_output=True,
        text=True,
        timeout=SEARCH_TIMEOUT_S,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the searches failed ({proc.returncode}): {proc.stderr[-4000:]}")
    found = set()
    for target in targets:
        doc = json.loads((wf / target).read_text())
        ids = [f["id"] for f in doc["features"]]
        if len(ids) != shape.per_search:
            raise RuntimeError(f"{target}: {len(ids)} products, expected {shape.per_search}")
        found.update(ids)
    if len(found) != shape.products:
        raise RuntimeError(f"{len(found)} distinct products found, expected {shape.products}")
    union = json.loads((wf / UNION).read_text())
    if {f["id"] for f in union["features"]} != found:
        raise RuntimeError(f"{UNION} does not hold the {shape.products} products found")
    return seconds


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table (empty if nothing would run)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def count_jobs(wf: Path, env: dict[str, str]) -> dict[str, int]:
    """The dry run's jobs by rule (untimed: ``--quiet rules`` still prints "Job stats")."""
    proc = subprocess.run(
        snakemake_cmd("-n", "--quiet", "rules"),
        cwd=wf,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({proc.returncode}): {proc.stderr[-4000:]}")
    counts = job_counts(proc.stdout + proc.stderr)
    if not counts:
        raise RuntimeError(f"snakemake -n printed no job stats: {proc.stderr[-2000:]}")
    return counts


def timed_dry_run(wf: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB, ``wait4`` of the Snakemake process) of the dry run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        snakemake_cmd("-n", "--quiet", "all"),
        cwd=wf,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()  # drained while it runs (a full pipe would block it)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({proc.returncode}): {err.decode()[-4000:]}")
    return wall, usage.ru_maxrss // 1024


def first_download(
    wf: Path, env: dict[str, str], last_search: str, transcript: Path
) -> dict[str, float]:
    """A real ``snakemake all`` with one search to redo: seconds from its end to the start of
    the first ``rebuild_safe`` job, and the steps in between.

    The search's end is its job log's mtime (the job's last write); a job's start is when
    Snakemake prints its header (``rule NAME:``), each line stamped as it arrives (wall
    clock, in ``transcript``). ``--keep-going``: a job failing at once (``plan`` cannot
    reach S3) must not stop the scheduling being timed. The run is ended as soon as the
    first ``rebuild_safe`` starts.
    """
    manifest = wf / last_search
    # As in a first run: union_products has not run yet either.
    for path in (manifest, *(wf / p for p in UNION_OUTPUTS)):
        path.unlink(missing_ok=True)
    search_log = wf / "logs" / Path(last_search).with_suffix(".log").relative_to("results")
    t0 = time.time()
    proc = subprocess.Popen(
        # --verbose: Snakemake's own per-job listing (rule headers), which eopack's console
        # (profiles/default: logger eopack) shortens to a line per finished job.
        snakemake_cmd("all", "--cores", "2", "--keep-going", "--verbose"),
        cwd=wf,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its jobs share its process group: ended together below
    )
    assert proc.stdout is not None
    timer = threading.Timer(DOWNLOAD_TIMEOUT_S, os.killpg, (proc.pid, signal.SIGKILL))
    timer.start()
    stamped: list[tuple[float, str]] = []
    started: dict[str, float] = {}  # rule -> its first job's start
    finished: dict[str, float] = {}  # rule -> its first job's "Finished" line
    try:
        for line in proc.stdout:
            now = time.time()
            line = line.rstrip("\n")
            stamped.append((now, line))
            if (m := RULE_START.match(line)) is not None:
                started.setdefault(m[1], now)
                if m[1] == "rebuild_safe":
                    break
            elif (m := FINISHED.match(line)) is not None:
                finished.setdefault(m[2], now)
    finally:
        timer.cancel()
        stop_run(proc)
        transcript.write_text("".join(f"{t - t0:9.3f} {line}\n" for t, line in stamped))
    if (
        "rebuild_safe" not in started
        or "search" not in started
        or not manifest.is_file()
        or not (wf / UNION).is_file()
    ):
        tail = "\n".join(line for _, line in stamped[-60:])
        raise RuntimeError(f"no search or no rebuild_safe job seen (see {transcript}):\n{tail}")
    search_end = search_log.stat().st_mtime
    download = started["rebuild_safe"]
    sample = {
        "search_to_download_s": download - search_end,
        "start_to_search_end_s": search_end - t0,
        "start_to_download_s": download - t0,
    }
    if "union_products" in started and "union_products" in finished:
        sample["search_to_union_start_s"] = started["union_products"] - search_end
        sample["union_end_to_download_s"] = download - finished["union_products"]
    return sample


def stop_run(proc: subprocess.Popen[str]) -> None:
    """End the run and its jobs at once: SIGKILL to its process group (``start_new_session``).

    Not Ctrl-C: on SIGINT Snakemake 9 went on starting jobs (``--keep-going``), and on SIGTERM
    it took over 15 s to wind down. ``clean_run`` removes what it leaves (locks, markers).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def clean_run(wf: Path) -> None:
    """Undo what an interrupted real run left: the rebuilds' output, job logs, incomplete
    markers and its locks (it was killed). The union ran again before the first rebuild: the
    next dry run sees what the first one saw. No Snakemake runs in ``wf`` now."""
    for name in (
        ".snakemake/locks",
        "results/safe",
        "logs/safe",
        "results/plan.tsv",
        "logs/plan.log",
        ".snakemake/incomplete",
    ):
        path = wf / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument("--aois", type=int, default=50, help="AOI files (default 50)")
    parser.add_argument(
        "--months", type=int, default=12, help=f"monthly date ranges of {YEAR} (default 12)"
    )
    parser.add_argument(
        "--per-search",
        type=int,
        default=17,
        help=f"products per AOI x month (default 17; at most images_limit {IMAGES_LIMIT})",
    )
    parser.add_argument("--seed", type=int, default=15, help="world seed (default 15)")
    parser.add_argument("--report", action="store_true", help="report.enabled: true")
    parser.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="skip the last-search -> first-download runs",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not 1 <= args.months <= 12:
        parser.error("--months must be 1..12")
    if args.aois < 1 or not 1 <= args.per_search <= IMAGES_LIMIT:
        parser.error(f"--aois must be at least 1 and --per-search 1..{IMAGES_LIMIT}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from eopack.demo.stacserver import StacServer

    args = parse_args(argv)
    shape = Shape(args.aois, args.months, args.per_search, args.seed)
    started = time.perf_counter()
    with workspace(args, prefix="eopack-bench-dag-") as work:
        cache = Path(args.workdir) if args.keep and args.workdir else work
        name = f"dagworld-{shape.aois}x{shape.months}x{shape.per_search}-s{shape.seed}"
        world = ensure_world(cache / name, shape)
        stac = StacServer([world / "items.json"], log_file=work / "rustac.log").start(timeout=120)
        try:
            env = bench_env(stac.url)
            wf = copy_workflow(work / "wf", world, shape, args.report)
            seconds = run_searches(wf, env, shape)
            print(
                f"bench: {shape.searches} searches and their union (snakemake --cores 2) in "
                f"{seconds:.0f} s: {shape.products:,} distinct products, "
                f"{shape.per_search} per search",
                flush=True,
            )
            return measure(args, shape, wf, env, started)
        finally:
            stac.stop()


def measure(
    args: argparse.Namespace, shape: Shape, wf: Path, env: dict[str, str], started: float
) -> int:
    counts = count_jobs(wf, env)
    jobs = sum(counts.values())
    print(f"bench: the dry run would run {jobs:,} jobs: {counts}", flush=True)
    dry: list[tuple[float, int]] = []
    download: list[dict[str, float]] = []
    last_search = search_targets(shape)[-1]
    for round_no in range(args.runs):
        settle(1.0)
        wall, rss = timed_dry_run(wf, env)
        dry.append((wall, rss))
        line = f"round {round_no + 1}/{args.runs}: dry run {wall:6.1f} s, peak RSS {rss} MB"
        if args.download:
            settle(1.0)
            transcript = wf.parent / f"download-run-{round_no + 1}.txt"
            sample = first_download(wf, env, last_search, transcript)
            download.append(sample)
            clean_run(wf)
            line += (
                f"; last search -> first rebuild_safe {sample['search_to_download_s']:.1f} s "
                f"(run start -> search end {sample['start_to_search_end_s']:.1f} s, "
                f"-> rebuild_safe {sample['start_to_download_s']:.1f} s)"
            )
        print(line, flush=True)
    d_med, d_min, d_max = spread([w for w, _ in dry])
    m_med = int(spread([r for _, r in dry])[0])
    lines = [
        "",
        f"DAG benchmark: {shape.aois} AOIs x {shape.months} months, {shape.products:,} products "
        f"({shape.per_search} per search, images_limit {IMAGES_LIMIT}), report "
        f"{'on' if args.report else 'off'}, {args.runs} runs (medians; {os.cpu_count()} cores "
        "shared)",
        f"  snakemake -n --quiet all   {d_med:7.1f} s (min {d_min:.1f}, max {d_max:.1f}), "
        f"peak RSS {m_med} MB, {jobs:,} jobs",
    ]
    t_med = None
    if download:
        t_med, t_min, t_max = spread([s["search_to_download_s"] for s in download])
        lines.append(
            f"  last search -> first rebuild_safe {t_med:7.1f} s (min {t_min:.1f}, max {t_max:.1f})"
        )
    lines.append(f"bench took {time.perf_counter() - started:.0f} s")
    print("\n".join(lines), flush=True)
    if args.json:
        doc = {
            "shape": dataclasses.asdict(shape),
            "products": shape.products,
            "report": args.report,
            "jobs": counts,
            "dry_runs": [{"wall_s": w, "peak_rss_mb": r} for w, r in dry],
            "downloads": download,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    last = (
        f"dry_run_s={d_med:.1f} dry_run_peak_rss_mb={m_med} jobs={jobs} products={shape.products}"
    )
    if t_med is not None:
        last += f" search_to_download_s={t_med:.1f}"
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
