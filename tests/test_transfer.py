"""Resumable downloads against the local requester-pays S3 server: single GETs, ranged parts,
a download killed half-way and resumed, objects that change between or during runs, errors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from eopack.demo.s1world import DEMO_BUCKET
from eopack.demo.s3server import Intercept, split_path
from eopack.errors import EopackError
from eopack.s3 import SourceBucket, get_bytes, make_client
from eopack.safe.s1 import rebuild_safe
from eopack.transfer import (
    MiB,
    TransferConfig,
    boot_id,
    download_file,
    download_files,
    finished_file,
    partial_path,
    resumable_bytes,
    sidecar_path,
)

REGION = "eu-central-1"
PARTS = TransferConfig(threshold=4 * MiB, part_size=MiB, requests=4)
#: Cut a body after this many bytes: past one 1 MiB write, so some bytes reach the file.
CUT = MiB + 100_000
BIG = 40 * MiB


ACCESS_DENIED = "access denied (check AWS credentials; source buckets are requester pays)"


@dataclass
class Source:
    admin: Any  # a client of the server, not of eopack: seeds and replaces objects
    bucket: SourceBucket

    def put(self, key: str, data: bytes) -> None:
        self.admin.put_object(Bucket=self.bucket.name, Key=key, Body=data, RequestPayer="requester")


def bytes_asked(ranges: list[str | None], size: int) -> int:
    total = 0
    for spec in ranges:
        if spec is None:
            total += size
        else:
            first, last = spec.removeprefix("bytes=").split("-")
            total += int(last) - int(first) + 1
    return total


def resumed_from(spec: str | None, end: int) -> int:
    """The first byte of a ``bytes=N-{end}`` range (asserting its end)."""
    assert spec is not None and spec.endswith(f"-{end}"), spec
    return int(spec.removeprefix("bytes=").split("-")[0])


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


def test_small_file_is_one_plain_get(source, s3net, tmp_path):
    data = random_bytes(300_000, seed=2)
    source.put("small.xml", data)
    log = s3net.log(source.bucket.name)
    dest = tmp_path / "out" / "small.xml"
    client = make_client(REGION)
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


def test_large_object_comes_in_ranged_parts(big, world_env, s3net, tmp_path):
    src, key, data = big
    log = s3net.log(src.bucket.name)
    dest = tmp_path / "big.bin"
    assert download_file(make_client(REGION), src.bucket, key, dest, PARTS) == (BIG, md5(data))
    assert dest.read_bytes() == data
    assert len(log.ranges) == 40
    assert set(log.ranges) == part_ranges(BIG, MiB)
    assert all(h["x-amz-request-payer"] == "requester" for h in log.headers)
    assert {h["if-match"] for h in log.headers} == {f'"{md5(data)}"'}
    assert not leftovers(dest)


def test_several_files_share_the_requests_in_flight(source, s3net, tmp_path):
    """One call, many files: no more GETs at once than ``requests``, all bytes right."""
    files = {f"f{i}.bin": random_bytes((i + 1) * 700_000, seed=20 + i) for i in range(6)}
    for key, data in files.items():
        source.put(key, data)
    active, peak, lock = [0], [0], threading.Lock()

    def count(n: int, key: str, environ: dict[str, Any]) -> Intercept | None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)  # long enough for the others to pile up if they could
        with lock:
            active[0] -= 1
        return None

    s3net.on_get(source.bucket.name, count)
    config = TransferConfig(threshold=2 * MiB, part_size=MiB // 2, requests=3)
    items = [(key, tmp_path / key) for key in files]
    results = download_files(make_client(REGION), source.bucket, items, config)
    assert results == [(len(data), md5(data)) for data in files.values()]
    assert all((tmp_path / key).read_bytes() == data for key, data in files.items())
    assert peak[0] == 3


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a download reads its file back to hash it."""

    def refuse(*_: Any) -> None:
        raise AssertionError("md5=False must not hash the file")

    monkeypatch.setattr("eopack.transfer.file_md5", refuse)
    monkeypatch.setattr("eopack.transfer._hash_prefix", refuse)


def test_md5_false_skips_the_md5_with_identical_bytes(big, world_env, s3net, tmp_path, monkeypatch):
    src, key, data = big
    log = s3net.log(src.bucket.name)
    _no_hashing(monkeypatch)
    dest = tmp_path / "big.bin"
    config = replace(PARTS, md5=False)
    assert download_file(make_client(REGION), src.bucket, key, dest, config) == (BIG, None)
    assert dest.read_bytes() == data
    assert set(log.ranges) == part_ranges(BIG, MiB) and len(log.ranges) == 40
    assert {h["if-match"] for h in log.headers} == {f'"{md5(data)}"'}
    assert not leftovers(dest)


def _cut_then_refuse(n: int, key: str, environ: dict[str, Any]) -> Intercept:
    """The first body breaks after ``CUT`` bytes, later GETs are refused: a run that dies."""
    return Intercept(cut_after=CUT) if n == 1 else Intercept(refuse=True)


def test_md5_false_single_stream_and_finished_file(source, s3net, tmp_path, monkeypatch):
    data = random_bytes(3 * MiB, seed=9)
    source.put("medium.bin", data)
    dest = tmp_path / "medium.bin"
    no_md5 = TransferConfig(md5=False)
    s3net.on_get(source.bucket.name, _cut_then_refuse)
    with pytest.raises(EopackError, match=re.escape(ACCESS_DENIED)):
        download_file(make_client(REGION), source.bucket, "medium.bin", dest, no_md5)
    s3net.close()
    have = resumable_bytes(dest)
    assert MiB <= have <= CUT
    _no_hashing(monkeypatch)  # the resumed prefix is not hashed either
    log = s3net.log(source.bucket.name)
    client = make_client(REGION)
    assert download_file(client, source.bucket, "medium.bin", dest, no_md5) == (len(data), None)
    assert dest.read_bytes() == data
    assert log.ranges == [f"bytes={have}-{3 * MiB - 1}"]
    sidecar_path(dest).write_text("{}")  # left by a kill after the rename
    assert finished_file(dest, md5=False) == (len(data), None)
    assert not leftovers(dest)


KILLED_DOWNLOAD = """
import sys
from pathlib import Path
from eopack.s3 import SourceBucket, get_bytes, make_client
from eopack.transfer import TransferConfig, download_file

bucket, key, dest = sys.argv[1:4]
config = TransferConfig(threshold=1 << 20, part_size=1 << 20, requests=2)
client, source = make_client("eu-central-1"), SourceBucket(bucket, "eu-central-1")
download_file(client, source, key, Path(dest), config)
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


def _slow(n: int, key: str, environ: dict[str, Any]) -> None:
    time.sleep(0.1)  # a slow network (2 s in all), so that the test can kill the client half-way


def test_download_killed_half_way_resumes_with_identical_bytes(big, world_env, s3net, tmp_path):
    src, key, data = big
    dest = tmp_path / "big.bin"
    s3net.on_get(src.bucket.name, _slow)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DOWNLOAD, src.bucket.name, key, str(dest)],
        env=dict(os.environ),
    )
    try:
        _wait_for_parts(proc, sidecar_path(dest), wanted=20)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    s3net.close()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists(), "a killed download must not look complete"
    assert partial_path(dest).stat().st_size == BIG  # pre-sized
    sidecar = json.loads(sidecar_path(dest).read_text())
    assert sidecar["etag"].strip('"') == md5(data)
    assert (sidecar["size"], sidecar["part_size"]) == (BIG, MiB)
    done = set(sidecar["done"])
    assert 20 <= len(done) < 40
    assert resumable_bytes(dest) == len(done) * MiB

    log = s3net.log(src.bucket.name)
    assert download_file(make_client(REGION), src.bucket, key, dest, PARTS) == (BIG, md5(data))
    assert dest.read_bytes() == data
    missing = {f"bytes={i * MiB}-{(i + 1) * MiB - 1}" for i in range(40) if i not in done}
    assert set(log.ranges) == missing and len(log.ranges) == len(missing)
    assert bytes_asked(log.ranges, BIG) == BIG - len(done) * MiB < BIG
    assert not leftovers(dest)


def test_interrupted_single_get_resumes_with_a_range(source, s3net, tmp_path):
    data = random_bytes(3 * MiB, seed=3)
    source.put("medium.bin", data)
    dest = tmp_path / "medium.bin"
    s3net.on_get(source.bucket.name, _cut_then_refuse)
    with pytest.raises(EopackError, match=re.escape(ACCESS_DENIED)):
        download_file(make_client(REGION), source.bucket, "medium.bin", dest)
    s3net.close()
    assert not dest.exists()
    have = resumable_bytes(dest)
    assert MiB <= have <= CUT
    assert json.loads(sidecar_path(dest).read_text())["part_size"] is None

    log = s3net.log(source.bucket.name)
    client = make_client(REGION)
    assert download_file(client, source.bucket, "medium.bin", dest) == (len(data), md5(data))
    assert dest.read_bytes() == data
    assert log.ranges == [f"bytes={have}-{3 * MiB - 1}"]
    assert log.headers[0]["if-match"].strip('"') == md5(data)


def test_broken_stream_is_resumed_in_process(source, s3net, tmp_path):
    """A body cut mid-way goes on from the byte where it stopped, pinned to the same ETag."""
    data = random_bytes(3 * MiB, seed=4)
    source.put("medium.bin", data)
    log = s3net.log(source.bucket.name)
    s3net.on_get(source.bucket.name, lambda n, *_: Intercept(cut_after=CUT) if n == 1 else None)
    dest = tmp_path / "medium.bin"
    client = make_client(REGION)
    assert download_file(client, source.bucket, "medium.bin", dest) == (len(data), md5(data))
    assert dest.read_bytes() == data
    assert log.ranges[0] is None and len(log.ranges) == 2
    assert MiB <= resumed_from(log.ranges[1], 3 * MiB - 1) <= CUT
    assert {h["if-match"].strip('"') for h in log.headers} == {md5(data)}


def test_small_object_read_again_when_its_body_breaks(source, s3net):
    """productInfo.json and manifest.safe are read whole (get_bytes): a connection reset after
    the headers failed the product's job (IncompleteRead; seen in the fault runs)."""
    data = random_bytes(20_000, seed=12)
    source.put("productInfo.json", data)
    log = s3net.log(source.bucket.name)
    s3net.on_get(source.bucket.name, lambda n, *_: Intercept(cut_after=250) if n <= 2 else None)
    assert get_bytes(make_client(REGION), source.bucket, "productInfo.json") == data
    assert len(log.keys) == 3


def test_small_object_breaking_every_time_is_one_line(source, s3net):
    source.put("manifest.safe", random_bytes(20_000, seed=13))
    s3net.on_get(source.bucket.name, lambda *_: Intercept(cut_after=250))
    with pytest.raises(EopackError) as info:
        get_bytes(make_client(REGION), source.bucket, "manifest.safe")
    message = str(info.value)
    assert message.startswith(f"s3://{source.bucket.name}/manifest.safe: download kept failing (")
    assert "\n" not in message


def test_a_body_breaking_every_time_is_a_clear_error(source, s3net, tmp_path):
    data = random_bytes(3 * MiB, seed=10)
    source.put("medium.bin", data)
    s3net.on_get(source.bucket.name, lambda *_: Intercept(cut_after=1000))
    dest = tmp_path / "medium.bin"
    with pytest.raises(EopackError) as info:
        download_file(make_client(REGION), source.bucket, "medium.bin", dest)
    message = str(info.value)
    assert message.startswith(f"s3://{source.bucket.name}/medium.bin: download failed at byte 0: ")
    assert "\n" not in message
    assert not dest.exists() and resumable_bytes(dest) == 0


def _requests(s3net: Any, bucket: str, refuse_list: bool = False) -> list[tuple[str, str]]:
    """``(method, key or "?query")`` of every request on ``bucket``, as the server got them;
    ``refuse_list``: answer a LIST with 403, as for credentials without s3:ListBucket."""
    seen: list[tuple[str, str]] = []

    def hook(environ: dict[str, Any]) -> Intercept | None:
        name, key = split_path(environ)
        if name != bucket:
            return None
        seen.append((environ["REQUEST_METHOD"], key or "?" + environ.get("QUERY_STRING", "")))
        if not key and environ.get("HTTP_X_AMZ_REQUEST_PAYER") != "requester":
            raise AssertionError("a LIST without requester pays")
        return Intercept(refuse=True) if refuse_list and not key else None

    s3net.hook(hook)
    return seen


PRODUCT = {
    f"prod/{name}": random_bytes(size, seed=60 + i)
    for i, (name, size) in enumerate(
        [
            ("manifest.safe", 20_000),
            ("annotation/a.xml", 90_000),
            ("measurement/a.tiff", 3 * MiB),
            ("measurement/b.tiff", 5 * MiB + 7),
            ("preview/quick-look.png", 0),
        ]
    )
}
LISTED = TransferConfig(threshold=2 * MiB, part_size=MiB, requests=4)


def _put_product(source: Source) -> None:
    for key, data in PRODUCT.items():
        source.put(key, data)
    source.put("prodX/other.bin", b"not under prod/")


def test_a_listed_prefix_stands_for_a_head_per_object(source, s3net, tmp_path):
    _put_product(source)
    seen = _requests(s3net, source.bucket.name)
    items = [(key, tmp_path / key) for key in PRODUCT]
    client = make_client(REGION)
    got = download_files(client, source.bucket, items, LISTED, prefix="prod")
    assert got == [(len(data), md5(data)) for data in PRODUCT.values()]
    assert all((tmp_path / key).read_bytes() == data for key, data in PRODUCT.items())
    methods = [method for method, _ in seen]
    assert "HEAD" not in methods
    lists = [key for method, key in seen if key.startswith("?")]
    assert len(lists) == 1 and "prefix=prod%2F" in lists[0]
    assert methods.count("GET") == 1 + 2 + 3 + 6  # LIST, 2 small, 3 + 6 parts (none if empty)


def test_a_refused_listing_falls_back_to_heads(source, s3net, tmp_path, caplog):
    _put_product(source)
    seen = _requests(s3net, source.bucket.name, refuse_list=True)
    items = [(key, tmp_path / key) for key in PRODUCT]
    with caplog.at_level(logging.INFO, logger="eopack.transfer"):
        got = download_files(make_client(REGION), source.bucket, items, LISTED, prefix="prod")
    assert got == [(len(data), md5(data)) for data in PRODUCT.values()]
    assert [method for method, _ in seen].count("HEAD") == len(PRODUCT)
    assert f"s3://{source.bucket.name}/prod: no listing" in caplog.text


def test_an_object_replaced_after_the_listing_is_asked_again(source, s3net, tmp_path, caplog):
    _put_product(source)
    key = "prod/measurement/a.tiff"
    versions = _replace_on(s3net, source, key, calls={1})  # listed, then replaced at once
    client = make_client(REGION)
    config = replace(LISTED, requests=1)
    with caplog.at_level(logging.WARNING, logger="eopack.transfer"):
        got = download_files(client, source.bucket, [(key, tmp_path / "a")], config, "prod")
    assert got == [(len(versions[0]), md5(versions[0]))]
    assert (tmp_path / "a").read_bytes() == versions[0]
    assert "changed during the download; starting over" in caplog.text


def test_a_key_missing_from_the_listing_is_the_usual_error(source, tmp_path):
    _put_product(source)
    items = [("prod/manifest.safe", tmp_path / "m"), ("prod/gone.xml", tmp_path / "g")]
    with pytest.raises(EopackError, match=r"^s3://.*/prod/gone\.xml: object not found$"):
        download_files(make_client(REGION), source.bucket, items, LISTED, prefix="prod")
    assert not (tmp_path / "g").exists()


def _refuse_from(count: int) -> Any:
    """Refuse the ``count``-th GetObject and every later one: the run dies there."""
    return lambda n, *_: Intercept(refuse=True) if n >= count else None


ONE_PART_AT_A_TIME = TransferConfig(threshold=MiB, part_size=MiB, requests=1)


def _stop_after_three_parts(source: Source, s3net: Any, data: bytes, dest: Path) -> dict[str, Any]:
    """Put ``data`` as ``obj.bin``, download it to ``dest`` until the 4th part is refused;
    returns the sidecar left behind (three parts done)."""
    source.put("obj.bin", data)
    s3net.on_get(source.bucket.name, _refuse_from(4))
    with pytest.raises(EopackError, match=re.escape(ACCESS_DENIED)):
        download_file(make_client(REGION), source.bucket, "obj.bin", dest, ONE_PART_AT_A_TIME)
    s3net.close()
    sidecar = json.loads(sidecar_path(dest).read_text())
    assert sidecar["done"] == [0, 1, 2]
    return sidecar


def test_object_replaced_between_runs_restarts_cleanly(source, s3net, tmp_path):
    old, new = random_bytes(8 * MiB, seed=5), random_bytes(8 * MiB, seed=6)
    dest = tmp_path / "obj.bin"
    config = ONE_PART_AT_A_TIME
    _stop_after_three_parts(source, s3net, old, dest)
    assert not dest.exists()

    source.put("obj.bin", new)
    log = s3net.log(source.bucket.name)
    client = make_client(REGION)
    assert download_file(client, source.bucket, "obj.bin", dest, config) == (len(new), md5(new))
    assert dest.read_bytes() == new
    assert set(log.ranges) == part_ranges(len(new), MiB)  # every part again, none of the old
    assert not leftovers(dest)


def test_a_sidecar_of_an_earlier_boot_is_not_trusted(source, s3net, tmp_path, caplog):
    """Parts are recorded unsynced: after the machine restarted, their bytes may be lost."""
    data = random_bytes(8 * MiB, seed=11)
    dest = tmp_path / "obj.bin"
    config = ONE_PART_AT_A_TIME
    sidecar = _stop_after_three_parts(source, s3net, data, dest)
    assert sidecar["boot"] == boot_id()
    assert resumable_bytes(dest) == 3 * MiB
    sidecar_path(dest).write_text(json.dumps({**sidecar, "boot": "an-earlier-boot"}))
    assert resumable_bytes(dest) == 0

    log = s3net.log(source.bucket.name)
    client = make_client(REGION)
    with caplog.at_level(logging.INFO, logger="eopack.transfer"):
        result = download_file(client, source.bucket, "obj.bin", dest, config)
    assert result == (len(data), md5(data)) and dest.read_bytes() == data
    assert set(log.ranges) == part_ranges(len(data), MiB)  # every part again
    assert "of an earlier boot or format; starting over" in caplog.text


def _replace_on(s3net: Any, source: Source, key: str, calls: set[int]) -> list[bytes]:
    """Replace the object (new bytes, new ETag) just before the GetObject calls numbered so."""
    versions: list[bytes] = []

    def replace_object(n: int, *_: Any) -> None:
        if n in calls:
            versions.append(random_bytes(4 * MiB, seed=100 + len(versions)))
            source.put(key, versions[-1])

    s3net.on_get(source.bucket.name, replace_object)
    return versions


def test_object_changed_mid_way_restarts_once(source, s3net, tmp_path, caplog):
    source.put("obj.bin", random_bytes(4 * MiB, seed=7))
    config = TransferConfig(threshold=MiB, part_size=MiB, requests=1)
    versions = _replace_on(s3net, source, "obj.bin", calls={3})  # during the 1st attempt
    log = s3net.log(source.bucket.name)
    dest = tmp_path / "obj.bin"
    client = make_client(REGION)
    with caplog.at_level(logging.WARNING, logger="eopack.transfer"):
        result = download_file(client, source.bucket, "obj.bin", dest, config)
    assert result == (4 * MiB, md5(versions[0]))
    assert dest.read_bytes() == versions[0]
    assert "changed during the download; starting over" in caplog.text
    # 2 parts, the refused one (and maybe one already in flight), then all 4 parts again
    assert len(log.ranges) in (7, 8)
    assert set(log.ranges[-4:]) == part_ranges(4 * MiB, MiB)
    assert not leftovers(dest)


def test_object_changing_all_the_time_is_a_clear_error(source, s3net, tmp_path):
    source.put("obj.bin", random_bytes(4 * MiB, seed=8))
    config = TransferConfig(threshold=MiB, part_size=MiB, requests=1)
    _replace_on(s3net, source, "obj.bin", calls=set(range(2, 1000, 2)))
    dest = tmp_path / "obj.bin"
    with pytest.raises(EopackError) as info:
        download_file(make_client(REGION), source.bucket, "obj.bin", dest, config)
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
    assert message == f"s3://{source.bucket.name}/small.xml: {ACCESS_DENIED}"
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


def test_rebuild_safe_resumes_from_its_staging_folder(world, world_env, s3net, tmp_path, caplog):
    product = world.products[0]
    bucket = SourceBucket(DEMO_BUCKET, REGION)
    config = TransferConfig(threshold=64 * 1024, part_size=16 * 1024)  # the TIFFs: 7 parts
    dest = tmp_path / f"{product.product_id}.SAFE"
    prefix = f"{product.prefix}/"

    def third_tiff_part(n: int, key: str, environ: dict[str, Any]) -> Intercept | None:
        third = environ.get("HTTP_RANGE", "").startswith("bytes=32768-")
        if key.startswith(prefix) and "/measurement/" in key and third:
            return Intercept(refuse=True)
        return None

    s3net.on_get(DEMO_BUCKET, third_tiff_part)
    client = make_client(REGION)
    with pytest.raises(EopackError, match=re.escape(ACCESS_DENIED)):
        rebuild_safe(client, bucket, product.prefix, product.product_id, dest, 1, config)
    s3net.close()
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
    resumed = {name: len(done) * 16384 for name, done in done_parts.items() if done}
    assert resumed  # parts of the interrupted TIFF (others may have started too)

    log = s3net.log(DEMO_BUCKET)
    client = make_client(REGION)
    with caplog.at_level(logging.INFO, logger="eopack.safe"):
        written = rebuild_safe(client, bucket, product.prefix, product.product_id, dest, 2, config)
    assert "(already complete)" in caplog.text
    for name, nbytes in resumed.items():
        assert f"{name} <- " in caplog.text and f"(resumed at {nbytes} bytes)" in caplog.text
    asked = {key.removeprefix(prefix) for key in log.keys if key.startswith(prefix)}
    not_complete = {key for path, key in product.filename_map.items() if path not in complete}
    assert asked == {"productInfo.json"} | not_complete  # complete files: not fetched again
    for safe_path, key in product.filename_map.items():
        if key.endswith(".tiff"):
            done = done_parts.get(Path(safe_path).name, [])
            asked_parts = [r for k, r in zip(log.keys, log.ranges, strict=True) if k.endswith(key)]
            skipped = {f"bytes={i * 16384}-{(i + 1) * 16384 - 1}" for i in done}
            # A set: under load a request may be retried by the client (the same range again).
            assert set(asked_parts) == part_ranges(104304, 16384) - skipped
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


# A bucket in another region than configured
# --------------------------------------------------------------------------------------------


def test_a_bucket_in_another_region_is_found_and_read(source, s3net, tmp_path, caplog):
    """S3 answers 301 without Location for a request signed for the wrong region, which obstore
    does not follow: the bucket's region is asked first (HeadBucket) and used, in one line."""
    data = random_bytes(300_000, seed=31)
    source.put("far.bin", data)
    s3net.in_region(source.bucket.name, "us-west-2")
    dest = tmp_path / "far.bin"
    with caplog.at_level(logging.WARNING):
        assert download_file(make_client(REGION), source.bucket, "far.bin", dest)[0] == len(data)
    assert dest.read_bytes() == data
    said = [r.getMessage() for r in caplog.records if "us-west-2" in r.getMessage()]
    assert said == [
        f"s3://{source.bucket.name}: the bucket is in us-west-2, not {REGION} as configured; "
        "using us-west-2"
    ]


def test_a_redirect_that_cannot_be_followed_is_one_line(source, s3net, tmp_path, monkeypatch):
    """Should the region still be wrong (HeadBucket refused), the error names bucket and region."""
    import eopack.transfer

    source.put("far.bin", b"x" * 1000)
    s3net.in_region(source.bucket.name, "us-west-2")
    monkeypatch.setattr(eopack.transfer, "bucket_region", lambda *_: None)
    with pytest.raises(EopackError) as info:
        download_file(make_client(REGION), source.bucket, "far.bin", tmp_path / "far.bin")
    assert str(info.value) == (
        f"s3://{source.bucket.name}/far.bin: S3 redirects to another region than {REGION}: "
        f"set the bucket's region in the config (sources: {source.bucket.name}: region)"
    )
    assert not (tmp_path / "far.bin").exists()
