"""Digest stamps: a file's digest saved with the size and modification time the file had.

Why: reading a big file again only to hash it is the slowest part of some steps on the target
instance (its EBS disk reads ~125 MB/s): the 59 GB BigEarthNet archive's md5 on a later run
(:mod:`eopack.bigearthnet.fetch`), the ~16 GB dataset zips' SHA-256 for ``SHA256SUMS``
(:mod:`eopack.bigearthnet.package`), both computed while the bytes were written. A stamp is
``<name>.<algorithm>.json`` (``name``, the digest under the algorithm's name, ``size``,
``mtime_ns``), beside the file or in a folder of stamps.

A stamp counts while the file has the stamped size and has not changed since: its mtime is the
stamped one, or a later one that is still no later than the stamp file's own (it was touched,
then the stamp). The second case is Snakemake's: after every job it touches the job's outputs in
their declared order, so a file declared before its stamp is touched just before it. Any later
write to the file makes it newer than its stamp; an older file put in its place has another
mtime; either way the file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from eopack.fsutil import write_json

__all__ = ["stamp_path", "stamped_digest", "write_stamp"]

_HEX = re.compile(r"[0-9a-f]+")


def stamp_path(path: str | Path, algorithm: str, folder: str | Path | None = None) -> Path:
    """Where ``path``'s ``algorithm`` stamp lives: in ``folder``, or beside the file."""
    path = Path(path)
    return (Path(folder) if folder is not None else path.parent) / f"{path.name}.{algorithm}.json"


def write_stamp(
    path: str | Path, algorithm: str, digest: str, folder: str | Path | None = None
) -> Path:
    """Stamp ``path`` (as it is now) with its ``algorithm`` hex ``digest``; returns the stamp."""
    path = Path(path)
    st = path.stat()
    doc = {"name": path.name, algorithm: digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    stamp = stamp_path(path, algorithm, folder)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    write_json(stamp, doc)
    return stamp


def stamped_digest(
    path: str | Path, algorithm: str, folder: str | Path | None = None
) -> str | None:
    """The digest in ``path``'s stamp while it counts (see the module docstring), else None (no
    stamp, an unreadable one, or a file changed since)."""
    path = Path(path)
    stamp = stamp_path(path, algorithm, folder)
    try:
        stamped_at = stamp.stat().st_mtime_ns
        doc = json.loads(stamp.read_text(encoding="utf-8"))
        st = path.stat()
        size, mtime = int(doc["size"]), int(doc["mtime_ns"])
        if st.st_size != size or doc["name"] != path.name:
            return None
        if st.st_mtime_ns != mtime and not mtime <= st.st_mtime_ns <= stamped_at:
            return None
        digest = str(doc[algorithm])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    digits = hashlib.new(algorithm).digest_size * 2
    return digest if len(digest) == digits and _HEX.fullmatch(digest) else None
