"""The nearest-library spectral angle (ubf_core/metrics/library_angle.py): exact matches, shuffled bands, zero spectra,
chunking, bad input, and the embedded USGS library on the pipeline grid."""

from __future__ import annotations

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.metrics.library_angle import angle_summary, nearest_library_angles
from ubf_core.spectral.library import LibrarySettings, grid_of, load_library

from tests.conftest import REPO_ROOT

REAL = REPO_ROOT / "data" / "spectra" / "usgs_1995_library.mat"


def smooth_library(c: int = 40, m: int = 12, seed: int = 3) -> np.ndarray:
    """m distinct smooth positive spectra (c, m): an offset plus a Gaussian bump at a different place each."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, c)[:, None]
    centres = np.linspace(0.05, 0.95, m)[None, :]
    return 0.05 + rng.uniform(0.2, 0.8, (1, m)) * np.exp(-0.5 * ((x - centres) / 0.08) ** 2)


def test_scaled_library_columns_have_angle_zero_and_their_own_index():
    lib = smooth_library()
    scale = np.array([0.1, 1.0, 7.5] * 4)
    spectra = (lib * scale).T                                  # (12, 40): column j scaled
    angles, index = nearest_library_angles(spectra, lib)
    assert angles.shape == (12,) and index.shape == (12,)
    assert np.all(angles < 1e-5)
    assert np.array_equal(index, np.arange(12))


def test_a_known_angle_is_measured_in_degrees():
    lib = np.array([[1.0], [0.0]])                             # (C=2, M=1)
    spectra = np.array([[1.0, 1.0], [0.0, 2.0], [1.0, np.tan(np.radians(3.0))]])
    angles, index = nearest_library_angles(spectra, lib)
    np.testing.assert_allclose(angles, [45.0, 90.0, 3.0], atol=1e-9)
    assert np.array_equal(index, [0, 0, 0])


def test_band_shuffled_spectra_are_further_from_the_library():
    lib = smooth_library(c=40, m=12)
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(3), size=200)              # mixtures of 3 random entries each
    cols = np.stack([rng.choice(12, 3, replace=False) for _ in range(200)])
    spectra = np.einsum("pk,cpk->pc", weights, lib[:, cols])   # (200, 40)
    shuffled = spectra[:, rng.permutation(40)]
    a, _ = nearest_library_angles(spectra, lib)
    b, _ = nearest_library_angles(shuffled, lib)
    assert np.median(b) > np.median(a) + 10.0
    assert np.mean(b > a) > 0.9


def test_zero_and_non_finite_spectra_give_nan_and_index_minus_one():
    lib = smooth_library()
    spectra = np.vstack([lib[:, 2], np.zeros(40), np.full(40, np.nan), lib[:, 5]])
    angles, index = nearest_library_angles(spectra, lib)
    assert np.isnan(angles[1]) and np.isnan(angles[2])
    assert index[1] == -1 and index[2] == -1
    assert index[0] == 2 and index[3] == 5 and angles[0] < 1e-5
    s = angle_summary(angles)
    assert s["n"] == 2 and s["n_nan"] == 2 and s["share_below_5"] == 1.0


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunking_gives_the_unchunked_result(chunk):
    lib = smooth_library(c=30, m=9)
    spectra = np.random.default_rng(1).uniform(0.0, 1.0, (300, 30)).astype(np.float32)
    spectra[17] = 0.0
    whole = nearest_library_angles(spectra, lib, chunk=len(spectra))
    parts = nearest_library_angles(spectra, lib, chunk=chunk)
    np.testing.assert_array_equal(parts[1], whole[1])
    np.testing.assert_allclose(parts[0], whole[0], rtol=0, atol=1e-12, equal_nan=True)


def test_summary_quantiles_and_shares():
    s = angle_summary(np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, np.nan]))
    assert s["n"] == 8 and s["n_nan"] == 1
    assert s["median"] == pytest.approx(5.0)
    assert s["q25"] == pytest.approx(2.75) and s["q75"] == pytest.approx(9.0)
    assert s["share_below_5"] == pytest.approx(0.5) and s["share_below_10"] == pytest.approx(0.75)


@pytest.mark.parametrize("spectra, library, name", [
    (np.ones(5), np.ones((5, 2)), "spectra"),
    (np.ones((3, 5)), np.ones(5), "library"),
    (np.ones((3, 5)), np.ones((4, 2)), "library"),
    (np.ones((3, 5)), np.hstack([np.ones((5, 1)), np.zeros((5, 1))]), "library"),
])
def test_bad_input_is_a_one_line_error_naming_the_argument(spectra, library, name):
    with pytest.raises(UBFInputError) as err:
        nearest_library_angles(spectra, library)
    assert str(err.value).startswith(f"{name}: ") and "\n" not in str(err.value)


def test_the_embedded_library_is_at_zero_angle_from_itself_on_the_pipeline_grid():
    grid = grid_of(np.linspace(398.0, 698.0, 59))
    settings = LibrarySettings(path=str(REAL), n=3, duplicate_angle_deg=1.0, missing_below=-1.0e30,
                               missing_rule="mask", selection="first", sample_pixels=10, seed=0, tolerance_nm=5.0)
    lib = load_library(settings, grid)
    assert lib.reflectance.shape == (59, lib.n) and lib.n > 100
    picks = np.arange(0, lib.n, 10)
    angles, index = nearest_library_angles(lib.reflectance[:, picks].T * 0.5, lib.reflectance)
    assert np.all(angles < 1e-4)
    assert np.array_equal(index, picks)          # duplicates within 1° were dropped, so each is its own nearest
