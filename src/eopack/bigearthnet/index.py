"""Which BigEarthNet patches make the dataset, and its index: metadata parquet -> ``index.csv``.

The release lists every patch in two parquet files: ``metadata.parquet`` (patches without
seasonal snow, cloud or shadow) and ``metadata_for_patches_with_snow_cloud_or_shadow.parquet``
(the others, each flagged ``contains_seasonal_snow`` and/or ``contains_cloud_or_shadow``).
A :class:`Selection` keeps the patches of the wanted splits; a flagged patch is kept only when
every flag it carries is switched on (``include_snow``, ``include_cloud``).

A patch's S2 product folder is its id minus the last two ``_`` fields (the patch's column and
row). The product list is computed with Arrow kernels over the id column: the 549,488 real
patches take well under a second, so Snakemake can build its DAG straight from the metadata.

Rendering writes one *report* per product (:func:`write_report`): a TSV with one row per
selected patch, ``ok`` or ``skipped`` with the reason. :func:`write_index` joins the reports
into ``index.csv`` (rendered patches) and ``skipped.tsv`` (the others, with their reasons).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eopack.errors import EopackError
from eopack.fsutil import atomic_output, atomic_write_bytes

__all__ = [
    "INDEX_COLUMNS",
    "METADATA",
    "REPORT_COLUMNS",
    "S1_BANDS",
    "S1_INDEX_COLUMNS",
    "SKIPPED_COLUMNS",
    "SNOW_CLOUD_METADATA",
    "SPLITS",
    "Patch",
    "ReportRow",
    "Selection",
    "list_products",
    "read_patches",
    "read_report",
    "s2_product",
    "write_index",
    "write_report",
]

METADATA = "metadata.parquet"
SNOW_CLOUD_METADATA = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
SPLITS = ("train", "validation", "test")
LABEL_SEPARATOR = ";"  # class names contain commas, never semicolons
INDEX_COLUMNS = ("patch_id", "split", "s2_product", "labels", "rgb", "mask")
#: Sentinel-1 polarisations rendered (``<patch_id>_<band>.png``), in file-name order.
S1_BANDS = ("VV", "VH")
#: Columns index.csv gains when S1 PNGs are built (empty for a patch without them).
S1_INDEX_COLUMNS = tuple(f"s1_{band.lower()}" for band in S1_BANDS)
SKIPPED_COLUMNS = ("patch_id", "split", "s2_product", "reason")
REPORT_COLUMNS = ("patch_id", "split", "labels", "status", "reason")
_COLUMNS = ("patch_id", "labels", "split", "contains_seasonal_snow", "contains_cloud_or_shadow")
_PRODUCT_SUFFIX = r"_[^_]*_[^_]*$"
S1_COLUMN = "s1_name"

# pyarrow is imported where the metadata is read: the index job reads only reports (~0.15 s
# and ~40 MB less).
if TYPE_CHECKING:
    import pyarrow as pa


def s2_product(patch_id: str) -> str:
    """The S2 product folder of a patch: its id minus the last two ``_`` fields."""
    parts = patch_id.rsplit("_", 2)
    if len(parts) != 3 or not all(parts):
        raise EopackError(f"patch id {patch_id!r} is not <S2 product>_<column>_<row>")
    return parts[0]


@dataclass(frozen=True)
class Selection:
    """Which metadata rows are part of the dataset."""

    splits: tuple[str, ...] = SPLITS
    include_snow: bool = False
    include_cloud: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Selection:
        """From the workflow's ``bigearthnet`` section (keys splits, include_snow/cloud)."""
        return cls(
            tuple(cfg.get("splits", SPLITS)),
            bool(cfg.get("include_snow", False)),
            bool(cfg.get("include_cloud", False)),
        )

    @property
    def needs_snow_cloud_file(self) -> bool:
        """Whether any row of the snow/cloud parquet can be selected."""
        return self.include_snow or self.include_cloud

    def metadata_files(self) -> tuple[str, ...]:
        """The metadata parquet files this selection reads."""
        return (METADATA, SNOW_CLOUD_METADATA) if self.needs_snow_cloud_file else (METADATA,)

    def as_params(self) -> dict[str, Any]:
        """A plain dict (Snakemake params: a change re-runs the rendering)."""
        return {
            "splits": list(self.splits),
            "include_snow": self.include_snow,
            "include_cloud": self.include_cloud,
        }


@dataclass(frozen=True)
class Patch:
    """One selected metadata row."""

    patch_id: str
    split: str
    labels: tuple[str, ...]
    s1_name: str = ""  # the patch's Sentinel-1 patch (read only when asked for)

    @property
    def s2_product(self) -> str:
        return s2_product(self.patch_id)


#: Rows decoded at a time: the real metadata.parquet has 125k-row groups; reading one whole
#: (or the table) costs ~100-170 MB more peak RSS than streaming it in batches.
_BATCH_ROWS = 16_384
_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def _batches(path: Path, columns: Sequence[str], product: str | None) -> Iterator[pa.Table]:
    """``columns`` of the metadata, a batch at a time; with ``product``, only the rows whose id
    starts with ``<product>_`` (a render job needs ~5,000 of the 549,488).

    Streamed so that a job's memory does not grow with the table: ``pq.read_table`` with
    filters decodes every row group whole first (the release's files carry no string
    statistics to skip one by). Row groups whose ``patch_id`` statistics rule the product out
    are not read at all (files written by Arrow have them).
    """
    _import_arrow()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, pre_buffer=False)
        groups = _row_groups(parquet, product)
        batches = parquet.iter_batches(
            batch_size=_BATCH_ROWS, row_groups=groups, columns=list(columns), use_threads=False
        )
        for batch in batches:
            table = pa.Table.from_batches([batch])
            if product is not None:
                table = table.filter(pc.starts_with(table["patch_id"], f"{product}_"))
            if table.num_rows:
                yield table
    except (OSError, pa.ArrowException) as exc:
        raise EopackError(f"{path}: not a readable BigEarthNet metadata parquet ({exc})") from None


def _import_arrow() -> None:
    """Load pyarrow with malloc as its default memory pool (unless it is loaded already or
    ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise).

    Arrow picks its pool once, when imported; its default, mimalloc, keeps freed buffers
    resident: a render job's streamed read of the real metadata peaked ~45 MB higher with it.
    The variable is unset again so that processes started later (Snakemake's jobs) choose
    for themselves.
    """
    if "pyarrow" in sys.modules or _POOL_VARIABLE in os.environ:
        return
    os.environ[_POOL_VARIABLE] = "system"
    try:
        import pyarrow  # noqa: F401
    finally:
        del os.environ[_POOL_VARIABLE]


def _row_groups(parquet: Any, product: str | None) -> list[int]:
    """Row groups that may hold ``product``'s rows (all when a group has no id statistics)."""
    meta = parquet.metadata
    groups = list(range(meta.num_row_groups))
    if product is None or "patch_id" not in parquet.schema_arrow.names:
        return groups
    column = parquet.schema_arrow.get_field_index("patch_id")
    low, high = f"{product}_", f"{product}`"  # '`' follows '_': the ids' prefix range
    return [g for g in groups if _may_hold(meta.row_group(g).column(column).statistics, low, high)]


def _may_hold(stats: Any, low: str, high: str) -> bool:
    """Whether a column chunk with ``stats`` may hold a value in [low, high)."""
    if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
        return True
    return not (stats.max < low or stats.min >= high)


def _selected(table: pa.Table, selection: Selection, path: Path) -> pa.Table:
    """Rows of the wanted splits whose snow/cloud flags are all switched on."""
    import pyarrow as pa
    import pyarrow.compute as pc

    splits = set(pc.unique(table["split"]).to_pylist())
    unknown = sorted(str(s) for s in splits - set(SPLITS))
    if unknown:
        raise EopackError(
            f"{path}: unknown split(s) {', '.join(unknown)} (expected {', '.join(SPLITS)})"
        )
    keep = pc.is_in(table["split"], value_set=pa.array(list(selection.splits), pa.string()))
    if not selection.include_snow:
        keep = pc.and_(keep, pc.invert(pc.fill_null(table["contains_seasonal_snow"], False)))
    if not selection.include_cloud:
        keep = pc.and_(keep, pc.invert(pc.fill_null(table["contains_cloud_or_shadow"], False)))
    return table.filter(pc.fill_null(keep, False))


def _check_columns(path: Path, columns: Sequence[str]) -> None:
    _import_arrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as exc:
        raise EopackError(f"{path}: not a readable BigEarthNet metadata parquet ({exc})") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise EopackError(
            f"{path}: no column(s) {', '.join(missing)}; is it BigEarthNet v2 metadata?"
        )


def list_products(paths: Iterable[str | Path], selection: Selection) -> list[str]:
    """Sorted S2 product folders that hold at least one selected patch."""
    import pyarrow.compute as pc

    products: set[str] = set()
    columns = [c for c in _COLUMNS if c != "labels"]
    for path in map(Path, paths):
        _check_columns(path, _COLUMNS)
        for part in _batches(path, columns, None):
            ids = _selected(part, selection, path)["patch_id"]
            if ids.null_count:
                raise EopackError(f"{path}: a row has no patch_id")
            folders = pc.replace_substring_regex(ids, pattern=_PRODUCT_SUFFIX, replacement="")
            bad = pc.equal(folders, ids)  # no two trailing fields to strip
            if pc.any(bad).as_py():
                first = ids.filter(bad)[0].as_py()
                raise EopackError(f"{path}: patch id {first!r} is not <S2 product>_<column>_<row>")
            products.update(pc.unique(folders).to_pylist())
    return sorted(products)


def read_patches(
    paths: Iterable[str | Path],
    selection: Selection,
    product: str | None = None,
    *,
    with_s1: bool = False,
) -> list[Patch]:
    """Selected patches (of one S2 product if given), sorted by id; duplicates are an error.

    ``with_s1``: also read each patch's ``s1_name``; a selected row without one is an error.
    """
    out: list[Patch] = []
    columns = (*_COLUMNS, S1_COLUMN) if with_s1 else _COLUMNS
    for path in map(Path, paths):
        _check_columns(path, columns)
        for part in _batches(path, columns, product):
            out += _patches(_selected(part, selection, path), path, product, with_s1)
    out.sort(key=lambda p: p.patch_id)
    for a, b in pairwise(out):
        if a.patch_id == b.patch_id:
            raise EopackError(f"patch {a.patch_id} is listed twice in the metadata")
    return out


def _patches(table: pa.Table, path: Path, product: str | None, with_s1: bool) -> Iterator[Patch]:
    s1_names = table[S1_COLUMN].to_pylist() if with_s1 else [""] * table.num_rows
    for pid, split, labels, s1_name in zip(
        table["patch_id"].to_pylist(),
        table["split"].to_pylist(),
        table["labels"].to_pylist(),
        s1_names,
        strict=True,
    ):
        if product is not None and s2_product(pid) != product:
            continue  # the prefix also matches a product whose name extends this one
        if with_s1 and not s1_name:
            raise EopackError(f"{path}: patch {pid} has no {S1_COLUMN}")
        yield Patch(pid, split, tuple(labels or ()), s1_name or "")


# --- per-product reports, index.csv, skipped.tsv ------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One selected patch after rendering: ``ok``, or ``skipped`` with the reason."""

    patch_id: str
    split: str
    labels: tuple[str, ...]
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def _tsv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def write_report(path: str | Path, rows: Iterable[ReportRow]) -> None:
    """A product's render report (TSV, atomic)."""
    body = (
        (
            r.patch_id,
            r.split,
            LABEL_SEPARATOR.join(r.labels),
            "ok" if r.ok else "skipped",
            r.reason,
        )
        for r in rows
    )
    atomic_write_bytes(path, _tsv(REPORT_COLUMNS, body))


def read_report(path: str | Path) -> list[ReportRow]:
    """The rows of a render report written by :func:`write_report`."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if tuple(header or ()) != REPORT_COLUMNS:
            raise EopackError(f"{path}: not a render report (header {header})")
        rows = []
        for pid, split, labels, status, reason in reader:
            if (status == "ok") == bool(reason) or status not in ("ok", "skipped"):
                raise EopackError(f"{path}: bad row for {pid}")
            names = tuple(labels.split(LABEL_SEPARATOR)) if labels else ()
            rows.append(ReportRow(pid, split, names, reason))
    return rows


def write_index(
    reports: Iterable[str | Path],
    index_path: str | Path,
    skipped_path: str | Path,
    s1_reports: Iterable[str | Path] | None = None,
) -> tuple[int, int]:
    """``index.csv`` (rendered patches) and ``skipped.tsv`` from the per-product reports.

    Paths in the index are relative to its folder (``rgb/<product>/<id>.png``,
    ``mask/<product>/<id>.png``), as the dataset zips hold them. Both files are sorted by
    patch id and written atomically. Returns (indexed, skipped) counts.

    ``s1_reports`` (the S1 render reports, one per product, named like the others): the index
    gains ``s1_vv`` and ``s1_vh`` (``s1/<product>/<id>_VV.png`` ...), left empty for a patch whose
    S1 files were missing (its S1 report says why; it keeps its RGB and mask).

    Streamed one report at a time, so memory does not grow with the dataset (549,488 rows):
    a patch id starts with its product's name and all product names have the same length, so
    sorting the reports by product and each report's rows by id sorts the whole index.
    """
    by_product = sorted((Path(p).stem, Path(p)) for p in reports)
    if len({len(product) for product, _ in by_product}) > 1:  # not release names: sort all
        by_product = [("", Path(p)) for _, p in by_product]
    indexed = skipped = 0
    s1 = None if s1_reports is None else _S1Status(s1_reports)
    with (
        atomic_output(index_path, text=True) as index_file,
        atomic_output(skipped_path, text=True) as skipped_file,
    ):
        index = csv.writer(index_file, lineterminator="\n")
        index.writerow(INDEX_COLUMNS + (S1_INDEX_COLUMNS if s1 else ()))
        skips = csv.writer(
            skipped_file, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL
        )
        skips.writerow(SKIPPED_COLUMNS)
        for group in _report_groups(by_product):
            for r in group:
                product = s2_product(r.patch_id)
                if r.ok:
                    row = [
                        r.patch_id,
                        r.split,
                        product,
                        LABEL_SEPARATOR.join(r.labels),
                        f"rgb/{product}/{r.patch_id}.png",
                        f"mask/{product}/{r.patch_id}.png",
                    ]
                    if s1 is not None:
                        row += s1.paths(product, r.patch_id)
                    index.writerow(row)
                    indexed += 1
                else:
                    skips.writerow((r.patch_id, r.split, product, r.reason))
                    skipped += 1
    return indexed, skipped


class _S1Status:
    """Which patches have S1 PNGs, read one product's S1 report at a time."""

    def __init__(self, reports: Iterable[str | Path]) -> None:
        self._reports = {Path(p).stem: Path(p) for p in reports}
        self._product = ""
        self._ok: set[str] = set()

    def paths(self, product: str, patch_id: str) -> list[str]:
        if product != self._product:
            path = self._reports.get(product)
            if path is None:
                raise EopackError(f"no S1 render report for product {product}")
            self._product = product
            self._ok = {r.patch_id for r in read_report(path) if r.ok}
        if patch_id not in self._ok:
            return [""] * len(S1_BANDS)
        return [f"s1/{product}/{patch_id}_{band}.png" for band in S1_BANDS]


def _report_groups(by_product: Sequence[tuple[str, Path]]) -> Iterator[list[ReportRow]]:
    """Rows to write, sorted by patch id: one report at a time, or all at once when the report
    names are not equal-length product names (then a per-report order would not be global)."""
    if by_product and by_product[0][0] == "":
        yield sorted((r for _, p in by_product for r in read_report(p)), key=_patch_id)
        return
    for _, path in by_product:
        yield sorted(read_report(path), key=_patch_id)


def _patch_id(row: ReportRow) -> str:
    return row.patch_id
