"""The report's figure modules on small real files: sampling by patch id, class statistics,
quicklooks from zips, footprint maps, the run summary; deterministic bytes and bad input."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eopack.bigearthnet.classes import CLASSES, PALETTE, classes_json
from eopack.bigearthnet.index import INDEX_COLUMNS, S1_INDEX_COLUMNS
from eopack.bigearthnet.png import encode_palette, encode_rgb
from eopack.errors import EopackError
from eopack.report import bigearthnet as ben
from eopack.report import contact_sheet, footprints, quicklooks, summary
from eopack.report.products import describe_product

S2 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
SPLITS = ("train", "validation", "test")


def _png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# BigEarthNet -----------------------------------------------------------------------------------


def write_dataset(root: Path, n: int, files: bool = True, only: set[str] | None = None) -> list:
    """index.csv of ``n`` patches over three splits (+ classes.json, RGB and mask PNGs)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_bytes(classes_json())
    rows = []
    rng = np.random.default_rng(7)
    for i in range(n):
        pid = f"{S2}_{i // 100}_{i % 100}"
        labels = [CLASSES[i % 19].name, CLASSES[(i * 7 + 3) % 19].name]
        rows.append(
            [
                pid,
                SPLITS[i % 3],
                S2,
                ";".join(sorted(set(labels))),
                f"rgb/{S2}/{pid}.png",
                f"mask/{S2}/{pid}.png",
            ]
        )
    with open(root / "index.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(rows)
    if files:
        for kind in ("rgb", "mask"):
            (root / kind / S2).mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(rows):
            if only is not None and row[0] not in only:
                continue
            mask = np.full((120, 120), i % 19, dtype=np.uint8)
            mask[:30] = (i * 7 + 3) % 19
            mask[-10:] = 255
            rgb = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
            (root / row[4]).write_bytes(encode_rgb(rgb))
            (root / row[5]).write_bytes(encode_palette(mask, PALETTE))
    return rows


def test_sample_is_the_lowest_hashes_whatever_the_row_order(tmp_path):
    rows = write_dataset(tmp_path / "a", 60, files=False)
    scan = ben.scan_index(tmp_path / "a" / "index.csv", 4)
    for split in SPLITS:
        ids = sorted((r[0] for r in rows if r[1] == split), key=ben.sample_key)[:4]
        assert [r.patch_id for r in scan.samples[split]] == ids
    # The same rows in another order give the same sample.
    shuffled = tmp_path / "b" / "index.csv"
    shuffled.parent.mkdir()
    lines = (tmp_path / "a" / "index.csv").read_text().splitlines()
    shuffled.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    again = ben.scan_index(shuffled, 4)
    assert {s: [r.patch_id for r in v] for s, v in again.samples.items()} == {
        s: [r.patch_id for r in v] for s, v in scan.samples.items()
    }
    assert scan.patches == {"train": 20, "validation": 20, "test": 20}
    train = [r for r in rows if r[1] == "train"]
    assert scan.labels["train"][CLASSES[0].name] == sum(CLASSES[0].name in r[3] for r in train)


SCAN = """
import sys, time
from eopack.jobs import peak_rss_mb
from eopack.report.bigearthnet import scan_index
started = time.monotonic()
scan = scan_index(sys.argv[1], 2000)
print(scan.patches.total(), min(map(len, scan.samples.values())), peak_rss_mb(),
      time.monotonic() - started)
"""


def _scan_in_a_process(index: Path) -> tuple[int, int, int, float]:
    out = subprocess.run(
        [sys.executable, "-c", SCAN, str(index)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2]), float(out[3])


def _write_index(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(INDEX_COLUMNS) + "\n")
        for i in range(n):
            pid = f"{S2}_{i // 1000}_{i % 1000}"
            handle.write(
                f"{pid},{SPLITS[i % 3]},{S2},Arable land;Pastures,rgb/{pid}.png,mask/{pid}.png\n"
            )


def test_index_scan_memory_is_flat_at_the_release_size(tmp_path):
    """549,488 rows (the release) stream through with a bounded sample: the job's peak RSS is
    that of a 6,000-row index, and it takes seconds."""
    _write_index(tmp_path / "small.csv", 6_000)
    _write_index(tmp_path / "release.csv", 549_488)
    _, _, small_mb, _ = _scan_in_a_process(tmp_path / "small.csv")
    total, sampled, release_mb, took = _scan_in_a_process(tmp_path / "release.csv")
    assert (total, sampled) == (549_488, 2000)
    assert release_mb - small_mb < 25, (small_mb, release_mb)  # the index is ~150 MB of text
    assert took < 30, took


def test_an_index_with_s1_columns_reads_the_same_rows(tmp_path):
    plain = tmp_path / "plain.csv"
    row = ["P_1_2", "train", "P", "Arable land", "rgb/P/P_1_2.png", "mask/P/P_1_2.png"]
    plain.write_text(",".join(INDEX_COLUMNS) + "\n" + ",".join(row) + "\n")
    with_s1 = tmp_path / "s1.csv"
    header = ",".join(INDEX_COLUMNS + S1_INDEX_COLUMNS)
    with_s1.write_text(f"{header}\n{','.join(row)},s1/P/P_1_2_VV.png,s1/P/P_1_2_VH.png\n")
    assert list(ben.iter_index(with_s1)) == list(ben.iter_index(plain))
    with_s1.write_text(f"{header}\n{','.join(row)}\n")
    with pytest.raises(EopackError, match=r"s1.csv: line 2 has 6 fields, expected 8"):
        list(ben.iter_index(with_s1))


def test_bad_index_and_classes_are_one_line_errors(tmp_path):
    bad = tmp_path / "index.csv"
    bad.write_text("patch_id,labels\nx,y\n")
    with pytest.raises(EopackError, match=r"index.csv: header is patch_id,labels, expected"):
        list(ben.iter_index(bad))
    short = tmp_path / "short.csv"
    short.write_text(",".join(INDEX_COLUMNS) + "\na,train\n")
    with pytest.raises(EopackError, match=r"short.csv: line 2 has 2 fields"):
        list(ben.iter_index(short))
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"classes": [{"index": 0, "name": "x"}], "unlabeled": {}}))
    with pytest.raises(EopackError, match=r"classes.json: classes\[0\]: expected index, name"):
        ben.read_classes(classes)


def test_overlay_keeps_unlabeled_pixels_plain():
    rgb = np.full((2, 2, 3), 100, dtype=np.uint8)
    mask = np.array([[0, 255], [9, 255]], dtype=np.uint8)
    out = ben.overlay(rgb, mask, PALETTE)
    assert (out[0, 1] == 100).all() and (out[1, 1] == 100).all()
    assert tuple(out[0, 0]) == tuple(np.rint(100 * 0.5 + PALETTE[0] * 0.5).astype(int))


def test_class_figures_count_the_sampled_masks(tmp_path):
    rows = write_dataset(tmp_path, 30)
    table = ben.read_classes(tmp_path / "classes.json")
    scan = ben.scan_index(tmp_path / "index.csv", 5)
    counts = ben.pixel_counts(tmp_path, scan.samples["train"])
    assert counts.sum() == 5 * 120 * 120
    assert counts[255] == 5 * 10 * 120
    assert [c.name for c in table.classes] == [c.name for c in CLASSES]
    outs = [tmp_path / f"{n}.png" for n in ("legend", "pixels", "labels")]
    sampled = ben.write_class_figures(
        tmp_path / "index.csv", tmp_path / "classes.json", ["train", "validation", "test"], 5, *outs
    )
    assert sampled == {"train": 5, "validation": 5, "test": 5}
    first = [p.read_bytes() for p in outs]
    ben.write_class_figures(
        tmp_path / "index.csv", tmp_path / "classes.json", ["train", "validation", "test"], 5, *outs
    )
    assert [p.read_bytes() for p in outs] == first  # deterministic
    legend = _png_pixels(outs[0])
    colours = {tuple(c) for c in legend.reshape(-1, 3)}
    assert {tuple(int(v) for v in c.rgb) for c in CLASSES} <= colours  # every palette colour
    assert len(rows) == 30


def test_sample_grid_shows_rgb_mask_and_overlay(tmp_path):
    rows = write_dataset(tmp_path, 30)
    out = tmp_path / "grid.png"
    shown = ben.write_sample_grid(tmp_path / "index.csv", tmp_path / "classes.json", "test", 4, out)
    assert shown == 4
    pixels = _png_pixels(out)
    colours = {tuple(c) for c in pixels.reshape(-1, 3)}
    scan = ben.scan_index(tmp_path / "index.csv", 4)
    used = {int(v) for r in scan.samples["test"] for v in np.unique(ben.read_patch(tmp_path, r)[1])}
    assert {tuple(int(v) for v in PALETTE[i]) for i in used} <= colours  # mask colours drawn
    gone = tmp_path / scan.samples["test"][0].mask
    gone.unlink()
    with pytest.raises(EopackError, match=rf"{gone.name}: not a readable PNG"):
        ben.write_sample_grid(tmp_path / "index.csv", tmp_path / "classes.json", "test", 4, out)
    assert len(rows) == 30


def test_an_empty_split_gets_a_figure_that_says_so(tmp_path):
    write_dataset(tmp_path, 6)
    out = tmp_path / "grid.png"
    assert (
        ben.write_sample_grid(tmp_path / "index.csv", tmp_path / "classes.json", "x", 4, out) == 0
    )
    assert _png_pixels(out).std() > 0


# Quicklooks ------------------------------------------------------------------------------------

PID = "S1A_IW_GRDH_1SDV_20230726T172041_20230726T172106_049597_05F6A1_D7E2"


def _png(colour: tuple[int, int, int], size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_quicklook_is_copied_from_the_zip_unchanged(tmp_path):
    data = _png((10, 200, 30))
    archive = tmp_path / f"{PID}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{PID}.SAFE/preview/quick-look.png", data)
        z.writestr(f"{PID}.SAFE/manifest.safe", b"<xml/>")
    assert quicklooks.write_quicklook(archive, PID, tmp_path / "q.png") is True
    assert (tmp_path / "q.png").read_bytes() == data


def test_quicklook_missing_or_unreadable_gives_a_placeholder(tmp_path, caplog):
    """A report figure never fails the data run: a SAFE without a readable quick-look gets a
    placeholder that says why, and one warning that shows no Python object's repr."""
    archive = tmp_path / "no-preview.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{PID}.SAFE/manifest.safe", b"<xml/>")
    assert quicklooks.write_quicklook(archive, PID, tmp_path / "q.png") is False
    assert f"{PID}.SAFE/preview/quick-look.png: not in the zip" in caplog.text
    assert _png_pixels(tmp_path / "q.png").std() > 0
    for name, data in (
        ("not-png", b"these bytes are not a PNG at all"),  # as tried in the newcomer's run
        ("garbled", b"\x89PNG\r\n\x1a\nrubbish"),
        ("truncated", _png((10, 200, 30))[:60]),
    ):
        caplog.clear()
        archive = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr(f"{PID}.SAFE/preview/quick-look.png", data)
        out = tmp_path / f"{name}.png"
        assert quicklooks.write_quicklook(archive, PID, out) is False
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1, caplog.text
        text = warnings[0].getMessage()
        assert f"{name}.zip: {PID}.SAFE/preview/quick-look.png: not a" in text, text
        assert "placeholder" in text and " at 0x" not in text and "<" not in text, text
        with Image.open(out) as image:
            assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 0


def test_quicklook_of_a_broken_zip_is_one_line(tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(EopackError, match=r"broken.zip: cannot read the product zip"):
        quicklooks.write_quicklook(broken, PID, tmp_path / "q2.png")
    assert not (tmp_path / "q2.png").exists()


def test_error_messages_show_no_object_repr():
    exc = EopackError(
        "x.png: not readable (cannot identify image file <_io.BytesIO object at 0x7f3a2c>)"
    )
    assert str(exc) == "x.png: not readable (cannot identify image file)"


def test_product_description_from_its_id():
    about = describe_product(PID)
    assert about == {
        "sensing start": "2023-07-26 17:20",
        "mission": "S1A",
        "mode": "IW",
        "polarisation": "VV+VH",
        "product": PID,
    }
    assert describe_product("S1A_EW_GRDM_1SDH_20230714T052433_x")["polarisation"] == "HH+HV"
    assert describe_product("LX08_L2SP_x")["mode"] == ""
    s2 = describe_product("S2A_MSIL2A_20220126T084129_N0400_R064_T36RUT_20220201T122115")
    assert s2["mode"] == "MSI L2A, baseline 04.00, tile 36RUT" and s2["mission"] == "S2A"
    landsat = describe_product("LC08_L2SP_195027_20210311_20210317_02_T1")
    assert landsat["mission"] == "Landsat 8" and landsat["sensing start"] == "2021-03-11"


# Footprint maps and contact sheets -------------------------------------------------------------


def _feature(pid: str, lon: float, when: str, collection="sentinel-1-grd") -> dict:
    ring = [[lon, 46], [lon + 2, 46], [lon + 2, 48], [lon, 48], [lon, 46]]
    return {
        "type": "Feature",
        "id": pid,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "collection": collection,
            "datetime": when,
            "platform": "sentinel-1a",
            "mode": "IW",
            "polarisations": ["VV", "VH"],
            "source": {"bucket": "b", "prefix": f"p/{pid}"},
        },
    }


def _aoi_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    aoi = tmp_path / "alps.geojson"
    ring = [[10, 46.5], [11, 46.5], [11, 47.2], [10, 47.2], [10, 46.5]]
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    manifests = []
    found = {
        "2021-03-01_2021-03-31": [("A1", 9.0, "2021-03-10T05:30:12Z")],
        "2023-07-01_2023-07-31": [
            ("B2", 9.5, "2023-07-26T17:20:41Z"),
            ("A1", 9.0, "2021-03-10T05:30:12Z"),
        ],
    }
    for name, products in found.items():
        path = tmp_path / "search" / "alps" / f"{name}.geojson"
        path.parent.mkdir(parents=True, exist_ok=True)
        features = [_feature(*p) for p in products]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        manifests.append(path)
    return aoi, manifests


def test_aoi_products_are_numbered_once_in_range_order(tmp_path):
    _, manifests = _aoi_files(tmp_path)
    entries = footprints.aoi_products(manifests)
    assert [(e.number, e.product.id, e.date_range) for e in entries] == [
        (1, "A1", "2021-03-01 to 2021-03-31"),
        (2, "B2", "2023-07-01 to 2023-07-31"),
    ]


def test_footprint_maps_are_deterministic_and_drawn_per_aoi_and_date_range(tmp_path):
    aoi, manifests = _aoi_files(tmp_path)
    out = tmp_path / "map.png"
    ranges = [tmp_path / "alps" / f"{m.stem}.png" for m in manifests]
    assert footprints.write_aoi_maps(aoi, manifests, out, ranges) == 2
    first = [p.read_bytes() for p in (out, *ranges)]
    footprints.write_aoi_maps(aoi, manifests, out, ranges)
    assert [p.read_bytes() for p in (out, *ranges)] == first
    colours = _colours(out)
    assert BLUE in colours and ORANGE in colours  # footprints 1 and 2
    assert BLUE in _colours(ranges[0]) and ORANGE not in _colours(ranges[0])  # A1 only
    assert {BLUE, ORANGE} <= _colours(ranges[1])  # B2 keeps its AOI-wide number, 2
    empty = tmp_path / "none.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    assert footprints.write_aoi_maps(aoi, [empty], tmp_path / "empty.png") == 0
    with pytest.raises(EopackError, match=r"alps.geojson: 2 search manifests but 1 pictures"):
        footprints.write_aoi_maps(aoi, manifests, out, ranges[:1])


BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # PALETTE[0], PALETTE[1]


def _colours(path: Path) -> set[tuple[int, ...]]:
    return {tuple(c) for c in _png_pixels(path).reshape(-1, 3)}


def _box(pid: str, x0: float, y0: float, x1: float, y1: float) -> dict:
    feature = _feature(pid, 0, "2023-07-26T17:20:41Z")
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    feature["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    return feature


def _entries(tmp_path: Path, features: list[dict]) -> list:
    path = tmp_path / "search" / "2023-07-01_2023-07-31.geojson"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return footprints.aoi_products([path])


def _map_pixels(fig) -> np.ndarray:
    """The map's lines and fills alone: the legend and the numbers (in each product's colour
    too) taken off, so a product's colour can only come from its outline."""
    from eopack.report.plotting import png_bytes

    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        for text in ax.texts:
            text.set_visible(False)
    with Image.open(io.BytesIO(png_bytes(fig))) as image:
        return np.asarray(image.convert("RGB"))


def _texts(fig) -> list:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_text()]


def test_a_footprint_inside_a_later_one_keeps_its_outline(tmp_path):
    """The newcomer's case: product 1 lies inside product 2; its outline was painted over by
    product 2's fill. On the pixels: product 1's colour, exactly, is on the map."""
    from eopack.aoi import load_aoi

    aoi, _ = _aoi_files(tmp_path)
    entries = _entries(
        tmp_path, [_box("INSIDE", 10.2, 46.6, 10.8, 47.0), _box("OUTSIDE", 9.5, 46.0, 11.5, 47.8)]
    )
    assert [e.product.id for e in entries] == ["INSIDE", "OUTSIDE"]
    fig = footprints.render_footprint_map(load_aoi(aoi), entries, "alps")
    pixels = _map_pixels(fig)
    colours = {tuple(c) for c in pixels.reshape(-1, 3)}
    assert BLUE in colours, "the contained footprint's outline is not on the map"
    assert ORANGE in colours
    # The whole outline (the box is ~170 x 160 px), drawn in product 1's colour exactly; one
    # pass per product (fill and edge) tinted it all under product 2's fill: 0 pixels.
    assert (pixels == BLUE).all(axis=2).sum() > 400


def test_numbers_sit_above_the_aoi_outline_and_axes_are_degrees(tmp_path):
    from eopack.aoi import load_aoi

    aoi, _ = _aoi_files(tmp_path)
    entries = _entries(tmp_path, [_box("CROSS", 9.9, 46.4, 11.1, 47.3)])  # around the AOI
    fig = footprints.render_footprint_map(load_aoi(aoi), entries, "alps")
    ax = fig.axes[0]
    aoi_lines = [line for line in ax.get_lines() if line.get_color() == "black"]
    numbers = [t for t in ax.texts if t.get_text() == "1"]
    assert aoi_lines and numbers
    assert min(t.get_zorder() for t in numbers) > max(line.get_zorder() for line in aoi_lines)
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert any(t.endswith("°E") for t in ticks) and any(t.endswith("°N") for t in ticks), ticks


@pytest.mark.parametrize("count", [12, 240])
def test_every_product_is_listed_on_its_map(tmp_path, count):
    """The PIL picture listed 5 products and "+N more"; the report map 40. A legend up to
    MAX_LEGEND products, a numbered table beyond (the DAG benchmark's AOIs have 240)."""
    from eopack.aoi import load_aoi

    aoi, _ = _aoi_files(tmp_path)
    features = [
        _box(
            f"S1A_IW_GRDH_1SDV_2023072{i % 10}T172041_{i:04d}", 9 + i * 0.01, 46, 10 + i * 0.01, 47
        )
        for i in range(count)
    ]
    entries = _entries(tmp_path, features)
    fig = footprints.render_footprint_map(load_aoi(aoi), entries, "alps")
    text = "\n".join(t.get_text() for t in _texts(fig))
    for entry in entries:
        assert re.search(rf"(^|\s){entry.number}\s+{entry.product.id}\s", text, re.M), entry.number
    assert "more" not in text
    from eopack.report.plotting import png_bytes

    with Image.open(io.BytesIO(png_bytes(fig))) as image:
        assert image.height < 3000 and image.width < 2000, image.size


def test_contact_sheet_uses_the_map_numbers(tmp_path):
    _, manifests = _aoi_files(tmp_path)
    looks = []
    for pid, colour in (("A1", (250, 0, 0)), ("B2", (0, 0, 250))):
        path = tmp_path / f"{pid}.png"
        path.write_bytes(_png(colour))
        looks.append(path)
    out = tmp_path / "sheet.png"
    assert contact_sheet.write_contact_sheet("alps", manifests, looks, out) == 2
    colours = {tuple(c) for c in _png_pixels(out).reshape(-1, 3)}
    assert (250, 0, 0) in colours and (0, 0, 250) in colours
    assert contact_sheet.write_contact_sheet("alps", manifests, [], tmp_path / "none.png") == 0


# Run summary -----------------------------------------------------------------------------------


def test_log_patterns_with_constraints_match_whole_paths():
    regex = summary.pattern_regex(r"logs/search/{aoi,[a-z]+}/{start,\d{4}-\d{2}-\d{2}}_{end}.log")
    assert regex.match("logs/search/alps/2021-03-01_2021-03-31.log")
    assert not regex.match("logs/search/products.log")
    assert not summary.pattern_regex("logs/zip/{product}.log").match("logs/zip/a/b.log")


def test_step_times_group_logs_by_rule(tmp_path):
    logs = tmp_path / "logs"
    (logs / "zip").mkdir(parents=True)
    (logs / "zip" / "A.log").write_text(
        "2026-01-01T10:00:00 INFO eopack: start\n2026-01-01T10:00:05 INFO eopack: peak RSS 30 MB\n"
    )
    (logs / "zip" / "B.log").write_text(
        "2026-01-01T10:00:01 INFO eopack: start\nTraceback...\n"
        "2026-01-01T10:00:03 INFO eopack: peak RSS 45 MB\n"
    )
    (logs / "odd.log").write_text("no timestamps\n")
    steps = summary.step_times(logs, {"zip_safe": ["logs/zip/{product}.log"]})
    assert steps["zip_safe"].jobs == 2
    assert steps["zip_safe"].seconds == 7 and steps["zip_safe"].longest == 5
    assert steps["zip_safe"].peak_mb == 45
    assert steps["other"].jobs == 1 and steps["other"].peak_mb is None
    patterns = {"zip_safe": ["logs/zip/{product}.log"]}
    assert "other" not in summary.step_times(logs, patterns, exclude=logs / "odd.log")


def test_job_times_are_the_jobs_own_not_whole_seconds_of_timestamps(tmp_path):
    """Jobs shorter than a second showed "0 s": their log timestamps share one second. The
    ``job time`` line every job now ends with (process start to end) is what counts."""
    logs = tmp_path / "logs"
    (logs / "search").mkdir(parents=True)
    for name, took in (("a", 0.47), ("b", 0.62)):
        (logs / "search" / f"{name}.log").write_text(
            f"2026-01-01T10:00:00 INFO eopack.search: start\n"
            f"2026-01-01T10:00:00 INFO eopack: job time {took:.2f} s\n"
            "2026-01-01T10:00:00 INFO eopack: peak RSS 79 MB\n"
        )
    steps = summary.step_times(logs, {"search": ["logs/search/{name}.log"]})
    assert steps["search"].seconds == pytest.approx(1.09)
    assert steps["search"].longest == pytest.approx(0.62)
    html = summary.render_job_times(steps)
    row = html[html.index("<td>search</td>") :].split("</tr>")[0]
    assert '<td class="n">1.1 s</td>' in row and "0.6 s" in row, row
    assert ">0 s<" not in html


def _empty_plan(tmp_path: Path) -> Path:
    plan = tmp_path / "empty-plan.tsv"
    plan.write_text("product\tcollection\tfiles\tbytes\tmissing\test_cost_usd\n")
    return plan


def test_summary_page_from_the_run_records(tmp_path):
    _, manifests = _aoi_files(tmp_path)
    plan = tmp_path / "plan.tsv"
    plan.write_text(
        "product\tcollection\tfiles\tbytes\tmissing\tsource\tdestination\test_cost_usd\n"
        f"{PID}\tsentinel-1-grd\t22\t2500000000\t0\ts3://x/\tresults/zip/{PID}.zip\t0.2254\n"
        "TOTAL\t\t22\t2500000000\t0\t\t\t0.2254\n"
    )
    verify = tmp_path / f"{PID}.verify.json"
    verify.write_text(
        json.dumps({"ok": True, "files": [{"status": "ok"}, {"status": "ok_reencoded"}]})
    )
    receipt = tmp_path / f"{PID}.zip.json"
    receipt.write_text(json.dumps({"uri": f"s3://dest/eo/{PID}.zip", "size": 1_234_567}))
    write_dataset(tmp_path / "ben", 9, files=False)
    (tmp_path / "ben" / "skipped.tsv").write_text(
        "patch_id\tsplit\ts2_product\treason\nx\ttrain\ts\tr\n"
    )
    out = tmp_path / "summary.html"
    summary.write_summary(
        out,
        manifests,
        plan,
        [verify],
        [receipt],
        {"usd_per_gb": 0.09, "usd_per_1000_requests": 0.0004},
        {
            "index": tmp_path / "ben" / "index.csv",
            "skipped": tmp_path / "ben" / "skipped.tsv",
            "datasets": [],
            "downloads": [tmp_path / "absent.tar.zst"],
        },
        tmp_path / "no-logs",
        {},
        job_times=tmp_path / "job_times.html",
    )
    text = out.read_text(encoding="utf-8")
    jobs = (tmp_path / "job_times.html").read_text(encoding="utf-8")
    assert "No job logs found." in jobs and "<script" not in jobs
    assert "Jobs" not in text and "job times" in text  # a run record: not in the summary
    assert "<td>alps</td>" in text and "2023-07-01 to 2023-07-31" in text
    assert "$0.225400" in text  # requester-pays estimate
    assert "2.5 GB" in text and "1.2 MB" in text  # fetched, delivered
    assert "s3://dest/eo" in text
    assert "ok (1 re-encoded TIFFs)" in text and "1 of 1 ok" in text
    assert "patches: train" in text and ">1<" in text  # one skipped patch
    assert "<script" not in text


def test_human_bytes_are_decimal():
    assert summary.human_bytes(999) == "999 B"
    assert summary.human_bytes(1_500_000) == "1.5 MB"
    assert summary.human_bytes(2.5e12) == "2.5 TB"


# Front page (report/workflow.rst) --------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["1. Run summary", "2. Areas of interest", "3. Product quicklooks", "4. BigEarthNet"]


def front_page(overrides: dict, sections: list[str]) -> str:
    """report/workflow.rst as `snakemake --report` renders it (snakemake.report.auto_report):
    Jinja with the run's config (validated, defaults filled) and its result categories, then
    RST to HTML; the text a person reads."""
    import re

    import yaml
    from docutils.core import publish_parts
    from jinja2 import Environment
    from snakemake.report import Category
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    update_config(config, overrides)
    validate(config, str(REPO / "config" / "schema.yaml"))

    class Snakemake:
        pass

    Snakemake.config = config
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    text = (REPO / "report" / "workflow.rst").read_text(encoding="utf-8")
    categories = {Category(name): {} for name in sections}
    rendered = env.from_string(text).render(snakemake=Snakemake, categories=categories, files={})
    body = publish_parts(rendered, writer_name="html")["html_body"]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_front_page_of_a_sentinel1_only_run_names_only_sentinel1():
    demo = yaml_file(REPO / "config" / "demo.yaml")
    demo["search"]["collections"] = ["sentinel-1-grd"]
    text = front_page(demo, SECTIONS)
    assert "searched Sentinel-1 GRD for the areas of interest in config/demo/aoi" in text, text
    assert "Sentinel-2" not in text and "Landsat" not in text, text
    assert "2 date range(s) (2021-03-01 to 2021-03-31; 2023-07-01 to 2023-07-31)" in text
    assert "BigEarthNet v2 release" in text and "s3://eopack-demo-publish/eopack" in text
    assert all(section in text for section in SECTIONS), text


def test_front_page_lists_only_the_sections_the_report_has():
    text = front_page({}, SECTIONS[:3])  # config.yaml: no BigEarthNet, no publishing
    assert "BigEarthNet" not in text and "4." not in text, text
    assert "published" not in text
    assert "3. Product quicklooks" in text and "contact sheet" in text
    optical = front_page({"search": {"collections": ["sentinel-2-l2a"]}}, SECTIONS[:2])
    assert "searched Sentinel-2 L2A" in optical, optical
    assert "Sentinel-1" not in optical and "Landsat" not in optical, optical
    assert "Each Sentinel-2 L2A product's ESA SAFE folder was rebuilt" in optical, optical
    assert "contact sheet" not in optical
    landsat = front_page({"search": {"collections": ["landsat-c2-l2"]}}, SECTIONS[:2])
    assert "SAFE" not in landsat and "Each Landsat scene folder was fetched" in landsat
    months = [[f"2023-{m:02d}-01", f"2023-{m:02d}-28"] for m in range(1, 13)]
    year = front_page({"date_ranges": months}, SECTIONS[:3])
    assert "12 date range(s) (2023-01-01 to 2023-01-28; ...; 2023-12-01 to 2023-12-28)" in year


def yaml_file(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))
