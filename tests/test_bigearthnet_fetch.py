"""Fetching the BigEarthNet release: a real loopback HTTP server with ranges and injected faults
(dropped connections, no range support, a file replaced between runs, stalls, 5xx, 404), the
demo S3 server, and local paths. Resumes must end with identical bytes and md5."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from eopack.bigearthnet.fetch import (
    ZENODO_FILES,
    fetch,
    load_hashes,
    parse_hashes,
    redact_uri,
    source_uri,
)
from eopack.bigearthnet.source import fetch_release_file
from eopack.demo.s3server import Intercept
from eopack.demo.service import WsgiService
from eopack.errors import EopackError
from eopack.stamps import stamp_path
from eopack.transfer import partial_path, resumable_bytes, sidecar_path

KiB = 1024
MiB = 1024 * KiB
SECRET = "s3cr3t-token"
FAST = {"timeout": 5.0, "retries": 3, "backoff": 0.0}


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(dest: Path) -> list[Path]:
    """Everything a download keeps next to its destination."""
    return sorted(dest.parent.glob(f"*{dest.name}*"))


# --- the test server -------------------------------------------------------------------------


@dataclass
class Served:
    """One file and the faults to inject when serving it."""

    data: bytes
    etag: str = ""
    last_modified: str = "Wed, 27 Mar 2024 10:00:00 GMT"
    ranges: bool = True  # False: Range is ignored, every answer is a 200 with the whole file
    drops: list[int] = field(default_factory=list)  # next responses break at these offsets
    statuses: list[int] = field(default_factory=list)  # next requests get these error statuses
    stall_headers: float = 0.0  # seconds before answering (until the server stops)
    stall_at: int | None = None  # the body stops at this offset (until the server stops)

    def __post_init__(self) -> None:
        self.etag = self.etag or f'"{md5(self.data)}"'

    def replace(self, data: bytes) -> None:
        """A new version of the file: new bytes, new validators."""
        self.data, self.etag = data, f'"{md5(data)}"'
        self.last_modified = "Thu, 28 Mar 2024 10:00:00 GMT"


class FileServer(WsgiService):
    """``/files/<name>`` with Range/If-Range, ETag, Last-Modified, and a log of the requests."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.log: list[dict[str, Any]] = []
        self.release = threading.Event()  # set at stop: stalled handlers finish
        self._lock = threading.Lock()

    def start(self) -> FileServer:
        self._serve(self.app, 0)
        return self

    def stop(self) -> None:
        self.release.set()
        super().stop()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self._server.server_port}/files"

    def url(self, name: str) -> str:
        """The address as Zenodo spells it, plus a secret the logs must never show."""
        return f"{self.base}/{name}?download=1&token={SECRET}"

    def put(self, name: str, data: bytes, **faults: Any) -> Served:
        self.files[name] = Served(data, **faults)
        return self.files[name]

    def requests_for(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry["name"] == name]

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        name = environ["PATH_INFO"].removeprefix("/files/")
        entry = {
            "name": name,
            "range": environ.get("HTTP_RANGE"),
            "if_range": environ.get("HTTP_IF_RANGE"),
            "query": environ.get("QUERY_STRING", ""),
        }
        with self._lock:
            self.log.append(entry)
        served = self.files.get(name)
        if served is None or served.statuses:
            entry["status"] = 404 if served is None else served.statuses.pop(0)
            start_response(f"{entry['status']} ERROR", [("Content-Length", "5")])
            return [b"error"]
        if served.stall_headers:
            self.release.wait(served.stall_headers)
        data, start, status = served.data, 0, "200 OK"
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("ETag", served.etag),
            ("Last-Modified", served.last_modified),
            ("Accept-Ranges", "bytes" if served.ranges else "none"),
        ]
        wanted = re.fullmatch(r"bytes=(\d+)-", entry["range"] or "")
        if_range = entry["if_range"]
        if wanted and served.ranges and if_range in (None, served.etag, served.last_modified):
            start = int(wanted[1])
            if start >= len(data):
                entry["status"] = 416
                start_response(
                    "416 Range Not Satisfiable", [("Content-Range", f"bytes */{len(data)}")]
                )
                return []
            status = "206 Partial Content"
            headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
        entry["status"] = int(status[:3])
        body = data[start:]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        drop = served.drops.pop(0) if served.drops else None
        return self._body(environ, body, start, drop, served.stall_at)

    def _body(
        self, environ: dict[str, Any], body: bytes, start: int, drop: int | None, stall: int | None
    ) -> Iterator[bytes]:
        stop = len(body)
        for cut in (drop, stall):
            if cut is not None:
                stop = min(stop, max(cut - start, 0))
        for offset in range(0, stop, 64 * KiB):
            yield body[offset : min(offset + 64 * KiB, stop)]
        if stop == len(body):
            return
        if drop is not None:  # the bytes so far are on the wire; then FIN, short of the length
            environ["werkzeug.socket"].shutdown(socket.SHUT_WR)
        else:
            self.release.wait(10)


@pytest.fixture(scope="module")
def file_server() -> Iterator[FileServer]:
    """One server for the module: werkzeug takes up to 0.5 s to shut down."""
    with FileServer() as started:
        yield started


@pytest.fixture
def server(file_server: FileServer) -> FileServer:
    """The server with no files and an empty request log."""
    file_server.files.clear()
    file_server.log.clear()
    return file_server


def eopack_log(caplog: pytest.LogCaptureFixture) -> str:
    """Our log lines only (the test server's access log shows the token, as servers do)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("eopack"))


@pytest.fixture
def no_secrets(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture INFO logs of the fetch module; at the end, the token must appear nowhere."""
    caplog.set_level(logging.INFO, logger="eopack.bigearthnet.fetch")
    yield caplog
    assert SECRET not in eopack_log(caplog)


# --- hashes and addresses --------------------------------------------------------------------


def test_parse_hashes_of_the_published_file():
    hashes = load_hashes(REPO / "tests/fixtures/bigearthnet/hashes.txt")
    assert len(hashes) == 8
    assert hashes["BigEarthNet-S2.tar.zst"] == "2245ed2d1a93f6ce637d839bc856396e"
    assert hashes["Reference_Maps.tar.zst"] == "95d85a222fa983faddcac51a19f28917"
    assert hashes["metadata_for_patches_with_snow_cloud_or_shadow.parquet"] == (
        "fe31856f4986d446c9468b59d6387c91"
    )


def test_parse_hashes_names_a_bad_line():
    text = "md5 hashes:\n\n" + "A" * 32 + "  x.tar\nnot a hash line\n"
    assert parse_hashes(text.rsplit("not", 1)[0]) == {"x.tar": "a" * 32}
    with pytest.raises(EopackError, match=r"hashes\.txt: line 4: 'not a hash line'"):
        parse_hashes(text, "hashes.txt")
    with pytest.raises(EopackError, match="two md5s"):
        parse_hashes("a" * 32 + "  x\n" + "b" * 32 + "  x\n")
    with pytest.raises(EopackError, match="no '<md5>  <file name>' lines"):
        parse_hashes("md5 hashes:\n\n")


def test_source_uri_for_each_kind_of_base(tmp_path):
    assert source_uri(ZENODO_FILES, "BigEarthNet-S2.tar.zst") == (
        "https://zenodo.org/records/10891137/files/BigEarthNet-S2.tar.zst?download=1"
    )
    assert source_uri("https://mirror.example/ben/", "metadata.parquet") == (
        "https://mirror.example/ben/metadata.parquet"
    )
    assert source_uri("https://mirror.example/ben?sig=x", "a.tar.zst") == (
        "https://mirror.example/ben/a.tar.zst?sig=x"
    )
    assert source_uri("s3://bucket/ben/v2/", "a.tar.zst") == "s3://bucket/ben/v2/a.tar.zst"
    assert source_uri("s3://bucket", "a.tar.zst") == "s3://bucket/a.tar.zst"
    assert source_uri(str(tmp_path), "a.tar.zst") == str(tmp_path / "a.tar.zst")
    assert source_uri(f"file://{tmp_path}", "a.tar.zst") == str(tmp_path / "a.tar.zst")
    for bad_name in ("", "../a", "a/b"):
        with pytest.raises(EopackError, match="not a release file name"):
            source_uri(ZENODO_FILES, bad_name)
    with pytest.raises(EopackError, match="unsupported source"):
        source_uri("ftp://host/ben", "a.tar.zst")


def test_redact_uri_keeps_only_download_1():
    assert redact_uri(f"https://u:{SECRET}@zenodo.org/r/a?token={SECRET}&download=1#x") == (
        "https://zenodo.org/r/a?download=1"
    )
    assert redact_uri(f"http://127.0.0.1:8080/a?X-Amz-Signature={SECRET}") == (
        "http://127.0.0.1:8080/a"
    )
    assert redact_uri("s3://bucket/key") == "s3://bucket/key"


# --- HTTP ------------------------------------------------------------------------------------


def test_download_logs_progress_and_stamps_the_file(server, tmp_path, no_secrets):
    data = random_bytes(3 * MiB + 123, seed=1)
    server.put("BigEarthNet-S1.tar.zst", data)
    dest = tmp_path / "resources" / "BigEarthNet-S1.tar.zst"
    result = fetch(server.url(dest.name), dest, md5(data), progress_step=25, **FAST)
    assert (result.path, result.size, result.md5, result.action) == (
        dest,
        len(data),
        md5(data),
        "downloaded",
    )
    assert dest.read_bytes() == data
    assert leftovers(dest) == [dest, stamp_path(dest, "md5")]
    stamp = json.loads(stamp_path(dest, "md5").read_text())
    assert (stamp["md5"], stamp["size"]) == (md5(data), len(data))
    assert [e["range"] for e in server.log] == [None]
    assert server.log[0]["query"] == f"download=1&token={SECRET}"
    text = eopack_log(no_secrets)
    assert "download=1" in text
    percents = [int(p) for p in re.findall(r"download=1: (\d+)% \(\d\.\d MB of 3\.1 MB\)", text)]
    assert percents[-1] == 100
    assert len({p // 25 for p in percents}) == len(percents)  # one line per 25 % step at most


def test_dropped_connection_resumes_with_a_range_in_the_same_run(server, tmp_path, no_secrets):
    data = random_bytes(2 * MiB, seed=2)
    served = server.put("a.tar.zst", data, drops=[700_000, 1_500_000])
    dest = tmp_path / "a.tar.zst"
    result = fetch(server.url(dest.name), dest, md5(data), **FAST)
    assert dest.read_bytes() == data
    assert result.md5 == md5(data)
    log = server.requests_for("a.tar.zst")
    assert [(e["range"], e["if_range"], e["status"]) for e in log] == [
        (None, None, 200),
        ("bytes=700000-", served.etag, 206),
        ("bytes=1500000-", served.etag, 206),
    ]
    assert "connection broken mid-download at byte 700000; retry 1 of 3" in eopack_log(no_secrets)
    assert leftovers(dest) == [dest, stamp_path(dest, "md5")]


def test_interrupted_run_is_resumed_by_the_next_run(server, tmp_path, no_secrets):
    data = random_bytes(2 * MiB, seed=3)
    served = server.put("a.tar.zst", data, drops=[MiB + 5])
    dest = tmp_path / "a.tar.zst"
    with pytest.raises(EopackError, match=r"1048581 bytes kept for the next run"):
        fetch(server.url(dest.name), dest, md5(data), timeout=5, retries=0)
    assert not dest.exists()
    assert partial_path(dest).read_bytes() == data[: MiB + 5]
    sidecar = json.loads(sidecar_path(dest).read_text())
    assert (sidecar["validator"], sidecar["size"]) == (served.etag, len(data))
    assert SECRET not in sidecar_path(dest).read_text()

    result = fetch(server.url(dest.name), dest, md5(data), **FAST)
    assert (result.resumed_from, result.md5) == (MiB + 5, md5(data))
    assert dest.read_bytes() == data
    assert server.log[-1]["range"] == f"bytes={MiB + 5}-"
    assert server.log[-1]["status"] == 206
    assert "resuming at 1.0 MB" in eopack_log(no_secrets)


def test_complete_part_from_a_killed_run_is_only_verified(server, tmp_path):
    """A kill between the last byte and the rename: no byte is fetched again."""
    data = random_bytes(MiB, seed=15)
    server.put("a.tar.zst", data, drops=[300_000])
    dest = tmp_path / "a.tar.zst"
    with pytest.raises(EopackError, match="connection broken"):
        fetch(server.url(dest.name), dest, md5(data), timeout=5, retries=0)
    with partial_path(dest).open("ab") as part:
        part.write(data[300_000:])
    result = fetch(server.url(dest.name), dest, md5(data), **FAST)
    assert (result.resumed_from, result.md5) == (len(data), md5(data))
    assert len(server.log) == 1

    # the same without a known size (a server without Content-Length): a 416 says "complete"
    dest.unlink()
    stamp_path(dest, "md5").unlink()
    partial_path(dest).write_bytes(data)
    assert not sidecar_path(dest).exists()
    served = server.files["a.tar.zst"]
    sidecar = {"kind": "eopack.bigearthnet.fetch/1", "validator": served.etag, "size": None}
    sidecar_path(dest).write_text(json.dumps(sidecar))
    assert fetch(server.url(dest.name), dest, md5(data), **FAST).md5 == md5(data)
    assert (server.log[-1]["range"], server.log[-1]["status"]) == (f"bytes={len(data)}-", 416)
    assert leftovers(dest) == [dest, stamp_path(dest, "md5")]


def test_server_ignoring_ranges_restarts_from_zero(server, tmp_path, no_secrets):
    data = random_bytes(MiB, seed=4)
    server.put("a.tar.zst", data, ranges=False, drops=[600_000])
    dest = tmp_path / "a.tar.zst"
    result = fetch(server.url(dest.name), dest, md5(data), **FAST)
    assert dest.read_bytes() == data
    assert result.md5 == md5(data)
    assert [(e["range"], e["status"]) for e in server.log] == [
        (None, 200),
        ("bytes=600000-", 200),
    ]
    assert "the server sent the whole file" in eopack_log(no_secrets)


def test_file_replaced_between_runs_is_fetched_whole(server, tmp_path):
    old, new = random_bytes(MiB, seed=5), random_bytes(MiB + 77, seed=6)
    served = server.put("a.tar.zst", old, drops=[400_000])
    dest = tmp_path / "a.tar.zst"
    with pytest.raises(EopackError, match="connection broken"):
        fetch(server.url(dest.name), dest, md5(old), timeout=5, retries=0)
    old_etag = served.etag
    served.replace(new)
    result = fetch(server.url(dest.name), dest, md5(new), **FAST)
    assert dest.read_bytes() == new
    assert (result.md5, result.resumed_from) == (md5(new), 400_000)
    last = server.log[-1]
    assert (last["range"], last["if_range"], last["status"]) == ("bytes=400000-", old_etag, 200)


def test_md5_mismatch_leaves_nothing_behind(server, tmp_path):
    data = random_bytes(MiB, seed=7)
    server.put("metadata.parquet", data)
    dest = tmp_path / "metadata.parquet"
    wrong = "0" * 32
    expected = rf"metadata\.parquet: md5 mismatch: expected {wrong}, got {md5(data)}"
    with pytest.raises(EopackError, match=expected) as caught:
        fetch(server.url(dest.name), dest, wrong, **FAST)
    assert SECRET not in str(caught.value)
    assert leftovers(dest) == []
    fetch(server.url(dest.name), dest, md5(data), **FAST)  # the next run starts afresh
    assert [e["range"] for e in server.log] == [None, None]


def test_etag_with_another_md5_fails_before_the_body(server, tmp_path):
    """Zenodo's ETag is "md5:<hex>": a wrong configured hash shows before 59 GB are read."""
    data = random_bytes(MiB, seed=8)
    server.put("a.tar.zst", data, etag=f'"md5:{md5(data)}"')
    dest = tmp_path / "a.tar.zst"
    with pytest.raises(EopackError, match=rf"server gives md5 {md5(data)} \(ETag of"):
        fetch(server.url(dest.name), dest, "f" * 32, **FAST)
    assert leftovers(dest) == []
    assert fetch(server.url(dest.name), dest, md5(data), **FAST).md5 == md5(data)


def test_missing_file_names_the_url(server, tmp_path):
    dest = tmp_path / "nope.tar.zst"
    url = server.url(dest.name)
    with pytest.raises(EopackError) as caught:
        fetch(url, dest, None, **FAST)
    assert str(caught.value) == f"{server.base}/nope.tar.zst?download=1: not found (HTTP 404)"
    assert leftovers(dest) == []
    assert len(server.log) == 1  # a 404 is not retried


def test_server_errors_are_retried(server, tmp_path, no_secrets):
    data = random_bytes(100_000, seed=9)
    server.put("a.parquet", data, statuses=[503, 500])
    dest = tmp_path / "a.parquet"
    assert fetch(server.url(dest.name), dest, md5(data), **FAST).md5 == md5(data)
    assert [e["status"] for e in server.log] == [503, 500, 200]
    assert "HTTP 503 at byte 0; retry 1 of 3" in eopack_log(no_secrets)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            {"stall_headers": 10.0},
            r"no response within 0\.3 s \(timed out\) \(gave up after 2 attempts\)",
        ),
        (
            {"stall_at": 300_000},  # the retry's 206 stalls before its headers are out
            r"no response within 0\.3 s \(timed out\) .*300000 bytes kept for the next run",
        ),
    ],
    ids=["before-headers", "mid-body"],
)
def test_timeouts_are_clear_errors(server, tmp_path, faults, message, no_secrets):
    data = random_bytes(MiB, seed=10)
    server.put("a.tar.zst", data, **faults)
    dest = tmp_path / "a.tar.zst"
    started = time.monotonic()
    with pytest.raises(EopackError, match=message):
        fetch(server.url(dest.name), dest, md5(data), timeout=0.3, retries=1, backoff=0)
    assert time.monotonic() - started < 3
    assert len(server.log) == 2
    assert not dest.exists()
    if "stall_at" in faults:
        warning = "no data for 0.3 s (download stalled, timed out) at byte 300000; retry 1 of 1"
        assert warning in eopack_log(no_secrets)
        assert server.log[1]["range"] == "bytes=300000-"


def test_connection_refused_is_retried_then_clear(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/files/a?download=1&token={SECRET}"
    with pytest.raises(EopackError) as caught:
        fetch(url, tmp_path / "a", None, timeout=1, retries=1, backoff=0)
    message = str(caught.value)
    assert message.startswith(f"http://127.0.0.1:{port}/files/a?download=1: connection failed")
    assert "gave up after 2 attempts" in message
    assert SECRET not in message


def test_a_fetched_file_needs_no_request(server, tmp_path):
    data = random_bytes(MiB, seed=11)
    server.put("a.tar.zst", data)
    dest = tmp_path / "a.tar.zst"
    fetch(server.url(dest.name), dest, md5(data), **FAST)
    assert len(server.log) == 1

    again = fetch(server.url(dest.name), dest, md5(data), **FAST)
    assert (again.action, again.md5, again.size) == ("present", md5(data), len(data))
    stamp_path(dest, "md5").unlink()  # no stamp: hashed once, stamped again, still no request
    assert fetch(server.url(dest.name), dest, md5(data), **FAST).action == "present"
    assert stamp_path(dest, "md5").exists()
    assert fetch(server.url(dest.name), dest, None, **FAST).md5 == md5(data)
    assert len(server.log) == 1

    dest.write_bytes(b"x" * len(data))  # same size, new mtime: the stamp no longer vouches
    os.utime(dest, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fetch(server.url(dest.name), dest, md5(data), **FAST).action == "downloaded"
    assert dest.read_bytes() == data
    assert len(server.log) == 2


def test_bad_arguments(tmp_path):
    with pytest.raises(EopackError, match="is not an md5"):
        fetch("https://zenodo.org/x", tmp_path / "x", "abc")
    with pytest.raises(EopackError, match=r"^ftp://host/x: unsupported source"):
        fetch(f"ftp://host/x?token={SECRET}", tmp_path / "x", None)


# --- S3 --------------------------------------------------------------------------------------


@pytest.fixture
def bucket(world, world_env) -> tuple[Any, str]:
    admin = world.client()
    name = f"eopack-ben-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return admin, name


def test_s3_source_resumes_and_verifies(bucket, s3net, tmp_path):
    admin, name = bucket
    data = random_bytes(3 * MiB, seed=12)
    admin.put_object(Bucket=name, Key="ben/v2/Reference_Maps.tar.zst", Body=data)
    uri = source_uri(f"s3://{name}/ben/v2", "Reference_Maps.tar.zst")
    dest = tmp_path / "Reference_Maps.tar.zst"
    # The first body breaks after 1 MiB and then access is lost: the run dies half-way.
    s3net.on_get(name, lambda n, *_: Intercept(cut_after=MiB) if n == 1 else Intercept(True))
    with pytest.raises(EopackError, match="access denied"):
        fetch(uri, dest, md5(data))
    s3net.close()
    assert not dest.exists()
    have = resumable_bytes(dest)
    assert 0 < have <= MiB

    result = fetch(uri, dest, md5(data))
    assert (result.action, result.resumed_from, result.md5) == ("downloaded", have, md5(data))
    assert dest.read_bytes() == data
    assert leftovers(dest) == [dest, stamp_path(dest, "md5")]
    assert fetch(uri, dest, md5(data), client=object()).action == "present"  # no S3 call


def test_s3_source_region_and_requester_pays_from_the_config(bucket, s3net, tmp_path):
    """A mirror that bills the reader, in another region: both are bigearthnet settings."""
    from eopack.bigearthnet.source import fetch_release_file

    admin, name = bucket
    data = random_bytes(200_000, seed=14)
    admin.put_object(Bucket=name, Key="ben/metadata.parquet", Body=data)
    admin.put_bucket_request_payment(
        Bucket=name, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    s3net.in_region(name, "us-west-2")
    log = s3net.log(name)
    cfg = {"source": f"s3://{name}/ben", "source_region": "us-west-2"}
    with pytest.raises(EopackError, match="access denied"):
        fetch_release_file(cfg, "metadata.parquet", md5(data), tmp_path / "a.parquet")
    cfg["source_requester_pays"] = True
    fetch_release_file(cfg, "metadata.parquet", md5(data), tmp_path / "b.parquet")
    assert (tmp_path / "b.parquet").read_bytes() == data
    assert log.headers[-1]["x-amz-request-payer"] == "requester"
    assert "us-west-2/s3/aws4_request" in log.headers[-1]["authorization"]


def test_s3_md5_mismatch_and_missing_object(bucket, tmp_path):
    admin, name = bucket
    data = random_bytes(200_000, seed=13)
    admin.put_object(Bucket=name, Key="metadata.parquet", Body=data)
    dest = tmp_path / "metadata.parquet"
    with pytest.raises(EopackError, match=f"expected {'1' * 32}, got {md5(data)}"):
        fetch(f"s3://{name}/metadata.parquet", dest, "1" * 32)
    assert leftovers(dest) == []
    with pytest.raises(EopackError, match=f"s3://{name}/nope.parquet: object not found"):
        fetch(f"s3://{name}/nope.parquet", tmp_path / "nope.parquet", None)


def test_an_unpaid_requester_pays_read_names_the_setting(bucket, tmp_path):
    admin, name = bucket
    admin.put_object(Bucket=name, Key="ben/metadata.parquet", Body=b"x")
    admin.put_bucket_request_payment(
        Bucket=name, RequestPaymentConfiguration={"Payer": "Requester"}
    )
    with pytest.raises(EopackError) as refused:
        fetch_release_file(
            {"source": f"s3://{name}/ben"}, "metadata.parquet", md5(b"x"), tmp_path / "m"
        )
    assert str(refused.value).startswith(
        f"s3://{name}/ben/metadata.parquet: access denied (check AWS credentials; a "
        "requester-pays bucket needs bigearthnet.source_requester_pays: true)"
    )


# --- local paths -----------------------------------------------------------------------------


@pytest.fixture
def local_release(tmp_path) -> tuple[Path, bytes]:
    folder = tmp_path / "mirror"
    folder.mkdir()
    data = random_bytes(MiB + 3, seed=14)
    (folder / "BigEarthNet-S2.tar.zst").write_bytes(data)
    return folder, data


def test_local_source_is_hard_linked(local_release, tmp_path):
    folder, data = local_release
    dest = tmp_path / "resources" / "BigEarthNet-S2.tar.zst"
    source = source_uri(str(folder), dest.name)
    result = fetch(source, dest, md5(data))
    assert (result.action, result.md5) == ("linked", md5(data))
    assert dest.stat().st_ino == Path(source).stat().st_ino
    assert leftovers(dest) == [dest, stamp_path(dest, "md5")]
    assert fetch(source, dest, md5(data)).action == "present"


def test_local_source_copied_when_links_are_off(local_release, tmp_path):
    folder, data = local_release
    dest = tmp_path / "resources" / "BigEarthNet-S2.tar.zst"
    result = fetch(source_uri(f"file://{folder}", dest.name), dest, md5(data), link=False)
    assert (result.action, result.md5) == ("copied", md5(data))
    assert dest.read_bytes() == data
    assert dest.stat().st_ino != (folder / dest.name).stat().st_ino
    assert leftovers(dest) == [dest, stamp_path(dest, "md5")]


@pytest.mark.parametrize("link", [True, False], ids=["link", "copy"])
def test_local_md5_mismatch_keeps_the_source(local_release, tmp_path, link):
    folder, data = local_release
    dest = tmp_path / "resources" / "BigEarthNet-S2.tar.zst"
    with pytest.raises(EopackError, match=f"expected {'2' * 32}, got {md5(data)}"):
        fetch(str(folder / dest.name), dest, "2" * 32, link=link)
    assert leftovers(dest) == []
    assert (folder / dest.name).read_bytes() == data
    with pytest.raises(EopackError, match=r"missing\.tar\.zst: no such file \(local source\)"):
        fetch(str(folder / "missing.tar.zst"), tmp_path / "missing.tar.zst", None)


def test_local_source_that_is_the_destination_is_only_verified(local_release):
    folder, data = local_release
    path = folder / "BigEarthNet-S2.tar.zst"
    assert fetch(str(path), path, md5(data)).action == "present"
    with pytest.raises(EopackError, match="md5 mismatch"):
        fetch(str(path), path, "3" * 32)
    assert path.read_bytes() == data  # never deleted
