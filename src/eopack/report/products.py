"""What a Sentinel-1 product id says, for report captions (no I/O, cheap to import at DAG time).

``S1A_IW_GRDH_1SDV_20210310T053012_...``: mission, beam mode, product type and resolution,
processing level / class / polarisation code (``1SDV``: dual VV+VH), then the sensing start.
"""

from __future__ import annotations

import re

S1_ID = re.compile(
    r"^(?P<mission>S1[A-D])_(?P<mode>[A-Z0-9]{2})_(?P<type>[A-Z_]{3})(?P<res>[FHM_])_"
    r"(?P<level>\d)(?P<cls>[SA])(?P<pol>SH|SV|DH|DV|HH|HV|VV|VH)_"
    r"(?P<start>\d{8}T\d{6})_"
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
    """Sensing start, mission, beam mode and polarisations (empty strings for other ids)."""
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
