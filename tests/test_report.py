"""The Snakemake report in a real browser: the demo run, `snakemake --report report.html`, and
Debian's Chromium (headless) clicking through every result as a person would.

Each figure is opened from its row in the report's menu; the test checks that the page shows
it (an ``<img>`` with the result's data, decoded: ``naturalWidth`` > 0 and equal to the PNG's
width), that the screenshot of that area is not blank, and that the run summary's page renders
inside its frame. Screenshots are kept under pytest's tmp folder (the path is printed).

Chromium is required, not optional: `make test` installs it (Debian ``chromium``).
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from chromium import Chromium, chromium_path
from conftest import copy_workflow, run_snakemake
from PIL import Image

from eopack.demo.world import DemoWorld

CATEGORIES = ["1. Run summary", "2. Areas of interest", "3. Product quicklooks", "4. BigEarthNet"]
# Menu link by its text (menu entries are an icon and a <span> with the name).
CLICK = """((text) => {
  const links = Array.from(document.querySelectorAll('nav a'));
  const link = links.find((a) => a.textContent.trim() === text);
  if (!link) return false;
  link.click();
  return true;
})(%s)"""
ROWS = "document.querySelectorAll('nav table tbody tr').length"
ROW = "document.querySelectorAll('nav table tbody tr')[%d]"
CONTENT_IMG = "document.querySelector('div.justify-center img')"
HOME = "document.querySelector('nav nav ol a').click()"  # the breadcrumbs' first link: the menu


@pytest.fixture(scope="module")
def report_run(world: DemoWorld, tmp_path_factory: pytest.TempPathFactory):
    """The demo workflow run (figures are part of `all`) and its report.html."""
    workdir = copy_workflow(tmp_path_factory.mktemp("report"))
    args = ("--cores", "2", "--configfile", "config/demo.yaml")
    proc = run_snakemake(workdir, *args, env=world.env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = run_snakemake(workdir, *args, "--report", "report.html", env=world.env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def _figures(workdir: Path) -> list[Path]:
    """The report's figures: the per date range maps (footprints/{aoi}/) are files only."""
    report = workdir / "results" / "report"
    return sorted(p for p in report.rglob("*.png") if p.parent.parent.name != "footprints")


def test_each_date_range_has_its_map(report_run):
    maps = report_run / "results" / "report" / "footprints"
    for manifest in sorted((report_run / "results" / "search").glob("*/*.geojson")):
        assert (maps / manifest.parent.name / f"{manifest.stem}.png").is_file(), manifest
    assert not list((report_run / "results" / "search").rglob("*.png"))


def test_figures_are_built_with_the_run_within_the_memory_budget(world, report_run):
    workdir = report_run
    names = {p.relative_to(workdir / "results" / "report").as_posix() for p in _figures(workdir)}
    aois = ("alps", "lisbon", "rhine")
    assert {f"footprints/{a}.png" for a in aois} <= names
    assert {f"contact_sheets/{a}.png" for a in aois} <= names
    zips = sorted((workdir / "results" / "zip").glob("*.zip"))
    assert {f"quicklooks/{z.stem}.png" for z in zips} <= names
    ben = {"legend", "class_pixels", "label_frequencies"}
    ben |= {f"samples_{s}" for s in ("train", "validation", "test")}
    assert {f"bigearthnet/{n}.png" for n in ben} <= names
    peaks = [
        int(m)
        for log in (workdir / "logs" / "report").rglob("*.log")
        for m in re.findall(r"peak RSS (\d+) MB", log.read_text(encoding="utf-8"))
    ]
    jobs = (
        2 * len(aois) + len(zips) + 3 + 1 + 1
    )  # maps, sheets, quicklooks, splits, classes, summary
    assert len(peaks) == jobs
    assert max(peaks) <= 512, peaks


def test_quicklooks_are_the_products_own_bytes(report_run):
    import zipfile

    workdir = report_run
    for archive in sorted((workdir / "results" / "zip").glob("S1*.zip")):
        with zipfile.ZipFile(archive) as z:
            original = z.read(f"{archive.stem}.SAFE/preview/quick-look.png")
        figure = workdir / "results" / "report" / "quicklooks" / f"{archive.stem}.png"
        assert figure.read_bytes() == original
    # S2's PVI (JPEG 2000) and a Landsat thumbnail (JPEG): PNGs with the same pixels.
    for archive, member in (
        ("S2B_MSIL2A_20230731T113319_N0509_R080_T29SMC_20230731T152725", "GRANULE/*/QI_DATA/*PVI*"),
        ("LC08_L2SP_195027_20230707_20230718_02_T1", "*_thumb_large.jpeg"),
    ):
        with zipfile.ZipFile(workdir / "results" / "zip" / f"{archive}.zip") as z:
            (name,) = [n for n in z.namelist() if fnmatch.fnmatch(n.split("/", 1)[1], member)]
            with Image.open(io.BytesIO(z.read(name))) as preview:
                pixels = np.asarray(preview)
        figure = workdir / "results" / "report" / "quicklooks" / f"{archive}.png"
        with Image.open(figure) as image:
            assert image.format == "PNG" and np.array_equal(np.asarray(image), pixels)


def test_summary_counts_the_run(report_run):
    workdir = report_run
    text = (workdir / "results" / "report" / "summary.html").read_text(encoding="utf-8")
    plan_total = (workdir / "results" / "plan.tsv").read_text().splitlines()[-1].split("\t")
    assert f"${float(plan_total[-1]):.6f}" in text  # the requester-pays estimate
    assert "13 of 13 ok" in text
    jobs = (workdir / "logs" / "report" / "job_times.html").read_text(encoding="utf-8")
    for rule in ("rebuild_safe", "bigearthnet_render", "report_footprints", "search"):
        assert f"<td>{rule}</td>" in jobs and f"<td>{rule}</td>" not in text
    assert "<td>other</td>" not in jobs  # every job log matched its rule's log pattern


def test_a_bad_quicklook_is_a_placeholder_not_a_failed_run(world, report_run, tmp_path):
    """The newcomer's case: a SAFE whose preview/quick-look.png is not a PNG made the
    report_quicklook job, and the run, fail with "cannot identify image file <_io.BytesIO
    object at 0x…>". Now: the run succeeds, the figure is a placeholder, one warning."""
    import shutil
    import zipfile

    workdir = tmp_path / "wf"
    shutil.copytree(report_run, workdir, symlinks=True)
    archive = sorted((workdir / "results" / "zip").glob("S1*.zip"))[0]
    member = f"{archive.stem}.SAFE/preview/quick-look.png"
    rewritten = archive.with_suffix(".tmp")
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(rewritten, "w") as new:
        for info in old.infolist():
            data = b"these bytes are not a PNG" if info.filename == member else old.read(info)
            new.writestr(info, data)
    rewritten.replace(archive)
    figure = f"results/report/quicklooks/{archive.stem}.png"
    args = ("--cores", "1", "--configfile", "config/demo.yaml", "--forcerun", "report_quicklook")
    proc = run_snakemake(workdir, *args, figure, env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " at 0x" not in proc.stderr
    log = (workdir / "logs" / "report" / "quicklooks" / f"{archive.stem}.log").read_text()
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "not a PNG" in warnings[0] and " at 0x" not in log, log
    with Image.open(workdir / figure) as image:
        assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 0


def test_front_page_says_what_this_run_did(report_run):
    """The report's front page names what this run searched (the demo: all four
    collections; tests/test_report_figures.py has a Sentinel-1-only run)."""
    text = (report_run / "report.html").read_text(encoding="utf-8")
    start = text.index("var workflow_desc = ")
    desc = json.JSONDecoder().raw_decode(text[start + len("var workflow_desc = ") :])[0]
    desc = " ".join(re.sub(r"<[^>]+>", " ", desc).split())  # the words a person reads
    assert "searched Sentinel-1 GRD" in desc, desc
    assert "Sentinel-2 L1C" in desc and "Landsat" in desc, desc


def _not_blank(screenshot: Path, rect: dict[str, float]) -> tuple[int, float]:
    """Distinct colours and standard deviation of the screenshot inside ``rect``."""
    with Image.open(screenshot) as image:
        box = (
            int(rect["x"]),
            int(rect["y"]),
            int(min(rect["x"] + rect["width"], image.width)),
            int(min(rect["y"] + rect["height"], image.height)),
        )
        pixels = np.asarray(image.convert("RGB").crop(box))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    return colours, float(pixels.std())


def test_report_renders_every_figure_in_chromium(report_run, tmp_path_factory):
    workdir = report_run
    executable = chromium_path()
    if executable is None:
        pytest.fail("Debian chromium is not installed: apt-get install chromium (make test does)")
    shots = tmp_path_factory.mktemp("report-screenshots")
    print(f"\nreport screenshots in {shots}")
    report = workdir / "report.html"
    seen: dict[str, str] = {}
    with Chromium(executable, shots / "profile") as browser:
        browser.navigate(report.as_uri())
        browser.wait_for("typeof app !== 'undefined' && document.querySelector('nav a') !== null")
        browser.screenshot(shots / "0-home.png")
        categories = browser.evaluate("JSON.stringify(categories)")
        categories = {c: sorted(subs) for c, subs in json.loads(categories).items()}
        assert sorted(categories) == CATEGORIES
        menu = browser.evaluate(
            "Array.from(document.querySelectorAll('nav a')).map((a) => a.textContent.trim())"
        )
        assert set(CATEGORIES) <= set(menu)

        for category, subcategories in categories.items():
            for sub in subcategories:
                browser.evaluate(HOME)
                assert browser.wait_for(CLICK % json.dumps(category)), category
                if len(subcategories) > 1:
                    assert browser.wait_for(CLICK % json.dumps(sub)), (category, sub)
                rows = browser.wait_for(ROWS)
                for row in range(rows):
                    path = _open_row(browser, row)
                    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).with_suffix("").as_posix())
                    seen[path] = _check_shown(browser, workdir, path, shots / f"{name}.png")

        # Captions (RST) render in the result's info panel.
        browser.evaluate(HOME)
        browser.wait_for(CLICK % json.dumps("2. Areas of interest"))
        browser.wait_for(CLICK % json.dumps("alps"))
        browser.wait_for(ROWS)
        path = _open_row(browser, 0)  # the figure, then its info panel
        _check_shown(browser, workdir, path, shots / "caption.png")
        browser.evaluate(f"{ROW % 0}.querySelectorAll('td:last-child a')[1].click()")  # info
        caption = browser.wait_for(
            "(() => { const text = document.querySelector('nav').innerText;"
            " return text.includes('graticule') && text; })()"
        )
        assert "Area of interest alps" in caption
        browser.screenshot(shots / "caption.png")

    figures = {p.relative_to(workdir).as_posix() for p in _figures(workdir)}
    pages = {"results/report/summary.html", "logs/report/job_times.html"}
    assert set(seen) == figures | pages
    assert all(seen[page] == "html" for page in pages)


def _open_row(browser: Chromium, row: int) -> str:
    """Click the row's eye button; the path of the result the page now shows."""
    browser.evaluate(f"{ROW % row}.querySelector('td:last-child a').click()")  # the eye
    return browser.wait_for("app.state.resultPath")


def _check_shown(browser: Chromium, workdir: Path, path: str, shot: Path) -> str:
    mime = browser.evaluate(f"results[{json.dumps(path)}].mime_type")
    if mime == "text/html":
        browser.wait_for("document.querySelector('iframe') !== null")
        context = browser.frame_context(0)
        text = browser.wait_for(
            "document.readyState === 'complete' && document.body && document.body.innerText",
            context_id=context,
        )
        expected = {  # each page's title and a line of its own
            "results/report/summary.html": ("eopack run summary", "requester-pays estimate"),
            "logs/report/job_times.html": ("eopack job times", "peak RSS (max)"),
        }[path]
        assert all(part in text for part in expected), (path, text[:500])
        browser.screenshot(shot)
        return "html"
    assert mime == "image/png", (path, mime)
    uri = browser.evaluate(f"results[{json.dumps(path)}].data_uri")
    browser.wait_for(
        f"(() => {{ const img = {CONTENT_IMG}; return img !== null && img.src === {json.dumps(uri)}"
        " && img.complete && img.naturalWidth > 0; })()"
    )
    size = browser.evaluate(f"[{CONTENT_IMG}.naturalWidth, {CONTENT_IMG}.naturalHeight]")
    with Image.open(workdir / path) as image:
        assert tuple(size) == image.size, path
    rect = browser.evaluate(f"JSON.parse(JSON.stringify({CONTENT_IMG}.getBoundingClientRect()))")
    assert rect["width"] > 0 and rect["height"] > 0, (path, rect)
    browser.screenshot(shot)
    colours, spread = _not_blank(shot, rect)
    assert colours >= 16 and spread > 10, (path, colours, spread)
    return "png"


def test_figures_are_not_blank(report_run):
    """The figures themselves are valid PNGs with content (a guard for the pixel checks)."""
    for path in _figures(report_run):
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.std() > 5, path
