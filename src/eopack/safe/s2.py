"""Sentinel-2 L1C / L2A on AWS: which bucket object becomes which file of the ESA SAFE folder.

``sentinel-s2-l1c`` and ``sentinel-s2-l2a`` (requester pays, eu-central-1) split a product in
two: its product folder ``products/{y}/{m}/{d}/{name}/`` (product metadata, ``manifest.safe``,
``inspire.xml``, the datastrips) and one tile folder per granule
``tiles/{utm zone}/{latitude band}/{grid square}/{y}/{m}/{d}/{n}/`` (bands, quality masks,
auxiliary data, tile metadata). :func:`safe_paths` maps both onto ``{name}.SAFE/`` under ESA's
names for processing baseline 04.00, pair for pair as sentinelhub-py's reference listings
(``tests/fixtures/aws-s2/sentinelhub_L*_04.00.csv``). The granule and datastrip folder names
are inputs: they come from the product's metadata, never from guesses.

This module is the mapping only; the builder, its verification and the older baselines come
with it in the product pipeline (issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass

from eopack.errors import EopackError

__all__ = ["BANDS", "S2Product", "safe_paths"]

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
        fields = self.name.split("_")
        if len(fields) != 7 or fields[1] not in ("MSIL1C", "MSIL2A"):
            raise EopackError(f"{self.name}: not a Sentinel-2 L1C or L2A product name")
        return fields[1][3:]

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
