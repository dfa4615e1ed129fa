"""The software environments stay in step with pyproject.toml.

Neither can be built here (no container registry, no conda channel), so they are checked as
text: the container's lock file (``make lock``) pins every dependency within pyproject's
bounds and the Dockerfile installs nothing else; envs/eopack.yaml lists the same packages
under their conda-forge names with the same bounds, for the container's Python.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock.txt"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
#: pyproject name -> conda-forge name, where they differ.
CONDA_NAMES = {
    "isal": "python-isal",
    "matplotlib": "matplotlib-base",
    "snakemake": "snakemake-minimal",
}
#: The machines a Batch job may land on (x86_64 and Graviton instances).
MACHINES = ("x86_64", "aarch64")


def lock_python() -> str:
    """The Python the lock is made for (the Makefile's LOCK_PYTHON)."""
    found = re.search(r"^LOCK_PYTHON\s*:?=\s*(\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert found, "Makefile: LOCK_PYTHON is not set"
    return found.group(1)


def image_python() -> str:
    """The Python of the Dockerfile's base image (python:X.Y-...)."""
    found = re.search(r"^FROM python:(\d+\.\d+)[-\w.]*\s*$", dockerfile(), re.M)
    assert found, "Dockerfile: the base image is not python:X.Y-..."
    return found.group(1)


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def requirements(extra: str | None = None) -> list[Requirement]:
    """pyproject's dependencies (or one extra's), the package's own extras left out."""
    project = PYPROJECT["project"]
    lines = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [r for r in map(Requirement, lines) if canonicalize_name(r.name) != "eopack"]


def pins(machine: str) -> dict[str, Version]:
    """name -> pinned version of every lock line that applies to the image on ``machine``."""
    python = lock_python()
    env = {"python_version": python, "python_full_version": f"{python}.0",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": machine,
           "os_name": "posix", "implementation_name": "cpython"}  # fmt: skip
    found: dict[str, Version] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line or line[0] in " #":
            continue
        spec, _, marker = line.rstrip(" \\").partition(";")
        name, sep, version = spec.strip().partition("==")
        assert sep, f"requirements.lock.txt: {line!r} is not an exact pin"
        if marker.strip() and not Marker(marker.strip()).evaluate(env):
            continue
        assert canonicalize_name(name) not in found, f"{name} is pinned twice for {machine}"
        found[canonicalize_name(name)] = Version(version)
    return found


@pytest.mark.parametrize("machine", MACHINES)
def test_lock_pins_every_dependency_within_pyproject_bounds(machine):
    locked = pins(machine)
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    for req in [*requirements(), *requirements("aws-batch"), *build]:
        name = canonicalize_name(req.name)
        assert name in locked, f"requirements.lock.txt: {req.name} is not pinned (make lock)"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock.txt: {req.name}=={locked[name]} is outside {req} (make lock)"
        )


def test_every_pin_has_hashes():
    # pip --require-hashes refuses the whole file otherwise.
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    entries: list[list[str]] = []
    for line in lines:
        if line.startswith("#"):
            continue
        if line.startswith(" "):
            entries[-1].append(line)
        elif line:
            entries.append([line])
    assert len(entries) > 50
    for entry in entries:
        hashes = [line for line in entry[1:] if line.strip().startswith("--hash=sha256:")]
        assert hashes, f"requirements.lock.txt: no hash for {entry[0].split()[0]}"


def test_lock_is_made_for_the_images_python():
    assert image_python() == lock_python()
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{lock_python()}.0")
    header = LOCK.read_text(encoding="utf-8").splitlines()[:3]
    assert "#    make lock" in header, "requirements.lock.txt: regenerate it with `make lock`"


def test_image_installs_the_locked_pins_and_nothing_else():
    runs = [
        " ".join(cmd.split())
        for cmd in re.findall(r"^RUN ((?:.*\\\n)*.*)$", dockerfile(), re.M)
        if "pip install" in cmd
    ]
    runs = [re.sub(r"\s*\\\s*", " ", cmd) for cmd in runs]
    assert runs == [
        "pip install --require-hashes --no-deps -r requirements.lock.txt",
        "pip install --no-deps --no-build-isolation . && pip check",
    ]
    # The lock goes in before the checkout (a layer that changes only with the pins).
    copies = re.findall(r"^COPY (.*)$", dockerfile(), re.M)
    assert copies == ["requirements.lock.txt ./", ". ."]


def test_image_leaves_out_local_state_and_secrets():
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".env", ".git", ".venv", ".snakemake", "results", "resources", "logs"} <= ignored


# --- envs/eopack.yaml --------------------------------------------------------------------


def conda_env() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet], str]:
    """(conda packages, pip packages) -> bounds, and the Python it pins."""
    env = yaml.safe_load((REPO / "envs" / "eopack.yaml").read_text(encoding="utf-8"))
    assert env["channels"][0] == "conda-forge"
    conda: dict[str, SpecifierSet] = {}
    pip: dict[str, SpecifierSet] = {}
    python = ""
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line != "..":  # eopack itself, from the checkout
                    req = Requirement(line)
                    pip[canonicalize_name(req.name)] = req.specifier
            continue
        name, spec = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
        if name == "python":
            python = spec.removeprefix("=")
        elif name != "pip":
            conda[name] = SpecifierSet(spec)
    return conda, pip, python


def test_conda_env_has_pyprojects_packages_and_bounds():
    conda, pip, python = conda_env()
    assert python == lock_python() == image_python()
    assert not set(conda) & set(pip), "envs/eopack.yaml: a package is both conda and pip"
    expected = {CONDA_NAMES.get(canonicalize_name(r.name), canonicalize_name(r.name)): r.specifier
                for r in requirements()}  # fmt: skip
    listed = {**conda, **pip}
    assert sorted(set(expected) - set(listed)) == [], "envs/eopack.yaml lacks these"
    assert sorted(set(listed) - set(expected)) == [], "envs/eopack.yaml: not in pyproject.toml"
    differ = {name: (str(listed[name]), str(spec)) for name, spec in expected.items()
              if listed[name] != spec}  # fmt: skip
    assert differ == {}, "envs/eopack.yaml bounds (left) differ from pyproject.toml's (right)"


def test_container_pins_fit_the_conda_envs_bounds():
    # Both environments run the same rules: the image's versions are ones conda may pick.
    conda, pip, _ = conda_env()
    by_conda_name = {CONDA_NAMES.get(name, name): name for name in pins("x86_64")}
    locked = pins("x86_64")
    for name, spec in {**conda, **pip}.items():
        version = locked[by_conda_name[name]]
        assert spec.contains(version, prereleases=True), f"{name}=={version} is outside {spec}"
