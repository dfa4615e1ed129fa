"""Areas of interest: every ``*.geojson`` in a folder, one AOI per file, named by its stem."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
import shapely.affinity
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from eopack.errors import EopackError

AOI_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
AREAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class AOI:
    """One area of interest: its name (file stem), source file and (multi)polygon in lon/lat."""

    name: str
    path: Path
    geometry: BaseGeometry


def discover_aois(folder: str | Path) -> dict[str, Path]:
    """Map AOI name -> file for every ``*.geojson`` in ``folder`` (sorted; names checked)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EopackError(f"aoi_dir: folder {folder} does not exist")
    files = sorted(folder.glob("*.geojson"))
    if not files:
        raise EopackError(f"config: aoi_dir: folder {folder} holds no *.geojson file")
    found: dict[str, Path] = {}
    for path in files:
        name = path.stem
        if not AOI_NAME.match(name):
            raise EopackError(
                f"{path}: AOI name {name!r} must be letters, digits, '_' or '-' "
                "(it becomes part of output paths)"
            )
        found[name] = path
    return found


def _geometries(doc: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or "type" not in doc:
        raise EopackError(f"{path}: not a GeoJSON object (no 'type')")
    kind = doc["type"]
    if kind == "FeatureCollection":
        features = doc.get("features") or []
        if not features:
            raise EopackError(f"{path}: FeatureCollection has no features")
        return [g for f in features for g in _geometries(f, path)]
    if kind == "Feature":
        if not doc.get("geometry"):
            raise EopackError(f"{path}: Feature has no geometry")
        return _geometries(doc["geometry"], path)
    if kind in AREAL:
        return [doc]
    raise EopackError(f"{path}: geometry type {kind} is not an area (use Polygon or MultiPolygon)")


def load_aoi(path: str | Path) -> AOI:
    """Read one AOI file; a FeatureCollection becomes the union of its features' areas."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EopackError(f"{path}: cannot read AOI file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise EopackError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        geoms = [shape(g) for g in _geometries(doc, path)]
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise EopackError(f"{path}: malformed geometry ({exc})") from None
    for geom in geoms:
        if geom.is_empty:
            raise EopackError(f"{path}: empty geometry")
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            raise EopackError(f"{path}: invalid geometry ({reason})")
    union = shapely.union_all(geoms) if len(geoms) > 1 else geoms[0]
    minx, miny, maxx, maxy = union.bounds
    if minx < -360 or maxx > 360 or miny < -90 or maxy > 90:
        raise EopackError(f"{path}: coordinates outside lon/lat range (expected EPSG:4326)")
    return AOI(name=path.stem, path=path, geometry=split_antimeridian(union))


def split_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """Bring longitudes into [-180, 180], splitting at the antimeridian (RFC 7946 section 3.1.9).

    An AOI drawn continuously across 180° (e.g. 170..190) becomes a MultiPolygon of its
    two halves, which STAC servers and footprint tests understand.
    """
    minx, _, maxx, _ = geom.bounds
    if minx >= -180 and maxx <= 180:
        return geom
    parts = []
    for shift in (-360.0, 0.0, 360.0):
        window = box(-180 - shift, -90, 180 - shift, 90)
        piece = geom.intersection(window)
        if not piece.is_empty:
            parts.append(shapely.affinity.translate(piece, xoff=shift))
    return shapely.union_all(parts)
