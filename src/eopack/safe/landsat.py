"""Landsat Collection 2 Level-2 scenes from the ``usgs-landsat`` bucket (us-west-2, requester
pays): the scene folder as it is, checked against the listing and the STAC item.

A scene has no manifest of its own (no ``manifest.safe``): the reference is the bucket's
listing of the scene folder (every file and its size) and, where the STAC item carries one,
each asset's ``file:checksum``. The folder is kept whole, under the bucket's names:
``{product id}/{product id}_SR_B4.TIF`` ... including the two USGS STAC items the bucket
keeps in it (``_SR_stac.json``, ``_ST_stac.json``): they are the scene's own metadata in
STAC form (a few KB), and a user's STAC tools read them offline.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath
from typing import Any

from eopack.archive import SNAKEMAKE_MARKER
from eopack.errors import EopackError
from eopack.s3 import SourceBucket
from eopack.safe.listing import read_listing, write_listing
from eopack.safe.registry import ProductFiles
from eopack.transfer import TransferConfig

log = logging.getLogger(__name__)

#: No MD5 while downloading: the verify step hashes every file against the listing record.
SCENE_TRANSFER = TransferConfig(md5=False)

#: Multihash codes eopack checks (https://github.com/multiformats/multicodec): code ->
#: (name, digest length in bytes, hashlib name).
MULTIHASH: dict[int, tuple[str, int, str]] = {
    0x12: ("sha2-256", 32, "sha256"),
    0xD5: ("md5", 16, "md5"),
}
_HASHLIB = {name: lib for name, _, lib in MULTIHASH.values()}
#: Statuses of a file that verified.
OK = ("ok",)


def _varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    """An unsigned LEB128 varint at ``pos``: (value, next position)."""
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise EopackError(f"{where}: file:checksum is not a multihash (truncated varint)")


def decode_multihash(value: str, where: str) -> tuple[str, str]:
    """A STAC ``file:checksum`` (hex multihash: code, length, digest) -> (algorithm, hex
    digest). Only sha2-256 (``1220...``) and md5 (``d50110...``) are known; any other code,
    or a length that does not match, is one clear error naming ``where``."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise EopackError(f"{where}: file:checksum {value!r} is not hexadecimal") from None
    code, pos = _varint(raw, 0, where)
    length, pos = _varint(raw, pos, where)
    if code not in MULTIHASH:
        known = ", ".join(f"{name} (0x{c:x})" for c, (name, _, _) in MULTIHASH.items())
        raise EopackError(
            f"{where}: file:checksum uses multihash code 0x{code:x}, which eopack does not "
            f"check (it checks {known})"
        )
    name, size, _ = MULTIHASH[code]
    digest = raw[pos:]
    if length != size or len(digest) != size:
        raise EopackError(
            f"{where}: file:checksum {name} digest has {len(digest)} bytes "
            f"(declared {length}, expected {size})"
        )
    return name, digest.hex()


def encode_multihash(algorithm: str, digest: bytes) -> str:
    """The hex multihash of ``digest`` (the demo world's ``file:checksum``)."""
    for code, (name, size, _) in MULTIHASH.items():
        if name == algorithm and len(digest) == size:
            head = bytearray()
            n = code
            while True:
                head.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
                n >>= 7
                if not n:
                    break
            return bytes(head).hex() + f"{size:02x}" + digest.hex()
    raise ValueError(f"no multihash for {algorithm} with a {len(digest)}-byte digest")


def _file_name(key: str, prefix: str, where: str) -> str:
    name = key[len(prefix) + 1 :]
    pure = PurePosixPath(name)
    if not name or ".." in pure.parts or "\\" in name or name.endswith("/"):
        raise EopackError(f"{where}{name}: not a file name eopack can keep")
    return str(pure)


def product_files(client: Any, bucket: SourceBucket, product: Any) -> ProductFiles:
    """Every file of the scene: one listing of its folder (sizes included); the expected
    checksums from the manifest record (the STAC assets' ``file:checksum``).

    An empty folder, a folder that is not the product's, or a listing without a file the
    item's assets name (``asset_files``) is one clear error naming the s3:// key.
    """
    from eopack.plan import list_versions

    prefix = str(product.prefix).rstrip("/")
    where = f"s3://{bucket.name}/{prefix}/"
    if prefix.rsplit("/", 1)[-1] != product.id:
        raise EopackError(f"{where}: not the folder of scene {product.id}")
    versions = {
        _file_name(f"{prefix}/{rel}", prefix, where): version
        for rel, version in list_versions(client, bucket, prefix).items()
    }
    sizes = {name: size for name, (size, _) in versions.items()}
    if not sizes:
        raise EopackError(f"{where}: no objects (scene {product.id} is not in the bucket)")
    extra = product.extra or {}
    raw_checksums: dict[str, str] = dict(extra.get("checksums") or {})
    named = sorted({*extra.get("asset_files", ()), *raw_checksums})
    missing = [name for name in named if name not in sizes]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EopackError(
            f"{where}{missing[0]}: not in the bucket, although the STAC item names it{more}"
        )
    checksums = {
        name: decode_multihash(value, f"{where}{name}")
        for name, value in sorted(raw_checksums.items())
    }
    files = {name: f"{prefix}/{name}" for name in sorted(sizes)}
    return ProductFiles(
        product_id=product.id,
        folder=product.id,
        files=files,
        prefixes=(prefix,),
        sizes=dict(sorted(sizes.items())),
        checksums=checksums,
        etags={name: etag for name, (_, etag) in sorted(versions.items())},
    )


# --------------------------------------------------------------------------------------------
# Verify
# --------------------------------------------------------------------------------------------


def _digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    """md5 and the other ``algorithms`` of one file, in one pass."""
    hashers = {
        name: hashlib.new(_HASHLIB[name], usedforsecurity=False) for name in {"md5", *algorithms}
    }
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _is_tiff(path: str) -> bool:
    return path.lower().endswith((".tif", ".tiff"))


def _unlisted(folder: Path, listed: Any) -> list[str]:
    """Files in ``folder`` the listing does not name (Snakemake's marker aside)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
        and p.name != SNAKEMAKE_MARKER
        and p.relative_to(folder).as_posix() not in listed
    )


def verify_files(
    folder: Path, files: ProductFiles, product_id: str, *, hash_tiffs: bool = True
) -> dict[str, Any]:
    """``verify.json``'s body: each listed file's size against the listing, its md5 (and
    sha2-256) against the STAC checksum where known, and every TIFF opened by GDAL.

    ``hash_tiffs=False``: sizes only for the TIFFs (nearly all the bytes): the rebuild's
    check of its staged folder before it replaces an earlier one.
    """
    from eopack.safe.manifest import _readable_geotiff

    entries: list[dict[str, Any]] = []
    for path in sorted(files.files):
        target = folder / path
        expected = files.checksums.get(path)
        entry: dict[str, Any] = {
            "path": path,
            "expected_size": files.sizes.get(path),
            "expected_md5": expected[1] if expected and expected[0] == "md5" else None,
            "size": None,
            "md5": None,
        }
        if expected and expected[0] != "md5":
            entry["expected_checksum"] = f"{expected[0]}:{expected[1]}"
            entry["checksum"] = None
        if not target.is_file():
            entry["status"] = "missing"
            entries.append(entry)
            continue
        entry["size"] = target.stat().st_size
        tiff = _is_tiff(path)
        status = "ok"
        if entry["expected_size"] is not None and entry["size"] != entry["expected_size"]:
            status = "size_mismatch"
        elif hash_tiffs or not tiff:
            algorithms = {expected[0]} if expected else set()
            digests = _digests(target, algorithms)
            entry["md5"] = digests["md5"]
            if expected and expected[0] != "md5":
                entry["checksum"] = f"{expected[0]}:{digests[expected[0]]}"
            if expected and digests[expected[0]] != expected[1]:
                status = "md5_mismatch" if expected[0] == "md5" else "checksum_mismatch"
        if status == "ok" and tiff and hash_tiffs and not _readable_geotiff(target):
            status = "unreadable"
        entry["status"] = status
        entries.append(entry)
    unlisted = _unlisted(folder, files.files)
    bad = [e for e in entries if e["status"] not in OK]
    return {
        "product": product_id,
        "folder": files.folder,
        "ok": not bad,
        "checked": len(entries),
        "failed": len(bad),
        "files": entries,
        "not_in_manifest": unlisted,
    }


def verify_scene(folder: str | Path, product_id: str) -> dict[str, Any]:
    """Verify a rebuilt scene folder against the listing record its rebuild left beside it
    (``{id}.listing.json``, :mod:`eopack.safe.listing`): the registry's verifier."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EopackError(f"{folder}: no scene folder to verify")
    files = read_listing(folder.parent, product_id, folder.name)
    return verify_files(folder, files, product_id)


def failure_line(report: dict[str, Any]) -> str:
    """One line naming the first failed file and why, for the job's error."""
    bad = [f for f in report["files"] if f["status"] not in OK]
    first = bad[0]
    detail = {
        "missing": "missing",
        "unreadable": "not a readable GeoTIFF",
        "size_mismatch": f"size {first['size']} != listing {first['expected_size']}",
        "md5_mismatch": f"md5 {first['md5']} != STAC file:checksum {first['expected_md5']}",
        "checksum_mismatch": (
            f"{first.get('checksum')} != STAC file:checksum {first.get('expected_checksum')}"
        ),
    }.get(first["status"], first["status"])
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{report.get('folder', report['product'])}/{first['path']}: {detail}{more}"


# --------------------------------------------------------------------------------------------
# Rebuild
# --------------------------------------------------------------------------------------------


def check_staged(staging: Path, files: ProductFiles) -> None:
    """The scene's check before it replaces an earlier folder (the registry's ``check``):
    files the listing no longer names are removed (left by a run against an earlier
    listing), every size is checked, every checksum but the TIFFs' (nearly all the bytes,
    left to the verify step). Bad files are removed, so the next run fetches them again."""
    for stale in _unlisted(staging, files.files):
        (staging / stale).unlink()
    report = verify_files(staging, files, files.product_id, hash_tiffs=False)
    if not report["ok"]:
        for entry in report["files"]:
            if entry["status"] not in OK:
                (staging / entry["path"]).unlink(missing_ok=True)
        raise EopackError(
            f"verification failed: {failure_line(report)}; checked before the scene replaces "
            "anything: nothing of an earlier run was changed"
        )


def rebuild_scene(
    client: Any,
    bucket: SourceBucket,
    product: Any,
    dest: str | Path,
    max_workers: int = 8,
    transfer: TransferConfig | None = None,
) -> dict[str, tuple[int, str | None]]:
    """Fetch every file of the scene into ``dest`` (``results/safe/{id}``) and leave the
    listing record beside it: :func:`eopack.safe.rebuild.rebuild_folder` (staged, resumed,
    :func:`check_staged` before the swap), then :func:`eopack.safe.listing.write_listing`.
    The record is written after the swap: a crash in between leaves a record of the earlier
    listing, which can only fail the verify step. Returns path -> (size, md5 or None)."""
    from eopack.safe.rebuild import rebuild_folder

    files = product_files(client, bucket, product)
    written = rebuild_folder(
        client,
        bucket,
        files,
        dest,
        max_workers,
        transfer or SCENE_TRANSFER,
        lambda staging: check_staged(staging, files),
    )
    write_listing(Path(dest).parent, files, bucket.name)
    return written
