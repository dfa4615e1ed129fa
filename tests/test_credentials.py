"""Presigned URLs signed with temporary credentials (instance profile, SSO, assumed role) stop
working when the session ends: their lifetime is capped there, and ``urls.tsv`` says so. The
credentials come from a real ``credential_process`` (botocore runs it), offline."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from eopack.credentials import cap_to_credentials, temporary_credentials
from eopack.demo.s1world import DEMO_BUCKET
from eopack.publish import publish_file, read_urls, write_urls
from eopack.s3 import make_client

PROCESS = """\
import datetime as dt, json, sys
seconds = int(sys.argv[1])
end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
creds = {"Version": 1, "AccessKeyId": "ASIAEOPACKTEST", "SecretAccessKey": "eopack-temp-secret"}
if seconds:
    creds["SessionToken"] = "eopack-session-token"
    creds["Expiration"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps(creds))
"""


def _credential_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_s: int) -> None:
    """AWS config whose only credentials are a ``credential_process`` (``session_s`` 0:
    long-term keys, no token)."""
    script = tmp_path / "creds.py"
    script.write_text(PROCESS)
    config = tmp_path / "aws-config"
    config.write_text(
        f"[default]\ncredential_process = {sys.executable} {script} {session_s}\n"
        "region = eu-central-1\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


def _published(world: Any, tmp_path: Path) -> list[Path]:
    bucket = f"eopack-cred-{uuid.uuid4().hex[:8]}"
    world.client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    path = tmp_path / "S1A_TEST.zip"
    path.write_bytes(os.urandom(2000))
    receipt = tmp_path / "receipts" / "S1A_TEST.zip.json"
    publish_file(path, "S1A_TEST.zip", f"s3://{bucket}/share", [DEMO_BUCKET], receipt)
    return [receipt]


def test_urls_from_temporary_credentials_end_with_the_session(
    world, world_env, tmp_path, monkeypatch, caplog
):
    receipts = _published(world, tmp_path)  # with the world's long-term keys
    _credential_process(tmp_path, monkeypatch, session_s=2 * 3600)
    output = tmp_path / "urls.tsv"
    with caplog.at_level(logging.INFO, logger="eopack"):
        write_urls(receipts, output, expires_s=12 * 3600, max_expires_s=12 * 3600)
    [row] = read_urls(output)
    query = parse_qs(urlsplit(row["url"]).query)
    assert query["X-Amz-Security-Token"] == ["eopack-session-token"]
    lifetime = int(query["X-Amz-Expires"][0])
    assert 2 * 3600 - 120 <= lifetime <= 2 * 3600  # the session's end, not 12 h
    expires = dt.datetime.strptime(row["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs(expires - (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))) < dt.timedelta(
        minutes=2
    )
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1
    assert said[0].startswith(f"presigned URLs: valid {lifetime} s, not the 43200 s asked: ")
    assert "temporary AWS credentials that sign them expire at " in said[0]
    assert "eopack-session-token" not in said[0] and "eopack-temp-secret" not in said[0]
    summary = [r.getMessage() for r in caplog.records if "presigned URLs, valid" in r.getMessage()]
    assert summary == [f"{output}: 1 presigned URLs, valid {lifetime} s, until {row['expires']}"]


def test_long_term_credentials_and_long_sessions_are_not_capped(
    world_env, tmp_path, monkeypatch, caplog
):
    _credential_process(tmp_path, monkeypatch, session_s=0)
    with caplog.at_level(logging.WARNING, logger="eopack"):
        assert temporary_credentials(make_client()) is None
        assert cap_to_credentials(make_client(), 43200) == 43200
    _credential_process(tmp_path, monkeypatch, session_s=24 * 3600)
    with caplog.at_level(logging.WARNING, logger="eopack"):
        session = temporary_credentials(make_client())
        assert session is not None and session.expires is not None
        assert cap_to_credentials(make_client(), 43200) == 43200
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_session_token_without_expiry_is_said(world_env, monkeypatch, caplog):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "eopack-session-token")
    with caplog.at_level(logging.WARNING, logger="eopack"):
        assert cap_to_credentials(make_client(), 43200) == 43200
    [said] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "temporary (a session token) of unknown lifetime" in said
