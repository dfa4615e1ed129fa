"""Sentinel-2 L1C / L2A on AWS: which bucket object is which file of the ESA SAFE folder.

``sentinel-s2-l1c`` and ``sentinel-s2-l2a`` (requester pays, eu-central-1) split a product in
two: its product folder ``products/{y}/{m}/{d}/{name}/`` (product metadata, ``manifest.safe``,
``inspire.xml``, the datastrips) and one tile folder per granule
``tiles/{utm zone}/{latitude band}/{grid square}/{y}/{m}/{d}/{n}/`` (bands, quality masks,
auxiliary data, tile metadata). :data:`RULES` pair SAFE paths with bucket keys in both
directions (:func:`bucket_key`, :func:`safe_path`) for every processing baseline seen;
:func:`safe_paths` lists baseline 04.00's files, pair for pair as sentinelhub-py's reference
listings (``tests/fixtures/aws-s2``). The granule and datastrip folder names are inputs (from
the product's metadata, :mod:`eopack.safe.s2`), never guesses.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from eopack.errors import EopackError

__all__ = [
    "BANDS",
    "BUCKET_ONLY",
    "KNOWN_GAPS",
    "RULES",
    "Layout",
    "S2Product",
    "bucket_key",
    "level_of",
    "safe_path",
    "safe_paths",
]

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: L2A bands per resolution folder (IMG_DATA/R10m, R20m, R60m), besides AOT, WVP, TCI (and SCL
#: at 20 and 60 m).
L2A_BANDS = {
    "10m": ("B02", "B03", "B04", "B08"),
    "20m": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"),
    "60m": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"),
}
L2A_EXTRA = {"10m": ("AOT", "TCI", "WVP"), "20m": ("AOT", "SCL", "TCI", "WVP")}
L2A_EXTRA["60m"] = L2A_EXTRA["20m"]
QUALITY_REPORTS = ("FORMAT_CORRECTNESS", "GENERAL_QUALITY", "GEOMETRIC_QUALITY", "SENSOR_QUALITY")
DATASTRIP_REPORTS = (*QUALITY_REPORTS[:3], "RADIOMETRIC_QUALITY", QUALITY_REPORTS[3])
AUXILIARY = ("CAMSFO", "ECMWFT")


def level_of(name: str) -> str:
    """``L1C`` or ``L2A`` of a compact S2 product name (``S2A_MSIL1C_...``)."""
    fields = name.split("_")
    if len(fields) != 7 or fields[1] not in ("MSIL1C", "MSIL2A"):
        raise EopackError(f"{name}: not a Sentinel-2 L1C or L2A product name")
    return fields[1][3:]


@dataclass(frozen=True)
class S2Product:
    """One S2 product on AWS, with the folder names its metadata gives.

    ``name``: the SAFE name without ``.SAFE``
    (``S2A_MSIL1C_20220317T074651_N0400_R135_T36MZB_20220317T091114``); ``product_prefix``:
    its product folder in the bucket; ``tile_prefix``: its granule's tile folder;
    ``granule``: the granule id (``L1C_T36MZB_A035167_20220317T075215``); ``datastrip``: the
    datastrip id (``DS_VGS4_20220317T091114_S20220317T075215``).
    """

    name: str
    product_prefix: str
    tile_prefix: str
    granule: str
    datastrip: str

    @property
    def level(self) -> str:
        """``L1C`` or ``L2A``, from the name's product type (``MSIL1C``, ``MSIL2A``)."""
        return level_of(self.name)

    @property
    def file_prefix(self) -> str:
        """The granule's file names start with ``{tile}_{datatake sensing time}``."""
        fields = self.name.split("_")
        return f"{fields[5]}_{fields[2]}"


def safe_paths(product: S2Product) -> dict[str, str]:
    """Bucket key -> path in the SAFE folder (``{name}.SAFE/...``), for baseline 04.00."""
    level = product.level
    if not product.granule.startswith(f"{level}_"):
        raise EopackError(
            f"{product.name}: granule {product.granule!r} is not an {level} granule id"
        )
    safe = f"{product.name}.SAFE"
    granule = f"{safe}/GRANULE/{product.granule}"
    datastrip = f"{safe}/DATASTRIP/{product.datastrip}"
    p, t, files = product.product_prefix.rstrip("/"), product.tile_prefix.rstrip("/"), {}
    files[f"{p}/metadata.xml"] = f"{safe}/MTD_MSI{level}.xml"
    files[f"{p}/inspire.xml"] = f"{safe}/INSPIRE.xml"
    files[f"{p}/manifest.safe"] = f"{safe}/manifest.safe"
    files[f"{p}/datastrip/0/metadata.xml"] = f"{datastrip}/MTD_DS.xml"
    suffix = "_report" if level == "L1C" else ""  # the L1C bucket keeps ESA's report names
    for report in DATASTRIP_REPORTS:
        files[f"{p}/datastrip/0/qi/{report}{suffix}.xml"] = f"{datastrip}/QI_DATA/{report}.xml"
    files[f"{t}/metadata.xml"] = f"{granule}/MTD_TL.xml"
    stem = product.file_prefix
    if level == "L1C":
        for band in (*BANDS, "TCI"):
            files[f"{t}/{band}.jp2"] = f"{granule}/IMG_DATA/{stem}_{band}.jp2"
        files[f"{t}/preview.jp2"] = f"{granule}/QI_DATA/{stem}_PVI.jp2"
    else:
        for res, bands in L2A_BANDS.items():
            for band in (*bands, *L2A_EXTRA[res]):
                files[f"{t}/R{res}/{band}.jp2"] = (
                    f"{granule}/IMG_DATA/R{res}/{stem}_{band}_{res}.jp2"
                )
        files[f"{t}/qi/L2A_PVI.jp2"] = f"{granule}/QI_DATA/{stem}_PVI.jp2"
        for mask, esa in (("SNW", "SNWPRB"), ("CLD", "CLDPRB")):
            for res in ("20m", "60m"):
                files[f"{t}/qi/{mask}_{res}.jp2"] = f"{granule}/QI_DATA/MSK_{esa}_{res}.jp2"
        files[f"{t}/qi/L2A_QUALITY.xml"] = f"{granule}/QI_DATA/L2A_QUALITY.xml"
    files[f"{t}/qi/CLASSI_B00.jp2"] = f"{granule}/QI_DATA/MSK_CLASSI_B00.jp2"
    for mask in ("DETFOO", "QUALIT"):
        for band in BANDS:
            files[f"{t}/qi/{mask}_{band}.jp2"] = f"{granule}/QI_DATA/MSK_{mask}_{band}.jp2"
    for report in QUALITY_REPORTS:
        files[f"{t}/qi/{report}.xml"] = f"{granule}/QI_DATA/{report}.xml"
    for aux in AUXILIARY:
        key = aux if level == "L1C" else f"AUX_{aux}"  # the L2A bucket keeps ESA's names
        files[f"{t}/auxiliary/{key}"] = f"{granule}/AUX_DATA/AUX_{aux}"
    return files


# --- the rules, both ways ----------------------------------------------------------------------
#
# One rule pairs a SAFE path with a bucket key. ``{P}`` is the product folder, ``{T}`` the
# granule's tile folder, ``{D}`` the datastrip's folder (all three from productInfo.json);
# ``{g}``/``{ds}`` the granule/datastrip folder names (from manifest.safe); ``{stem}`` the
# granule's file name stem (``T36MZB_20220317T074651``). The other fields are read from one
# side and written into the other. Baselines differ in which files exist, not in the rules:
# GML masks (``qi/MSK_CLOUDS_B00.gml``) before 04.00, JP2 masks (``qi/DETFOO_B01.jp2`` <-
# ``MSK_DETFOO_B01.jp2``) from 04.00 on; the L1C bucket suffixes the datastrip reports with
# ``_report``, the L2A bucket does not, in every baseline seen.

_FIELDS = {
    "g": r"[^/]+",
    "ds": r"[^/]+",
    "stem": r"[^/]+",
    "band": r"B\d\d|B8A|TCI",
    "l2a": r"B\d\d|B8A|AOT|SCL|TCI|WVP",
    "res": r"10m|20m|60m",
    "prb": r"CLD|SNW",
    "mask": r"[A-Z]+",
    "mband": r"B\d\d|B8A",
    "gml": r"MSK_[A-Z]+_B\d\d|MSK_[A-Z]+_B8A",
    "report": r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*",
    "aux": r"[A-Z0-9]+",
}
_COMMON = (
    ("INSPIRE.xml", "{P}/inspire.xml"),
    ("manifest.safe", "{P}/manifest.safe"),
    ("DATASTRIP/{ds}/MTD_DS.xml", "{D}/metadata.xml"),
    ("GRANULE/{g}/MTD_TL.xml", "{T}/metadata.xml"),
    ("GRANULE/{g}/QI_DATA/MSK_{mask}_{mband}.jp2", "{T}/qi/{mask}_{mband}.jp2"),
    ("GRANULE/{g}/QI_DATA/{gml}.gml", "{T}/qi/{gml}.gml"),
    ("GRANULE/{g}/QI_DATA/{report}.xml", "{T}/qi/{report}.xml"),
)
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "L1C": (
        ("MTD_MSIL1C.xml", "{P}/metadata.xml"),
        *_COMMON,
        ("DATASTRIP/{ds}/QI_DATA/{report}.xml", "{D}/qi/{report}_report.xml"),
        ("GRANULE/{g}/IMG_DATA/{stem}_{band}.jp2", "{T}/{band}.jp2"),
        ("GRANULE/{g}/QI_DATA/{stem}_PVI.jp2", "{T}/preview.jp2"),
        ("GRANULE/{g}/AUX_DATA/AUX_{aux}", "{T}/auxiliary/{aux}"),
    ),
    "L2A": (
        ("MTD_MSIL2A.xml", "{P}/metadata.xml"),
        *_COMMON,
        ("DATASTRIP/{ds}/QI_DATA/{report}.xml", "{D}/qi/{report}.xml"),
        ("GRANULE/{g}/IMG_DATA/R{res}/{stem}_{l2a}_{res}.jp2", "{T}/R{res}/{l2a}.jp2"),
        ("GRANULE/{g}/QI_DATA/{stem}_PVI.jp2", "{T}/qi/L2A_PVI.jp2"),
        ("GRANULE/{g}/QI_DATA/MSK_{prb}PRB_{res}.jp2", "{T}/qi/{prb}_{res}.jp2"),
        ("GRANULE/{g}/AUX_DATA/AUX_{aux}", "{T}/auxiliary/AUX_{aux}"),
    ),
}
#: SAFE files the buckets never carry (manifest.safe lists them): ESA's HTML presentation and
#: the XML schemas. Everything else the manifest lists must be in the bucket.
KNOWN_GAPS = ("HTML/*", "rep_info/*")
#: Objects of the buckets that are not ESA files: Sinergise's own JSON, JPEG previews,
#: per-band JP2 previews (L1C), and B08 resampled to 20 m and 60 m (L2A; ESA's L2A has B08 at
#: 10 m only). :func:`safe_path` maps them to None.
BUCKET_ONLY = (
    "productInfo.json",
    "tileInfo.json",
    "preview.jpg",
    "preview/*.jp2",
    "R20m/B08.jp2",
    "R60m/B08.jp2",
)
_TEMPLATE_FIELD = re.compile(r"\{(\w+)\}")


def _regex(template: str, known: Mapping[str, str]) -> re.Pattern[str]:
    """``template`` as an anchored regex: known fields literal, the others as named groups
    (a field used twice must repeat the same text)."""
    return _compiled(template, tuple(sorted(known.items())))


@functools.lru_cache(maxsize=256)
def _compiled(template: str, known_items: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    known = dict(known_items)
    out: list[str] = []
    seen: set[str] = set()
    pos = 0
    for match in _TEMPLATE_FIELD.finditer(template):
        out.append(re.escape(template[pos : match.start()]))
        name = match[1]
        if name in known:
            out.append(re.escape(known[name]))
        elif name in seen:
            out.append(f"(?P={name})")
        else:
            out.append(f"(?P<{name}>{_FIELDS[name]})")
            seen.add(name)
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class Layout:
    """Where one product's files are, as its metadata says.

    ``granules``: granule folder -> its tile folder in the bucket; ``datastrips``: datastrip
    folder -> its folder in the bucket (``products/.../datastrip/0``).
    """

    name: str
    product_prefix: str
    granules: Mapping[str, str]
    datastrips: Mapping[str, str]

    @property
    def level(self) -> str:
        return level_of(self.name)

    @classmethod
    def of(cls, product: S2Product) -> Layout:
        """The layout of a single-granule :class:`S2Product`."""
        return cls(
            product.name,
            product.product_prefix.rstrip("/"),
            {product.granule: product.tile_prefix.rstrip("/")},
            {product.datastrip: f"{product.product_prefix.rstrip('/')}/datastrip/0"},
        )


def bucket_key(layout: Layout, path: str) -> str | None:
    """The bucket key of SAFE path ``path`` (relative to ``{name}.SAFE/``), or None where no
    rule maps it (a file the bucket does not carry, see :data:`KNOWN_GAPS`).

    The granule and datastrip folder of ``path`` must be the layout's (an unknown one is an
    error: the caller checked the manifest's folders against the metadata)."""
    for safe_template, key_template in RULES[layout.level]:
        match = _regex(safe_template, {}).match(path)
        if not match:
            continue
        fields = match.groupdict()
        fields["P"] = layout.product_prefix
        if "g" in fields:
            if fields["g"] not in layout.granules:
                raise EopackError(f"{layout.name}: {path}: granule folder not in the metadata")
            fields["T"] = layout.granules[fields["g"]]
        if "ds" in fields:
            if fields["ds"] not in layout.datastrips:
                raise EopackError(f"{layout.name}: {path}: datastrip folder not in the metadata")
            fields["D"] = layout.datastrips[fields["ds"]]
        return key_template.format(**fields)
    return None


def safe_path(layout: Layout, key: str, stems: Mapping[str, str] | None = None) -> str | None:
    """The SAFE path (relative to ``{name}.SAFE/``) of bucket key ``key``, or None for an
    object that is not an ESA file (:data:`BUCKET_ONLY`) or lies outside the product.

    The inverse of :func:`bucket_key`, for the bucket's side of the tests and the demo
    world; ``stems``: granule folder -> file name stem (default: from a compact name)."""
    folders: list[tuple[str, dict[str, str]]] = [("P", {"P": layout.product_prefix})]
    for ds, prefix in layout.datastrips.items():
        folders.append(("D", {"D": prefix, "ds": ds}))
    for g, prefix in layout.granules.items():
        stem = (stems or {}).get(g) or S2Product(layout.name, "", "", g, "").file_prefix
        folders.append(("T", {"T": prefix, "g": g, "stem": stem}))
    # The deepest folder first: the datastrips lie inside the product folder.
    for letter, known in sorted(folders, key=lambda item: -len(item[1][item[0]])):
        prefix = known[letter]
        if not key.startswith(f"{prefix}/"):
            continue
        if any(fnmatch.fnmatchcase(key[len(prefix) + 1 :], p) for p in BUCKET_ONLY):
            return None
        for safe_template, key_template in RULES[layout.level]:
            match = key_template.startswith(f"{{{letter}}}") and _regex(key_template, known).match(
                key
            )
            if match:
                return safe_template.format(**known, **match.groupdict())
        return None
    return None
