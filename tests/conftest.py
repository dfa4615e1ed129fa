"""Shared fixtures: the demo world (real moto S3 server + real rustac STAC API on loopback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eopack.demo.world import DemoWorld

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "envs", "profiles", "report")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    with DemoWorld(tmp_path_factory.mktemp("demo-state")) as started:
        yield started


@pytest.fixture
def world_env(world: DemoWorld, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 and eopack at the demo servers for the duration of one test."""
    env = world.env()
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def copy_workflow(dest: Path) -> Path:
    """A checkout-like copy of the workflow (no results), to run Snakemake in isolation."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    return dest


def run_snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the venv's snakemake in ``workdir`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("AWS_PROFILE", None)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
