"""ubf_core.io: reading every real data file, round trips, and clear errors for bad inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio
import xarray as xr
from PIL import Image

from ubf_core.errors import UBFInputError
from ubf_core.io import (
    HSISource,
    RGBImage,
    UBFInputWarning,
    list_rgb_images,
    read_hsi,
    read_mat_variables,
    read_rgb,
    write_envi,
    write_geotiff,
)

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "data"

# ----------------------------------------------------------------------------------------------- data-set specs
# The same form as params.yaml; paths relative to the shared data folder (../shared/data from the repository root).

AVIRIS_TABLE = {"table": "spectra/aviris_wavelengths.mat", "table_variable": "AVIRIS_wavlen"}
ABU_SCENES = ["airport-1", "airport-2", "airport-3", "beach-1", "beach-2", "urban-1", "urban-2", "urban-3"]

SHARED_SPECS = {
    "salton_sea": {
        "path": "hsi/salton_sea_roi.mat", "variable": "I", "layout": "HWC",
        "wavelengths": {"variable": "wl", "unit": "um", "sort": True},
        "fwhm": {"variable": "params.fwhm", "unit": "nm"},
        "bad_bands": {"variable": "bbl", "bad_value": 0},
    },
    "samson": {"path": "hsi/samson.mat", "variable": "SamSon", "wavelengths": {"linspace": [401, 889, 156]}},
    "jasper_ridge": {
        "path": "hsi/jasper_ridge_r198.mat", "variable": "Y", "layout": "pixel_major", "rows": "nRow",
        "cols": "nCol", "order": "F",
        "wavelengths": {**AVIRIS_TABLE, "indices_variable": "SlectBands", "index_base": 1, "sort": True},
        "scale": 1.0e-4,
    },
    "muufl": {"path": "hsi/muufl_90.mat", "variable": "Y",
              "wavelengths": {"linspace": [375, 1050, 72], "slice": [4, 68]}},
    "pavia_u": {"path": "hsi/pavia_u_downsampled.mat", "variable": "I1",
                "wavelengths": {"variable": "wl", "unit": "um"}},
    **{f"abu_{s.replace('-', '_')}": {"path": f"hsi/abu/abu-{s}.mat", "variable": "data",
                                       "wavelengths": {**AVIRIS_TABLE, "first_n": True, "sort": True},
                                       "scale": 1.0e-4} for s in ABU_SCENES},
    "cave_balloons": {"path": "natural/cave/balloons_ms", "format": "cave"},
}

# shape (bands, rows, cols), wavelength range (nm), sorted_bands, scale
SHARED_EXPECT = {
    "salton_sea": ((224, 51, 56), (365.9, 2496.3), True, 1.0),
    "samson": ((156, 95, 95), (401.0, 889.0), False, 1.0),
    "jasper_ridge": ((198, 100, 100), (399.3, 2457.3), True, 1e-4),
    "muufl": ((64, 90, 90), (413.0, 1012.0), False, 1.0),
    "pavia_u": ((103, 80, 50), (430.0, 860.0), False, 1.0),
    "abu_airport_1": ((205, 100, 100), (369.85, 2318.17), True, 1e-4),
    "abu_airport_2": ((205, 100, 100), (369.85, 2318.17), True, 1e-4),
    "abu_airport_3": ((205, 100, 100), (369.85, 2318.17), True, 1e-4),
    "abu_beach_1": ((188, 150, 150), (369.85, 2148.72), True, 1e-4),
    "abu_beach_2": ((193, 100, 100), (369.85, 2198.63), True, 1e-4),
    "abu_urban_1": ((204, 100, 100), (369.85, 2308.22), True, 1e-4),
    "abu_urban_2": ((207, 100, 100), (369.85, 2338.07), True, 1e-4),
    "abu_urban_3": ((191, 100, 100), (369.85, 2178.67), True, 1e-4),
    "cave_balloons": ((31, 512, 512), (400.0, 700.0), False, 1 / 65535),
}

# The embedded band-cut copies in data/ (infra/make_embedded_sample.py); paths relative to the repository root.
EMBEDDED_TABLE = {"table": "data/spectra/aviris_wavelengths.mat", "table_variable": "AVIRIS_wavlen"}
EMBEDDED_SPECS = {
    "salton_sea": {**SHARED_SPECS["salton_sea"], "path": "data/hsi/salton_sea_roi.mat",
                   "fwhm": {"variable": "fwhm", "unit": "nm"}},
    "samson": {"path": "data/hsi/samson.mat", "variable": "SamSon",
               "wavelengths": {"linspace": [401, 889, 156], "slice": [0, 115]}},
    "jasper_ridge": {**SHARED_SPECS["jasper_ridge"], "path": "data/hsi/jasper_ridge_r198.mat",
                     "wavelengths": {**EMBEDDED_TABLE, "indices_variable": "SlectBands", "index_base": 1,
                                     "sort": True}},
    **{f"abu_{s.replace('-', '_')}": {"path": f"data/hsi/abu/abu-{s}.mat", "variable": "data",
                                       "wavelengths": {**EMBEDDED_TABLE, "first_n": True, "sort": True},
                                       "scale": 1.0e-4} for s in ABU_SCENES},
}
EMBEDDED_EXPECT = {
    "salton_sea": ((43, 51, 56), (365.9, 753.4), True),
    "samson": ((115, 95, 95), (401.0, 760.0), False),
    "jasper_ridge": ((42, 100, 100), (399.37, 779.14), True),
    **{f"abu_{s.replace('-', '_')}": ((42, 150 if s == "beach-1" else 100, 150 if s == "beach-1" else 100),
                                      (369.85, 750.38), True) for s in ABU_SCENES},
}


def check_convention(cube: xr.DataArray, name: str, shape, wl_range, sorted_bands) -> None:
    assert isinstance(cube, xr.DataArray)
    assert cube.name == "reflectance"
    assert cube.dims == ("wavelength", "y", "x")
    assert cube.shape == shape
    assert cube.dtype == np.float32
    wl = cube["wavelength"].values
    assert wl.dtype == np.float64
    assert np.all(np.diff(wl) >= 0), "wavelengths must be non-decreasing"
    assert wl[0] == pytest.approx(wl_range[0], abs=0.2) and wl[-1] == pytest.approx(wl_range[1], abs=0.2)
    assert cube["bad_band"].dtype == bool and cube["bad_band"].dims == ("wavelength",)
    if "fwhm" in cube.coords:
        assert cube["fwhm"].dims == ("wavelength",) and np.all(cube["fwhm"].values > 0)
    assert cube.attrs["source"] == name
    assert Path(cube.attrs["path"]).exists()
    assert cube.attrs["format"] in ("mat-v5", "mat-v7.3", "geotiff", "envi", "cave")
    assert isinstance(cube.attrs["scale"], float)
    assert isinstance(cube.attrs["wavelength_source"], str) and cube.attrs["wavelength_source"]
    assert cube.attrs["sorted_bands"] is sorted_bands
    assert not np.any(np.isinf(cube.values))


# ------------------------------------------------------------------------------------------- real (shared) data

@pytest.mark.parametrize("name", sorted(SHARED_SPECS))
def test_read_shared(shared_data, name):
    cube = read_hsi(HSISource.from_params(name, SHARED_SPECS[name], shared_data))
    shape, wl_range, sorted_bands, scale = SHARED_EXPECT[name]
    check_convention(cube, name, shape, wl_range, sorted_bands)
    assert cube.attrs["scale"] == pytest.approx(scale)
    assert cube.attrs["format"] == ("cave" if name.startswith("cave") else "mat-v5")
    finite = cube.values[np.isfinite(cube.values)]
    assert finite.min() >= -0.01 and finite.max() <= 1.5  # reflectance after scaling


def test_salton_details(shared_data):
    cube = read_hsi(HSISource.from_params("salton_sea", SHARED_SPECS["salton_sea"], shared_data))
    raw = sio.loadmat(shared_data / "hsi/salton_sea_roi.mat", variable_names=["wl", "bbl", "I"])
    order = np.argsort(raw["wl"].ravel(), kind="stable")
    np.testing.assert_array_equal(cube["wavelength"].values, raw["wl"].ravel()[order] * 1000.0)
    assert cube.attrs["wavelength_source"] == "variable wl (µm)"
    assert "fwhm" in cube.coords and 5 < float(cube["fwhm"].median()) < 15
    bad_file_order = np.flatnonzero(raw["bbl"].ravel() == 0)
    np.testing.assert_array_equal(bad_file_order, [*range(107, 113), *range(153, 167)])
    assert int(cube["bad_band"].sum()) == 20
    bad_wl = cube["wavelength"].values[cube["bad_band"].values]
    assert set(np.round(bad_wl, 6)) == set(np.round(raw["wl"].ravel()[bad_file_order] * 1000.0, 6))
    # NaN kept, not dropped: the real bad-pixel case (~9%)
    assert 0.05 < float(np.isnan(cube.values).mean()) < 0.15
    np.testing.assert_array_equal(cube.values, np.moveaxis(raw["I"], 2, 0)[order].astype(np.float32))


def test_jasper_pixel_major_order(shared_data):
    cube = read_hsi(HSISource.from_params("jasper_ridge", SHARED_SPECS["jasper_ridge"], shared_data))
    d = sio.loadmat(shared_data / "hsi/jasper_ridge_r198.mat", variable_names=["Y", "SlectBands"])
    table = sio.loadmat(shared_data / "spectra/aviris_wavelengths.mat")["AVIRIS_wavlen"].ravel()
    wl = table[d["SlectBands"].ravel().astype(int) - 1]
    order = np.argsort(wl, kind="stable")
    assert np.any(np.diff(wl) < 0)  # the AVIRIS spectrometers overlap: sort is needed
    r, c = 3, 71  # column-major: pixel j = r + c * nRow
    np.testing.assert_allclose(cube.values[:, r, c], d["Y"][order, r + c * 100] / 1e4, rtol=1e-6)
    assert cube.attrs["wavelength_source"].startswith("table spectra/aviris_wavelengths.mat")
    assert "SlectBands (1-based)" in cube.attrs["wavelength_source"]


def test_muufl_and_samson_wavelengths(shared_data):
    muufl = read_hsi(HSISource.from_params("muufl", SHARED_SPECS["muufl"], shared_data))
    np.testing.assert_allclose(muufl["wavelength"].values, np.linspace(375, 1050, 72)[4:68])
    samson = read_hsi(HSISource.from_params("samson", SHARED_SPECS["samson"], shared_data))
    np.testing.assert_allclose(samson["wavelength"].values, np.linspace(401, 889, 156))
    assert samson.attrs["wavelength_source"] == "linspace(401, 889, 156)"


def test_cave_outer_and_inner_folder(shared_data):
    outer = read_hsi(HSISource.from_params("cave", {"path": "natural/cave/balloons_ms"}, shared_data))
    inner = read_hsi(HSISource.from_params("cave", {"path": "natural/cave/balloons_ms/balloons_ms"}, shared_data))
    np.testing.assert_array_equal(outer.values, inner.values)
    band = np.asarray(Image.open(shared_data / "natural/cave/balloons_ms/balloons_ms/balloons_ms_07.png"))
    np.testing.assert_allclose(outer.values[6], band / 65535.0, rtol=1e-6)


# --------------------------------------------------------------------------------------------- embedded copies

@pytest.mark.parametrize("name", sorted(EMBEDDED_SPECS))
def test_read_embedded(name):
    cube = read_hsi(HSISource.from_params(name, EMBEDDED_SPECS[name], REPO))
    shape, wl_range, sorted_bands = EMBEDDED_EXPECT[name]
    check_convention(cube, name, shape, wl_range, sorted_bands)
    if name == "salton_sea":
        assert "fwhm" in cube.coords and int(cube["bad_band"].sum()) == 0


# ------------------------------------------------------------------------------------------------- bad inputs

def raises(match: str, where) -> pytest.RaisesContext:
    """pytest.raises for UBFInputError whose message names ``where`` and contains ``match``."""
    return pytest.raises(UBFInputError, match=rf"^{__import__('re').escape(str(where))}: .*{match}")


SAMSON_EMBEDDED = {"path": "samson.mat", "variable": "SamSon", "wavelengths": {"linspace": [401, 889, 156],
                                                                                "slice": [0, 115]}}


def test_missing_file(tmp_path):
    src = HSISource.from_params("samson", SAMSON_EMBEDDED, tmp_path)
    with raises("file not found", tmp_path / "samson.mat"):
        read_hsi(src)
    with raises("file not found", tmp_path / "nope.mat"):
        read_mat_variables(tmp_path / "nope.mat")


def test_truncated_mat(tmp_path):
    (tmp_path / "samson.mat").write_bytes((EMBEDDED / "hsi/samson.mat").read_bytes()[:1000])
    with raises("truncated", tmp_path / "samson.mat"):
        read_hsi(HSISource.from_params("samson", SAMSON_EMBEDDED, tmp_path))
    with raises("truncated", tmp_path / "samson.mat"):
        read_mat_variables(tmp_path / "samson.mat")


def test_text_file_named_mat(tmp_path):
    (tmp_path / "samson.mat").write_text("wavelength,reflectance\n450,0.1\n550,0.2\n")
    with raises("not a MATLAB .mat file", tmp_path / "samson.mat"):
        read_hsi(HSISource.from_params("samson", SAMSON_EMBEDDED, tmp_path))
    (tmp_path / "empty.mat").write_bytes(b"")
    with raises("empty file", tmp_path / "empty.mat"):
        read_mat_variables(tmp_path / "empty.mat")


def test_missing_variable_lists_what_is_there():
    spec = {**EMBEDDED_SPECS["abu_airport_1"], "variable": "cube"}
    path = REPO / spec["path"]
    with raises(r"no variable 'cube' .*the file holds: data \(100×100×42 uint16\), map", path):
        read_hsi(HSISource.from_params("abu", spec, REPO))
    spec = {**EMBEDDED_SPECS["salton_sea"], "wavelengths": {"variable": "wavelength", "sort": True}}
    with raises("no variable 'wavelength' .*wl", REPO / spec["path"]):
        read_hsi(HSISource.from_params("salton", spec, REPO))
    spec = {**SHARED_SPECS["salton_sea"], "path": "data/hsi/salton_sea_roi.mat", "fwhm": {"variable": "I.fwhm"}}
    with raises("'I' is not a struct", REPO / spec["path"]):
        read_hsi(HSISource.from_params("salton", spec, REPO))


def test_struct_field_errors(shared_data):
    spec = {**SHARED_SPECS["salton_sea"], "fwhm": {"variable": "params.width"}}
    with raises("struct 'params' has no field 'width'.*fwhm", shared_data / spec["path"]):
        read_hsi(HSISource.from_params("salton", spec, shared_data))


def test_wavelengths_missing():
    spec = {k: v for k, v in EMBEDDED_SPECS["samson"].items() if k != "wavelengths"}
    with raises("wavelengths missing", REPO / spec["path"]):
        read_hsi(HSISource.from_params("samson", spec, REPO))


def test_wavelengths_wrong_count():
    spec = {**EMBEDDED_SPECS["samson"], "wavelengths": {"linspace": [401, 889, 156]}}
    with raises("156 wavelengths for 115 bands", REPO / spec["path"]):
        read_hsi(HSISource.from_params("samson", spec, REPO))
    spec = {**EMBEDDED_SPECS["salton_sea"], "fwhm": {"values": [10, 10, 10]}}
    with raises("3 fwhm values for 43 bands", REPO / spec["path"]):
        read_hsi(HSISource.from_params("salton", spec, REPO))


def test_wavelengths_not_monotonic():
    spec = {**EMBEDDED_SPECS["salton_sea"], "wavelengths": {"variable": "wl", "unit": "um"}}
    with raises(r"not in increasing order: 667\.54 nm \(band 31\) is followed by 655\.48 nm.*sort: true",
                REPO / spec["path"]):
        read_hsi(HSISource.from_params("salton", spec, REPO))
    spec = {**EMBEDDED_SPECS["abu_airport_1"], "wavelengths": {**EMBEDDED_TABLE, "first_n": True}}
    with raises("not in increasing order", REPO / spec["path"]):
        read_hsi(HSISource.from_params("abu", spec, REPO))


def test_unit_guess_is_stated():
    spec = {**EMBEDDED_SPECS["salton_sea"], "wavelengths": {"variable": "wl", "sort": True}}
    cube = read_hsi(HSISource.from_params("salton", spec, REPO))
    assert cube.attrs["wavelength_source"] == "variable wl (µm, guessed: all values < 30)"
    assert 365 < cube["wavelength"].values[0] < 366


def test_layout_and_shape_errors(tmp_path):
    spec = {**EMBEDDED_SPECS["jasper_ridge"], "layout": "HWC"}
    spec = {k: v for k, v in spec.items() if k not in ("rows", "cols", "order")}
    with raises("layout HWC needs a 3-D array.*pixel_major", REPO / spec["path"]):
        read_hsi(HSISource.from_params("jasper", spec, REPO))
    spec = {**EMBEDDED_SPECS["jasper_ridge"], "rows": 50}
    with raises(r"10000 pixels per band, but rows × cols = 50 × 100", REPO / spec["path"]):
        read_hsi(HSISource.from_params("jasper", spec, REPO))
    spec = {**EMBEDDED_SPECS["samson"], "bad_bands": [3, 200]}
    with raises("bad band 200", REPO / spec["path"]):
        read_hsi(HSISource.from_params("samson", spec, REPO))
    spec = {**EMBEDDED_SPECS["jasper_ridge"], "wavelengths": {**EMBEDDED_TABLE, "indices": [1, 225]}}
    with raises("table index 225", REPO / spec["path"]):
        read_hsi(HSISource.from_params("jasper", spec, REPO))


def test_spec_errors_name_the_data_set(tmp_path):
    with pytest.raises(UBFInputError, match=r"^abu: unknown key 'varaible'"):
        HSISource.from_params("abu", {"path": "x.mat", "varaible": "data"}, tmp_path)
    with pytest.raises(UBFInputError, match=r"^abu: `wavelengths` needs exactly one of .*got linspace, values"):
        HSISource.from_params("abu", {"path": "x.mat", "wavelengths": {"linspace": [1, 2, 2], "values": [1, 2]}},
                              tmp_path)
    with pytest.raises(UBFInputError, match=r"^abu: unknown key 'sorted' in `wavelengths`"):
        HSISource.from_params("abu", {"path": "x.mat", "wavelengths": {"values": [1], "sorted": True}}, tmp_path)
    with pytest.raises(UBFInputError, match=r"^jr: layout pixel_major needs `rows`"):
        HSISource.from_params("jr", {"path": "x.mat", "layout": "pixel_major"}, tmp_path)
    with pytest.raises(UBFInputError, match=r"^t: variable, layout only apply to \.mat files"):
        HSISource.from_params("t", {"path": "x.tif", "variable": "a", "layout": "HWC"}, tmp_path)
    with pytest.raises(UBFInputError, match=r"^t: cannot tell the format of 'x.h5'"):
        HSISource.from_params("t", {"path": "x.h5"}, tmp_path)
    with pytest.raises(UBFInputError, match=r"^t: `scale` must be > 0"):
        HSISource.from_params("t", {"path": "x.mat", "scale": 0}, tmp_path)
    src = HSISource.from_params("t", {"path": "x.mat", "scale": "1e-4", "wavelengths": [450, 550]}, tmp_path)
    assert src.scale == 1e-4 and src.format == "mat" and src.path == tmp_path / "x.mat"  # YAML 1.1: "1e-4" is text


def test_read_mat_variables():
    listing = read_mat_variables(REPO / "data/hsi/jasper_ridge_r198.mat")
    assert listing["Y"] == ((42, 10000), "uint16")
    assert listing["nRow"] == ((1, 1), "uint8")


# ------------------------------------------------------------------------------------------- MATLAB v7.3 (HDF5)

def write_mat73(path: Path, variables: dict) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte userblock with the MAT header, arrays stored transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            if isinstance(value, dict):
                group = f.create_group(name)
                group.attrs["MATLAB_class"] = np.bytes_("struct")
                for field, arr in value.items():
                    ds = group.create_dataset(field, data=np.asarray(arr).T)
                    ds.attrs["MATLAB_class"] = np.bytes_("double")
            else:
                arr = np.asarray(value)
                ds = f.create_dataset(name, data=arr.T)
                cls = {"float64": "double", "float32": "single"}.get(arr.dtype.name, arr.dtype.name)
                ds.attrs["MATLAB_class"] = np.bytes_(cls)
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)


def test_mat73_round_trip(tmp_path):
    d = sio.loadmat(EMBEDDED / "hsi/salton_sea_roi.mat")
    write_mat73(tmp_path / "salton.mat", {"I": d["I"], "wl": d["wl"], "bbl": d["bbl"].astype(np.float64),
                                          "params": {"fwhm": d["fwhm"]}})
    assert h5py.is_hdf5(tmp_path / "salton.mat")
    assert (tmp_path / "salton.mat").read_bytes().startswith(b"MATLAB 7.3 MAT-file")
    listing = read_mat_variables(tmp_path / "salton.mat")
    assert listing["I"] == ((51, 56, 43), "float32") and listing["wl"] == ((1, 43), "float64")
    assert listing["params"][1] == "struct"

    v5 = read_hsi(HSISource.from_params("salton", EMBEDDED_SPECS["salton_sea"], REPO))
    spec73 = {**EMBEDDED_SPECS["salton_sea"], "path": "salton.mat", "fwhm": {"variable": "params.fwhm", "unit": "nm"}}
    v73 = read_hsi(HSISource.from_params("salton", spec73, tmp_path))
    assert v73.attrs["format"] == "mat-v7.3" and v5.attrs["format"] == "mat-v5"
    xr.testing.assert_identical(v5.drop_attrs(), v73.drop_attrs())

    j = sio.loadmat(EMBEDDED / "hsi/jasper_ridge_r198.mat")
    write_mat73(tmp_path / "jasper.mat", {k: j[k] for k in ("Y", "SlectBands", "nRow", "nCol")})
    v5 = read_hsi(HSISource.from_params("jasper", EMBEDDED_SPECS["jasper_ridge"], REPO))
    spec73 = {**EMBEDDED_SPECS["jasper_ridge"], "path": str(tmp_path / "jasper.mat")}
    v73 = read_hsi(HSISource.from_params("jasper", spec73, REPO))
    xr.testing.assert_identical(v5.drop_attrs(), v73.drop_attrs())

    with raises("no variable 'cube'.*the file holds: I \\(51×56×43 float32\\)", tmp_path / "salton.mat"):
        read_hsi(HSISource.from_params("salton", {**spec73, "path": "salton.mat", "variable": "cube"}, tmp_path))
    (tmp_path / "cut.mat").write_bytes((tmp_path / "salton.mat").read_bytes()[:1000])
    with raises("v7.3.*truncated or damaged", tmp_path / "cut.mat"):
        read_mat_variables(tmp_path / "cut.mat")


# --------------------------------------------------------------------------------------- GeoTIFF / ENVI writers

@pytest.fixture(scope="module")
def salton_cube() -> xr.DataArray:
    spec = {**EMBEDDED_SPECS["salton_sea"], "bad_bands": [2, 40]}
    cube = read_hsi(HSISource.from_params("salton", spec, REPO))
    cube.values[:, 3, 4] = np.nan  # a bad pixel must survive the round trip
    assert "fwhm" in cube.coords and cube["bad_band"].sum() == 2 and cube.attrs["sorted_bands"]
    return cube


@pytest.mark.parametrize("writer, filename, fmt", [(write_geotiff, "cube.tif", "geotiff"),
                                                   (write_envi, "cube.hdr", "envi")])
def test_writer_round_trip(tmp_path, salton_cube, writer, filename, fmt):
    out = writer(salton_cube, tmp_path / filename)
    assert out == tmp_path / filename
    back = read_hsi(HSISource.from_params("salton", {"path": filename}, tmp_path))
    assert back.attrs["format"] == fmt and back.attrs["scale"] == 1.0 and back.attrs["sorted_bands"] is False
    assert "(nm)" in back.attrs["wavelength_source"]
    xr.testing.assert_identical(salton_cube.drop_attrs(), back.drop_attrs())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"
    # writing again replaces the file in place
    writer(salton_cube * 2, tmp_path / filename)
    again = read_hsi(HSISource.from_params("salton", {"path": filename}, tmp_path))
    np.testing.assert_array_equal(again.values, (salton_cube * 2).values)


def test_writer_errors(tmp_path, salton_cube):
    with raises("does not exist", tmp_path / "nope" / "cube.tif"):
        write_geotiff(salton_cube, tmp_path / "nope" / "cube.tif")
    with raises("dims", tmp_path / "cube.hdr"):
        write_envi(salton_cube.rename(wavelength="band"), tmp_path / "cube.hdr")


def test_raster_bad_files(tmp_path, salton_cube):
    (tmp_path / "fake.tif").write_text("not a tiff")
    with raises("cannot read the GeoTIFF", tmp_path / "fake.tif"):
        read_hsi(HSISource("fake", tmp_path / "fake.tif"))
    write_envi(salton_cube, tmp_path / "cube.hdr")
    data = (tmp_path / "cube.img").read_bytes()
    (tmp_path / "cube.img").write_bytes(data[: len(data) // 2])
    with raises("truncated: the header describes", tmp_path / "cube.img"):
        read_hsi(HSISource("cut", tmp_path / "cube.hdr"))
    header = (tmp_path / "cube.hdr").read_text()
    (tmp_path / "cube.img").write_bytes(data)
    (tmp_path / "cube.hdr").write_text("\n".join(line for line in header.splitlines()
                                                 if not line.startswith(("wavelength", "band names"))))
    with raises("wavelengths missing", tmp_path / "cube.hdr"):
        read_hsi(HSISource("nowl", tmp_path / "cube.hdr"))
    cube = read_hsi(HSISource("spec", tmp_path / "cube.hdr",
                              wavelengths={"values": salton_cube["wavelength"].values.tolist()}))
    np.testing.assert_array_equal(cube["wavelength"].values, salton_cube["wavelength"].values)


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("dtype", ["<f4", ">i2"])
def test_a_block_of_rows_reads_what_the_whole_scene_holds(tmp_path, interleave, dtype):
    """read_hsi(rows=...) of an ENVI file (any interleave, big-endian int16 with scale and nodata, float32 with inf)
    and of a GeoTIFF reads those rows alone and gives the whole scene's values there; other formats slice."""
    from ubf_core.io.hsi import row_reader_shape

    rng = np.random.default_rng(5)
    raw = (rng.random((6, 9, 7)) * 1000).astype(dtype)          # bands, rows, cols
    raw[2, 4, 3] = -9999 if raw.dtype.kind == "i" else np.inf
    order = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}[interleave]
    np.ascontiguousarray(raw.transpose(order)).tofile(tmp_path / "c.img")
    (tmp_path / "c.hdr").write_text(
        f"ENVI\nsamples = 7\nlines = 9\nbands = 6\nheader offset = 0\nfile type = ENVI Standard\n"
        f"data type = {4 if dtype == '<f4' else 2}\ninterleave = {interleave}\nbyte order = {int(dtype[0] == '>')}\n"
        f"wavelength units = Nanometers\nwavelength = {{400, 410, 420, 430, 440, 450}}\n"
        f"data ignore value = -9999\nreflectance scale factor = 10000\n")
    source = HSISource("c", tmp_path / "c.hdr")
    assert row_reader_shape(source) == (6, 9, 7, np.dtype(dtype).itemsize)
    whole = read_hsi(source)
    assert np.isnan(whole.values[2, 4, 3]) and np.isfinite(whole.values).sum() == whole.size - 1
    for rows in [(0, 9), (3, 5), (8, 9)]:
        part = read_hsi(source, rows=rows)
        xr.testing.assert_identical(part, whole.isel(y=slice(*rows)))
    write_geotiff(whole, tmp_path / "c.tif")
    tif = HSISource("t", tmp_path / "c.tif")
    assert row_reader_shape(tif) == (6, 9, 7, 4)
    np.testing.assert_array_equal(read_hsi(tif, rows=(2, 6)).values, read_hsi(tif).values[:, 2:6])
    mat = HSISource.from_params("salton", EMBEDDED_SPECS["salton_sea"], REPO)
    assert row_reader_shape(mat) is None
    np.testing.assert_array_equal(read_hsi(mat, rows=(5, 9)).values, read_hsi(mat).values[:, 5:9])


def test_to_reflectance_in_place_equals_the_copy():
    from ubf_core.io import to_reflectance

    rng = np.random.default_rng(2)
    raw = rng.random((4, 5, 6), dtype=np.float32)
    raw[1, 2, 3], raw[2, 0, 0], raw[3, 4, 5] = np.inf, -7.0, np.nan
    for scale, nodata in [(1.0, None), (1e-4, -7.0), (2.5, [-7.0, 1e30])]:
        copy = to_reflectance(raw, scale, nodata)
        mine = raw.copy()
        same = to_reflectance(mine, scale, nodata, in_place=True)
        assert same is mine and copy is not raw
        np.testing.assert_array_equal(same, copy)
        assert np.isnan(copy[1, 2, 3]) and np.isnan(copy[3, 4, 5]) and np.isnan(copy[2, 0, 0]) == (nodata is not None)
    ints = rng.integers(0, 100, (4, 5, 6)).astype(np.int16)
    assert to_reflectance(ints, 1.0, in_place=True).dtype == np.float32   # another dtype: a new array


def test_geotiff_metadata_forms(tmp_path):
    """Wavelengths from an ENVI-domain list (µm, unsorted, with sort: true) and from band descriptions; nodata."""
    import rasterio

    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    data[0, 0, 0] = -9999
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "envi_ns.tif", "w", driver="GTiff", width=5, height=4, count=3, dtype="int16",
                           nodata=-9999) as ds:
            ds.write(data)
            ds.update_tags(ns="ENVI", wavelength="{0.9, 0.5, 0.7}", wavelength_units="Micrometers",
                           fwhm="{0.01, 0.02, 0.03}")
        with rasterio.open(tmp_path / "desc.tif", "w", driver="GTiff", width=5, height=4, count=3,
                           dtype="int16") as ds:
            ds.write(data)
            for i, text in enumerate(["450 nm", "550nm", "650"], 1):
                ds.set_band_description(i, text)
    with raises(r"not in increasing order: 900\.00 nm", tmp_path / "envi_ns.tif"):
        read_hsi(HSISource("g", tmp_path / "envi_ns.tif"))
    cube = read_hsi(HSISource.from_params("g", {"path": "envi_ns.tif", "wavelengths": {"sort": True},
                                                "scale": 1e-4}, tmp_path))
    np.testing.assert_allclose(cube["wavelength"].values, [500, 700, 900])
    np.testing.assert_allclose(cube["fwhm"].values, [20, 30, 10])
    assert cube.attrs["sorted_bands"] is True and np.isnan(cube.values[2, 0, 0])  # file nodata, band 0 → last
    np.testing.assert_allclose(cube.values[0], data[1] * 1e-4, rtol=1e-6)
    cube = read_hsi(HSISource.from_params("g", {"path": "desc.tif", "nodata": -9999}, tmp_path))
    np.testing.assert_array_equal(cube["wavelength"].values, [450, 550, 650])
    assert cube.attrs["wavelength_source"] == "GeoTIFF band descriptions (nm)" and np.isnan(cube.values[0, 0, 0])
    assert np.isfinite(cube.values).sum() == data.size - 1


def test_cave_errors(tmp_path):
    with raises("no band images", tmp_path):
        read_hsi(HSISource("cave", tmp_path, format="cave"))
    for n in (1, 2, 4):
        Image.fromarray(np.full((4, 5), 1000 * n, dtype=np.uint16)).save(tmp_path / f"s_ms_{n:02d}.png")
    with raises("lack number 3", tmp_path):
        read_hsi(HSISource("cave", tmp_path, format="cave"))
    Image.fromarray(np.full((4, 5), 3000, dtype=np.uint16)).save(tmp_path / "s_ms_03.png")
    with raises("4 band images .* where a CAVE scene has 31 .*: bands 5-31 are missing; give `wavelengths:`",
                tmp_path):
        read_hsi(HSISource("cave", tmp_path, format="cave"))
    cube = read_hsi(HSISource("cave", tmp_path, format="cave", wavelengths={"values": [400, 500, 600, 700]}))
    np.testing.assert_allclose(cube.values[:, 0, 0], np.array([1000, 2000, 3000, 4000]) / 65535, rtol=1e-6)


# ------------------------------------------------------------------------------------------------- RGB folders

def _rgb_folder(root: Path) -> Path:
    (root / "cls_a").mkdir(parents=True)
    (root / "cls_b").mkdir()
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(root / "cls_b" / "b2.png")
    Image.fromarray(np.full((8, 9, 3), 200, np.uint8)).save(root / "cls_b" / "b1.jpg")
    Image.fromarray(np.zeros((8, 9, 4), np.uint8)).save(root / "cls_a" / "rgba.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).convert("P").save(root / "cls_a" / "palette.png")
    (root / "cls_a" / "notes.txt").write_text("ignored: not an image suffix")
    return root


def test_rgb_listing_and_bad_files(tmp_path):
    root = _rgb_folder(tmp_path / "rgb")
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(root / "cls_a" / "gray.png")
    (root / "cls_b" / "broken.jpg").write_text("this is not a JPEG")
    with pytest.warns(UBFInputWarning) as record:
        images = list_rgb_images(root)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert messages[0].startswith(f"{root / 'cls_a' / 'gray.png'}: grayscale image (mode L), expected RGB")
    assert messages[1].startswith(f"{root / 'cls_b' / 'broken.jpg'}: not an image")
    assert images == [RGBImage(root / "cls_a" / "palette.png", "cls_a"), RGBImage(root / "cls_a" / "rgba.png", "cls_a"),
                      RGBImage(root / "cls_b" / "b1.jpg", "cls_b"), RGBImage(root / "cls_b" / "b2.png", "cls_b")]
    with raises(r"grayscale image \(mode L\), expected RGB", root / "cls_a" / "gray.png"):
        list_rgb_images(root, on_bad="error")
    (root / "cls_a" / "gray.png").unlink()
    with raises("not an image", root / "cls_b" / "broken.jpg"):
        list_rgb_images(root, on_bad="error")
    for img in images:
        arr = read_rgb(img.path)
        assert arr.dtype == np.uint8 and arr.shape == (8, 9, 3)
    with raises("not a readable image", root / "cls_b" / "broken.jpg"):
        read_rgb(root / "cls_b" / "broken.jpg")


def test_rgb_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with raises("no RGB images found", tmp_path / "empty"):
        list_rgb_images(tmp_path / "empty")
    (tmp_path / "empty" / "cls").mkdir()
    with raises("no RGB images found", tmp_path / "empty"):
        list_rgb_images(tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "flat" / "a.png")
    with raises("no class sub-folders", tmp_path / "flat"):
        list_rgb_images(tmp_path / "flat")
    with raises("folder not found", tmp_path / "missing"):
        list_rgb_images(tmp_path / "missing")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "gray.png")
    with raises(r"grayscale image \(mode L\)", tmp_path / "gray.png"):
        read_rgb(tmp_path / "gray.png")


def test_rgb_embedded_aid():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UBFInputWarning)
        images = list_rgb_images(REPO / "data/rgb/aid")
    labels = sorted({img.label for img in images})
    assert labels == ["Airport", "Beach", "Commercial", "DenseResidential", "Farmland", "Forest", "Industrial",
                      "MediumResidential"]
    assert len(images) == 240
    assert all(img.path.parent.name == img.label for img in images)
    assert images == sorted(images, key=lambda i: (i.label, i.path.name))
    assert read_rgb(images[0].path).shape == (150, 150, 3)
