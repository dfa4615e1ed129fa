"""Patch selection and the dataset index, against the real BigEarthNet v2 metadata."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eopack.bigearthnet.index import (
    METADATA,
    SNOW_CLOUD_METADATA,
    ReportRow,
    Selection,
    list_products,
    read_patches,
    read_report,
    s2_product,
    write_index,
    write_report,
)
from eopack.demo.benworld import METADATA_SCHEMA
from eopack.errors import EopackError

FIXTURES = Path(__file__).parent / "fixtures" / "bigearthnet"
REAL = (FIXTURES / METADATA, FIXTURES / SNOW_CLOUD_METADATA)
PRODUCT = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
LONG_LABEL = (
    "Land principally occupied by agriculture, with significant areas of natural vegetation"
)


def metadata(path: Path, rows: list[tuple[str, str, bool, bool]]) -> Path:
    """A parquet in the real schema: (patch_id, split, snow, cloud) per row."""
    table = pa.table(
        {
            "patch_id": [r[0] for r in rows],
            "labels": [["Pastures", LONG_LABEL] for _ in rows],
            "split": [r[1] for r in rows],
            "country": ["Austria" for _ in rows],
            "s1_name": ["x" for _ in rows],
            "s2v1_name": ["x" for _ in rows],
            "contains_seasonal_snow": [r[2] for r in rows],
            "contains_cloud_or_shadow": [r[3] for r in rows],
        },
        schema=METADATA_SCHEMA,
    )
    pq.write_table(table, path)
    return path


def test_s2_product_is_the_id_minus_two_fields():
    assert s2_product(f"{PRODUCT}_26_57") == PRODUCT
    with pytest.raises(EopackError, match="not <S2 product>_<column>_<row>"):
        s2_product("no_fields")


def test_real_metadata_has_115_products_listed_in_well_under_a_second():
    started = time.monotonic()
    products = list_products(REAL, Selection(include_snow=True, include_cloud=True))
    assert time.monotonic() - started < 5
    assert len(products) == 115 and products == sorted(products)
    assert list_products(REAL[:1], Selection()) == products  # every folder has clear patches
    assert PRODUCT in products


def test_real_product_patches_are_its_rows_sorted():
    table = pq.read_table(REAL[0], columns=["patch_id", "split", "labels"]).to_pylist()
    expected = sorted(
        (r["patch_id"], r["split"], tuple(r["labels"]))
        for r in table
        if r["patch_id"].startswith(f"{PRODUCT}_")
    )
    patches = read_patches(REAL[:1], Selection(), PRODUCT)
    assert [(p.patch_id, p.split, p.labels) for p in patches] == expected
    assert {p.s2_product for p in patches} == {PRODUCT}
    tests = read_patches(REAL[:1], Selection(splits=("test",)), PRODUCT)
    assert [p.patch_id for p in tests] == [p.patch_id for p in patches if p.split == "test"]


@pytest.mark.parametrize(
    ("snow", "cloud", "kept"),
    [
        (False, False, {"a_1_1"}),
        (True, False, {"a_1_1", "a_1_2"}),
        (False, True, {"a_1_1", "a_1_3"}),
        (True, True, {"a_1_1", "a_1_2", "a_1_3", "a_1_4"}),
    ],
)
def test_flagged_patches_need_every_switch_they_are_flagged_for(tmp_path, snow, cloud, kept):
    clear = metadata(tmp_path / "m.parquet", [("a_1_1", "train", False, False)])
    flagged = metadata(
        tmp_path / "s.parquet",
        [
            ("a_1_2", "train", True, False),
            ("a_1_3", "validation", False, True),
            ("a_1_4", "test", True, True),
        ],
    )
    got = read_patches([clear, flagged], Selection(include_snow=snow, include_cloud=cloud))
    assert {p.patch_id for p in got} == kept
    assert list_products([clear, flagged], Selection(include_snow=snow, include_cloud=cloud)) == [
        "a"
    ]


def test_product_prefix_does_not_catch_a_longer_product_name(tmp_path):
    path = metadata(
        tmp_path / "m.parquet",
        [("P_1_1", "train", False, False), ("P_X_1_1", "train", False, False)],
    )
    assert [p.patch_id for p in read_patches([path], Selection(), "P")] == ["P_1_1"]
    assert list_products([path], Selection()) == ["P", "P_X"]


def test_bad_metadata_is_an_error_naming_it(tmp_path):
    dup = metadata(tmp_path / "a.parquet", [("a_1_1", "train", False, False)])
    with pytest.raises(EopackError, match="a_1_1 is listed twice"):
        read_patches([dup, dup], Selection())
    odd = metadata(tmp_path / "b.parquet", [("a_1_1", "holdout", False, False)])
    with pytest.raises(EopackError, match=r"unknown split.*holdout"):
        list_products([odd], Selection())
    short = metadata(tmp_path / "c.parquet", [("nofields", "train", False, False)])
    with pytest.raises(EopackError, match="'nofields' is not"):
        list_products([short], Selection())
    pq.write_table(pa.table({"patch_id": ["a_1_1"]}), tmp_path / "d.parquet")
    with pytest.raises(EopackError, match=r"d.parquet: no column\(s\) labels, split"):
        list_products([tmp_path / "d.parquet"], Selection())
    (tmp_path / "e.parquet").write_bytes(b"not parquet")
    with pytest.raises(EopackError, match=r"e\.parquet: not a readable"):
        list_products([tmp_path / "e.parquet"], Selection())


def test_reports_round_trip_and_make_the_index_and_skip_list(tmp_path):
    rows_b = [ReportRow("B_0_1", "test", ("Pastures",)), ReportRow("B_0_0", "train", (), "x y")]
    rows_a = [ReportRow("A_1_2", "validation", ("Pastures", LONG_LABEL))]
    write_report(tmp_path / "b.tsv", rows_b)
    write_report(tmp_path / "a.tsv", rows_a)
    assert read_report(tmp_path / "b.tsv") == rows_b
    assert read_report(tmp_path / "a.tsv") == rows_a
    counts = write_index(
        [tmp_path / "b.tsv", tmp_path / "a.tsv"], tmp_path / "index.csv", tmp_path / "skipped.tsv"
    )
    assert counts == (2, 1)
    with open(tmp_path / "index.csv", newline="", encoding="utf-8") as handle:
        index = list(csv.DictReader(handle))
    assert index == [
        {
            "patch_id": "A_1_2",
            "split": "validation",
            "s2_product": "A",
            "labels": f"Pastures;{LONG_LABEL}",
            "rgb": "rgb/A/A_1_2.png",
            "mask": "mask/A/A_1_2.png",
        },
        {
            "patch_id": "B_0_1",
            "split": "test",
            "s2_product": "B",
            "labels": "Pastures",
            "rgb": "rgb/B/B_0_1.png",
            "mask": "mask/B/B_0_1.png",
        },
    ]
    skipped = (tmp_path / "skipped.tsv").read_text(encoding="utf-8")
    assert skipped == "patch_id\tsplit\ts2_product\treason\nB_0_0\ttrain\tB\tx y\n"


def test_a_file_that_is_not_a_report_is_refused(tmp_path):
    (tmp_path / "r.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(EopackError, match="not a render report"):
        read_report(tmp_path / "r.tsv")


def test_index_streams_one_report_at_a_time_and_is_globally_sorted(tmp_path):
    """At the release's size (115 reports, 549,488 rows) the index job must not hold every row:
    memory is one report's worth. Rows come out sorted by id across reports, as before."""
    products = [f"S2A_MSIL2A_2017{m:02d}13T101031_N9999_R022_T33UUP" for m in range(12, 0, -1)]
    reports = []
    for product in products:
        rows = [ReportRow(f"{product}_{x}_{y}", "train", ("Pastures",)) for x in (9, 10, 1)
                for y in range(300)]  # fmt: skip
        write_report(tmp_path / f"{product}.tsv", rows)
        reports.append(tmp_path / f"{product}.tsv")
    tracemalloc.start()
    counts = write_index(reports, tmp_path / "index.csv", tmp_path / "skipped.tsv")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert counts == (len(products) * 900, 0)
    with open(tmp_path / "index.csv", newline="", encoding="utf-8") as handle:
        ids = [row["patch_id"] for row in csv.DictReader(handle)]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == counts[0]
    tracemalloc.start()
    every_row = [read_report(p) for p in reports]
    _, all_at_once = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(map(len, every_row)) == counts[0]
    assert peak < all_at_once / 4, (peak, all_at_once)


def test_the_index_job_does_not_load_pyarrow():
    """It reads only the render reports: pyarrow's import (~0.15 s, ~40 MB) is left to the
    metadata readers."""
    code = (
        "import sys; import eopack.bigearthnet.index, eopack.jobs; "
        "sys.exit('pyarrow' in sys.modules or 'numpy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


_READ_PEAK = """
import sys
from pathlib import Path
from eopack.bigearthnet import index
from eopack.jobs import peak_rss_mb
index._import_arrow()
import pyarrow, pyarrow.compute, pyarrow.parquet  # the imports' own memory is not the read's
pyarrow.compute.invert(pyarrow.array([True]))  # nor the compute registry's set-up (~40 MB)
paths = [Path(p) for p in sys.argv[2:4]]
selection = index.Selection(include_snow=True, include_cloud=True)
before = peak_rss_mb()
if sys.argv[1] == "products":
    found = len(index.list_products(paths, selection))
else:
    found = len(index.read_patches(paths, selection, sys.argv[1], with_s1=True))
print(found, peak_rss_mb() - before)
"""


@pytest.mark.parametrize(("what", "found"), [(PRODUCT, 3305), ("products", 115)])
def test_reading_the_real_metadata_does_not_hold_the_whole_table(what, found):
    """A render job reads one product's rows, the DAG the product list: at the release's size
    (549,488 rows) each once peaked 150-170 MB above pyarrow's import (the table decoded
    whole: render jobs at 232-276 MB, over their mem_mb=256); streamed, ~25-55 MB. Arrow's
    compute registry, set up on the first compute call (~40 MB), is counted with the imports:
    CI once measured exactly 90 MB with it inside the read."""
    proc = subprocess.run(
        [sys.executable, "-c", _READ_PEAK, what, *map(str, REAL)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows, grown_mb = map(int, proc.stdout.split())
    assert rows == found
    assert grown_mb < 90, f"peak RSS grew {grown_mb} MB reading the metadata"
