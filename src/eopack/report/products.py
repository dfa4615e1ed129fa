"""What a product id says, for report captions (no I/O, cheap to import at DAG time).

``S1A_IW_GRDH_1SDV_20210310T053012_...``: mission, beam mode, product type and resolution,
processing level / class / polarisation code (``1SDV``: dual VV+VH), then the sensing start.
``S2A_MSIL2A_20220126T084129_N0400_R064_T36RUT_...``: mission, level, sensing start,
processing baseline, relative orbit, tile. ``LC08_L2SP_195027_20210311_20210317_02_T1``:
sensor and mission, level, WRS path/row, acquisition date, collection and category.
"""

from __future__ import annotations

import re

S1_ID = re.compile(
    r"^(?P<mission>S1[A-D])_(?P<mode>[A-Z0-9]{2})_(?P<type>[A-Z_]{3})(?P<res>[FHM_])_"
    r"(?P<level>\d)(?P<cls>[SA])(?P<pol>SH|SV|DH|DV|HH|HV|VV|VH)_"
    r"(?P<start>\d{8}T\d{6})_"
)
S2_ID = re.compile(
    r"^(?P<mission>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<start>\d{8}T\d{6})_N(?P<baseline>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>[0-9A-Z]{5})_"
)
LANDSAT_ID = re.compile(
    r"^L(?P<sensor>[COTEM])(?P<mission>\d{2})_(?P<level>L[12][A-Z]{2})_(?P<path>\d{3})"
    r"(?P<row>\d{3})_(?P<date>\d{8})_"
)
POLARISATIONS = {
    "SH": "HH",
    "SV": "VV",
    "DH": "HH+HV",
    "DV": "VV+VH",
    "HH": "HH",
    "HV": "HV",
    "VV": "VV",
    "VH": "VH",
}


def describe_product(product_id: str) -> dict[str, str]:
    """Sensing start, mission, mode (S1 beam mode; S2 level, baseline and tile; Landsat level
    and WRS path/row) and S1 polarisations (empty strings for other ids)."""
    s2 = S2_ID.match(product_id)
    if s2:
        start, base = s2["start"], s2["baseline"]
        return {
            "sensing start": f"{start[:4]}-{start[4:6]}-{start[6:8]} {start[9:11]}:{start[11:13]}",
            "mission": s2["mission"],
            "mode": f"MSI {s2['level']}, baseline {base[:2]}.{base[2:]}, tile {s2['tile']}",
            "polarisation": "",
            "product": product_id,
        }
    landsat = LANDSAT_ID.match(product_id)
    if landsat:
        day = landsat["date"]
        return {
            "sensing start": f"{day[:4]}-{day[4:6]}-{day[6:]}",
            "mission": f"Landsat {int(landsat['mission'])}",
            "mode": f"{landsat['level']}, WRS-2 {landsat['path']}/{landsat['row']}",
            "polarisation": "",
            "product": product_id,
        }
    match = S1_ID.match(product_id)
    if not match:
        return {
            "sensing start": "",
            "mission": "",
            "mode": "",
            "polarisation": "",
            "product": product_id,
        }
    start = match["start"]
    return {
        "sensing start": f"{start[:4]}-{start[4:6]}-{start[6:8]} {start[9:11]}:{start[11:13]}",
        "mission": match["mission"],
        "mode": match["mode"],
        "polarisation": POLARISATIONS[match["pol"]],
        "product": product_id,
    }
