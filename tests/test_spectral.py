"""Tests for ubf_core.spectral: target grids, Gaussian resampling, coverage, NaN handling, band picking, rendering."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.spectral import (NATURAL, REMOTE_SENSING, SceneRejected, SpectralGrid, coverage, list_cameras,
                               load_camera_response, load_cie1931, render_rgb, resample_to_grid, response_matrix,
                               select_bands)

SPECTRA = Path(__file__).resolve().parents[1] / "data" / "spectra"
CIE = SPECTRA / "ciexyz31_1.csv"
CAMSPEC = SPECTRA / "camspec_database.txt"
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def gaussian_seen_through(wl, response_fwhm, centre=550.0, sigma=50.0):
    """exp(-(λ-centre)²/2σ²) convolved with a unit-area Gaussian band response of the given FWHM (analytic)."""
    s_resp = np.asarray(response_fwhm, dtype=np.float64) * FWHM_TO_SIGMA
    var = sigma ** 2 + s_resp ** 2
    return sigma / np.sqrt(var) * np.exp(-(np.asarray(wl, dtype=np.float64) - centre) ** 2 / (2 * var))


def make_cube(wl, spectrum=None, *, ny=3, nx=4, fwhm=None, bad=None, source="test-set", data=None):
    """A (wavelength, y, x) float32 cube whose every pixel holds ``spectrum`` (or the given data)."""
    wl = np.asarray(wl, dtype=np.float64)
    if data is None:
        data = np.broadcast_to(np.asarray(spectrum, dtype=np.float32)[:, None, None], (wl.size, ny, nx)).copy()
    coords = {"wavelength": wl, "y": np.arange(data.shape[1]), "x": np.arange(data.shape[2])}
    if fwhm is not None:
        coords["fwhm"] = ("wavelength", np.broadcast_to(np.asarray(fwhm, dtype=np.float64), wl.shape).copy())
    if bad is not None:
        coords["bad_band"] = ("wavelength", np.asarray(bad, dtype=bool))
    return xr.DataArray(data.astype(np.float32), dims=("wavelength", "y", "x"), coords=coords,
                        attrs={"source": source, "sensor": "synthetic"})


def flat_cube(wl, value, **kw):
    return make_cube(wl, np.full(len(wl), value), **kw)


def aviris_like_centres():
    """Two overlapping ~10-nm spectrometers meeting at 655.5 / 657.7 nm (uneven, near-duplicate centres)."""
    first = 655.5 - 9.7 * np.arange(30)[::-1]
    second = 657.7 + 9.6 * np.arange(12)
    return np.sort(np.r_[first, second])


# ---------------------------------------------------------------------------------------------------------------
# Grid

def test_presets_and_grid_params():
    c = REMOTE_SENSING.centres
    assert c.dtype == np.float64 and c.shape == (59,)
    assert c[0] == pytest.approx(398.0) and c[-1] == pytest.approx(698.0)
    np.testing.assert_allclose(REMOTE_SENSING.fwhm, np.diff(c).mean())
    assert NATURAL.centres.shape == (31,) and NATURAL.centres[0] == 400.0 and NATURAL.centres[-1] == 700.0

    assert SpectralGrid.from_params({"preset": "remote_sensing", "coverage_tolerance_nm": 5.0}) == REMOTE_SENSING
    assert SpectralGrid.from_params({"preset": "natural"}) == NATURAL
    explicit = SpectralGrid.from_params({"start_nm": 450, "stop_nm": 650, "n_bands": 21, "fwhm_nm": 12.5})
    np.testing.assert_allclose(explicit.centres, np.arange(450.0, 651.0, 10.0))
    np.testing.assert_allclose(explicit.fwhm, 12.5)
    overridden = SpectralGrid.from_params({"preset": "natural", "n_bands": 61})
    assert (overridden.start_nm, overridden.stop_nm, overridden.n_bands) == (400.0, 700.0, 61)

    with pytest.raises(UBFInputError, match="unknown preset"):
        SpectralGrid.from_params({"preset": "satellite"})
    with pytest.raises(UBFInputError, match="n_bands"):
        SpectralGrid.from_params({"start_nm": 400, "stop_nm": 700})
    with pytest.raises(UBFInputError, match="stop_nm"):
        SpectralGrid(700.0, 400.0, 10)


# ---------------------------------------------------------------------------------------------------------------
# Response matrix and resampling accuracy

@pytest.mark.parametrize("src_centres, src_fwhm", [
    (np.arange(370.0, 731.0, 1.0), 2.0),            # fine, sharp source
    (np.arange(365.5, 740.0, 10.0), 10.0),          # coarse AVIRIS-like source
    (aviris_like_centres(), 10.0),                  # AVIRIS-like with overlapping spectrometers (655.5 / 657.7 nm)
], ids=["1nm", "10nm", "10nm-overlap"])
def test_resampled_gaussian_matches_analytic_target_response(src_centres, src_fwhm):
    # Source samples are the spectrum seen through the source's own band responses; the result must be the spectrum
    # seen through the target responses. sigma 50 nm: with a 10-nm source of 10-nm FWHM no positive-weight kernel
    # gets much below (sigma_src² + 10²/4 - sigma_dst²) / (2 sigma²) ≈ 0.8 % of the peak.
    cube = make_cube(src_centres, gaussian_seen_through(src_centres, src_fwhm), fwhm=src_fwhm)
    out = resample_to_grid(cube, REMOTE_SENSING)
    expected = gaussian_seen_through(REMOTE_SENSING.centres, REMOTE_SENSING.fwhm)
    np.testing.assert_allclose(out.values, np.broadcast_to(expected[:, None, None], out.shape), rtol=0, atol=0.01)
    if src_fwhm == 2.0:   # a fine source leaves nothing but quadrature error
        np.testing.assert_allclose(out.values[:, 0, 0], expected, rtol=0, atol=1e-4)


def test_source_blur_is_taken_out_of_the_target_response():
    # A 1-nm source of 6-nm FWHM resampled to 10-nm FWHM bands: ignoring the source's blur would smooth to
    # sqrt(6² + 10²) nm and flatten a narrow peak measurably.
    src = np.arange(380.0, 721.0, 1.0)
    grid = SpectralGrid(400.0, 700.0, 31, fwhm_nm=10.0)
    narrow = dict(sigma=8.0)
    cube = make_cube(src, gaussian_seen_through(src, 6.0, **narrow), fwhm=6.0)
    out = resample_to_grid(cube, grid).values[:, 0, 0]
    expected = gaussian_seen_through(grid.centres, 10.0, **narrow)
    too_blurred = gaussian_seen_through(grid.centres, math.hypot(6.0, 10.0), **narrow)
    assert np.abs(out - expected).max() < 1e-3 < np.abs(too_blurred - expected).max()


def test_response_rows_sum_to_one_and_bad_bands_get_no_weight():
    src = aviris_like_centres()
    good = np.ones(src.size, bool)
    good[[5, 17, 30]] = False
    R = response_matrix(src, None, REMOTE_SENSING.centres, REMOTE_SENSING.fwhm, good)
    assert R.shape == (59, src.size)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(R[:, ~good] == 0) and np.all(R >= 0)
    # without gaps, each target band's weight is centred on it (the kernel stays symmetric across the overlap)
    R_all = response_matrix(src, 10.0, REMOTE_SENSING.centres, REMOTE_SENSING.fwhm)
    np.testing.assert_allclose(R_all.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(R_all @ src, REMOTE_SENSING.centres, atol=0.5)


def test_bad_band_full_of_nan_does_not_matter():
    src = np.arange(390.0, 711.0, 5.0)
    spectrum = gaussian_seen_through(src, 5.0)
    bad = np.zeros(src.size, bool)
    bad[[10, 11]] = True                       # 440, 445 nm: inside the target range
    clean = make_cube(src, spectrum, fwhm=5.0, bad=bad)
    poisoned = clean.copy()
    poisoned.values[10] = np.nan
    poisoned.values[11, 0, 0] = np.inf
    out_clean = resample_to_grid(clean, REMOTE_SENSING)
    out = resample_to_grid(poisoned, REMOTE_SENSING)
    assert np.all(np.isfinite(out.values)) and out.attrs["nan_pixels"] == 0
    np.testing.assert_array_equal(out.values, out_clean.values)
    # ...and the bad bands really were left out: their values do not change the result
    changed = clean.copy()
    changed.values[10:12] = 5.0
    np.testing.assert_array_equal(resample_to_grid(changed, REMOTE_SENSING).values, out_clean.values)
    assert "(2 bad)" in out.attrs["resampled_from"]


def test_output_keeps_float32_nm_coordinates_fwhm_and_attrs():
    src = np.arange(390.0, 711.0, 2.5)
    cube = make_cube(src, gaussian_seen_through(src, 3.0), fwhm=3.0, ny=5, nx=7)
    grid = SpectralGrid(400.0, 700.0, 31, fwhm_nm=8.0)
    out = resample_to_grid(cube, grid)
    assert out.dims == ("wavelength", "y", "x") and out.shape == (31, 5, 7)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out["wavelength"].values, grid.centres)
    assert out["wavelength"].dtype == np.float64 and out["wavelength"].attrs.get("units") == "nm"
    np.testing.assert_array_equal(out["fwhm"].values, grid.fwhm)
    np.testing.assert_array_equal(out["y"].values, cube["y"].values)
    assert out.attrs["source"] == "test-set" and out.attrs["sensor"] == "synthetic"
    assert f"{src.size} bands" in out.attrs["resampled_from"]
    assert out.attrs["nan_pixels"] == 0 and out.attrs["nan_fraction"] == 0.0


def test_cube_in_another_dim_order_gives_the_same_result():
    src = np.arange(390.0, 711.0, 5.0)
    cube = make_cube(src, data=np.random.default_rng(1).uniform(0, 1, (src.size, 4, 6)), fwhm=5.0)
    a = resample_to_grid(cube, NATURAL)
    b = resample_to_grid(cube.transpose("y", "x", "wavelength"), NATURAL)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Coverage

def test_source_starting_at_430_is_not_accepted():
    src = np.arange(430.0, 1001.0, 10.0)
    cube = flat_cube(src, 0.3, source="late-sensor")
    with pytest.raises(UBFInputError) as info:
        resample_to_grid(cube, REMOTE_SENSING)
    c = REMOTE_SENSING.centres
    last_uncovered = c[c < 430.0 - 5.0].max()
    msg = str(info.value)
    assert msg.startswith("late-sensor: ")
    assert f"{c[0]:.1f}–{last_uncovered:.1f} nm" in msg and "not covered" in msg
    assert "430.0" in msg and "1000.0" in msg and "\n" not in msg
    assert not isinstance(info.value, SceneRejected)


def test_source_starting_3nm_late_is_accepted_within_tolerance():
    src = np.arange(401.0, 720.0, 10.0)
    out = resample_to_grid(flat_cube(src, 0.25), REMOTE_SENSING)
    np.testing.assert_allclose(out.values, 0.25, rtol=1e-5)   # edge bands use the nearest real bands, no zeros
    with pytest.raises(UBFInputError, match="not covered"):
        resample_to_grid(flat_cube(src, 0.25), REMOTE_SENSING, tolerance_nm=2.0)


def test_interior_gap_of_dropped_bands_is_uncovered():
    src = np.arange(390.0, 711.0, 5.0)
    bad = (src > 520.0) & (src < 580.0)          # e.g. a dropped absorption feature
    cov = coverage(src, REMOTE_SENSING.centres, good=~bad, tolerance_nm=5.0)
    gap = REMOTE_SENSING.centres[~cov.covered]
    assert gap.size > 0 and gap.min() > 520.0 and gap.max() < 580.0
    assert len(cov.uncovered_ranges) == 1
    assert cov.uncovered_ranges[0] == (gap.min(), gap.max())
    assert cov.src_range == (390.0, 710.0)
    with pytest.raises(UBFInputError, match=f"{gap.min():.1f}–{gap.max():.1f} nm"):
        resample_to_grid(flat_cube(src, 0.2, bad=bad), REMOTE_SENSING)


# ---------------------------------------------------------------------------------------------------------------
# NaN pixels

def test_nan_pixels_are_masked_and_counted():
    src = np.arange(390.0, 711.0, 5.0)
    cube = make_cube(src, gaussian_seen_through(src, 5.0), ny=10, nx=10, fwhm=5.0)
    cube.values[3, 1, 2] = np.nan
    cube.values[40, 7, 7] = np.nan
    cube.values[60, 9, 0] = np.inf             # far outside the grid, still in a good band
    out = resample_to_grid(cube, REMOTE_SENSING, max_nan_fraction=0.05)
    masked = np.zeros((10, 10), bool)
    masked[1, 2] = masked[7, 7] = masked[9, 0] = True
    assert np.all(np.isnan(out.values[:, masked]))
    assert np.all(np.isfinite(out.values[:, ~masked]))
    assert out.attrs["nan_pixels"] == 3
    assert out.attrs["nan_fraction"] == pytest.approx(0.03)


def test_scene_with_too_many_nan_pixels_is_rejected():
    src = np.arange(390.0, 711.0, 5.0)
    cube = flat_cube(src, 0.4, ny=10, nx=10, source="cloudy")
    cube.values[20, :2, :] = np.nan              # 20 % of the pixels
    with pytest.raises(SceneRejected) as info:
        resample_to_grid(cube, REMOTE_SENSING, max_nan_fraction=0.1)
    assert isinstance(info.value, UBFInputError)
    assert info.value.where == "cloudy" and "20.0%" in info.value.problem and "10.0%" in info.value.problem
    assert resample_to_grid(cube, REMOTE_SENSING, max_nan_fraction=0.25).attrs["nan_pixels"] == 20


def test_all_nan_good_band_is_an_error():
    src = np.arange(390.0, 711.0, 5.0)
    cube = flat_cube(src, 0.4, source="broken")
    cube.values[12] = np.nan
    with pytest.raises(UBFInputError) as info:
        resample_to_grid(cube, REMOTE_SENSING)
    assert not isinstance(info.value, SceneRejected)
    assert str(info.value).startswith("broken: band 12 (450.0 nm) is all NaN")
    assert "bad_bands" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Three-band inputs

def test_select_bands_picks_the_nearest_bands():
    cube = resample_to_grid(make_cube(np.arange(390.0, 711.0, 5.0),
                                      data=np.random.default_rng(2).uniform(0, 1, (65, 4, 5)), fwhm=5.0),
                            REMOTE_SENSING)
    wanted = (650.0, 550.0, 450.0)
    rgb = select_bands(cube, wanted)
    assert rgb.dims == ("channel", "y", "x") and list(rgb["channel"].values) == ["R", "G", "B"]
    c = REMOTE_SENSING.centres
    nearest = [int(np.argmin(np.abs(c - w))) for w in wanted]
    np.testing.assert_array_equal(rgb["wavelength"].values, c[nearest])
    np.testing.assert_array_equal(rgb.values, cube.values[nearest])
    assert rgb.dtype == np.float32
    other = select_bands(cube, (600.0, 500.0, 420.0))
    assert not np.array_equal(other["wavelength"].values, rgb["wavelength"].values)
    with pytest.raises(UBFInputError, match="no band near 900"):
        select_bands(cube, (900.0, 550.0, 450.0))


# ---------------------------------------------------------------------------------------------------------------
# Response data and rendering

def test_cie1931_and_camspec_files_load():
    cmf = load_cie1931(CIE)
    assert cmf.dims == ("wavelength", "xyz") and list(cmf["xyz"].values) == ["X", "Y", "Z"]
    assert cmf["wavelength"].values[0] == 380.0 and cmf["wavelength"].values[-1] == 780.0
    assert 550.0 <= float(cmf["wavelength"][int(cmf.sel(xyz="Y").argmax("wavelength"))]) <= 560.0   # photopic peak

    cameras = list_cameras(CAMSPEC)
    assert len(cameras) >= 2 and len(set(cameras)) == len(cameras)
    cam = load_camera_response(CAMSPEC, cameras[0])
    assert cam.dims == ("wavelength", "channel") and cam.shape == (33, 3)
    np.testing.assert_array_equal(cam["wavelength"].values, np.arange(400.0, 721.0, 10.0))
    # every camera's red channel peaks at longer wavelengths than its blue channel
    for name in cameras:
        r = load_camera_response(CAMSPEC, name)
        peak = {ch: float(r["wavelength"][int(r.sel(channel=ch).argmax("wavelength"))]) for ch in "RB"}
        assert peak["R"] > peak["B"], name
    with pytest.raises(UBFInputError, match="not in the database; known: ") as info:
        load_camera_response(CAMSPEC, "Kodak Brownie")
    assert info.value.where == str(CAMSPEC) and cameras[0] in str(info.value)


def _responses():
    cameras = list_cameras(CAMSPEC)
    return [("cie1931", load_cie1931(CIE))] + [("camera", load_camera_response(CAMSPEC, c))
                                              for c in (cameras[0], cameras[-1])]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["cie1931", "camera-first", "camera-last"])
def test_flat_spectrum_renders_neutral_grey_that_grows_with_reflectance(index):
    kind, response = _responses()[index]
    wl = REMOTE_SENSING.centres
    values = []
    for v in (0.1, 0.3, 0.6):
        lin = render_rgb(flat_cube(wl, v), response, kind=kind, encoding="linear")
        np.testing.assert_allclose(lin.values, v, rtol=1e-4)
        srgb = render_rgb(flat_cube(wl, v), response, kind=kind, encoding="srgb").values
        np.testing.assert_allclose(srgb[0], srgb[1], rtol=1e-4)
        np.testing.assert_allclose(srgb[1], srgb[2], rtol=1e-4)
        assert srgb.dtype == np.float32 and 0.0 <= srgb.min() and srgb.max() <= 1.0
        values.append(float(srgb[0, 0, 0]))
    assert values[0] < values[1] < values[2]
    assert values[0] > 0.1          # the sRGB curve lifts dark greys


@pytest.mark.parametrize("index", [0, 1, 2], ids=["cie1931", "camera-first", "camera-last"])
def test_reddish_spectrum_renders_red(index):
    kind, response = _responses()[index]
    wl = REMOTE_SENSING.centres
    cube = make_cube(wl, np.where(wl > 600.0, 0.7, 0.08))
    rgb = render_rgb(cube, response, kind=kind)
    assert list(rgb["channel"].values) == ["R", "G", "B"] and rgb.dims == ("channel", "y", "x")
    r, g, b = (float(v) for v in rgb.values[:, 0, 0])
    assert r > g and r > b
    assert kind in rgb.attrs["rendering"].lower() or "cie 1931" in rgb.attrs["rendering"].lower()
    assert rgb.attrs["source"] == "test-set"


def test_render_kind_is_inferred_and_checked():
    cmf = load_cie1931(CIE)
    cube = flat_cube(REMOTE_SENSING.centres, 0.5)
    np.testing.assert_array_equal(render_rgb(cube, cmf).values, render_rgb(cube, cmf, kind="cie1931").values)
    with pytest.raises(UBFInputError, match="camera"):
        render_rgb(cube, cmf, kind="camera")
    with pytest.raises(UBFInputError, match="encoding"):
        render_rgb(cube, cmf, encoding="gamma22")
