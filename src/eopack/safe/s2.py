"""Sentinel-2 L1C / L2A on AWS: the file list of one product, read from its own metadata.

The product's ``manifest.safe`` lists every file of its SAFE folder; each maps to a bucket
object by the rules of :mod:`eopack.safe.s2_layout`, and one listing per bucket folder
(product, tiles) proves the object is there. The granule and datastrip folder names are the
manifest's, each checked against ``productInfo.json`` and ``tileInfo.json``: a folder they do
not account for, or metadata of another product, is bad input before anything is fetched.
Files the buckets never carry (ESA's HTML pages, schemas) are known gaps, recorded as such.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eopack.errors import EopackError
from eopack.s3 import SourceBucket, get_bytes
from eopack.safe.manifest import DataObject, parse_manifest_bytes
from eopack.safe.s2_layout import (
    BANDS,
    KNOWN_GAPS,
    RULES,
    Layout,
    S2Product,
    bucket_key,
    level_of,
    safe_path,
    safe_paths,
)

if TYPE_CHECKING:
    from eopack.safe.registry import ProductFiles

__all__ = [
    "BANDS",
    "KNOWN_GAPS",
    "RULES",
    "Layout",
    "S2Product",
    "bucket_key",
    "product_files",
    "read_layout",
    "safe_path",
    "safe_paths",
]

log = logging.getLogger(__name__)


# --- the product's metadata in the bucket --------------------------------------------------------

#: ``S2A_OPER_MSI_L1C_DS_VGS4_20220317T091114_S20220317T075215_N04.00`` -> the SAFE's
#: datastrip folder ``DS_VGS4_20220317T091114_S20220317T075215``.
_DATASTRIP_ID = re.compile(r"_(?P<folder>DS_.+?_\d{8}T\d{6}_S(?P<start>\d{8}T\d{6}))_N\d\d\.\d\d\Z")
#: ``L1C_T36MZB_A035167_20220317T075215``: level, tile, absolute orbit, datastrip sensing start.
_GRANULE = re.compile(r"(?P<level>L1C|L2A)_T(?P<tile>\d\d[A-Z]{3})_A\d{6}_(?P<start>\d{8}T\d{6})\Z")
_TILE_PATH = re.compile(
    r"tiles/(?P<zone>\d{1,2})/(?P<band>[A-Z])/(?P<square>[A-Z]{2})/\d{4}/\d+/\d+/\d+\Z"
)


@dataclass(frozen=True)
class _Tile:
    path: str  # tiles/36/M/ZB/2022/3/17/0
    tile: str  # 36MZB
    datastrip: str  # the datastrip id
    datastrip_path: str


def _json(client: Any, bucket: SourceBucket, key: str) -> Any:
    uri = f"s3://{bucket.name}/{key}"
    try:
        doc = json.loads(get_bytes(client, bucket, key))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EopackError(f"{uri}: corrupt {key.rsplit('/', 1)[-1]} ({exc})") from None
    if not isinstance(doc, dict):
        raise EopackError(f"{uri}: not a JSON object")
    return doc


def _text(doc: Mapping[str, Any], field: str, uri: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not value:
        raise EopackError(f"{uri}: no {field!r}")
    return value.strip("/")


def _datastrip_folder(datastrip_id: str, uri: str) -> str:
    match = _DATASTRIP_ID.search(datastrip_id)
    if not match:
        raise EopackError(f"{uri}: datastrip id {datastrip_id!r} is not an S2 datastrip id")
    return match["folder"]


def _tiles(info: Mapping[str, Any], uri: str) -> list[_Tile]:
    tiles = info.get("tiles")
    if not isinstance(tiles, list) or not tiles:
        raise EopackError(f"{uri}: lists no tiles")
    out = []
    for entry in tiles:
        if not isinstance(entry, dict) or not isinstance(entry.get("datastrip"), dict):
            raise EopackError(f"{uri}: a tile without its path and datastrip")
        path = _text(entry, "path", uri)
        match = _TILE_PATH.match(path)
        if not match:
            raise EopackError(f"{uri}: tile path {path!r} is not tiles/{{zone}}/{{band}}/...")
        tile = f"{int(match['zone']):02d}{match['band']}{match['square']}"
        ds = entry["datastrip"]
        out.append(_Tile(path, tile, _text(ds, "id", uri), _text(ds, "path", uri)))
    return out


def _check_tile_info(doc: Mapping[str, Any], tile: _Tile, name: str, prefix: str, uri: str) -> None:
    """``tileInfo.json`` must describe this tile of this product."""
    if doc.get("productName") != name:
        raise EopackError(f"{uri}: names product {doc.get('productName')!r}, expected {name}")
    for field, expected in (("productPath", prefix), ("path", tile.path)):
        got = doc.get(field)
        if isinstance(got, str) and got.strip("/") != expected:
            raise EopackError(f"{uri}: {field} {got!r}, expected {expected!r}")
    ds = doc.get("datastrip")
    if isinstance(ds, dict) and ds.get("id") not in (None, tile.datastrip):
        raise EopackError(
            f"{uri}: datastrip {ds.get('id')!r}, productInfo.json says {tile.datastrip!r}"
        )


def _folders(objects: list[DataObject], top: str) -> set[str]:
    return {
        o.path.split("/")[1]
        for o in objects
        if o.path.startswith(f"{top}/") and "/" in o.path[len(top) + 1 :]
    }


def read_layout(
    client: Any, bucket: SourceBucket, name: str, prefix: str, pool: Executor | None = None
) -> tuple[Layout, list[DataObject]]:
    """Read ``productInfo.json``, each tile's ``tileInfo.json`` and ``manifest.safe`` and
    check them against each other: the granule and datastrip folders are the manifest's, and
    each must be accounted for by the JSON metadata (a tile with a matching datastrip).

    ``pool``: fetch ``manifest.safe`` beside ``productInfo.json`` and the tiles'
    ``tileInfo.json`` side by side (two round trips instead of 2 + tiles; the checks and their
    errors come in the same order)."""
    level = level_of(name)
    prefix = prefix.strip("/")
    where = f"s3://{bucket.name}/{prefix}/productInfo.json"
    manifest_key = f"{prefix}/manifest.safe"
    manifest: Future[bytes] | None = None
    if pool is not None:
        manifest = pool.submit(get_bytes, client, bucket, manifest_key)
    info = _json(client, bucket, f"{prefix}/productInfo.json")
    if info.get("name") != name:
        raise EopackError(f"{where}: names product {info.get('name')!r}, expected {name}")
    path = info.get("path")
    if isinstance(path, str) and path.strip("/") != prefix:
        raise EopackError(f"{where}: path {path!r}, expected {prefix!r}")
    tiles = _tiles(info, where)
    keys = [f"{tile.path}/tileInfo.json" for tile in tiles]
    docs = [pool.submit(_json, client, bucket, key) for key in keys] if pool is not None else []
    for number, (tile, key) in enumerate(zip(tiles, keys, strict=True)):
        doc = docs[number].result() if docs else _json(client, bucket, key)
        _check_tile_info(doc, tile, name, prefix, f"s3://{bucket.name}/{key}")
    manifest_uri = f"s3://{bucket.name}/{manifest_key}"
    body = manifest.result() if manifest is not None else get_bytes(client, bucket, manifest_key)
    objects = parse_manifest_bytes(body, manifest_uri)
    # Datastrips: every folder of the manifest is one whose id productInfo.json gives.
    by_folder = {}
    for tile in tiles:
        by_folder[_datastrip_folder(tile.datastrip, where)] = tile.datastrip_path
    for entry in info.get("datastrips") or ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            folder = _datastrip_folder(entry["id"], where)
            by_folder.setdefault(folder, _text(entry, "path", where))
    datastrips = {}
    for folder in sorted(_folders(objects, "DATASTRIP")):
        if folder not in by_folder:
            raise EopackError(
                f"{manifest_uri}: datastrip folder DATASTRIP/{folder}/ is not a datastrip of "
                f"productInfo.json ({', '.join(sorted(by_folder))})"
            )
        datastrips[folder] = by_folder[folder]
    # Granules: tile id and datastrip sensing start name the one tile folder it comes from.
    granules: dict[str, str] = {}
    for folder in sorted(_folders(objects, "GRANULE")):
        match = _GRANULE.match(folder)
        if not match or match["level"] != level:
            raise EopackError(
                f"{manifest_uri}: granule folder GRANULE/{folder}/ is not an {level} granule name"
            )
        candidates = [
            t
            for t in tiles
            if t.tile == match["tile"]
            and _DATASTRIP_ID.search(t.datastrip)["start"] == match["start"]
        ]
        if len(candidates) != 1:
            raise EopackError(
                f"{manifest_uri}: granule folder GRANULE/{folder}/ is not accounted for by "
                f"productInfo.json (tiles: {', '.join(f'T{t.tile} {t.path}' for t in tiles)})"
            )
        granules[folder] = candidates[0].path
    unused = sorted({t.path for t in tiles} - set(granules.values()))
    if unused:
        raise EopackError(
            f"{manifest_uri}: lists no granule of tile {unused[0]} (productInfo.json)"
        )
    return Layout(name, prefix, granules, datastrips), objects


def product_files(client: Any, bucket: SourceBucket, product: Any) -> ProductFiles:
    """Every SAFE file of an S2 product with its bucket key, for the collection registry.

    ``manifest.safe`` is the list of files; each data object maps to a key by the rules
    (:data:`RULES`), and one listing per folder (product, tiles) proves it is there and gives
    its size. A file the bucket never carries (:data:`KNOWN_GAPS`) is recorded as a known gap;
    any other file missing is an error naming its key, before anything is downloaded.
    """
    from eopack.plan import list_versions
    from eopack.safe.registry import ProductFiles

    name: str = product.id
    # The metadata and the listings side by side: on S3 each sequential request is a round
    # trip (tens of ms) that s5cmd, which reads no metadata, does not pay.
    with ThreadPoolExecutor(4, "eopack-s2-list") as pool:
        first = str(product.prefix).strip("/")
        listings = {first: pool.submit(list_versions, client, bucket, first)}
        layout, objects = read_layout(client, bucket, name, product.prefix, pool)
        prefixes = [layout.product_prefix]
        for folder in (*layout.datastrips.values(), *layout.granules.values()):
            if not any(folder.startswith(f"{p}/") or folder == p for p in prefixes):
                prefixes.append(folder)
        for prefix in prefixes:
            if prefix not in listings:
                listings[prefix] = pool.submit(list_versions, client, bucket, prefix)
        listed: dict[str, tuple[int, str]] = {}
        for prefix in prefixes:
            listed.update((f"{prefix}/{k}", v) for k, v in listings[prefix].result().items())
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}
    etags: dict[str, str] = {}
    gaps: list[str] = []
    for path in sorted({o.path for o in objects} | {"manifest.safe"}):
        key = bucket_key(layout, path)
        if key is None:
            if not any(fnmatch.fnmatchcase(path, pattern) for pattern in KNOWN_GAPS):
                raise EopackError(
                    f"s3://{bucket.name}/{layout.product_prefix}/manifest.safe: lists "
                    f"{path}, which eopack cannot map to a bucket key"
                )
            gaps.append(path)
            continue
        if key not in listed:
            raise EopackError(
                f"s3://{bucket.name}/{key}: object not found ({name}.SAFE/{path} of its "
                "manifest.safe): a missing tile or datastrip object"
            )
        files[path] = key
        sizes[path], etags[path] = listed[key]
    log.info(
        "%s: %d files in %d bucket folders, %d known gaps (%s)",
        name,
        len(files),
        len(prefixes),
        len(gaps),
        ", ".join(KNOWN_GAPS),
    )
    return ProductFiles(
        name,
        f"{name}.SAFE",
        dict(sorted(files.items())),
        tuple(prefixes),
        sizes=dict(sorted(sizes.items())),
        known_gaps=tuple(gaps),
        etags=dict(sorted(etags.items())),
    )
