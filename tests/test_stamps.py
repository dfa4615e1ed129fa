"""Digest stamps (eopack.stamps): trusted only while the file keeps its size and mtime."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from eopack.stamps import stamp_path, stamped_digest, write_stamp


def test_a_stamp_holds_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    stamp = write_stamp(path, "sha256", sha, tmp_path / "stamps")
    assert (
        stamp
        == tmp_path / "stamps" / "a.zip.sha256.json"
        == stamp_path(path, "sha256", stamp.parent)
    )
    doc = json.loads(stamp.read_text())
    assert doc == {"name": "a.zip", "sha256": sha, "size": 3, "mtime_ns": path.stat().st_mtime_ns}
    assert stamped_digest(path, "sha256", stamp.parent) == sha
    assert stamped_digest(path, "sha256") is None  # not beside the file
    assert stamped_digest(path, "md5", stamp.parent) is None  # another algorithm

    # Snakemake touches a job's outputs in order after the job: the file, then its stamp.
    stamp_ns = stamp.stat().st_mtime_ns
    os.utime(path, ns=(stamp_ns + 10**9, stamp_ns + 10**9))
    os.utime(stamp, ns=(stamp_ns + 10**9 + 1, stamp_ns + 10**9 + 1))
    assert stamped_digest(path, "sha256", stamp.parent) == sha
    os.utime(path, ns=(stamp_ns + 2 * 10**9, stamp_ns + 2 * 10**9))  # changed after its stamp
    assert stamped_digest(path, "sha256", stamp.parent) is None
    path.write_bytes(b"abd")  # an older file of the same size put in its place
    os.utime(path, ns=(doc["mtime_ns"] - 1, doc["mtime_ns"] - 1))
    assert stamped_digest(path, "sha256", stamp.parent) is None
    os.utime(path, ns=(doc["mtime_ns"], doc["mtime_ns"]))  # stamped size and mtime: the quick
    assert stamped_digest(path, "sha256", stamp.parent) == sha  # check's known limit


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc.update(sha256="not hex" * 9),
        lambda doc: doc.update(sha256="ab" * 16),  # an md5's length
        lambda doc: doc.update(name="b.zip"),  # another file's stamp
        lambda doc: doc.pop("mtime_ns"),
        lambda doc: doc.update(size="three"),
    ],
)
def test_a_damaged_or_foreign_stamp_is_ignored(tmp_path: Path, edit) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"abc")
    stamp = write_stamp(path, "sha256", hashlib.sha256(b"abc").hexdigest())
    assert stamp == tmp_path / "a.zip.sha256.json"  # beside the file by default
    doc = json.loads(stamp.read_text())
    edit(doc)
    stamp.write_text(json.dumps(doc))
    assert stamped_digest(path, "sha256") is None
    stamp.write_text("{not json")
    assert stamped_digest(path, "sha256") is None
    path.unlink()
    assert stamped_digest(path, "sha256") is None
