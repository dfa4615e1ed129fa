"""A real client reads what we build: GDAL's SAFE driver opens every rebuilt demo S1 SAFE.

Users open a Sentinel-1 SAFE with ``rasterio.open(".../X.SAFE/manifest.safe")``; GDAL's SAFE
driver then follows manifest.safe (Measurement Data Units -> annotation and calibration
dataObjects) and reads the annotation's ``imageInformation`` and ``geolocationGrid``. The SAFEs
here come from the demo bucket through ``rebuild_safe``, the workflow's own path, so one of
them holds the bucket's COG re-encodings of the measurement TIFFs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eopack.demo.s1world import DemoProduct

POLS = {"DV": ("VV", "VH"), "DH": ("HH", "HV"), "SV": ("VV",), "SH": ("HH",)}


def _measurements(dest: Path) -> dict[str, Path]:
    """Polarisation (upper case) -> the SAFE's measurement TIFF, from its ESA file name."""
    out = {}
    for tiff in sorted((dest / "measurement").glob("*.tiff")):
        out[tiff.name.split("-")[3].upper()] = tiff
    return out


def _read_tiff(path: Path) -> tuple[np.ndarray, list[tuple[float, float, float, float]], str]:
    """Pixels, GCPs (row, col, lon, lat) and dtype of a measurement TIFF read by GTiff itself."""
    with rasterio.open(path, driver="GTiff") as ds:
        gcps, crs = ds.gcps
        assert crs is not None and crs.to_epsg() == 4326, path
        return ds.read(1), [(g.row, g.col, g.x, g.y) for g in gcps], ds.dtypes[0]


def _band_pols(ds: rasterio.io.DatasetReader) -> list[str]:
    return [ds.tags(band)["POLARIZATION"] for band in ds.indexes]


def _check_product(product: DemoProduct, dest: Path) -> None:
    pid = product.product_id
    swath, pols = pid[4:6], POLS[pid[14:16]]
    tiffs = _measurements(dest)
    assert sorted(tiffs) == sorted(pols), pid
    direct = {pol: _read_tiff(path) for pol, path in tiffs.items()}
    manifest = str(dest / "manifest.safe")

    with rasterio.open(manifest) as ds:
        assert ds.driver == "SAFE", pid
        assert ds.count == len(pols), pid
        assert sorted(_band_pols(ds)) == sorted(pols), pid
        for band, pol in zip(ds.indexes, _band_pols(ds), strict=True):
            pixels, _, dtype = direct[pol]
            assert (ds.height, ds.width) == pixels.shape, (pid, pol)
            assert ds.dtypes[band - 1] == dtype == "uint16", (pid, pol)
            assert ds.tags(band)["SWATH"] == swath, (pid, pol)
            np.testing.assert_array_equal(ds.read(band), pixels, err_msg=f"{pid} {pol}")

        # GCPs from the annotation's geolocation grid: the TIFFs' GCPs, in WGS84
        gcps, crs = ds.gcps
        assert crs is not None and crs.to_epsg() == 4326, pid
        from_grid = sorted((g.row, g.col, g.x, g.y) for g in gcps)
        for pol in pols:
            from_tiff = sorted(direct[pol][1])
            assert len(from_grid) == len(from_tiff) >= 4, (pid, pol)
            np.testing.assert_allclose(from_grid, from_tiff, rtol=0, atol=1e-8, err_msg=pid)

        tags = ds.tags()
        assert tags["PRODUCT_TYPE"] == "GRD", pid
        assert tags["MISSION_ID"] == pid[:3], pid
        assert tags["MODE"] == ("SM" if swath.startswith("S") else swath), pid
        assert tags["SWATH"] == tags["BEAM_SWATH"] == swath, pid
        assert tags["ORBIT_NUMBER"] == str(int(pid.split("_")[6])), pid
        props = product.stac_item["properties"]
        assert tags["ORBIT_DIRECTION"] == props["sat:orbit_state"].upper(), pid
        start = f"{pid[17:21]}-{pid[21:23]}-{pid[23:25]}T{pid[26:28]}:{pid[28:30]}:{pid[30:32]}"
        assert tags["ACQUISITION_START_TIME"].startswith(start), pid
        # the footprint GDAL reads from the manifest's frameSet: the product's, lon/lat order
        ring = tags["FOOTPRINT"].removeprefix("POLYGON((").removesuffix("))").split(",")
        corners = {tuple(round(float(v), 6) for v in pt.split()) for pt in ring}
        assert corners == {tuple(pt) for pt in product.footprint["coordinates"][0]}, pid
        spacing = props["sar:pixel_spacing_range"]
        assert float(tags["PIXEL_SPACING"]) == float(tags["LINE_SPACING"]) == spacing, pid

        # GDAL lists uncalibrated amplitude subdatasets for GRD: one per polarisation and,
        # for dual polarisation, one with both as bands (calibrated ones only for SLC).
        expected = {f"SENTINEL1_CALIB:UNCALIB:{manifest}:{swath}_{pol}:AMPLITUDE" for pol in pols}
        if len(pols) == 2:
            expected.add(f"SENTINEL1_CALIB:UNCALIB:{manifest}:{swath}:AMPLITUDE")
        assert set(ds.subdatasets) == expected, pid
        subdatasets = ds.subdatasets

    for name in subdatasets:
        with rasterio.open(name) as sub:
            assert sub.driver == "SAFE", name
            wanted = name.split(":")[-2].split("_")[1:] or list(pols)
            assert sorted(_band_pols(sub)) == sorted(wanted), name
            for band, pol in zip(sub.indexes, _band_pols(sub), strict=True):
                np.testing.assert_array_equal(sub.read(band), direct[pol][0], err_msg=name)
            assert len(sub.gcps[0]) == len(direct[pols[0]][1]), name


def test_gdal_safe_driver_opens_every_rebuilt_s1_product(
    rebuilt: dict[str, tuple[DemoProduct, Path]],
) -> None:
    assert len(rebuilt) == 15
    assert {pid[14:16] for pid in rebuilt} == set(POLS)
    for product, dest in rebuilt.values():
        _check_product(product, dest)


def test_gdal_reads_through_the_bucket_cog_reencodings(
    rebuilt: dict[str, tuple[DemoProduct, Path]],
) -> None:
    """The re-encoded product's SAFE holds tiled COGs, not ESA's strips: GDAL reads the same."""
    (product, dest) = next(v for v in rebuilt.values() if v[0].originals)
    for safe_path, original in product.originals.items():
        pol = Path(safe_path).name.split("-")[3].upper()
        with rasterio.open(dest / safe_path) as cog:
            assert cog.profile["tiled"]
        with (
            rasterio.MemoryFile(original) as mem,
            mem.open() as esa,
            rasterio.open(dest / "manifest.safe") as ds,
        ):
            (band,) = [b for b, p in zip(ds.indexes, _band_pols(ds), strict=True) if p == pol]
            np.testing.assert_array_equal(ds.read(band), esa.read(1))


@pytest.mark.parametrize("name", ["SIGMA0", "BETA0", "GAMMA"])
def test_calibrated_grd_subdatasets_are_not_offered(
    rebuilt: dict[str, tuple[DemoProduct, Path]], name: str
) -> None:
    """GDAL 3.10's SAFE driver makes calibrated bands only for SLC products; for our GRD it
    refuses the name rather than returning wrong values (if that changes, check the values
    against the calibration LUTs here)."""
    product, dest = next(iter(rebuilt.values()))
    swath, pol = product.product_id[4:6], POLS[product.product_id[14:16]][0]
    with pytest.raises(rasterio.errors.RasterioIOError, match="Measurement bands not found"):
        rasterio.open(f"SENTINEL1_CALIB:{name}:{dest / 'manifest.safe'}:{swath}_{pol}:INTENSITY")
