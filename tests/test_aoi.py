"""AOI discovery and loading: names from file stems, areas only, clear errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eopack.aoi import discover_aois, load_aoi
from eopack.errors import EopackError

SQUARE = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_discovery_sorted_by_name(tmp_path):
    for name in ("b", "a"):
        write(tmp_path / f"{name}.geojson", {"type": "Polygon", "coordinates": SQUARE})
    write(tmp_path / "notes.txt", "ignored")
    assert list(discover_aois(tmp_path)) == ["a", "b"]


def test_feature_collection_is_one_aoi_union(tmp_path):
    other = [[[2, 0], [3, 0], [3, 1], [2, 1], [2, 0]]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": c}}
            for c in (SQUARE, other)
        ],
    }
    aoi = load_aoi(write(tmp_path / "two.geojson", doc))
    assert aoi.name == "two"
    assert aoi.geometry.geom_type == "MultiPolygon"
    assert aoi.geometry.area == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"type": "Point", "coordinates": [1, 2]}, "geometry type Point is not an area"),
        ({"type": "FeatureCollection", "features": []}, "FeatureCollection has no features"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            "invalid geometry (Self-intersection",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [500, 0], [0, 1], [0, 0]]]},
            "outside lon/lat",
        ),
        ({"foo": 1}, "not a GeoJSON object"),
    ],
)
def test_bad_aoi_files(tmp_path, content, message):
    path = write(tmp_path / "bad.geojson", content)
    with pytest.raises(EopackError) as info:
        load_aoi(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_empty_folder_and_bad_names(tmp_path):
    with pytest.raises(EopackError, match=r"holds no \*\.geojson file"):
        discover_aois(tmp_path)
    write(tmp_path / "my aoi.geojson", {"type": "Polygon", "coordinates": SQUARE})
    with pytest.raises(EopackError, match="AOI name 'my aoi' must be"):
        discover_aois(tmp_path)


def test_antimeridian_crossing_polygon_is_split(tmp_path):
    ring = [[[175, 60], [185, 60], [185, 62], [175, 62], [175, 60]]]
    aoi = load_aoi(write(tmp_path / "chukotka.geojson", {"type": "Polygon", "coordinates": ring}))
    assert aoi.geometry.geom_type == "MultiPolygon"
    assert aoi.geometry.bounds == (-180.0, 60.0, 180.0, 62.0)
    assert aoi.geometry.area == pytest.approx(20.0)
    from shapely.geometry import Point

    assert aoi.geometry.contains(Point(-177, 61)) and aoi.geometry.contains(Point(177, 61))


def test_antimeridian_multipolygon_kept(tmp_path):
    east = [[[175, 60], [180, 60], [180, 62], [175, 62], [175, 60]]]
    west = [[[-180, 60], [-175, 60], [-175, 62], [-180, 62], [-180, 60]]]
    doc = {"type": "MultiPolygon", "coordinates": [east, west]}
    aoi = load_aoi(write(tmp_path / "split.geojson", doc))
    assert aoi.geometry.area == pytest.approx(20.0)
