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


def check_schema(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate ``config`` against the JSON schema, raising the most relevant error as one line."""
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


#: Python types of the JSON schema's scalar types (bool is not an integer here).
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


#: The spellings of null in YAML (a string field that also allows null takes them as null).
_YAML_NULLS = frozenset({"null", "Null", "NULL", "~"})


def _typed_scalar(value: str, types: Sequence[str]) -> Any:
    """``value`` read as a YAML scalar (as in a config file) if that gives one of ``types``;
    else ``value`` unchanged, for the schema to report."""
    try:
        typed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return value
    for name in types:
        allowed = _SCALAR_TYPES.get(name)
        if (
            allowed
            and isinstance(typed, allowed)
            and not (isinstance(typed, bool) and name in ("integer", "number"))
        ):
            return typed
    return value


def coerce_to_schema(value: Any, schema: Mapping[str, Any]) -> Any:
    """Give ``--config`` values the types the schema asks for, in place where it can.

    Snakemake reads a nested ``--config`` value (``report='{enabled: false}'``) with YAML's
    BaseLoader, which keeps every scalar a string, so ``false``, ``5`` and ``null`` would be
    refused where the same text in a config file is a boolean, a number, a null. A string is
    read as YAML only where the schema does not allow a string there, and kept as it is if
    that does not give an allowed type (the schema then names it, as for a config file); where
    both a string and null are allowed, YAML's null spellings are null.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        others = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, others if isinstance(others, dict) else None)
            if sub is not None:
                value[key] = coerce_to_schema(item, sub)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                value[i] = coerce_to_schema(item, items)
        return value
    if isinstance(value, str):
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        if types and "string" not in types:
            return _typed_scalar(value, types)
        if "null" in types and value in _YAML_NULLS:
            return None  # ``{uri: null}``: YAML's null, as in a config file
    return value


def check_config(config: Mapping[str, Any], schema_path: str | Path) -> list[DateRange]:
    """All pre-flight checks of the workflow config; returns the normalised date ranges."""
    quote_yaml_dates(config)
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    coerce_to_schema(config, schema)
    check_schema(config, schema)
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
