"""The run summary: what was searched, fetched, verified and delivered, what it cost in
requester-pays terms, and how long and how much memory each step took, as one HTML page.

It is built from the workflow's own records: search manifests, ``plan.tsv`` (bytes and the
requester-pays estimate), ``verify.json`` reports, the delivered zips or S3 receipts, the
BigEarthNet index, and the job logs (the ``job time`` and ``peak RSS`` lines every job ends
with; a log without them is timed by its first and last timestamps). The page is
self-contained (inline style, no script) so the report can embed it.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eopack.errors import EopackError
from eopack.fsutil import atomic_write_bytes
from eopack.search.manifest import read_manifest

LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}) ")
#: Where the job times page goes: a run record, so under logs/ (results/ are reproducible).
JOB_TIMES_PAGE = "logs/report/job_times.html"
PEAK_RSS = re.compile(r"peak RSS (\d+) MB")
JOB_TIME = re.compile(r"job time (\d+(?:\.\d+)?) s")

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; color: #1e293b; background: #fff;
       margin: 1.5em; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.4em 0 1em; }
th, td { border: 1px solid #cbd5e1; padding: 3px 8px; text-align: left; }
th { background: #f1f5f9; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { color: #64748b; font-size: 12px; }
"""


def human_bytes(size: float) -> str:
    """Decimal units, as AWS bills them: 1 GB = 10^9 bytes."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _seconds(value: float) -> str:
    """Tenths below 10 s: most jobs of a small run take a second or less."""
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:,.0f} s" if value < 120 else f"{value / 60:,.1f} min"


# Inputs ----------------------------------------------------------------------------------------


def read_plan(path: str | Path) -> tuple[list[dict[str, str]], dict[str, str] | None]:
    """Rows of ``plan.tsv`` and its TOTAL line."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except OSError as exc:
        raise EopackError(f"{path}: cannot read the plan ({exc})") from None
    if rows and not {"product", "files", "bytes", "est_cost_usd"} <= set(rows[0]):
        raise EopackError(f"{path}: not a plan.tsv (columns {', '.join(rows[0])})")
    total = next((r for r in rows if r["product"] == "TOTAL"), None)
    return [r for r in rows if r["product"] != "TOTAL"], total


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EopackError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise EopackError(f"{path}: expected a JSON object")
    return doc


def verify_status(path: str | Path) -> str:
    """One word per product: ok, ok (n re-encoded), or failed (n files)."""
    doc = _read_json(path)
    statuses = Counter(f.get("status") for f in doc.get("files", []))
    if not doc.get("ok", False):
        return f"failed ({doc.get('failed', sum(statuses.values()) - statuses['ok'])} files)"
    if statuses["ok_reencoded"]:
        return f"ok ({statuses['ok_reencoded']} re-encoded TIFFs)"
    return "ok"


@dataclass
class Delivery:
    """A delivered product: where it went and how big it is."""

    product: str
    location: str
    size: int | None


def read_delivery(path: str | Path) -> Delivery:
    """A local zip, or an S3 receipt (``{id}.zip.json`` / ``{id}.safe.json``)."""
    path = Path(path)
    if path.suffix == ".zip":
        return Delivery(path.stem, str(path), path.stat().st_size)
    doc = _read_json(path)
    product = path.name.split(".", 1)[0]
    size = doc.get("size")
    location = str(doc.get("uri") or doc.get("destination") or path)
    return Delivery(product, location, int(size) if isinstance(size, int) else None)


@dataclass
class StepTimes:
    """Per rule: jobs, total and longest seconds, highest peak RSS (from the job logs)."""

    jobs: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    peak_mb: int | None = None
    first: dt.datetime | None = None
    last: dt.datetime | None = None


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A Snakemake file pattern as a regex for whole paths: ``{name}`` matches one path part,
    ``{name,regex}`` its constraint (which may hold braces itself, e.g. ``\\d{4}``)."""
    out, pos = "", 0
    while (start := pattern.find("{", pos)) >= 0:
        depth, end = 0, start
        for end in range(start, len(pattern)):
            depth += {"{": 1, "}": -1}.get(pattern[end], 0)
            if depth == 0:
                break
        out += re.escape(pattern[pos:start])
        _name, _, constraint = pattern[start + 1 : end].partition(",")
        out += f"(?:{constraint})" if constraint else "[^/]+"
        pos = end + 1
    return re.compile(out + re.escape(pattern[pos:]) + "$")


def log_times(
    path: Path,
) -> tuple[dt.datetime | None, dt.datetime | None, int | None, float | None]:
    """First and last timestamp of a job log, its ``peak RSS`` and ``job time`` figures."""
    first = last = None
    peak = None
    took = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stamp = LOG_LINE.match(line)
            if stamp:
                when = dt.datetime.fromisoformat(stamp.group(1))
                first = first or when
                last = when
            rss = PEAK_RSS.search(line)
            if rss:
                peak = int(rss.group(1))
            job_time = JOB_TIME.search(line)
            if job_time:
                took = float(job_time.group(1))
    return first, last, peak, took


def step_times(
    log_dir: str | Path, patterns: Mapping[str, Sequence[str]], exclude: str | Path | None = None
) -> dict[str, StepTimes]:
    """Group the job logs under ``log_dir`` by the rule whose ``log:`` pattern they match (else
    ``other``); patterns are relative to the folder that holds ``log_dir``, as in the rules."""
    log_dir = Path(log_dir)
    compiled = [(rule, pattern_regex(p)) for rule, ps in sorted(patterns.items()) for p in ps]
    steps: dict[str, StepTimes] = defaultdict(StepTimes)
    files = sorted(p for p in log_dir.rglob("*.log") if p.is_file()) if log_dir.is_dir() else []
    if exclude is not None:
        files = [p for p in files if not (Path(exclude).exists() and p.samefile(exclude))]
    for path in files:
        relative = f"{log_dir.name}/{path.relative_to(log_dir).as_posix()}"
        rule = next((r for r, regex in compiled if regex.match(relative)), "other")
        first, last, peak, took = log_times(path)
        step = steps[rule]
        step.jobs += 1
        if first and last:
            if took is None:  # a log of an older eopack: 1 s resolution
                took = (last - first).total_seconds()
            step.seconds += took
            step.longest = max(step.longest, took)
            step.first = min(step.first or first, first)
            step.last = max(step.last or last, last)
        if peak is not None:
            step.peak_mb = max(step.peak_mb or 0, peak)
    return dict(steps)


# HTML ------------------------------------------------------------------------------------------


@dataclass
class Page:
    """Sections of the page, appended in order."""

    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = []
        for row in rows:
            cells = []
            for value in row:
                number = isinstance(value, int | float) or (
                    isinstance(value, str) and re.fullmatch(r"[\d,.]+( \w+)?|\$[\d.,]+", value)
                )
                css = ' class="n"' if number else ""
                text = html.escape(str(value))
                if len(text) > 40:  # long product ids may wrap after an underscore
                    text = text.replace("_", "_<wbr>")
                cells.append(f"<td{css}>{text}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        head = f"<tr>{head}</tr>" if any(header) else ""
        self.parts.append(f"<table>{head}{''.join(body)}</table>")

    def html(self, title: str) -> str:
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(self.parts) + "\n</body></html>\n"
        )


def _search_section(page: Page, manifests: Sequence[str | Path]) -> None:
    page.heading("Search")
    rows = []
    for manifest in manifests:
        path = Path(manifest)
        products = read_manifest(path)
        start, _, end = path.stem.partition("_")
        by_collection = Counter(p.collection for p in products)
        found = ", ".join(f"{n} {c}" for c, n in sorted(by_collection.items())) or "none"
        rows.append((path.parent.name, f"{start} to {end}", len(products), found))
    page.table(("AOI", "date range", "products", "by collection"), rows)


def _safe_section(
    page: Page,
    plan: str | Path,
    verify: Sequence[str | Path],
    deliveries: Sequence[str | Path],
    prices: Mapping[str, float],
) -> None:
    rows, total = read_plan(plan)
    page.heading("Sentinel-1 SAFE products")
    if not rows:
        page.note("No SAFE product in this run.")
        return
    statuses = {Path(v).name.removesuffix(".verify.json"): verify_status(v) for v in verify}
    delivered: dict[str, list[Delivery]] = defaultdict(list)
    for item in deliveries:
        found = read_delivery(item)
        delivered[found.product].append(found)
    table = []
    for row in rows:
        pid = row["product"]
        sizes = [d.size for d in delivered.get(pid, []) if d.size is not None]
        table.append(
            (
                pid,
                int(row["files"]),
                human_bytes(int(row["bytes"])),
                int(row.get("missing") or 0),
                f"${float(row['est_cost_usd']):.6f}",
                statuses.get(pid, "-"),
                human_bytes(sum(sizes)) if sizes else "-",
            )
        )
    page.table(
        ("product", "files", "from source", "missing", "est. cost", "verified", "delivered"), table
    )
    moved = sum(int(r["bytes"]) for r in rows)
    out = sum(d.size or 0 for ds in delivered.values() for d in ds)
    where = sorted({d.location.rpartition("/")[0] for ds in delivered.values() for d in ds})
    cost = float(total["est_cost_usd"]) if total else 0.0
    summary = [
        ("products", len(rows)),
        ("files fetched", sum(int(r["files"]) for r in rows)),
        ("bytes fetched from the source buckets", human_bytes(moved)),
        ("bytes delivered", human_bytes(out)),
        ("delivered to", ", ".join(where) or "-"),
        ("requester-pays estimate (plan.tsv)", f"${cost:.6f}"),
        (
            "prices",
            f"${prices.get('usd_per_gb', 0)} per GB, "
            f"${prices.get('usd_per_1000_requests', 0)} per 1,000 requests",
        ),
    ]
    if statuses:
        ok = sum(1 for s in statuses.values() if s.startswith("ok"))
        summary.append(("verified against manifest.safe", f"{ok} of {len(statuses)} ok"))
    page.table(("", "total"), summary)


def _bigearthnet_section(
    page: Page,
    index: str | Path,
    skipped: str | Path | None,
    datasets: Sequence[str | Path],
    downloads: Sequence[str | Path],
) -> None:
    page.heading("BigEarthNet v2 datasets")
    splits: Counter[str] = Counter()
    with open(index, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            splits[row["split"]] += 1
    skipped_n = 0
    if skipped is not None:
        with open(skipped, encoding="utf-8", newline="") as handle:
            skipped_n = sum(1 for _ in csv.DictReader(handle, delimiter="\t"))
    rows = [(f"patches: {s}", f"{n:,}") for s, n in splits.items()]
    rows.append(("patches: all splits", f"{sum(splits.values()):,}"))
    rows.append(("patches skipped (skipped.tsv)", f"{skipped_n:,}"))
    for path in datasets:
        rows.append((Path(path).name, human_bytes(Path(path).stat().st_size)))
    present = [Path(p) for p in downloads if Path(p).is_file()]
    if present:
        size = sum(p.stat().st_size for p in present)
        names = ", ".join(p.name for p in present)
        rows.append((f"downloaded ({names})", human_bytes(size)))
    page.table(("", ""), rows)


def _jobs_section(page: Page, steps: Mapping[str, StepTimes]) -> None:
    page.heading("Jobs")
    if not steps:
        page.note("No job logs found.")
        return
    rows = [
        (
            rule,
            s.jobs,
            _seconds(s.seconds),
            _seconds(s.longest),
            f"{s.peak_mb} MB" if s.peak_mb is not None else "-",
        )
        for rule, s in sorted(steps.items(), key=lambda kv: (kv[1].first or dt.datetime.max, kv[0]))
    ]
    page.table(("rule", "jobs", "time (sum)", "longest job", "peak RSS (max)"), rows)
    firsts = [s.first for s in steps.values() if s.first]
    lasts = [s.last for s in steps.values() if s.last]
    if firsts and lasts:
        page.note(
            f"Job logs span {min(firsts):%Y-%m-%d %H:%M:%S} to {max(lasts):%Y-%m-%d %H:%M:%S} "
            "(each job's latest run). A job's time runs from its process's start to its end, "
            "Python's start-up and imports included. Snakemake's own runtime statistics are "
            "under Statistics."
        )


def render_summary(
    manifests: Sequence[str | Path],
    plan: str | Path,
    verify: Sequence[str | Path],
    deliveries: Sequence[str | Path],
    prices: Mapping[str, float],
    bigearthnet: Mapping[str, Any] | None,
) -> str:
    """The summary page as HTML text: what the run made, the same on every run that makes it."""
    page = Page()
    _search_section(page, manifests)
    _safe_section(page, plan, verify, deliveries, prices)
    if bigearthnet:
        _bigearthnet_section(
            page,
            bigearthnet["index"],
            bigearthnet.get("skipped"),
            bigearthnet.get("datasets", ()),
            bigearthnet.get("downloads", ()),
        )
    page.note(
        f"Job times and memory are on the page \u201cjob times\u201d ({JOB_TIMES_PAGE}): a "
        "record of this run, kept out of results/, which two runs make byte for byte the same."
    )
    return page.html("eopack run summary")


def render_job_times(steps: Mapping[str, StepTimes]) -> str:
    """The job times page (per rule: jobs, time, peak RSS) as HTML text: differs every run."""
    page = Page()
    _jobs_section(page, steps)
    return page.html("eopack job times")


def write_summary(
    out: str | Path,
    manifests: Sequence[str | Path],
    plan: str | Path,
    verify: Sequence[str | Path],
    deliveries: Sequence[str | Path],
    prices: Mapping[str, float],
    bigearthnet: Mapping[str, Any] | None,
    log_dir: str | Path,
    log_patterns: Mapping[str, Sequence[str]],
    exclude: str | Path | None = None,
    job_times: str | Path | None = None,
) -> None:
    """Gather the run's records and write the summary page atomically, and the job times page
    to ``job_times`` (``exclude``: a log to leave out, the summary job's own)."""
    text = render_summary(manifests, plan, verify, deliveries, prices, bigearthnet)
    atomic_write_bytes(out, text.encode("utf-8"))
    if job_times is not None:
        steps = step_times(log_dir, log_patterns, exclude)
        atomic_write_bytes(job_times, render_job_times(steps).encode("utf-8"))
