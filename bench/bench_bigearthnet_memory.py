"""``bench/bench_bigearthnet_memory.py``: each BigEarthNet job's peak RSS over the REAL metadata.

Why: cluster schedulers kill a job past its ``--mem``, so each rule's ``mem_mb`` must come from
its peak at the release's size, not at the benchmark's 17,857 patches. A release of 549,488
patches is ~60 GB; what a job's memory depends on is mostly the metadata table, which is real
and small (4 MB). So the release here is the real ``metadata.parquet`` and
``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` (549,488 rows, 115 S2 products)
with archives holding only ``--patches`` real patches (the fixture TIFFs under real patch ids
of one product); every other selected patch is a counted skip. So:

* render, render_s1 (one product's rows), index (one report row per selected patch: all
  549,488), the DAG and Snakemake itself run at full size;
* the zips and SHA256SUMS hold ``--patches`` members, not 549,488: their member lists grow with
  the patch count (extrapolate, see the README);
* fetch and extract stream the archives: flat in the archive size.

Runs, in a copy of the workflow (``--repo``: another checkout, e.g. main, to compare):
``snakemake bigearthnet -n`` then ``snakemake bigearthnet --cores 1`` (S1 PNGs on, snow and
cloud patches included), Snakemake's own peak read from ``/proc/<pid>/status`` (VmHWM) while
it runs. ``--products N`` restricts the real run to the first N products' render jobs (their
targets), for a quick before/after of the render jobs alone. Prints per rule: jobs, longest
job s, max peak RSS MB (from the ``peak RSS`` line of the job logs).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import yaml
import zstandard
from _common import REPO, copy_workflow_files

FIXTURES = REPO / "tests" / "fixtures" / "bigearthnet"
METADATA = ("metadata.parquet", "metadata_for_patches_with_snow_cloud_or_shadow.parquet")
PEAK_RSS = re.compile(r"peak RSS (\d+) MB")


def _tar_zst(path: Path, members: dict[str, bytes]) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(members[name]), 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(raw.getvalue()))


def make_release(dest: Path, patches: int) -> str:
    """The real metadata + archives with ``patches`` real patches of one product; -> product."""
    import pyarrow.parquet as pq

    dest.mkdir(parents=True)
    for name in METADATA:
        shutil.copy2(FIXTURES / name, dest / name)
    s2 = next((FIXTURES / "BigEarthNet-S2").glob("*/*"))  # the fixture patch folder
    product = s2.parent.name
    bands = {p.name.rsplit("_", 1)[1]: p.read_bytes() for p in s2.glob("*.tif")}
    ref = next((FIXTURES / "Reference_Maps").rglob("*_reference_map.tif")).read_bytes()
    s1 = {
        p.name.rsplit("_", 1)[1]: p.read_bytes()
        for p in (FIXTURES / "BigEarthNet-S1").rglob("*.tif")
    }
    rows = pq.read_table(dest / METADATA[0], columns=["patch_id", "s1_name"]).to_pylist()
    rows = [r for r in rows if r["patch_id"].startswith(f"{product}_")][:patches]
    members: dict[str, dict[str, bytes]] = {
        "BigEarthNet-S2": {},
        "Reference_Maps": {},
        "BigEarthNet-S1": {},
    }
    for row in rows:
        pid, s1_name = row["patch_id"], row["s1_name"]
        for band, data in bands.items():
            members["BigEarthNet-S2"][f"BigEarthNet-S2/{product}/{pid}/{pid}_{band}"] = data
        members["Reference_Maps"][f"Reference_Maps/{product}/{pid}/{pid}_reference_map.tif"] = ref
        s1_product = s1_name.rsplit("_", 3)[0]
        for pol, data in s1.items():
            members["BigEarthNet-S1"][f"BigEarthNet-S1/{s1_product}/{s1_name}/{s1_name}_{pol}"] = (
                data
            )
    for stem, files in members.items():
        _tar_zst(dest / f"{stem}.tar.zst", files)
    lines = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(dest.iterdir())]
    (dest / "hashes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return product


def run(workdir: Path, args: list[str], src: Path) -> tuple[int, float, int, str]:
    """Snakemake in ``workdir`` with eopack from ``src``: (exit code, seconds, its own peak RSS
    MB, output tail)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(src)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = [0]

    def poll() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], (int(line.split()[1]) + 1023) // 1024)
            except OSError:
                break
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    return proc.returncode, time.monotonic() - started, peak[0], out[-3000:]


def job_peaks(workdir: Path) -> dict[str, dict[str, int]]:
    """Per log folder (rule): jobs, max and min peak RSS MB."""
    per: dict[str, list[int]] = defaultdict(list)
    for log in sorted((workdir / "logs" / "bigearthnet").rglob("*.log")):
        found = PEAK_RSS.findall(log.read_text(encoding="utf-8", errors="replace"))
        if found:
            rel = log.relative_to(workdir / "logs" / "bigearthnet")
            per[rel.parts[0] if len(rel.parts) > 1 else rel.stem].append(int(found[-1]))
    return {
        kind: {"jobs": len(v), "peak_mb_max": max(v), "peak_mb_min": min(v)}
        for kind, v in sorted(per.items())
    }


def read_one_product(release: Path, product: str, s1: bool, src: Path) -> dict[str, float]:
    """What a render job spends on the metadata, in a fresh process: wall s, CPU s, peak MB."""
    proc = subprocess.run(
        [sys.executable, "-c", _READ_ONE, str(release), product, str(int(s1))],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose workflow runs")
    parser.add_argument("--patches", type=int, default=200, help="real patches in the archives")
    parser.add_argument("--products", type=int, default=0, help="only N products' renders")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="eopack-ben-mem-"))
    try:
        release = root / "release"
        make_release(release, args.patches)
        workdir = root / "wf"
        copy_workflow_files(workdir, args.repo)
        section = {
            "enabled": True,
            "source": str(release),
            "hashes": "hashes.txt",
            "include_snow": True,
            "include_cloud": True,
            "s1_pngs": True,
        }
        cfg = root / "real.yaml"
        cfg.write_text(yaml.safe_dump({"bigearthnet": section}), encoding="utf-8")
        common = ["--configfile", str(cfg)]
        figures: dict[str, object] = {"repo": str(args.repo), "patches": args.patches}
        code, secs, peak, tail = run(workdir, ["bigearthnet", "-n", *common], args.repo / "src")
        if code:
            print(tail, file=sys.stderr)
            return code
        figures["dag"] = {"seconds": round(secs, 2), "snakemake_peak_mb": peak}
        print(f"snakemake bigearthnet -n: {secs:.2f} s, Snakemake peak RSS {peak} MB", flush=True)
        listing = subprocess.run(
            [sys.executable, "-c", _LIST_PRODUCTS, str(release)],
            capture_output=True,
            text=True,
            check=True,
        )
        products = listing.stdout.split()
        reads = {}
        for s1 in (False, True):
            samples = [read_one_product(release, p, s1, args.repo / "src") for p in products[:5]]
            reads["render_s1" if s1 else "render"] = samples
            print(
                f"metadata read of one product ({'with' if s1 else 'no'} s1_name), fresh process: "
                + ", ".join(
                    f"{r['wall']:.2f} s/{r['cpu']:.2f} cpu/{r['peak']} MB" for r in samples
                ),
                flush=True,
            )
        figures["read_one_product"] = reads
        targets = ["bigearthnet"]
        if args.products:
            targets = [
                f"resources/bigearthnet/{kind}/{p}.tsv"
                for p in products[: args.products]
                for kind in ("rendered", "rendered_s1")
            ]
        code, secs, peak, tail = run(
            workdir, [*targets, "--cores", "1", *common], args.repo / "src"
        )
        if code:
            print(tail, file=sys.stderr)
            return code
        figures["run"] = {"seconds": round(secs, 2), "snakemake_peak_mb": peak}
        figures["jobs"] = job_peaks(workdir)
        print(f"snakemake {' '.join(targets[:1])}...: {secs:.1f} s, Snakemake peak RSS {peak} MB")
        for kind, f in figures["jobs"].items():  # type: ignore[union-attr]
            print(
                f"{kind:12s} jobs {f['jobs']:4d}  peak RSS {f['peak_mb_min']}-{f['peak_mb_max']} MB"
            )
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


_LIST_PRODUCTS = (
    "import sys; from pathlib import Path; "
    "from eopack.bigearthnet.index import Selection, list_products; "
    "print(*list_products([Path(sys.argv[1], 'metadata.parquet')], Selection()))"
)

_READ_ONE = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
from pathlib import Path
from eopack.bigearthnet.index import METADATA, SNOW_CLOUD_METADATA, Selection, read_patches
release, product, s1 = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
paths = [release / METADATA, release / SNOW_CLOUD_METADATA]
sel = Selection(include_snow=True, include_cloud=True)
n = len(read_patches(paths, sel, product, with_s1=s1))
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"rows": n, "wall": time.perf_counter() - wall,
                  "cpu": time.process_time() - cpu, "peak": (peak + 1023) // 1024}))
"""

if __name__ == "__main__":
    sys.exit(main())
