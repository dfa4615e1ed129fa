"""Configuration checks that run before any job, each failing with one line naming the culprit.

Snakemake's own ``validate()`` reports a schema dump; users need the key and what is wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from eopack.errors import EopackError

DateRange = tuple[str, str]


def _key_path(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_message(error: jsonschema.ValidationError) -> str:
    where = _key_path(list(error.absolute_path))
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = (
            sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        )
        names = ", ".join(repr(e) for e in extra)
        hint = f" (known keys: {', '.join(allowed)})" if allowed else ""
        prefix = "" if where == "(top level)" else f"{where}: "
        return f"{prefix}unknown key {names}{hint}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def check_schema(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Validate ``config`` against the JSON schema, raising the most relevant error as one line."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise EopackError(f"config: {_schema_message(best)}")


def parse_date(value: str, where: str) -> dt.date:
    """An ISO calendar date (YYYY-MM-DD); anything else is a config error."""
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise EopackError(f"config: {where}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def check_date_ranges(ranges: Sequence[Sequence[str]]) -> list[DateRange]:
    """Normalised ``(start, end)`` ISO strings; end must not precede start, duplicates refused."""
    out: list[DateRange] = []
    for i, pair in enumerate(ranges):
        where = f"date_ranges[{i}]"
        if len(pair) != 2:
            raise EopackError(f"config: {where}: expected [start, end], got {list(pair)!r}")
        start = parse_date(pair[0], f"{where}[0]")
        end = parse_date(pair[1], f"{where}[1]")
        if end < start:
            raise EopackError(f"config: {where}: end {end} is before start {start}")
        item = (start.isoformat(), end.isoformat())
        if item in out:
            raise EopackError(f"config: {where}: range {item[0]}..{item[1]} is listed twice")
        out.append(item)
    return out


def quote_yaml_dates(config: Mapping[str, Any]) -> None:
    """Turn unquoted YAML dates (``[2021-03-01, 2021-03-31]`` loads as ``datetime.date``)
    in ``date_ranges`` into the ISO strings the schema and the output paths use."""
    ranges = config.get("date_ranges")
    if not isinstance(ranges, list):
        return
    for pair in ranges:
        if isinstance(pair, list):
            for i, value in enumerate(pair):
                if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                    pair[i] = value.isoformat()


def check_config(config: Mapping[str, Any], schema_path: str | Path) -> list[DateRange]:
    """All pre-flight checks of the workflow config; returns the normalised date ranges."""
    quote_yaml_dates(config)
    check_schema(config, schema_path)
    ranges = check_date_ranges(config["date_ranges"])
    search = config.get("search", {})
    if search.get("backend") == "dhus":
        if not search.get("dhus_url"):
            raise EopackError("config: search.dhus_url: required when search.backend is dhus")
        other = [c for c in search.get("collections", []) if c != "sentinel-1-grd"]
        if other:
            raise EopackError(
                f"config: search.collections: {', '.join(other)} not available from a DHuS "
                "hub (backend dhus searches sentinel-1-grd only; use backend stac)"
            )
    aoi_dir = Path(config["aoi_dir"])
    if not aoi_dir.is_dir():
        raise EopackError(f"config: aoi_dir: folder {aoi_dir} does not exist")
    return ranges
