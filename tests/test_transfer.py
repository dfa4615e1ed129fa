"""Resumable downloads against the local requester-pays S3 server: single GETs, ranged parts,
a download killed half-way and resumed, objects that change between or during runs, errors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ResponseStreamingError

from eopack.demo.s1world import DEMO_BUCKET
from eopack.errors import EopackError
from eopack.s3 import SourceBucket, make_client
from eopack.safe.s1 import rebuild_safe
from eopack.transfer import (
    MiB,
    TransferConfig,
    download_file,
    finished_file,
    partial_path,
    resumable_bytes,
    sidecar_path,
)

REGION = "eu-central-1"
PARTS = TransferConfig(threshold=4 * MiB, part_size=MiB, part_workers=4)
BIG = 40 * MiB


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of a download."""


@dataclass
class Source:
    admin: Any  # a client of the server, not of eopack: seeds and replaces objects
    bucket: SourceBucket

    def put(self, key: str, data: bytes) -> None:
        self.admin.put_object(Bucket=self.bucket.name, Key=key, Body=data, RequestPayer="requester")


class RequestLog:
    """Records the headers of every GetObject a client sends (botocore ``before-send`` hook)."""

    def __init__(self, client: Any) -> None:
        self.headers: list[dict[str, str]] = []
        self.urls: list[str] = []
        client.meta.events.register("before-send.s3.GetObject", self)

    def __call__(self, request: Any, **_: Any) -> None:
        self.headers.append({k.lower(): _text(v) for k, v in request.headers.items()})
        self.urls.append(request.url)

    @property
    def ranges(self) -> list[str | None]:
        return [h.get("range") for h in self.headers]

    def bytes_asked(self, size: int) -> int:
        total = 0
        for spec in self.ranges:
            if spec is None:
                total += size
            else:
                first, last = spec.removeprefix("bytes=").split("-")
                total += int(last) - int(first) + 1
        return total


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def part_ranges(size: int, part: int) -> set[str]:
    return {f"bytes={a}-{min(a + part, size) - 1}" for a in range(0, size, part)}


def leftovers(dest: Path) -> list[Path]:
    return [p for p in (partial_path(dest), sidecar_path(dest)) if p.exists()]


def make_source(world: Any) -> Source:
    """A fresh requester-pays bucket, set up like ``seed_s1_bucket`` does the demo one."""
    admin = world.client()
    name = f"eopack-transfer-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    admin.put_bucket_request_payment(
        Bucket=name, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    return Source(admin, SourceBucket(name, REGION, requester_pays=True))


@pytest.fixture
def source(world, world_env) -> Source:
    return make_source(world)


@pytest.fixture(scope="module")
def big(world) -> tuple[Source, str, bytes]:
    """One 40 MiB random object, uploaded once for the tests that only read it."""
    src = make_source(world)
    data = random_bytes(BIG, seed=1)
    src.put("big/object.bin", data)
    return src, "big/object.bin", data


def test_small_file_is_one_plain_get(source, tmp_path):
    data = random_bytes(300_000, seed=2)
    source.put("small.xml", data)
    client = make_client(REGION)
    log = RequestLog(client)
    dest = tmp_path / "out" / "small.xml"
    assert download_file(client, source.bucket, "small.xml", dest) == (len(data), md5(data))
    assert dest.read_bytes() == data
    assert log.ranges == [None]
    assert log.headers[0]["x-amz-request-payer"] == "requester"
    assert log.headers[0]["if-match"].strip('"') == md5(data)
    assert not leftovers(dest)


def test_empty_object(source, tmp_path):
    source.put("empty", b"")
    dest = tmp_path / "empty"
    assert download_file(make_client(REGION), source.bucket, "empty", dest) == (0, md5(b""))
    assert dest.read_bytes() == b"" and not leftovers(dest)


def test_large_object_comes_in_ranged_parts(big, world_env, tmp_path):
    src, key, data = big
    client = make_client(REGION)
    log = RequestLog(client)
    dest = tmp_path / "big.bin"
    assert download_file(client, src.bucket, key, dest, PARTS) == (BIG, md5(data))
    assert dest.read_bytes() == data
    assert len(log.ranges) == 40
    assert set(log.ranges) == part_ranges(BIG, MiB)
    assert all(h["x-amz-request-payer"] == "requester" for h in log.headers)
    assert {h["if-match"] for h in log.headers} == {f'"{md5(data)}"'}
    assert not leftovers(dest)


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a download reads its file back to hash it."""

    def refuse(*_: Any) -> None:
        raise AssertionError("md5=False must not hash the file")

    monkeypatch.setattr("eopack.transfer.file_md5", refuse)
    monkeypatch.setattr("eopack.transfer._hash_prefix", refuse)


def test_md5_false_skips_the_md5_with_identical_bytes(big, world_env, tmp_path, monkeypatch):
    src, key, data = big
    client = make_client(REGION)
    log = RequestLog(client)
    _no_hashing(monkeypatch)
    dest = tmp_path / "big.bin"
    assert download_file(client, src.bucket, key, dest, replace(PARTS, md5=False)) == (BIG, None)
    assert dest.read_bytes() == data
    assert set(log.ranges) == part_ranges(BIG, MiB) and len(log.ranges) == 40
    assert {h["if-match"] for h in log.headers} == {f'"{md5(data)}"'}
    assert not leftovers(dest)


def test_md5_false_single_stream_and_finished_file(source, tmp_path, monkeypatch):
    data = random_bytes(3 * MiB, seed=9)
    source.put("medium.bin", data)
    dest = tmp_path / "medium.bin"
    broken = BreakingClient(make_client(REGION), MiB, Interrupted())
    no_md5 = TransferConfig(md5=False)
    with pytest.raises(Interrupted):
        download_file(broken, source.bucket, "medium.bin", dest, no_md5)
    _no_hashing(monkeypatch)  # the resumed prefix is not hashed either
    client = make_client(REGION)
    log = RequestLog(client)
    assert download_file(client, source.bucket, "medium.bin", dest, no_md5) == (len(data), None)
    assert dest.read_bytes() == data
    assert log.ranges == [f"bytes={MiB}-{3 * MiB - 1}"]
    sidecar_path(dest).write_text("{}")  # left by a kill after the rename
    assert finished_file(dest, md5=False) == (len(data), None)
    assert not leftovers(dest)


KILLED_DOWNLOAD = """
import sys, time
from pathlib import Path
from eopack.s3 import SourceBucket, make_client
from eopack.transfer import TransferConfig, download_file

bucket, key, dest = sys.argv[1:4]
client = make_client("eu-central-1")
# A slow network, so that the parent can kill this process half-way.
client.meta.events.register("before-send.s3.GetObject", lambda **_: time.sleep(0.05))
config = TransferConfig(threshold=1 << 20, part_size=1 << 20, part_workers=2)
download_file(client, SourceBucket(bucket, "eu-central-1"), key, Path(dest), config)
"""


def _wait_for_parts(proc: subprocess.Popen[bytes], sidecar: Path, wanted: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the download finished before it could be killed"
        try:
            if len(json.loads(sidecar.read_text())["done"]) >= wanted:
                return
        except (OSError, ValueError):
            pass  # not written yet
        time.sleep(0.005)
    raise AssertionError("the download made no progress")


def test_download_killed_half_way_resumes_with_identical_bytes(big, world_env, tmp_path):
    src, key, data = big
    dest = tmp_path / "big.bin"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DOWNLOAD, src.bucket.name, key, str(dest)],
        env=dict(os.environ),
    )
    try:
        _wait_for_parts(proc, sidecar_path(dest), wanted=20)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists(), "a killed download must not look complete"
    assert partial_path(dest).stat().st_size == BIG  # pre-sized
    sidecar = json.loads(sidecar_path(dest).read_text())
    assert sidecar["etag"].strip('"') == md5(data)
    assert (sidecar["size"], sidecar["part_size"]) == (BIG, MiB)
    done = set(sidecar["done"])
    assert 20 <= len(done) < 40
    assert resumable_bytes(dest) == len(done) * MiB

    client = make_client(REGION)
    log = RequestLog(client)
    assert download_file(client, src.bucket, key, dest, PARTS) == (BIG, md5(data))
    assert dest.read_bytes() == data
    missing = {f"bytes={i * MiB}-{(i + 1) * MiB - 1}" for i in range(40) if i not in done}
    assert set(log.ranges) == missing and len(log.ranges) == len(missing)
    assert log.bytes_asked(BIG) == BIG - len(done) * MiB < BIG
    assert not leftovers(dest)


class BreakingBody:
    """A response body that fails with ``error`` once ``after`` bytes went through."""

    def __init__(self, body: Any, after: int, error: BaseException) -> None:
        self.body, self.after, self.error = body, after, error

    def iter_chunks(self, size: int) -> Any:
        sent = 0
        for chunk in self.body.iter_chunks(min(size, self.after)):
            if sent >= self.after:
                raise self.error
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.body.close()


class BreakingClient:
    """A boto3 client whose first GetObject body breaks part-way."""

    def __init__(self, client: Any, after: int, error: BaseException) -> None:
        self.client, self.after, self.error, self.armed = client, after, error, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_object(self, **kwargs: Any) -> Any:
        response = self.client.get_object(**kwargs)
        if self.armed:
            self.armed = False
            response["Body"] = BreakingBody(response["Body"], self.after, self.error)
        return response


def test_interrupted_single_get_resumes_with_a_range(source, tmp_path):
    data = random_bytes(3 * MiB, seed=3)
    source.put("medium.bin", data)
    dest = tmp_path / "medium.bin"
    broken = BreakingClient(make_client(REGION), MiB, Interrupted())
    with pytest.raises(Interrupted):
        download_file(broken, source.bucket, "medium.bin", dest)
    assert not dest.exists()
    assert resumable_bytes(dest) == MiB
    assert json.loads(sidecar_path(dest).read_text())["part_size"] is None

    client = make_client(REGION)
    log = RequestLog(client)
    assert download_file(client, source.bucket, "medium.bin", dest) == (len(data), md5(data))
    assert dest.read_bytes() == data
    assert log.ranges == [f"bytes={MiB}-{3 * MiB - 1}"]
    assert log.headers[0]["if-match"].strip('"') == md5(data)


def test_broken_stream_is_resumed_in_process(source, tmp_path):
    data = random_bytes(3 * MiB, seed=4)
    source.put("medium.bin", data)
    client = make_client(REGION)
    log = RequestLog(client)
    broken = BreakingClient(client, 2 * MiB, ResponseStreamingError(error="connection reset"))
    dest = tmp_path / "medium.bin"
    assert download_file(broken, source.bucket, "medium.bin", dest) == (len(data), md5(data))
    assert dest.read_bytes() == data
    assert log.ranges == [None, f"bytes={2 * MiB}-{3 * MiB - 1}"]


def _interrupt_after(client: Any, count: int) -> None:
    """Make the ``count``-th GetObject of ``client`` fail as if the process died."""
    seen = []

    def hook(**_: Any) -> None:
        seen.append(1)
        if len(seen) == count:
            raise Interrupted

    client.meta.events.register("before-send.s3.GetObject", hook)


def test_object_replaced_between_runs_restarts_cleanly(source, tmp_path):
    old, new = random_bytes(8 * MiB, seed=5), random_bytes(8 * MiB, seed=6)
    source.put("obj.bin", old)
    dest = tmp_path / "obj.bin"
    config = TransferConfig(threshold=MiB, part_size=MiB, part_workers=1)
    client = make_client(REGION)
    _interrupt_after(client, 4)
    with pytest.raises(Interrupted):
        download_file(client, source.bucket, "obj.bin", dest, config)
    assert json.loads(sidecar_path(dest).read_text())["done"] == [0, 1, 2]
    assert not dest.exists()

    source.put("obj.bin", new)
    client = make_client(REGION)
    log = RequestLog(client)
    assert download_file(client, source.bucket, "obj.bin", dest, config) == (len(new), md5(new))
    assert dest.read_bytes() == new
    assert set(log.ranges) == part_ranges(len(new), MiB)  # every part again, none of the old
    assert not leftovers(dest)


def _replace_on(client: Any, source: Source, key: str, calls: set[int]) -> list[bytes]:
    """Replace the object (new bytes, new ETag) just before the GetObject calls numbered so."""
    versions: list[bytes] = []
    count = iter(range(1, 1000))

    def hook(**_: Any) -> None:
        if next(count) in calls:
            versions.append(random_bytes(4 * MiB, seed=100 + len(versions)))
            source.put(key, versions[-1])

    client.meta.events.register("before-send.s3.GetObject", hook)
    return versions


def test_object_changed_mid_way_restarts_once(source, tmp_path, caplog):
    source.put("obj.bin", random_bytes(4 * MiB, seed=7))
    config = TransferConfig(threshold=MiB, part_size=MiB, part_workers=1)
    client = make_client(REGION)
    versions = _replace_on(client, source, "obj.bin", calls={3})  # during the 1st attempt
    log = RequestLog(client)
    dest = tmp_path / "obj.bin"
    with caplog.at_level(logging.WARNING, logger="eopack.transfer"):
        result = download_file(client, source.bucket, "obj.bin", dest, config)
    assert result == (4 * MiB, md5(versions[0]))
    assert dest.read_bytes() == versions[0]
    assert "changed during the download; starting over" in caplog.text
    # 2 parts, the refused one (and maybe one already in flight), then all 4 parts again
    assert len(log.ranges) in (7, 8)
    assert set(log.ranges[-4:]) == part_ranges(4 * MiB, MiB)
    assert not leftovers(dest)


def test_object_changing_all_the_time_is_a_clear_error(source, tmp_path):
    source.put("obj.bin", random_bytes(4 * MiB, seed=8))
    config = TransferConfig(threshold=MiB, part_size=MiB, part_workers=1)
    client = make_client(REGION)
    _replace_on(client, source, "obj.bin", calls=set(range(2, 1000, 2)))
    dest = tmp_path / "obj.bin"
    with pytest.raises(EopackError) as info:
        download_file(client, source.bucket, "obj.bin", dest, config)
    assert str(info.value) == (
        f"s3://{source.bucket.name}/obj.bin: object changed twice during the download; "
        "try again later"
    )
    assert not dest.exists()


def test_without_requester_pays_is_refused_and_writes_nothing(source, tmp_path):
    source.put("small.xml", b"<xml/>")
    not_paying = SourceBucket(source.bucket.name, REGION, requester_pays=False)
    dest = tmp_path / "out" / "small.xml"
    with pytest.raises(EopackError) as info:
        download_file(make_client(REGION), not_paying, "small.xml", dest)
    message = str(info.value)
    assert message == (
        f"s3://{source.bucket.name}/small.xml: access denied "
        "(check AWS credentials; source buckets are requester pays)"
    )
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_missing_object_and_missing_bucket(source, tmp_path):
    client = make_client(REGION)
    with pytest.raises(EopackError, match=r"^s3://.*/nope\.bin: object not found$"):
        download_file(client, source.bucket, "nope.bin", tmp_path / "nope.bin")
    gone = SourceBucket("eopack-no-such-bucket", REGION)
    with pytest.raises(EopackError, match=r": bucket eopack-no-such-bucket does not exist$"):
        download_file(client, gone, "k", tmp_path / "k")
    assert not list(tmp_path.iterdir())


def test_rebuild_safe_resumes_from_its_staging_folder(world, world_env, tmp_path, caplog):
    product = world.products[0]
    bucket = SourceBucket(DEMO_BUCKET, REGION)
    config = TransferConfig(threshold=64 * 1024, part_size=16 * 1024)  # the TIFFs: 7 parts
    dest = tmp_path / f"{product.product_id}.SAFE"
    client = make_client(REGION)

    def third_tiff_part(request: Any, **_: Any) -> None:
        if "/measurement/" in request.url and _text(request.headers.get("Range", "")).startswith(
            "bytes=32768-"
        ):
            raise Interrupted

    client.meta.events.register("before-send.s3.GetObject", third_tiff_part)
    with pytest.raises(Interrupted):
        rebuild_safe(client, bucket, product.prefix, product.product_id, dest, 1, config)
    staging = tmp_path / f".{dest.name}.part"
    assert staging.is_dir() and not dest.exists()
    complete = {
        p.relative_to(staging).as_posix()
        for p in staging.rglob("*")
        if p.is_file() and not p.name.endswith((".part", ".part.json"))
    }
    sidecars = {p.name.removesuffix(".part.json"): p for p in staging.rglob("*.part.json")}
    assert complete and sidecars  # the interrupted TIFF (the next one may have started too)
    done_parts = {name: json.loads(p.read_text())["done"] for name, p in sidecars.items()}
    assert [0, 1] in done_parts.values()

    client = make_client(REGION)
    log = RequestLog(client)
    with caplog.at_level(logging.INFO, logger="eopack.safe.s1"):
        written = rebuild_safe(client, bucket, product.prefix, product.product_id, dest, 2, config)
    assert "(already complete)" in caplog.text
    assert "(resumed at 32768 bytes)" in caplog.text
    asked = {url.split(f"/{product.prefix}/", 1)[1] for url in log.urls}
    not_complete = {key for path, key in product.filename_map.items() if path not in complete}
    assert asked == {"productInfo.json"} | not_complete  # complete files: not fetched again
    for safe_path, key in product.filename_map.items():
        if key.endswith(".tiff"):
            done = done_parts.get(Path(safe_path).name, [])
            asked_parts = [r for u, r in zip(log.urls, log.ranges, strict=True) if key in u]
            skipped = {f"bytes={i * 16384}-{(i + 1) * 16384 - 1}" for i in done}
            assert sorted(asked_parts) == sorted(part_ranges(104304, 16384) - skipped)
    assert not staging.exists()
    files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert files == set(product.filename_map)
    for safe_path, key in product.filename_map.items():
        data = product.objects[key]
        assert (dest / safe_path).read_bytes() == data
        assert written[safe_path] == (len(data), md5(data))


def test_rebuild_safe_skips_the_md5_by_default(world, world_env, tmp_path, monkeypatch):
    """The workflow's path: verify_safe hashes every file against manifest.safe next."""
    product = world.products[0]
    dest = tmp_path / f"{product.product_id}.SAFE"
    _no_hashing(monkeypatch)
    client = make_client(REGION)
    bucket = SourceBucket(DEMO_BUCKET, REGION)
    written = rebuild_safe(client, bucket, product.prefix, product.product_id, dest, 2)
    assert written == {
        path: (len(product.objects[key]), None) for path, key in product.filename_map.items()
    }
    for safe_path, key in product.filename_map.items():
        assert (dest / safe_path).read_bytes() == product.objects[key]
