"""The Sentinel-2 bucket key -> SAFE path mapping equals sentinelhub-py's reference listings of a
whole real L1C and L2A product (processing baseline 04.00), pair for pair.

The listings (``tests/fixtures/aws-s2``, from sentinel-hub/sentinelhub-py, MIT; see
../shared/fixtures/README) name each object as ``s3://bucket/key``, or, for the metadata files
sentinelhub reads over HTTP, ``https://roda.sentinel-hub.com/bucket/key``: both are the same
object. One line of the L2A listing names the tile metadata as ``.../sentinel-s2-l2a/metadata.xml``
without its tile folder (sentinelhub builds that URL from the tile's own metadata); the object is
the tile folder's ``metadata.xml``, as in the L1C listing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eopack.errors import EopackError
from eopack.safe.s2 import S2Product, safe_paths

FIXTURES = Path(__file__).parent / "fixtures" / "aws-s2"


def _listing(level: str) -> tuple[S2Product, dict[str, str]]:
    """The reference pairs as bucket key -> SAFE path, and the product they describe (folder
    names as its metadata gives them: here read off the listing's own SAFE paths)."""
    bucket = f"sentinel-s2-{level.lower()}"
    rows = [line.split(";") for line in (FIXTURES / f"sentinelhub_{level}_04.00.csv").read_text()
            .splitlines() if line]  # fmt: skip
    pairs: dict[str, str] = {}
    tile = next(re.match(rf"s3://{bucket}/(tiles/(?:[^/]+/){{7}})", k)[1] for k, _ in rows
                if k.startswith(f"s3://{bucket}/tiles/"))  # fmt: skip
    for uri, path in rows:
        key = re.sub(rf"^(s3://|https://roda\.sentinel-hub\.com/){bucket}/", "", uri)
        if key == "metadata.xml":  # the L2A listing's tile metadata (module docstring)
            key = f"{tile}metadata.xml"
        assert key not in pairs, key
        pairs[key] = path
    name = rows[0][1].split(".SAFE/", 1)[0]
    product_prefix = next(k for k in pairs if k.endswith("/manifest.safe")).rsplit("/", 1)[0]
    granule = next(p for p in pairs.values() if "/GRANULE/" in p).split("/")[2]
    datastrip = next(p for p in pairs.values() if "/DATASTRIP/" in p).split("/")[2]
    return S2Product(name, product_prefix, tile, granule, datastrip), pairs


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_mapping_equals_the_reference_listing(level):
    product, pairs = _listing(level)
    assert product.level == level and len(pairs) >= 57
    got = safe_paths(product)
    assert sorted(got.items()) == sorted(pairs.items())


def test_a_granule_of_the_other_level_is_refused():
    product, _ = _listing("L1C")
    wrong = S2Product(product.name, product.product_prefix, product.tile_prefix,
                      "L2A" + product.granule[3:], product.datastrip)  # fmt: skip
    with pytest.raises(EopackError, match=r"is not an L1C granule id$"):
        safe_paths(wrong)


def test_a_name_that_is_not_sentinel2_is_refused():
    product, _ = _listing("L2A")
    with pytest.raises(EopackError, match="not a Sentinel-2 L1C or L2A product name"):
        safe_paths(S2Product("S1A_IW_GRDH_1SDV_X", "p", "t", product.granule, product.datastrip))
