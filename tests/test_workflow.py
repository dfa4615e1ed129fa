"""The whole workflow, as `make demo` runs it: Snakemake against the local S3 and STAC servers."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import urllib.request
import zipfile
from pathlib import Path

from conftest import S3Net, run_snakemake

from eopack.demo.s3server import Intercept, split_path
from eopack.demo.world import PUBLISH_BUCKET
from eopack.publish import read_urls

# Demo products that intersect a demo AOI inside a demo date range (see eopack.demo.s1world).
WANTED_STARTS = {
    "20210310T053012",
    "20210315T183620",
    "20210322T183105",
    "20230705T053450",
    "20230714T052433",
    "20230726T172041",
    "20230719T063327",  # measurement TIFFs re-encoded in the bucket: verify says ok_reencoded
}


def test_one_zip_per_wanted_product(world, demo_run):
    workdir = demo_run.workdir
    # Sentinel-1 here; the optical zips: tests/test_demo_products.py.
    zips = sorted((workdir / "results" / "zip").glob("S1*.zip"))
    starts = {z.name.split("_")[4] for z in zips}
    assert starts == WANTED_STARTS
    by_id = {p.product_id: p for p in world.products}
    for path in zips:
        pid = path.name.removesuffix(".zip")
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        assert names == {f"{pid}.SAFE/{k}" for k in by_id[pid].filename_map}
        report = json.loads((workdir / "results" / "safe" / f"{pid}.verify.json").read_text())
        assert report["ok"] is True
        statuses = {f["path"]: f["status"] for f in report["files"]}
        reencoded = set(by_id[pid].originals)
        assert {p for p, s in statuses.items() if s != "ok"} == reencoded, pid
        assert {statuses[p] for p in reencoded} <= {"ok_reencoded"}
        assert bool(reencoded) == pid.startswith("S1A_IW_GRDH_1SDV_20230719T063327")


def test_stripmap_and_rfi_members(demo_run):
    workdir = demo_run.workdir
    zips = {z.name.split("_")[4]: z for z in (workdir / "results" / "zip").glob("S1*.zip")}
    with zipfile.ZipFile(zips["20210315T183620"]) as archive:
        assert any("/measurement/s1a-s1-grd-vv-" in n for n in archive.namelist())
    with zipfile.ZipFile(zips["20230726T172041"]) as archive:
        rfi = [n for n in archive.namelist() if "/annotation/rfi/rfi-s1a-iw-grd-" in n]
        assert len(rfi) == 2


def test_search_outputs_and_logs(demo_run):
    workdir = demo_run.workdir
    results = workdir / "results" / "search"
    manifests = sorted(results.glob("*/*.geojson"))
    assert len(manifests) == 6  # 3 AOIs x 2 date ranges
    union = json.loads((results / "products.geojson").read_text())
    ids = [f["id"] for f in union["features"]]
    # 7 Sentinel-1, 2 S2 L1C, 2 S2 L2A and 2 Landsat products (max_cloud_cover: 1).
    assert len(ids) == len(set(ids)) == 13
    log = (workdir / "logs" / "search" / "alps" / "2023-07-01_2023-07-31.log").read_text()
    assert "range dates 2023-07-01 to 2023-07-31" in log
    assert "2 images found" in log
    rebuild_logs = list((workdir / "logs" / "safe").glob("*.rebuild.log"))
    assert rebuild_logs
    assert "Copying item 1 of " in rebuild_logs[0].read_text()


def test_second_run_has_nothing_to_do(world, demo_run):
    workdir = demo_run.workdir
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", env=world.env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stderr + proc.stdout


def test_deleted_zip_is_rebuilt_byte_identical(world, demo_run):
    workdir = demo_run.workdir
    path = sorted((workdir / "results" / "zip").glob("*.zip"))[0]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.unlink()
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", env=world.env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


# Publishing (config/demo.yaml publishes to the demo world's bucket)
# --------------------------------------------------------------------------------------------

PUBLISHED_BEN = {
    "bigearthnet_pngs.zip",
    "bigearthnet_mask_pngs.zip",
    "index.csv",
    "skipped.tsv",
    "classes.json",
    "SHA256SUMS",
}


def _local_file(workdir: Path, name: str) -> Path:
    folder, _, base = name.rpartition("/")
    return workdir / "results" / ("bigearthnet" if folder else "zip") / base


def test_published_urls_download_the_results(world, demo_run):
    """Every SAFE zip and dataset file has a presigned URL that serves its exact bytes."""
    workdir = demo_run.workdir
    rows = read_urls(workdir / "results" / "publish" / "urls.tsv")
    zips = {p.name for p in (workdir / "results" / "zip").glob("*.zip")}
    expected = zips | {f"bigearthnet/{name}" for name in PUBLISHED_BEN}
    assert [r["object"] for r in rows] == sorted(expected)
    for row in rows:
        assert row["uri"] == f"s3://{PUBLISH_BUCKET}/eopack/{row['object']}"
        assert row["url"].startswith(world.s3.endpoint_url + "/")
        with urllib.request.urlopen(row["url"], timeout=30) as response:
            assert response.read() == _local_file(workdir, row["object"]).read_bytes(), row
    log = (workdir / "logs" / "publish" / "urls.log").read_text()
    assert f"{len(rows)} presigned URLs, valid 43200 s (12 h)" in log
    assert "X-Amz-Signature" not in log and world.env()["AWS_SECRET_ACCESS_KEY"] not in log


def test_forcerun_publish_urls_refreshes_only_the_urls(world, demo_run):
    workdir = demo_run.workdir
    urls = workdir / "results" / "publish" / "urls.tsv"
    before = {r["object"]: r for r in read_urls(urls)}
    time.sleep(1.1)  # a new signing second: new signatures, a later expiry
    proc = run_snakemake(
        workdir,
        "--cores",
        "2",
        "--configfile",
        "config/demo.yaml",
        "--forcerun",
        "publish_urls",
        env=world.env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(finished_rules(proc.stderr)) == {"publish_urls", "all"}
    after = {r["object"]: r for r in read_urls(urls)}
    assert after.keys() == before.keys()
    for name, row in after.items():
        assert row["url"] != before[name]["url"]
        assert row["expires"] > before[name]["expires"]


def test_rebuilt_zip_is_not_uploaded_again(world, demo_run):
    """A rebuilt zip has the same bytes: its publish job runs and skips the upload."""
    workdir = demo_run.workdir
    path = sorted((workdir / "results" / "zip").glob("*.zip"))[-1]
    path.unlink()
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", env=world.env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    receipt = workdir / "results" / "publish" / f"{path.name}.json"
    assert "skipped" not in json.loads(receipt.read_text())  # receipts: object facts only
    log = (workdir / "logs" / "publish" / f"{path.name}.log").read_text()
    assert "already published (same SHA-256)" in log


# The console (eopack.console, the default profile's logger)
# --------------------------------------------------------------------------------------------

#: "15:27:13 [1/22] bigearthnet_fetch archive=Reference_Maps (1.7 s)": one line per job.
FINISHED = re.compile(r"^\d\d:\d\d:\d\d \[(\d+)/(\d+)\] (\w+)\b.*$", re.M)
#: Lines that are not a job's: Snakemake's header, the job table, the closing lines.
CONSOLE_OVERHEAD = 35


def finished_rules(console: str) -> list[str]:
    return [m[3] for m in FINISHED.finditer(console)]


def test_console_has_one_line_per_job(demo_run):
    proc = demo_run.proc
    console = proc.stdout + proc.stderr
    lines = console.splitlines()
    finished = list(FINISHED.finditer(console))
    total = int(finished[-1][2])
    assert sorted(int(m[1]) for m in finished) == list(range(1, total + 1))
    assert len(lines) <= total + CONSOLE_OVERHEAD, console[-3000:]
    assert "Shell command" not in console
    assert " INFO eopack" not in console  # a job's progress is in its log, not on the console
    assert "Complete log(s): " in console


def test_failed_job_error_is_printed_once_with_its_log(world, demo_run, s3net: S3Net, tmp_path):
    """A product the source refuses: its error is on the console once, its log path beside."""
    workdir = tmp_path / "wf"
    shutil.copytree(demo_run.workdir, workdir, symlinks=True)
    product = next(p for p in world.products if "20230705T053450" in p.product_id).product_id
    shutil.rmtree(workdir / "results" / "safe" / f"{product}.SAFE")
    (workdir / "results" / "zip" / f"{product}.zip").unlink()  # so that its SAFE is needed

    def refuse(environ):
        key = split_path(environ)[1] or ""
        return Intercept(refuse=True) if product in key else None

    s3net.hook(refuse)
    proc = run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/demo.yaml", env=world.env()
    )
    assert proc.returncode != 0
    console = proc.stdout + proc.stderr
    errors = [line for line in console.splitlines() if line.startswith("eopack: ")]
    assert len(errors) == 1, console[-3000:]
    message = errors[0].removeprefix("eopack: ")
    assert "access denied" in message
    assert console.count(message) == 1, console[-3000:]
    log = f"logs/safe/{product}.SAFE.rebuild.log"
    failed = [line for line in console.splitlines() if " FAILED " in line]
    assert len(failed) == 1, console[-3000:]
    assert re.search(rf" FAILED rebuild_safe folder={product}\.SAFE \(exit status 1\); log: {log}$",
                     failed[0]), failed[0]  # fmt: skip
    assert message in (workdir / log).read_text()
    assert len(console.splitlines()) <= len(finished_rules(console)) + CONSOLE_OVERHEAD
