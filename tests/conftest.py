"""Shared fixtures: the demo world (real moto S3 server + real rustac STAC API on loopback)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from eopack.demo.killchain import result_hashes
from eopack.demo.s1world import DEMO_BUCKET, DemoProduct
from eopack.demo.s3server import Intercept, split_path
from eopack.demo.world import DemoWorld
from eopack.jobs import end_process
from eopack.s3 import SourceBucket, make_client
from eopack.safe.s1 import rebuild_safe

REPO = Path(__file__).resolve().parents[1]
#: The region a SigV4 request is signed for (header or presigned query).
_SIGNED_REGION = re.compile(r"Credential=[^/]+(?:/|%2F)\d{8}(?:/|%2F)([a-z0-9-]+)(?:/|%2F)s3")
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "envs", "profiles", "report")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    with DemoWorld(tmp_path_factory.mktemp("demo-state")) as started:
        yield started


@pytest.fixture(scope="module")
def rebuilt(
    world: DemoWorld, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[DemoProduct, Path]]:
    """Every demo S1 product rebuilt once from the demo bucket by ``rebuild_safe`` (the
    workflow's path): product id -> (product, SAFE folder), shared by one test module."""
    saved = dict(os.environ)
    os.environ.update(world.env())
    try:
        client = make_client("eu-central-1")
        bucket = SourceBucket(DEMO_BUCKET, "eu-central-1", requester_pays=True)
        root = tmp_path_factory.mktemp("safe")
        out = {}
        for product in world.products:
            dest = root / f"{product.product_id}.SAFE"
            rebuild_safe(client, bucket, product.prefix, product.product_id, dest, max_workers=4)
            out[product.product_id] = (product, dest)
        return out
    finally:
        os.environ.clear()
        os.environ.update(saved)


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


# --- one uninterrupted demo run, shared -------------------------------------------------------

DEMO_ARGS = ("--cores", "2", "--configfile", "config/demo.yaml")


class DemoRun(NamedTuple):
    workdir: Path
    proc: subprocess.CompletedProcess[str]
    hashes: dict[str, str]  # results/ file -> SHA-256, right after the run (tests change it)


@pytest.fixture(scope="session")
def demo_run(world: DemoWorld, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`make demo`'s workflow run once, uninterrupted, on the shared demo world."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    proc = run_snakemake(workdir, *DEMO_ARGS, env=world.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return DemoRun(workdir, proc, result_hashes(workdir))


# --- the network between a client and the local S3 server, seen and broken server-side -------


class GetLog:
    """GetObject requests the local S3 server received for one bucket, headers as sent."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.keys: list[str] = []
        self.headers: list[dict[str, str]] = []

    def matches(self, environ: dict[str, Any]) -> bool:
        bucket, key = split_path(environ)
        return environ.get("REQUEST_METHOD") == "GET" and bucket == self.bucket and bool(key)

    def __call__(self, environ: dict[str, Any]) -> None:
        if self.matches(environ):
            self.keys.append(split_path(environ)[1])
            self.headers.append(
                {
                    name[5:].lower().replace("_", "-"): str(value)
                    for name, value in environ.items()
                    if name.startswith("HTTP_")
                }
            )

    @property
    def ranges(self) -> list[str | None]:
        return [h.get("range") for h in self.headers]


class S3Net:
    """Request hooks on the demo world's S3 server, removed when the test ends.

    Tests see what a client asked for (:meth:`log`) and make the network misbehave
    (:meth:`on_get`), whatever library the client uses.
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self._remove: list[Callable[[], None]] = []

    def hook(self, fn: Callable[[dict[str, Any]], Intercept | None]) -> None:
        self._remove.append(self.server.add_hook(fn))

    def log(self, bucket: str) -> GetLog:
        log = GetLog(bucket)
        self.hook(log)
        return log

    def on_get(
        self, bucket: str, answer: Callable[[int, str, dict[str, Any]], Intercept | None]
    ) -> None:
        """Call ``answer(n, key, environ)`` for the n-th GetObject (from 1) on ``bucket``."""
        seen = GetLog(bucket)
        lock = threading.Lock()

        def hook(environ: dict[str, Any]) -> Intercept | None:
            if not seen.matches(environ):
                return None
            with lock:
                seen(environ)
                number = len(seen.keys)
            return answer(number, seen.keys[-1], environ)

        self.hook(hook)

    def in_region(self, bucket: str, region: str) -> None:
        """Answer for ``bucket`` as S3 does for a bucket in ``region``: a request signed for
        another region gets 301 ``PermanentRedirect`` with ``x-amz-bucket-region`` and no
        ``Location``; HeadBucket always names the region (moto accepts any region)."""

        def hook(environ: dict[str, Any]) -> Intercept | None:
            name, key = split_path(environ)
            if name != bucket:
                return None
            signed = _SIGNED_REGION.search(
                environ.get("HTTP_AUTHORIZATION", "") + environ.get("QUERY_STRING", "")
            )
            header = (("x-amz-bucket-region", region),)
            if signed is None or signed.group(1) != region:
                body = (
                    "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting "
                    "to access must be addressed using the specified endpoint.</Message>"
                    f"<Bucket>{bucket}</Bucket></Error>"
                ).encode()
                status = "301 Moved Permanently"
                return Intercept(
                    answer=(status, (*header, ("Content-Type", "application/xml")), body)
                )
            if not key and environ.get("REQUEST_METHOD") == "HEAD":
                return Intercept(answer=("200 OK", header, b""))
            return None

        self.hook(hook)

    def close(self) -> None:
        """Remove every hook set so far (the test may go on with new ones)."""
        while self._remove:
            self._remove.pop()()


@pytest.fixture
def s3net(world: DemoWorld) -> Iterator[S3Net]:
    net = S3Net(world.s3)
    yield net
    net.close()


# --- leaving the test process ------------------------------------------------------------------

_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit as soon as pytest has reported: the tests used obstore in this process, and its
    runtime's threads meeting the interpreter's finalization can abort the process after a
    green run (see ``eopack.jobs.end_process``)."""
    if _EXIT_STATUS and "obstore" in sys.modules:
        end_process(_EXIT_STATUS[-1])
