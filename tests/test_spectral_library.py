"""The spectral library as fixed endmembers (ubf_core/spectral/library.py): reading, the keep rules, selection, errors.

On the embedded real library (data/spectra/usgs_1995_library.mat) and on small synthetic library files in tmp_path.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.io as sio

from ubf_core.config import load_params
from ubf_core.errors import UBFInputError
from ubf_core.spectral.grid import REMOTE_SENSING, SpectralGrid
from ubf_core.spectral.library import (LibrarySettings, library_endmembers, load_library, read_library,
                                       nnls_pixels, select_library_endmembers, select_spectra)

from tests.conftest import REPO_ROOT

REAL = REPO_ROOT / "data" / "spectra" / "usgs_1995_library.mat"
MISSING = -1.23e34


def settings(path, **kw) -> LibrarySettings:
    base = dict(path=str(path), n=3, duplicate_angle_deg=1.0, missing_below=-1.0e30, missing_rule="mask",
                selection="greedy_nnls", sample_pixels=2000, seed=0, tolerance_nm=5.0)
    base.update(kw)
    return LibrarySettings(**base)


def write_library(path, wavelength_um, spectra, names, resolution_um=None, with_wavelengths=True):
    """A library .mat in the USGS layout: datalib (B, M) with named axis columns, names (M, 29) uint8."""
    cols, labels = [], []
    if with_wavelengths:
        cols.append(np.asarray(wavelength_um, float))
        labels.append("Wavelengths in microns 224c")
    if resolution_um is not None:
        cols.append(np.asarray(resolution_um, float))
        labels.append("Resolution  in microns 224c")
    cols += [np.asarray(s, float) for s in np.asarray(spectra, float).T]
    labels += list(names)
    data = np.stack(cols, axis=1)
    codes = np.array([list(label.ljust(29)[:29].encode("latin-1")) for label in labels], dtype=np.uint8)
    sio.savemat(path, {"datalib": data, "names": codes})
    return path


def smooth_spectra(wl_nm: np.ndarray, m: int, seed: int = 1) -> np.ndarray:
    """m distinct smooth reflectance spectra (B, m) in 0.05-0.9."""
    rng = np.random.default_rng(seed)
    x = (wl_nm - wl_nm.min()) / (wl_nm.max() - wl_nm.min())
    out = []
    for _ in range(m):
        c, w, a, b = rng.uniform(0, 1), rng.uniform(0.05, 0.4), rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.3)
        out.append(b + a * np.exp(-0.5 * ((x - c) / w) ** 2))
    return np.stack(out, axis=1)


# ------------------------------------------------------------------------------------------------ the real file

def test_real_library_reads_498_spectra_in_nm_sorted():
    lib = read_library(REAL, -1.0e30)
    assert lib.n == 498 and len(lib.names) == 498
    assert lib.names[0] == "Acmite NMNH133746" and lib.names[-1] == "Walnut_Leaf SUN (Green)"
    assert not any(name.lower().startswith(("wavelengths", "resolution", "data value")) for name in lib.names)
    wl = lib.wavelength_nm
    assert np.all(np.diff(wl) >= 0)                       # the file's overlapping spectrometers are sorted
    assert 380 < wl[0] < 390 and 2500 < wl[-1] < 2510     # µm → nm
    assert lib.fwhm_nm is not None and 8 < np.median(lib.fwhm_nm) < 12
    assert not np.isnan(lib.reflectance).any()            # the channel-number column (with -1.23e34) is not a spectrum
    assert 0 < np.nanmin(lib.reflectance) and np.nanmax(lib.reflectance) < 1.1


def test_real_library_on_the_pipeline_grid():
    s = settings(REAL)
    lib = load_library(s, REMOTE_SENSING)
    assert np.array_equal(lib.wavelength_nm, REMOTE_SENSING.centres)
    assert lib.reflectance.shape == (59, lib.n)
    assert lib.dropped["in_file"] == 498
    assert lib.dropped["in_file"] - sum(v for k, v in lib.dropped.items() if k != "in_file") == lib.n
    assert lib.dropped["duplicates"] > 100                # many library entries are near-copies on 398-698 nm
    # no two kept spectra within the duplicate angle
    u = lib.reflectance / np.linalg.norm(lib.reflectance, axis=0)
    ang = np.degrees(np.arccos(np.clip(u.T @ u, -1, 1)))
    np.fill_diagonal(ang, 90.0)
    assert ang.min() > s.duplicate_angle_deg
    # resampling keeps a smooth spectrum where it is: compare with linear interpolation of the raw samples
    raw = read_library(REAL, -1.0e30)
    j = raw.names.index(lib.names[10])
    interp = np.interp(REMOTE_SENSING.centres, raw.wavelength_nm, raw.reflectance[:, j])
    assert np.max(np.abs(lib.reflectance[:, 10] - interp)) < 0.03 * raw.reflectance[:, j].max() + 1e-3
    # a wider duplicate angle keeps fewer
    assert load_library(replace(s, duplicate_angle_deg=3.0), REMOTE_SENSING).n < lib.n


def _explained(E, y):
    r = y - E @ nnls_pixels(y, E, iterations=2000)
    return 1.0 - np.sum(r ** 2) / np.sum(y ** 2)


def test_greedy_selection_explains_the_scene_it_is_chosen_for():
    # A scene mixed from 3 library spectra with free brightness. On 59 smooth bands (398-698 nm) other triples of
    # library spectra span nearly the same space (measured: neither this greedy rule nor a full-library NNLS
    # ranking names the true three), so the test asks for what the rule promises: the chosen spectra explain
    # the scene's spectra, far better than spectra not chosen for it, and more with every added spectrum.
    s = settings(REAL, n=3)
    lib = load_library(s, REMOTE_SENSING)
    truth = [7, 60, 150]
    rng = np.random.default_rng(3)
    a = rng.dirichlet(np.ones(3), size=3000).T * rng.uniform(0.5, 1.2, size=3000)   # non-negative, free brightness
    y = lib.reflectance[:, truth] @ a                                                # (C, P)
    picked = select_spectra(lib, y, s)
    assert picked.selection["usable"] == lib.n and picked.selection["selected"] == 3
    assert picked.selection["explained"] > 0.995
    assert _explained(picked.reflectance, y) > 0.995
    first = select_spectra(lib, y, replace(s, selection="first"))
    assert 1 - _explained(first.reflectance, y) > 10 * (1 - picked.selection["explained"])
    residuals = [select_spectra(lib, y, replace(s, n=n)).selection["residual_rms"] for n in (1, 2, 3, 6)]
    assert all(b < a for a, b in zip(residuals, residuals[1:]))
    # the same seed gives the same choice; the order is the order of choice
    again = select_spectra(lib, y, s)
    assert again.names == picked.names
    np.testing.assert_array_equal(again.reflectance, picked.reflectance)
    assert select_spectra(lib, y, replace(s, n=6)).names[:3] == picked.names


def test_library_endmembers_from_params_and_patches():
    params = load_params(REPO_ROOT / "params.yaml")
    params["unmixing"]["library"]["path"] = str(REAL)
    params["unmixing"]["library"]["n"] = 5
    lib = load_library(LibrarySettings.from_params(params), REMOTE_SENSING)
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(4), size=(6, 8, 8))                   # (N, H, W, 4)
    y = np.einsum("ck,nhwk->nchw", lib.reflectance[:, [2, 40, 90, 200]], a).astype(np.float32)
    E, names = library_endmembers(params, REMOTE_SENSING.centres, y)
    assert E.shape == (59, 5) and E.dtype == np.float32 and len(names) == 5
    assert _explained(E.astype(np.float64), np.moveaxis(y, 1, 0).reshape(59, -1).astype(np.float64)) > 0.999
    full = select_library_endmembers(params, REMOTE_SENSING.centres, y)
    with pytest.raises(UBFInputError, match="not the params grid's"):       # another grid than params' grid
        library_endmembers(params, np.linspace(400, 700, 31), y[:, :31])
    rec = full.record()
    assert rec["library_spectra"] == 5 and rec["library_in_file"] == 498 and rec["library_names"] == names
    assert rec["library_selection_rule"] == "greedy_nnls"
    np.testing.assert_array_equal(full.reflectance.astype(np.float32), E)   # never rescaled


def test_first_rule_needs_no_training_data():
    lib = select_library_endmembers(settings(REAL, n=4, selection="first"), REMOTE_SENSING.centres, None)
    usable = load_library(settings(REAL), REMOTE_SENSING)
    assert lib.names == usable.names[:4]


# ------------------------------------------------------------------------------------------------ bad input

def test_n_larger_than_the_usable_spectra_is_one_line_naming_the_param():
    s = settings(REAL, n=400)
    with pytest.raises(UBFInputError) as err:
        select_library_endmembers(s, REMOTE_SENSING.centres, np.ones((59, 10)))
    msg = str(err.value)
    assert "unmixing.library.n = 400" in msg and "usable" in msg and "usgs_1995_library.mat" in msg
    assert "\n" not in msg


def test_library_without_wavelengths_is_an_error_naming_the_file(tmp_path):
    wl = np.linspace(0.35, 1.0, 66)
    path = write_library(tmp_path / "nowl.mat", wl, smooth_spectra(wl * 1000, 3), ["a", "b", "c"],
                         with_wavelengths=False)
    with pytest.raises(UBFInputError) as err:
        load_library(settings(path), REMOTE_SENSING)
    assert str(err.value).startswith(str(path)) and "no wavelength column" in str(err.value)
    assert "\n" not in str(err.value)


def test_library_that_does_not_cover_the_grid_is_an_error_naming_the_file(tmp_path):
    wl = np.linspace(0.45, 1.0, 56)                     # starts at 450 nm: the 398-698 nm grid is not covered
    path = write_library(tmp_path / "short.mat", wl, smooth_spectra(wl * 1000, 3), ["a", "b", "c"])
    with pytest.raises(UBFInputError) as err:
        load_library(settings(path), REMOTE_SENSING)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "do not cover the target grid" in msg and "398.0" in msg
    # the same file is fine for a grid it covers
    ok = load_library(settings(path), SpectralGrid(460.0, 900.0, 45))
    assert ok.n == 3


def test_not_evenly_spaced_target_and_bad_settings_are_refused(tmp_path):
    with pytest.raises(UBFInputError, match="evenly spaced"):
        select_library_endmembers(settings(REAL, selection="first"), [400.0, 410.0, 430.0], None)
    with pytest.raises(UBFInputError, match="unmixing.library.missing_rule"):
        settings(REAL, missing_rule="fill")
    with pytest.raises(UBFInputError, match="unmixing.library.selection"):
        settings(REAL, selection="random")
    with pytest.raises(UBFInputError, match="unmixing.library.n"):
        settings(REAL, n=0)
    with pytest.raises(UBFInputError, match="not found"):
        load_library(settings(tmp_path / "absent.mat"), REMOTE_SENSING)
    params = load_params(REPO_ROOT / "params.yaml")
    del params["unmixing"]["library"]["n"]
    with pytest.raises(UBFInputError, match="missing key 'n'"):
        LibrarySettings.from_params(params)


# ------------------------------------------------------------------------------------------------ the keep rules

def test_missing_values_duplicates_and_nonpositive_spectra(tmp_path):
    wl = np.linspace(0.35, 1.0, 66)                     # 10 nm samples, 350-1000 nm
    wl_nm = wl * 1000
    S = smooth_spectra(wl_nm, 8)
    names = [f"s{i}" for i in range(8)]
    S[20, 1] = MISSING                                  # one sample missing at 550 nm: the rest still covers
    S[18:26, 2] = MISSING                               # 530-600 nm missing: does not cover the grid
    S[60:, 3] = MISSING                                 # missing beyond the grid (950-1000 nm) only
    S[:, 4] = 1.02 * S[:, 0]                            # the same shape as s0: a duplicate (angle 0)
    S[:, 5] = 0.0                                       # no positive value: not a reflectance
    S[30, 6] = np.nan                                   # not finite: missing too (650 nm)
    path = write_library(tmp_path / "lib.mat", wl, S, names, resolution_um=np.full(66, 0.01))
    masked = load_library(settings(path), REMOTE_SENSING)
    assert masked.names == ("s0", "s1", "s3", "s6", "s7")
    assert masked.dropped == {"in_file": 8, "missing_values": 0, "not_covering": 1, "nonpositive": 1,
                              "duplicates": 1}
    assert np.all(np.isfinite(masked.reflectance))
    # s3's missing samples lie beyond the grid: its resampled spectrum equals that of the complete spectrum
    full = S.copy()
    full[60:, 3] = 0.5
    path2 = write_library(tmp_path / "lib2.mat", wl, full[:, [3]], ["s3"], resolution_um=np.full(66, 0.01))
    np.testing.assert_allclose(masked.reflectance[:, 2], load_library(settings(path2), REMOTE_SENSING).reflectance[:, 0],
                               rtol=1e-6)
    # s1 with its one missing sample masked stays close to the smooth truth
    truth = np.interp(REMOTE_SENSING.centres, wl_nm, smooth_spectra(wl_nm, 8)[:, 1])
    assert np.max(np.abs(masked.reflectance[:, 1] - truth)) < 0.02
    dropped = load_library(settings(path, missing_rule="drop"), REMOTE_SENSING)
    assert dropped.names == ("s0", "s7")
    assert dropped.dropped["missing_values"] == 4 and dropped.dropped["not_covering"] == 0
    # n beyond what the rules leave is refused, naming the param and the counts
    with pytest.raises(UBFInputError, match=r"unmixing.library.n = 3 exceeds the 2 usable"):
        select_spectra(dropped, None, settings(path, n=3, selection="first"))
