"""The listing record: what a rebuild learnt about a product's files, for the verify step.

Why: for a collection without a manifest inside the product (Landsat), the expected sizes
come from the bucket listing and the expected checksums from the STAC item, both known only
while the rebuild runs. The verify step runs offline afterwards (on another node, with an
executor without a shared file system), so the rebuild leaves them in
``{folder}.listing.json`` beside the product folder (``results/safe/``), never inside it: the
folder is zipped as it is. Every collection's rebuild writes one (a SAFE's is the record of
which bucket object became which file); it is a declared output of the rebuild job. The
record is written atomically, after the folder is in place, and names its product; a folder
without its record cannot be verified (one clear error), and a stale record can only make
the verify step fail, never pass a bad file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eopack.errors import EopackError
from eopack.fsutil import write_json
from eopack.safe.registry import ProductFiles

LISTING_SUFFIX = ".listing.json"


def listing_path(parent: str | Path, folder: str) -> Path:
    """``{parent}/{folder}.listing.json``: beside the product folder (``{id}.SAFE``, a
    Landsat scene's ``{id}``), not in it."""
    return Path(parent) / f"{folder}{LISTING_SUFFIX}"


def listing_doc(files: ProductFiles, bucket: str) -> dict[str, Any]:
    """The record's JSON body (sorted, stable: a rebuild of the same scene writes the same)."""
    return {
        "product": files.product_id,
        "folder": files.folder,
        "bucket": bucket,
        "prefixes": list(files.prefixes),
        "known_gaps": list(files.known_gaps),
        "files": {
            path: {
                "key": key,
                "size": files.sizes.get(path),
                "checksum": (
                    None
                    if path not in files.checksums
                    else {
                        "algorithm": files.checksums[path][0],
                        "digest": files.checksums[path][1],
                    }
                ),
            }
            for path, key in sorted(files.files.items())
        },
    }


def write_listing(
    parent: str | Path, files: ProductFiles, bucket: str, path: str | Path | None = None
) -> Path:
    """Write the record of ``files`` atomically beside the product folder (or at ``path``,
    the rebuild job's declared output); its path."""
    path = Path(path) if path is not None else listing_path(parent, files.folder)
    write_json(path, listing_doc(files, bucket))
    return path


def read_listing(parent: str | Path, product_id: str, folder: str | None = None) -> ProductFiles:
    """The record the rebuild of ``product_id`` left in ``parent`` beside its ``folder``
    (default: the id, a Landsat scene's); missing or foreign records are one clear error
    naming the file."""
    path = listing_path(parent, folder or product_id)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EopackError(
            f"{path}: missing (the rebuild writes it beside {product_id}'s folder; "
            "rebuild the product again)"
        ) from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EopackError(f"{path}: unreadable listing record ({exc})") from None
    try:
        if doc["product"] != product_id:
            raise EopackError(f"{path}: describes {doc['product']}, expected {product_id}")
        entries = doc["files"]
        files = {path_: str(entry["key"]) for path_, entry in entries.items()}
        sizes = {p: int(e["size"]) for p, e in entries.items() if e.get("size") is not None}
        checksums = {
            p: (str(e["checksum"]["algorithm"]), str(e["checksum"]["digest"]))
            for p, e in entries.items()
            if e.get("checksum")
        }
        return ProductFiles(
            product_id=product_id,
            folder=str(doc["folder"]),
            files=files,
            prefixes=tuple(doc["prefixes"]),
            sizes=sizes,
            checksums=checksums,
            known_gaps=tuple(doc.get("known_gaps", ())),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EopackError(
            f"{path}: malformed listing record ({type(exc).__name__}: {exc})"
        ) from None
