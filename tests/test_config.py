"""Bad configuration stops before any job runs, with one line naming the key or file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, run_snakemake

from eopack.config import check_config, check_date_ranges
from eopack.errors import EopackError

SCHEMA = REPO / "config" / "schema.yaml"


def base_config(tmp_path: Path) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    aoi_dir = tmp_path / "aoi"
    aoi_dir.mkdir(exist_ok=True)
    config["aoi_dir"] = str(aoi_dir)
    return config


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(colour="red"), "config: unknown key 'colour'"),
        (lambda c: c["search"].update(backnd="stac"), "config: search: unknown key 'backnd'"),
        (
            lambda c: c.update(date_ranges=[["2021-02-01", "2021-01-01"]]),
            "end 2021-01-01 is before",
        ),
        (lambda c: c.update(date_ranges=[["2021-02-30", "2021-03-01"]]), "date_ranges[0][0]"),
        (lambda c: c.update(date_ranges=[]), "config: date_ranges:"),
        (lambda c: c["search"].update(images_limit=0), "config: search.images_limit:"),
        (lambda c: c["search"].update(backend="ftp"), "config: search.backend: 'ftp' is not one"),
        (
            lambda c: c.update(aoi_dir="/nonexistent/aoi"),
            "aoi_dir: folder /nonexistent/aoi does not",
        ),
        (lambda c: c.pop("sources"), "'sources' is a required property"),
        (
            lambda c: c["search"].update(backend="dhus"),
            "config: search.dhus_url: required when search.backend is dhus",
        ),
    ],
)
def test_check_config_errors(tmp_path, mutate, message):
    config = base_config(tmp_path)
    mutate(config)
    with pytest.raises(EopackError) as info:
        check_config(config, SCHEMA)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_date_ranges_normalised_and_duplicates_refused():
    assert check_date_ranges([["2021-03-01", "2021-03-01"]]) == [("2021-03-01", "2021-03-01")]
    with pytest.raises(EopackError, match=r"date_ranges\[1\]: range .* listed twice"):
        check_date_ranges([["2021-03-01", "2021-03-02"], ["2021-03-01", "2021-03-02"]])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


def _dry_run_error(workdir: Path, overrides: dict) -> list[str]:
    cfg = workdir / "bad.yaml"
    demo = yaml.safe_load((workdir / "config" / "demo.yaml").read_text())
    demo.update(overrides)
    cfg.write_text(yaml.safe_dump(demo))
    proc = run_snakemake(workdir, "-n", "--cores", "1", "--configfile", str(cfg))
    assert proc.returncode != 0
    assert not (workdir / "results").exists()
    return [line for line in proc.stderr.splitlines() if line.startswith("eopack:")]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"unknown_key": 1}, "eopack: config: unknown key 'unknown_key'"),
        (
            {"aoi_dir": "config/missing"},
            "eopack: config: aoi_dir: folder config/missing does not exist",
        ),
        (
            {"date_ranges": [["2023-07-31", "2023-07-01"]]},
            "eopack: config: date_ranges[0]: end 2023-07-01 is before start 2023-07-31",
        ),
    ],
)
def test_snakemake_stops_with_one_line(workdir, overrides, expected):
    lines = _dry_run_error(workdir, overrides)
    assert len(lines) == 1
    assert lines[0].startswith(expected)


def test_snakemake_names_a_bad_aoi_file(workdir):
    bad = workdir / "config" / "demo" / "aoi" / "river.geojson"
    bad.write_text(json.dumps({"type": "Point", "coordinates": [8.0, 48.0]}))
    lines = _dry_run_error(workdir, {})
    assert lines == [
        "eopack: config/demo/aoi/river.geojson: geometry type Point is not an area "
        "(use Polygon or MultiPolygon)"
    ]


def test_unquoted_yaml_dates_are_accepted(tmp_path):
    """``[2021-03-01, 2021-03-31]`` loads as dates; eopack takes them as the ISO strings."""
    import yaml

    from eopack.config import quote_yaml_dates

    config = yaml.safe_load("date_ranges:\n  - [2021-03-01, 2021-03-31]\n")
    quote_yaml_dates(config)
    assert config["date_ranges"] == [["2021-03-01", "2021-03-31"]]


def test_config_values_from_the_command_line_get_the_schemas_types(tmp_path):
    """Snakemake reads nested ``--config`` values as strings (YAML BaseLoader): they get the
    types a config file would give them where the schema asks for one, and nothing else."""
    from snakemake.cli import parse_config

    config = base_config(tmp_path)
    given = parse_config(
        [
            "report={enabled: false}",
            "search={images_limit: 5, timeout_s: 2.5, server_filters: no, dhus_url: null}",
            "bigearthnet={enabled: true, source: 'false', hashes: null}",
            "publish={uri: null, expires_s: 3600}",
            "sources={my-bucket: {region: eu-west-1, requester_pays: true}}",
        ]
    )
    assert given["report"]["enabled"] == "false"  # what Snakemake hands over
    for key, value in given.items():
        config[key] = {**config.get(key, {}), **value}
    check_config(config, SCHEMA)
    assert config["report"]["enabled"] is False
    assert config["search"]["images_limit"] == 5
    assert config["search"]["timeout_s"] == 2.5
    assert config["search"]["server_filters"] is False
    assert config["search"]["dhus_url"] is None
    assert config["bigearthnet"]["enabled"] is True
    assert config["bigearthnet"]["source"] == "false"  # a string where a string is allowed
    assert config["bigearthnet"]["hashes"] is None
    assert config["publish"]["uri"] is None and config["publish"]["expires_s"] == 3600
    assert config["sources"]["my-bucket"]["requester_pays"] is True


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("report={enabled: maybe}", "config: report.enabled: 'maybe' is not of type 'boolean'"),
        ("search={images_limit: 2.5}", "config: search.images_limit: '2.5' is not of type"),
        ("search={images_limit: true}", "config: search.images_limit: 'true' is not of type"),
        ("search={images_limit: 0}", "config: search.images_limit: 0 is less than the minimum"),
    ],
)
def test_wrong_command_line_values_are_still_one_line_errors(tmp_path, entry, message):
    from snakemake.cli import parse_config

    config = base_config(tmp_path)
    for key, value in parse_config([entry]).items():
        config[key] = {**config.get(key, {}), **value}
    with pytest.raises(EopackError) as info:
        check_config(config, SCHEMA)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "config_args",
    [
        # The README's own examples (Configuration, Publishing, Report, Running against AWS).
        ("report={enabled: false}",),
        ("search={images_limit: 5}", "destination={uri: s3://my-bucket/eo}"),
        ("publish={uri: null}",),
        ("publish={uri: s3://my-bucket/shared, expires_s: 3600}",),
        ('date_ranges=[["2024-01-01","2024-01-31"]]',),
    ],
)
def test_config_on_the_command_line_works_as_in_a_file(workdir, config_args):
    proc = run_snakemake(
        workdir,
        "-n",
        "--cores",
        "1",
        "--configfile",
        "config/demo.yaml",
        "--config",
        "bigearthnet={enabled: false}",
        *config_args,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("eopack:")]
    assert proc.returncode == 0, errors or proc.stderr[-2000:]
    assert not (workdir / "results").exists()
