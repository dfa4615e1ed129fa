"""Bad input, end to end: each mistake stops the real workflow with one line naming the culprit.

Two places report a mistake. Config and AOI files are checked while Snakemake reads the
workflow (rules/common.smk): one ``eopack: ...`` line on stderr, no job runs. A search that
fails (server down, credentials refused) ends its job with ``sys.exit("eopack: ...")``: that
line is on Snakemake's stderr, and the same message is the ``ERROR`` record of the job's log.
Either way nothing is written under ``results/search``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import copy_workflow, run_snakemake

from eopack.demo.dhusserver import DhusServer, dhus_entries_from_demo
from eopack.demo.stacserver import free_port
from eopack.demo.world import DemoWorld

HUB_USER, HUB_PASSWORD, WRONG_PASSWORD = "hub-user", "hub-secret-Pa55", "wrong-Pa55"
AOI_DIR = "config/demo/aoi"  # aoi_dir of config/demo.yaml, relative to the workdir
MARCH = "results/search/alps/2021-03-01_2021-03-31.geojson"
SQUARE = [[[8.0, 47.0], [9.0, 47.0], [9.0, 48.0], [8.0, 48.0], [8.0, 47.0]]]
BOW_TIE = [[[8.0, 47.0], [9.0, 48.0], [9.0, 47.0], [8.0, 48.0], [8.0, 47.0]]]
UTM_SQUARE = [[[400e3, 5e6], [500e3, 5e6], [500e3, 5.1e6], [400e3, 5.1e6], [400e3, 5e6]]]  # metres


@dataclass
class Setup:
    """One case's workflow copy, its config (demo.yaml, to be mutated) and extra environment."""

    workdir: Path
    config: dict[str, Any]
    hub_url: str
    dead_url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")
    env: dict[str, str] = field(default_factory=lambda: {"EOPACK_DHUS_URL": ""})

    @property
    def search(self) -> dict[str, Any]:
        return self.config["search"]

    def write_aoi(self, name: str, doc: Any) -> None:
        """Add ``{name}.geojson`` to the demo AOI folder (a str is written as is)."""
        text = doc if isinstance(doc, str) else json.dumps(doc)
        (self.workdir / AOI_DIR / f"{name}.geojson").write_text(text, encoding="utf-8")

    def clear_aois(self) -> None:
        for path in (self.workdir / AOI_DIR).glob("*.geojson"):
            path.unlink()

    def dhus(self, user: str, password: str) -> None:
        """Search the test hub with these credentials."""
        self.search.update(backend="dhus", dhus_url=self.hub_url)
        self.env.update(USER_SENTINEL_HUB=user, PASS_SENTINEL_HUB=password)


Mutate = Callable[[Setup], object]


def case(mutate: Mutate, message: str, stage: str, *, id: str) -> Any:
    """A table row; ``message`` may name ``{hub}`` and ``{dead}`` (URLs known at run time)."""
    return pytest.param(mutate, message, stage, id=id)


PRE, JOB = "pre-flight", "job"
CASES = [
    # ---- AOI files and folder ------------------------------------------------------------
    case(
        lambda s: s.write_aoi("broken", '{"type": "Polygon", "coordinates": [[[8, 47],'),
        f"eopack: {AOI_DIR}/broken.geojson: not valid JSON (line 1: ",
        PRE,
        id="aoi-not-json",
    ),
    case(
        lambda s: s.write_aoi("well", {"type": "Point", "coordinates": [8.0, 47.0]}),
        f"eopack: {AOI_DIR}/well.geojson: geometry type Point is not an area",
        PRE,
        id="aoi-point",
    ),
    case(
        lambda s: s.write_aoi(
            "road", {"type": "LineString", "coordinates": [[8.0, 47.0], [9.0, 48.0]]}
        ),
        f"eopack: {AOI_DIR}/road.geojson: geometry type LineString is not an area",
        PRE,
        id="aoi-linestring",
    ),
    case(
        lambda s: s.write_aoi("bowtie", {"type": "Polygon", "coordinates": BOW_TIE}),
        f"eopack: {AOI_DIR}/bowtie.geojson: invalid geometry (Self-intersection",
        PRE,
        id="aoi-bow-tie",
    ),
    case(
        lambda s: s.write_aoi("none", {"type": "FeatureCollection", "features": []}),
        f"eopack: {AOI_DIR}/none.geojson: FeatureCollection has no features",
        PRE,
        id="aoi-no-features",
    ),
    case(
        lambda s: s.write_aoi("bare", {"type": "Feature", "properties": {}, "geometry": None}),
        f"eopack: {AOI_DIR}/bare.geojson: Feature has no geometry",
        PRE,
        id="aoi-feature-without-geometry",
    ),
    case(
        lambda s: s.write_aoi("utm", {"type": "Polygon", "coordinates": UTM_SQUARE}),
        f"eopack: {AOI_DIR}/utm.geojson: coordinates outside lon/lat range (expected EPSG:4326)",
        PRE,
        id="aoi-projected-coordinates",
    ),
    case(
        lambda s: s.write_aoi("my aoi", {"type": "Polygon", "coordinates": SQUARE}),
        f"eopack: {AOI_DIR}/my aoi.geojson: AOI name 'my aoi' must be letters, digits,",
        PRE,
        id="aoi-unsafe-name",
    ),
    case(
        lambda s: s.clear_aois(),
        f"eopack: config: aoi_dir: folder {AOI_DIR} holds no *.geojson file",
        PRE,
        id="aoi-folder-empty",
    ),
    case(
        lambda s: s.config.update(aoi_dir="config/no-such-aoi"),
        "eopack: config: aoi_dir: folder config/no-such-aoi does not exist",
        PRE,
        id="aoi-folder-missing",
    ),
    # ---- Date ranges ---------------------------------------------------------------------
    case(
        lambda s: s.config.update(date_ranges=[["2021-03-31", "2021-03-01"]]),
        "eopack: config: date_ranges[0]: end 2021-03-01 is before start 2021-03-31",
        PRE,
        id="date-end-before-start",
    ),
    case(
        lambda s: s.config.update(date_ranges=[["2021-02-01", "2021-02-30"]]),
        "eopack: config: date_ranges[0][1]: '2021-02-30' is not an ISO date (YYYY-MM-DD)",
        PRE,
        id="date-impossible",
    ),
    case(
        lambda s: s.config.update(date_ranges=[["03/01/2021", "2021-03-31"]]),
        "eopack: config: date_ranges[0][0]: '03/01/2021' is not an ISO date (YYYY-MM-DD)",
        PRE,
        id="date-not-iso",
    ),
    case(
        lambda s: s.config.update(date_ranges=[]),
        "eopack: config: date_ranges: [] should be non-empty",
        PRE,
        id="date-ranges-empty",
    ),
    case(
        lambda s: s.config.update(date_ranges=[["2021-03-01", "2021-03-31", "2021-04-30"]]),
        "eopack: config: date_ranges[0]: ['2021-03-01', '2021-03-31', '2021-04-30'] is too long",
        PRE,
        id="date-range-three-dates",
    ),
    case(
        # Unquoted in YAML, a date is a date, not a string.
        lambda s: s.config.update(date_ranges=["2021-03-01"]),
        "eopack: config: date_ranges[0]: '2021-03-01' is not of type 'array'",
        PRE,
        id="date-range-not-a-pair",
    ),
    # ---- Backend and other config --------------------------------------------------------
    case(
        lambda s: s.search.update(backend="ftp"),
        "eopack: config: search.backend: 'ftp' is not one of ['stac', 'dhus']",
        PRE,
        id="backend-unknown",
    ),
    case(
        lambda s: s.search.update(backend="dhus"),
        "eopack: config: search.dhus_url: required when search.backend is dhus",
        PRE,
        id="backend-dhus-without-url",
    ),
    case(
        lambda s: s.search.update(timeout=5),
        "eopack: config: search: unknown key 'timeout' (known keys: backend, collections,",
        PRE,
        id="config-unknown-search-key",
    ),
    case(
        lambda s: s.config.update(date_range=[["2021-03-01", "2021-03-31"]]),
        "eopack: config: unknown key 'date_range' (known keys: aoi_dir, bigearthnet, date_ranges,",
        PRE,
        id="config-unknown-top-key",
    ),
    case(
        lambda s: s.search.update(collections=["sentinel-1-grd", "sentinel-9-xyz"]),
        "eopack: config: search.collections[1]: 'sentinel-9-xyz' is not one of [",
        PRE,
        id="collection-unknown",
    ),
    case(
        lambda s: s.search.update(
            backend="dhus", dhus_url=s.hub_url, collections=["sentinel-2-l2a"]
        ),
        "eopack: config: search.collections: sentinel-2-l2a not available from a DHuS hub",
        PRE,
        id="backend-dhus-optical-collection",
    ),
    case(
        lambda s: (s.search.update(timeout_s=1), s.env.update(EOPACK_STAC_URL=s.dead_url)),
        "eopack: STAC API {dead}: unreachable or not a STAC API (connection refused)",
        JOB,
        id="stac-unreachable",
    ),
    case(
        lambda s: s.dhus(HUB_USER, WRONG_PASSWORD),
        "eopack: DHuS {hub}: authentication refused (check USER_SENTINEL_HUB / PASS_SENTINEL_HUB)",
        JOB,
        id="dhus-auth-refused",
    ),
    case(
        lambda s: s.dhus("", ""),
        "eopack: DHuS credentials missing: set USER_SENTINEL_HUB and PASS_SENTINEL_HUB in the "
        "environment or in .env",
        JOB,
        id="dhus-credentials-missing",
    ),
]


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean workflow copy; each case copies it (cheaper than copying the repo)."""
    return copy_workflow(tmp_path_factory.mktemp("bad-input") / "template")


@pytest.fixture(scope="module")
def hub(world: DemoWorld) -> Iterator[DhusServer]:
    """A DHuS test hub holding the demo products, for the credential cases."""
    with DhusServer(dhus_entries_from_demo(world.products), HUB_USER, HUB_PASSWORD) as started:
        yield started


def fresh_copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def write_config(setup: Setup, name: str = "bad.yaml") -> str:
    """Write the (mutated) config next to the workflow; its path for ``--configfile``."""
    (setup.workdir / name).write_text(yaml.safe_dump(setup.config), encoding="utf-8")
    return name


def eopack_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("eopack: ")]


def search_files(workdir: Path) -> list[Path]:
    """Every file under ``results/search`` (manifests, temporary ``.part`` files)."""
    folder = workdir / "results" / "search"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def all_logs(workdir: Path) -> list[str]:
    """Text of every job log under ``logs/``."""
    return [p.read_text() for p in sorted((workdir / "logs").rglob("*.log"))]


def job_error_lines(workdir: Path) -> dict[Path, list[str]]:
    """The ``ERROR`` records of every search job log."""
    logs = sorted((workdir / "logs" / "search").rglob("*.log"))
    return {log: [ln for ln in log.read_text().splitlines() if " ERROR " in ln] for log in logs}


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mutate", "message", "stage"), CASES)
def test_bad_input_stops_with_one_line(
    world: DemoWorld,
    hub: DhusServer,
    template: Path,
    tmp_path: Path,
    mutate: Mutate,
    message: str,
    stage: str,
) -> None:
    workdir = fresh_copy(template, tmp_path / "wf")
    config = yaml.safe_load((workdir / "config" / "demo.yaml").read_text())
    setup = Setup(workdir=workdir, config=config, hub_url=hub.url)
    mutate(setup)
    expected = message.format(hub=setup.hub_url, dead=setup.dead_url)
    cfg = write_config(setup)

    proc = run_snakemake(
        workdir, "--cores", "1", "--configfile", cfg, env={**world.env(), **setup.env}
    )

    assert proc.returncode != 0
    lines = eopack_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(expected), lines[0]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert eopack_lines(proc.stdout) == []
    assert search_files(workdir) == []
    if stage == PRE:  # stopped while reading the workflow: no DAG, no job, no log
        assert "Building DAG of jobs" not in proc.stderr
        assert not (workdir / "logs").exists()
        assert not (workdir / "results").exists()
    else:  # one search job ran and failed; its log holds the same message as an ERROR record
        errors = job_error_lines(workdir)
        assert len(errors) == 1, errors
        ((log, records),) = errors.items()
        assert [r.split(" ", 1)[1] for r in records] == [f"ERROR {lines[0]}"], log
        # The console names the failed job and its log once; the message itself is not repeated.
        failed = [line for line in proc.stderr.splitlines() if " FAILED " in line]
        assert len(failed) == 1 and " FAILED search " in failed[0], proc.stderr[-3000:]
        assert failed[0].endswith(f"; log: {log.relative_to(workdir)}"), failed[0]
        assert proc.stderr.count(lines[0].removeprefix("eopack: ")) == 1
    seen = proc.stderr + proc.stdout + "".join(all_logs(workdir))
    assert HUB_PASSWORD not in seen and WRONG_PASSWORD not in seen


def test_table_is_large_enough() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)) >= 12
    assert {i.split("-")[0] for i in ids} >= {"aoi", "date", "backend", "stac", "dhus"}


# --------------------------------------------------------------------------------------------
# A failed re-search must not lose what an earlier run produced
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rerun:
    """A good search of one AOI x range, then a forced re-search that fails (STAC down)."""

    workdir: Path
    before: dict[str, tuple[bytes, int]]
    proc: subprocess.CompletedProcess[str]
    dead_url: str


def snapshot(paths: list[Path]) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def rerun(world: DemoWorld, template: Path, tmp_path_factory: pytest.TempPathFactory) -> Rerun:
    workdir = fresh_copy(template, tmp_path_factory.mktemp("rerun") / "wf")
    good = run_snakemake(
        workdir, MARCH, "--cores", "1", "--configfile", "config/demo.yaml", env=world.env()
    )
    assert good.returncode == 0, good.stderr[-3000:]
    outputs = [workdir / MARCH]
    before = snapshot(outputs)
    setup = Setup(workdir=workdir, config={"search": {"timeout_s": 1}}, hub_url="")
    cfg = write_config(setup, "down.yaml")
    bad = run_snakemake(
        workdir,
        MARCH,
        "--cores",
        "1",
        "--forcerun",
        "search",
        "--configfile",
        "config/demo.yaml",
        cfg,
        env={**world.env(), "EOPACK_STAC_URL": setup.dead_url},
    )
    return Rerun(workdir, before, bad, setup.dead_url)


def test_failed_rerun_reports_one_line(rerun: Rerun) -> None:
    assert rerun.proc.returncode != 0
    lines = eopack_lines(rerun.proc.stderr)
    assert len(lines) == 1
    assert lines[0].startswith(f"eopack: STAC API {rerun.dead_url}: unreachable")
    failed = [line for line in rerun.proc.stderr.splitlines() if " FAILED " in line]
    assert len(failed) == 1, rerun.proc.stderr[-3000:]
    assert " FAILED search aoi=alps start=2021-03-01 end=2021-03-31 (exit status 1); " in failed[0]


def test_failed_rerun_keeps_earlier_manifest(rerun: Rerun) -> None:
    """The search outputs are update(): Snakemake keeps them and restores its backup when the
    job fails. The restore is a copy, so only the bytes (not the mtime) are guaranteed; the
    union downstream is byte-stable, so no SAFE is fetched again because of it."""
    outputs = [rerun.workdir / MARCH]
    missing = [p.name for p in outputs if not p.is_file()]
    assert missing == [], f"lost after the failed re-search: {missing}"
    assert {k: v[0] for k, v in snapshot(outputs).items()} == {
        k: v[0] for k, v in rerun.before.items()
    }
