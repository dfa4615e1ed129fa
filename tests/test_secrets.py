"""No credential reaches a file, a log or a message: the whole workflow, searched through a DHuS
hub, run with recognisable fake credentials, then every byte it left is searched for them.

Canaries: the AWS secret key (the local S3 server accepts any), the hub's user name and its
password. They are looked for, in every file under the run's folder (``results/``, ``logs/``,
``.snakemake/``, ``report.html``, the zips: raw bytes), inside every base64 blob of the text files
(the report embeds its figures and pages as data URIs) and in the console of every run,
including failed ones whose exception text names the request that failed. The access key id
is not a secret (it is in every presigned URL) and is not looked for.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, run_snakemake

from eopack.demo.dhusserver import DhusServer, dhus_entries_from_demo
from eopack.demo.s1world import build_s1_products
from eopack.demo.world import DemoWorld
from eopack.search.dhus import PASS_ENV, USER_ENV

AWS_SECRET = "eopackCanaryAwsSecret0123456789abcdefXYZ"
HUB_USER = "eopack-canary-hub-user"
HUB_PASSWORD = "eopack-canary-Pa55:w0rd/+"
CANARIES = (AWS_SECRET, HUB_USER, HUB_PASSWORD)


def _forms(secret: str) -> set[bytes]:
    """The ways a secret is written: as is, URL-quoted (in a query or user info), base64."""
    raw = secret.encode()
    return {
        raw,
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
        base64.b64encode(raw),
    }


def _found(data: bytes) -> set[str]:
    return {secret for secret in CANARIES if any(form in data for form in _forms(secret))}


def _blobs(text: bytes) -> Iterator[bytes]:
    """Every base64 blob (data URIs and the like) in a text file, decoded."""
    for match in re.finditer(rb"[A-Za-z0-9+/]{40,}={0,2}", text):
        blob = match.group(0)
        try:
            yield base64.b64decode(blob + b"=" * (-len(blob) % 4))
        except ValueError:
            continue


def leaks(folder: Path) -> dict[str, set[str]]:
    """File (relative) -> the canaries found in it."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        hits = _found(data)
        if path.suffix in (".html", ".json", ".txt", ".log", ".tsv", ".js", ".csv", ""):
            for blob in _blobs(data):
                hits |= _found(blob)
        if hits:
            found[path.relative_to(folder).as_posix()] = hits
    return found


@pytest.fixture(scope="module")
def hub() -> Iterator[DhusServer]:
    with DhusServer(dhus_entries_from_demo(build_s1_products()), HUB_USER, HUB_PASSWORD) as up:
        yield up


def _env(world: DemoWorld, hub: DhusServer, password: str = HUB_PASSWORD) -> dict[str, str]:
    return {
        **world.env(),
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        USER_ENV: HUB_USER,
        PASS_ENV: password,
    }


def _dhus_checkout(workdir: Path, hub: DhusServer) -> Path:
    copy_workflow(workdir)
    (workdir / "config" / "dhus.yaml").write_text(
        # A DHuS hub serves the Sentinel-1 search only (the demo searches optical too).
        yaml.safe_dump(
            {"search": {"backend": "dhus", "dhus_url": hub.url, "collections": ["sentinel-1-grd"]}}
        ),
        encoding="utf-8",
    )
    return workdir


ARGS = ("--cores", "2", "--configfile", "config/demo.yaml", "config/dhus.yaml")


@pytest.fixture(scope="module")
def secret_run(world: DemoWorld, hub: DhusServer, tmp_path_factory: pytest.TempPathFactory):
    """The demo through a DHuS hub: search, SAFE, zips, delivery, publishing, BigEarthNet, the
    report; then a run with a wrong hub password, which fails."""
    workdir = _dhus_checkout(tmp_path_factory.mktemp("secrets"), hub)
    consoles = []
    proc = run_snakemake(workdir, *ARGS, env=_env(world, hub))
    assert proc.returncode == 0, proc.stderr[-4000:]
    consoles.append(proc.stdout + proc.stderr)
    proc = run_snakemake(workdir, *ARGS, "--report", "report.html", env=_env(world, hub))
    assert proc.returncode == 0, proc.stderr[-4000:]
    consoles.append(proc.stdout + proc.stderr)
    wrong = _env(world, hub, password=HUB_PASSWORD + "-wrong")
    proc = run_snakemake(workdir, *ARGS, "--forcerun", "search", env=wrong)
    assert proc.returncode != 0
    consoles.append(proc.stdout + proc.stderr)
    return workdir, consoles


def test_the_run_searched_the_hub_with_the_canaries(hub, secret_run):
    """The canaries were really used (otherwise finding none proves nothing)."""
    workdir, _ = secret_run
    assert hub.requests, "the workflow never searched the hub"
    assert list((workdir / "results" / "zip").glob("*.zip"))
    assert (workdir / "report.html").stat().st_size > 100_000
    assert (workdir / ".snakemake").is_dir()


def test_no_file_of_the_run_holds_a_credential(secret_run):
    workdir, _ = secret_run
    assert leaks(workdir) == {}


def test_no_console_holds_a_credential(secret_run):
    _, consoles = secret_run
    assert "authentication refused" in consoles[-1], consoles[-1][-2000:]
    for console in consoles:
        assert _found(console.encode()) == set(), console[-3000:]


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scanner itself: each form of each canary, raw and inside a data URI, is found."""
    for n, secret in enumerate(CANARIES):
        for m, form in enumerate(sorted(_forms(secret))):
            (tmp_path / f"f{n}{m}.bin").write_bytes(b"\x00head " + form + b" tail\xff")
        wrapped = base64.b64encode(b'{"secret": "' + secret.encode() + b'", "pad": "' + b"x" * 40)
        (tmp_path / f"page{n}.html").write_bytes(b'<img src="data:image/png;base64,' + wrapped)
    found = leaks(tmp_path)
    assert all(found[f"page{n}.html"] == {secret} for n, secret in enumerate(CANARIES))
    assert sum(1 for name in found if name.endswith(".bin")) == sum(
        len(_forms(s)) for s in CANARIES
    )
