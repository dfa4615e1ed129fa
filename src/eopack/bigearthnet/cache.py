"""The BigEarthNet download cache: verified release files and their extracted trees, which no
Snakemake job owns.

Why: Snakemake deletes a job's outputs before it runs the job again, and a changed param (an md5
in the config) makes it run again. Were the 59 GB archive the fetch job's own output, a typo in
an md5, a wrong line in a ``hashes.txt`` or a failed new download would delete it. So the bytes
live here, under their md5, and the job's output is a hard link to them (a copy across file
systems): Snakemake's clean-up removes a link, never the data.

Layout, under ``resources/bigearthnet/cache/`` (:func:`cache_root`)::

    md5/<md5>/<name>                   a verified release file; only ever renamed in after its
    md5/<md5>/<name>.md5.json            md5 matched, with its stamp (md5, size, mtime)
    md5/<md5>/extracted/<key>/<Top>/   what a run extracted from that archive (<key>: the bands
                                         joined by "_", or "maps"); the extract job's output
                                         ``resources/bigearthnet/extracted/<Top>`` links to it
    incoming/<md5>/<name>[.part]       a download in progress (resumable across runs); it
                                         becomes md5/<md5>/<name> when it verifies, and is
                                         discarded when it does not
    hashes/<sha256(URI)[:16]>/hashes.txt (+ ``uri``)   a hashes file, per address it came from

A run never deletes an entry: not when the configuration changes, not when a new download fails.
Only ``eopack bigearthnet-cache prune`` or a person does; the whole folder is safe to delete (the
next run downloads what it needs again).

Trust: an entry got its name only after its md5 matched, so it is trusted while it has its
stamped size. Its mtime is no guide: Snakemake touches a job's outputs after the job, and the
output is a hard link of the entry, so the entry's mtime moves on every link. An entry without a
stamp (a kill between the rename and the stamp) is hashed once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eopack.bigearthnet.extract import ExtractStats, extract_dataset_archive
from eopack.bigearthnet.fetch import FetchResult, fetch, human_size
from eopack.errors import EopackError
from eopack.fsutil import new_temp
from eopack.stamps import stamp_path, write_stamp
from eopack.transfer import file_md5

__all__ = [
    "CACHE_DIR",
    "CachedFile",
    "DownloadCache",
    "cache_root",
    "extract_cached",
    "human_size",
    "link_or_copy",
]

log = logging.getLogger(__name__)

_MD5 = re.compile(r"[0-9a-f]{32}")

#: The cache's folder name, beside the fetched files (resources/bigearthnet/cache).
CACHE_DIR = "cache"


def cache_root(resources: str | Path) -> Path:
    """The cache of the release files fetched into ``resources``."""
    return Path(resources) / CACHE_DIR


@dataclass(frozen=True)
class CachedFile:
    """One verified release file in the cache."""

    path: Path
    name: str
    md5: str
    size: int

    def describe(self) -> str:
        return f"{self.path} ({human_size(self.size)}, md5 {self.md5})"


def _stamp_doc(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(stamp_path(path, "md5").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def link_or_copy(src: Path, dest: Path) -> str:
    """``dest`` becomes ``src``'s bytes (a hard link, else a copy), atomically: an old ``dest``
    is replaced only once the new one is complete. Returns ``hard-linked`` or ``copied``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dest):
            return "hard-linked"
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.link")
    try:
        try:
            os.link(src, tmp)
            how = "hard-linked"
        except OSError as exc:  # another file system (EXDEV), or no hard links
            log.info("%s: cannot hard-link into %s (%s); copying", src, dest.parent, exc.strerror)
            fd, name = new_temp(dest)
            tmp = Path(name)
            with os.fdopen(fd, "wb") as target, open(src, "rb") as source:
                shutil.copyfileobj(source, target, 8 << 20)
                target.flush()
                os.fsync(target.fileno())
            how = "copied"
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return how


class DownloadCache:
    """Verified release files by md5 (see the module docstring for the layout and the rules)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry_path(self, name: str, md5: str) -> Path:
        return self.root / "md5" / md5 / name

    def lookup(self, name: str, md5: str) -> CachedFile | None:
        """The cached ``name`` with ``md5``, or None. An entry whose bytes are not its md5 any
        more (changed on disk) is no verified file: it is removed, with a warning."""
        path = self.entry_path(name, md5)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        doc = _stamp_doc(path)
        if doc is not None and doc.get("md5") == md5 and doc.get("size") == size:
            return CachedFile(path, name, md5, size)
        log.info("%s: no stamp that matches it; computing the md5 (%s)", path, human_size(size))
        _, got = file_md5(path)
        if got != md5:
            log.warning("%s: md5 %s, not %s (changed on disk); removed", path, got, md5)
            path.unlink()
            stamp_path(path, "md5").unlink(missing_ok=True)
            return None
        write_stamp(path, "md5", md5)
        return CachedFile(path, name, md5, size)

    def entries(self, name: str | None = None) -> list[CachedFile]:
        """Every cached file (of ``name``), sorted by path; not hashed (see :meth:`lookup`)."""
        found = []
        for path in sorted(self.root.glob(f"md5/*/{name or '*'}")):
            if path.is_file() and not path.name.endswith(".md5.json"):
                found.append(CachedFile(path, path.name, path.parent.name, path.stat().st_size))
        return found

    def kept(self, name: str) -> str:
        """What the cache keeps of ``name``, for a message: ``kept in the cache: ...``."""
        entries = self.entries(name)
        if not entries:
            return f"nothing of {name} is in the cache ({self.root})"
        return "kept in the cache: " + "; ".join(entry.describe() for entry in entries)

    def adopt(self, path: Path, name: str, md5: str | None = None) -> CachedFile | None:
        """Take ``path`` into the cache (a hard link) if its stamp (``<path>.md5.json``, as the
        fetch wrote before the cache existed) gives its md5 (``md5``, when given) and size: a
        file fetched by an older eopack is neither downloaded again nor lost to Snakemake's
        clean-up when its job runs again. Trusted by size, as cache entries are."""
        doc = _stamp_doc(path)
        if doc is None or not path.is_file() or doc.get("size") != path.stat().st_size:
            return None
        stamped = str(doc.get("md5", ""))
        if not _MD5.fullmatch(stamped) or (md5 is not None and stamped != md5):
            return None
        entry = self.entry_path(name, stamped)
        with contextlib.suppress(OSError):
            if os.path.samefile(path, entry):
                return CachedFile(entry, name, stamped, entry.stat().st_size)
        link_or_copy(path, entry)
        write_stamp(entry, "md5", stamped)
        log.info("%s: taken into the cache as %s", path, entry)
        return CachedFile(entry, name, stamped, entry.stat().st_size)

    def fetch(self, uri: str, name: str, md5: str, **options: Any) -> tuple[CachedFile, str]:
        """The cached ``name`` with ``md5``, downloaded into the cache first if it is not there.

        Returns the entry and what happened (``from the cache`` or the fetch's summary). A
        failure leaves every entry as it was and says in its message what the cache keeps.
        """
        hit = self.lookup(name, md5)
        if hit is not None:
            return hit, "from the cache, no download"
        incoming = self.root / "incoming" / md5 / name
        incoming.parent.mkdir(parents=True, exist_ok=True)
        try:
            result: FetchResult = fetch(uri, incoming, md5, **options)
        except EopackError as exc:
            with contextlib.suppress(OSError):
                incoming.parent.rmdir()  # empty: nothing to resume
            raise EopackError(f"{exc}; {self.kept(name)}") from None
        entry = self.entry_path(name, md5)
        entry.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, entry)
        stamp_path(incoming, "md5").unlink(missing_ok=True)
        write_stamp(entry, "md5", md5)
        with contextlib.suppress(OSError):
            incoming.parent.rmdir()
        how = f"{result.action} ({human_size(result.size)}"
        if result.resumed_from:
            how += f", resumed at {human_size(result.resumed_from)}"
        return CachedFile(entry, name, md5, result.size), how + ")"

    def link(self, entry: CachedFile, dest: str | Path) -> str:
        """Make ``dest`` the cached file (``hard-linked``/``copied``); an old ``dest`` is only
        replaced once the new one is in place."""
        return link_or_copy(entry.path, Path(dest))

    # --- hashes files, per address ------------------------------------------------------------

    def hashes_path(self, uri: str) -> Path:
        key = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
        return self.root / "hashes" / key / "hashes.txt"

    def fetch_hashes(self, uri: str, **options: Any) -> tuple[Path, str]:
        """The hashes file at ``uri``, fetched once per address; ``(path, what happened)``."""
        path = self.hashes_path(uri)
        if path.is_file() and (path.parent / "uri").is_file():
            return path, "from the cache"
        incoming = path.with_name("hashes.txt.incoming")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fetch(uri, incoming, None, **options)
        except EopackError:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
            raise
        (path.parent / "uri").write_text(uri, encoding="utf-8")
        os.replace(incoming, path)
        stamp_path(incoming, "md5").unlink(missing_ok=True)
        return path, "fetched"


# --- extraction --------------------------------------------------------------------------------


def _extract_key(out_dir: Path, bands: Collection[str]) -> str:
    return "maps" if out_dir.name == "Reference_Maps" else "_".join(sorted(bands)) or "none"


def _cached_archive(cache: DownloadCache, archive: Path) -> CachedFile | None:
    """The cache entry ``archive`` is a hard link of, if any (found by inode: no hashing)."""
    for entry in cache.entries(archive.name):
        with contextlib.suppress(OSError):
            if os.path.samefile(entry.path, archive):
                return entry
    return None


def _point(link: Path, target: Path) -> None:
    """``link`` becomes a relative symbolic link to ``target``, atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:12]}.link")
    os.symlink(os.path.relpath(target, link.parent), tmp, target_is_directory=True)
    try:
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)  # a real folder left by an older eopack
        os.replace(tmp, link)
    finally:
        tmp.unlink(missing_ok=True)


def extract_cached(
    archive: str | Path, out_dir: str | Path, bands: Collection[str] = ()
) -> ExtractStats | None:
    """``out_dir`` (``resources/bigearthnet/extracted/<Top>``) as a link to the archive's
    extracted tree in the cache, extracting it first unless the cache has it for these bands.

    The archive must be a hard link of a cache entry (the fetch job makes it so); otherwise the
    tree is extracted into ``out_dir`` itself, as before the cache. Returns the extraction's
    stats, None when the tree came from the cache.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    cache = DownloadCache(cache_root(archive.parent))
    entry = _cached_archive(cache, archive)
    if entry is None:
        log.info("%s: not in the cache %s; extracting into %s", archive, cache.root, out_dir)
        return extract_dataset_archive(archive, out_dir, bands)
    tree = entry.path.parent / "extracted" / _extract_key(out_dir, bands) / out_dir.name
    stats = None
    if tree.is_dir():
        log.info("%s: extracted tree from the cache (md5 %s): %s", archive.name, entry.md5, tree)
    else:
        try:
            stats = extract_dataset_archive(archive, tree, bands)
        except EopackError as exc:
            with contextlib.suppress(OSError):
                tree.parent.rmdir()  # extracted/<key>, left empty
                tree.parent.parent.rmdir()  # extracted/, if it is the only key
            raise EopackError(f"{exc}; {kept_trees(cache, out_dir.name)}") from None
    _point(out_dir, tree)
    log.info("%s -> %s", out_dir, tree)
    return stats


def kept_trees(cache: DownloadCache, top: str) -> str:
    """The extracted ``top`` trees the cache keeps, for a message."""
    trees = sorted(p for p in cache.root.glob(f"md5/*/extracted/*/{top}") if p.is_dir())
    if not trees:
        return f"no extracted {top} is in the cache"
    return "kept in the cache: " + "; ".join(str(tree) for tree in trees)


# --- listing and pruning (eopack bigearthnet-cache) ---------------------------------------------


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _in_use(resources: Path) -> tuple[set[tuple[Any, ...]], set[Path]]:
    """Keys of the files in ``resources`` (the fetched files: hard links of cache entries) and
    the extracted trees its ``extracted/<Top>`` links point to. A file is known by its inode and
    by its name and size: a copy of ``resources/`` that did not keep hard links (``cp -r``,
    ``rsync`` without ``-H``) still marks its entries in use, so prune errs on keeping."""
    files: set[tuple[Any, ...]] = set()
    for path in resources.iterdir() if resources.is_dir() else ():
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            files |= {(st.st_dev, st.st_ino), (path.name, st.st_size)}
    trees = set()
    extracted = resources / "extracted"
    for link in extracted.iterdir() if extracted.is_dir() else ():
        if link.is_symlink() and link.exists():
            trees.add(link.resolve())
    return files, trees


@dataclass(frozen=True)
class CacheItem:
    """One thing in the cache: a release file, an extracted tree, a download in progress or
    a hashes file; ``in_use``: the workflow's current files link to it."""

    kind: str
    path: Path
    size: int
    in_use: bool


def cache_items(resources: str | Path) -> list[CacheItem]:
    """Everything in the cache of ``resources`` (``resources/bigearthnet``), sorted by path."""
    resources = Path(resources)
    root = cache_root(resources)
    files, trees = _in_use(resources)
    items = []
    for entry in DownloadCache(root).entries():
        st = entry.path.stat()
        used = bool({(st.st_dev, st.st_ino), (entry.name, st.st_size)} & files)
        items.append(CacheItem("file", entry.path, st.st_size, used))
    for tree in sorted(root.glob("md5/*/extracted/*/*")):
        if tree.is_dir():
            items.append(CacheItem("extracted", tree, _tree_size(tree), tree.resolve() in trees))
    for part in sorted(root.glob("incoming/*/*")):
        items.append(CacheItem("incoming", part, part.stat().st_size, False))
    uri_file = resources / "hashes.txt.uri"
    current = uri_file.read_text(encoding="utf-8") if uri_file.is_file() else None
    for hashes in sorted(root.glob("hashes/*/hashes.txt")):
        uri = (hashes.parent / "uri").read_text(encoding="utf-8") if hashes.parent.is_dir() else ""
        items.append(CacheItem("hashes", hashes, hashes.stat().st_size, uri == current))
    return sorted(items, key=lambda item: str(item.path))


def prune(
    resources: str | Path, *, extracted: bool = False, dry_run: bool = False
) -> list[CacheItem]:
    """Remove what the workflow's current files do not use (``extracted``: every extracted
    tree, also those in use: Snakemake extracts again when a render needs one). Returns what
    was (``dry_run``: would be) removed."""
    chosen = [
        item
        for item in cache_items(resources)
        if not item.in_use or (extracted and item.kind == "extracted")
    ]
    if extracted:
        chosen = [item for item in chosen if item.kind == "extracted"]
    if dry_run:
        return chosen
    for item in chosen:
        if item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path)
        else:
            item.path.unlink(missing_ok=True)
            stamp_path(item.path, "md5").unlink(missing_ok=True)
            if item.kind == "hashes":
                (item.path.parent / "uri").unlink(missing_ok=True)
        # folders left empty: md5/<md5>/extracted/<key>, md5/<md5>/extracted, md5/<md5>, ...
        folder = item.path.parent
        root = cache_root(resources)
        while folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    return chosen
