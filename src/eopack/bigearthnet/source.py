"""Where the BigEarthNet v2 release files come from, their md5s, and what the DAG needs first.

The release (Zenodo record 10891137) is a flat folder of files: the ``.tar.zst`` archives, the
two metadata parquet files and ``hashes.txt`` (md5 of every file). ``bigearthnet.source`` is
that folder: the Zenodo files URL, an ``s3://bucket/prefix`` mirror or a local folder
(:func:`eopack.bigearthnet.fetch.source_uri` builds each file's URI).

Every fetched file is md5-verified. The md5s come from ``bigearthnet.md5s`` (name -> md5, the
published values are in ``config/config.yaml``) and/or from a hashes file
(``bigearthnet.hashes``: a bare file name is looked up in the source folder, anything with a
``/`` or a scheme is a URI or path of its own). The hashes file wins: Snakemake merges config
files key by key, so the real release's ``md5s`` of ``config/config.yaml`` are still there when
another config file points at another release's hashes file; ``md5s`` only fill in names the
file does not list. A file without an md5 is an error: nothing is downloaded unverified (only
the hashes file itself, fetched once per address into the cache and linked to
``resources/bigearthnet/hashes.txt``).

Every file lands in the download cache first (:mod:`eopack.bigearthnet.cache`, by md5) and is
hard-linked from there to ``resources/bigearthnet/<name>``: a changed md5, a failed download or
Snakemake's clean-up of a job's output never deletes a file that verified once.

:func:`prepare_inputs` runs while Snakemake builds the DAG: the S2 product folders, one render
job each, come from the metadata, so the metadata parquet files (4 MB) are fetched then, not by
a job (no checkpoint needed). fetch's md5 stamp spares re-reading them on later runs.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eopack.bigearthnet.cache import DownloadCache, cache_root, human_size, link_or_copy
from eopack.bigearthnet.fetch import ZENODO_FILES, parse_hashes, redact_uri, source_uri
from eopack.bigearthnet.index import Selection, list_products
from eopack.bigearthnet.render import Stretch
from eopack.bigearthnet.s1 import DbStretch
from eopack.errors import EopackError
from eopack.fsutil import atomic_write_bytes

__all__ = [
    "ARCHIVES",
    "S1_ARCHIVE",
    "ZENODO_FILES",
    "DatasetInputs",
    "Source",
    "archive_name",
    "archives",
    "fetch_release_file",
    "fetch_verified",
    "load_source",
    "prepare_inputs",
]

log = logging.getLogger(__name__)

#: Archives the dataset is rendered from; each one's single top folder has the archive's stem.
ARCHIVES = ("BigEarthNet-S2", "Reference_Maps")
#: The Sentinel-1 archive, fetched only for the optional S1 PNGs (``s1_pngs``).
S1_ARCHIVE = "BigEarthNet-S1"


def archives(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Stems of the archives the ``bigearthnet`` config section needs."""
    return (*ARCHIVES, S1_ARCHIVE) if cfg.get("s1_pngs") else ARCHIVES


HASHES_CACHE = "hashes.txt"


def archive_name(stem: str) -> str:
    """``BigEarthNet-S2`` -> ``BigEarthNet-S2.tar.zst``."""
    return f"{stem}.tar.zst"


@dataclass(frozen=True)
class Source:
    """The release folder and the md5 of each of its files.

    ``region`` and ``requester_pays`` are for an ``s3://`` folder (a mirror may be in any
    region, and may bill the reader); ``region`` None: ``AWS_DEFAULT_REGION``, else
    eu-central-1 (a wrong one is corrected from S3's redirect, in one line).
    """

    base: str
    md5s: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    retries: int = 5
    region: str | None = None
    requester_pays: bool = False

    def uri(self, name: str) -> str:
        """URI (or local path) of release file ``name``."""
        return source_uri(self.base, name)

    def md5(self, name: str) -> str:
        """The expected md5 of ``name``; a file without one is an error."""
        try:
            return self.md5s[name]
        except KeyError:
            raise EopackError(
                f"config: bigearthnet: no md5 for {name}; add it to bigearthnet.md5s or point "
                "bigearthnet.hashes at the release's hashes.txt"
            ) from None

    def fetch_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`eopack.bigearthnet.fetch.fetch` for this source."""
        return {
            "timeout": self.timeout,
            "retries": self.retries,
            "region": self.region,
            "requester_pays": self.requester_pays,
        }


def _hashes_uri(base: str, hashes: str) -> str:
    return hashes if ("://" in hashes or "/" in hashes) else source_uri(base, hashes)


def _load_hashes(uri: str, resources: Path, source: Source) -> dict[str, str]:
    """md5s listed in the hashes file at ``uri``: fetched once per address into the cache, then
    copied to ``resources/hashes.txt`` (the one in use; ``hashes.txt.uri`` says where from).

    A failed fetch leaves both as they were and says which hashes file is kept."""
    local = resources / HASHES_CACHE
    stamp = resources / f"{HASHES_CACHE}.uri"
    cache = DownloadCache(cache_root(resources))
    cached = cache.hashes_path(uri)
    adopt = not cached.is_file() and local.is_file() and stamp.is_file()
    if adopt and stamp.read_text(encoding="utf-8") == uri:  # fetched before the cache existed
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, cached)
        (cached.parent / "uri").write_text(uri, encoding="utf-8")
    try:
        cached, how = cache.fetch_hashes(uri, **source.fetch_options())
    except EopackError as exc:
        kept = "nothing was kept"
        if local.is_file() and stamp.is_file():
            kept = f"{local} (from {redact_uri(stamp.read_text(encoding='utf-8'))}) is kept"
        raise EopackError(f"bigearthnet.hashes: {exc}; {kept}") from None
    try:
        text = cached.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EopackError(f"bigearthnet.hashes: cannot read {cached} ({exc})") from None
    md5s = parse_hashes(text, f"bigearthnet.hashes ({redact_uri(uri)})")
    link_or_copy(cached, local)  # nothing to do when it already is the cached one
    if not (stamp.is_file() and stamp.read_text(encoding="utf-8") == uri):
        atomic_write_bytes(stamp, uri.encode("utf-8"))
    log.debug("bigearthnet.hashes: %s %s", redact_uri(uri), how)
    return md5s


def load_source(cfg: Mapping[str, Any], resources: str | Path) -> Source:
    """The :class:`Source` of the ``bigearthnet`` config section (fetches a hashes file)."""
    resources = Path(resources)
    resources.mkdir(parents=True, exist_ok=True)
    source = _configured(cfg, {})
    md5s = {str(k): str(v).lower() for k, v in (cfg.get("md5s") or {}).items()}
    if cfg.get("hashes"):
        uri = _hashes_uri(source.base, cfg["hashes"])
        md5s.update(_load_hashes(uri, resources, source))
    return _configured(cfg, md5s)


def _configured(cfg: Mapping[str, Any], md5s: Mapping[str, str]) -> Source:
    return Source(
        str(cfg.get("source") or ZENODO_FILES),
        md5s,
        float(cfg.get("timeout_s", 60)),
        int(cfg.get("retries", 5)),
        cfg.get("source_region") or None,
        bool(cfg.get("source_requester_pays", False)),
    )


def fetch_release_file(cfg: Mapping[str, Any], name: str, md5: str, dest: str | Path) -> Path:
    """Fetch release file ``name`` from the configured source to ``dest``, verified by ``md5``.

    The cache is ``cache/`` beside ``dest`` (so the fetch job's rule and script need not name
    it: a changed param or script would make Snakemake fetch again).
    """
    dest = Path(dest)
    cached = DownloadCache(cache_root(dest.parent)).entries(name)
    if cached and not dest.exists():
        log.info(
            "%s is not there: Snakemake removes a job's output before it runs the job again; "
            "it is a link, the bytes stay in the cache: %s",
            dest,
            "; ".join(entry.describe() for entry in cached),
        )
    return fetch_verified(_configured(cfg, {name: md5}), name, dest)


def fetch_verified(source: Source, name: str, dest: str | Path) -> Path:
    """``dest`` holding release file ``name`` with its md5, as a hard link of its cache entry
    (downloaded into the cache first if it is not there).

    On a failure ``dest`` and every cache entry stay as they were, and the message says what
    the cache keeps of ``name`` (path, size, md5).
    """
    dest = Path(dest)
    md5 = source.md5(name)
    cache = DownloadCache(cache_root(dest.parent))
    entry = cache.lookup(name, md5) or cache.adopt(dest, name, md5)
    if entry is not None:
        how = "from the cache, no download"
    else:
        entry, how = cache.fetch(source.uri(name), name, md5, **source.fetch_options())
    linked = cache.link(entry, dest)
    log.info("%s: %s; %s %s, %s to %s", name, how, entry.path, _size(entry.size), linked, dest)
    others = [e for e in cache.entries(name) if e.md5 != md5]
    if others:
        log.info(
            "%s: other versions kept in the cache (eopack bigearthnet-cache prune removes "
            "them): %s",
            name,
            "; ".join(e.describe() for e in others),
        )
    return dest


def _size(size: int) -> str:
    return f"({human_size(size)})"


@dataclass(frozen=True)
class DatasetInputs:
    """What the workflow knows before any job runs: source, selection, metadata, products."""

    source: Source
    selection: Selection
    metadata: tuple[Path, ...]  # local parquet files the selection reads
    products: tuple[str, ...]  # S2 product folders with selected patches, sorted


def prepare_inputs(cfg: Mapping[str, Any], resources: str | Path) -> DatasetInputs:
    """Source, local (verified) metadata and S2 product list of the ``bigearthnet`` section."""
    resources = Path(resources)
    source = load_source(cfg, resources)
    selection = Selection.from_config(cfg)
    cache = DownloadCache(cache_root(resources))
    for stem in archives(cfg):
        source.md5(archive_name(stem))  # no md5, no download: say so before any job runs
        # An archive an older eopack fetched (no cache then) goes into the cache now, before
        # Snakemake could delete it to run its fetch job again.
        cache.adopt(resources / archive_name(stem), archive_name(stem))
    try:
        Stretch(**cfg.get("stretch", {}))
    except (EopackError, TypeError) as exc:
        raise EopackError(f"config: bigearthnet.stretch: {exc}") from None
    try:
        DbStretch.from_config(cfg.get("s1_stretch") or {})
    except EopackError as exc:
        raise EopackError(f"config: bigearthnet.s1_stretch: {exc}") from None
    metadata = tuple(
        fetch_verified(source, name, resources / name) for name in selection.metadata_files()
    )
    products = tuple(list_products(metadata, selection))
    if not products:
        raise EopackError(
            "bigearthnet: the metadata has no patch of splits "
            f"{', '.join(selection.splits)} with these snow/cloud switches; nothing to render"
        )
    return DatasetInputs(source, selection, metadata, products)
