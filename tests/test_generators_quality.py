"""The nearest-real spectral angle (ubf_core.generators.quality)."""

from __future__ import annotations

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.generators import nearest_real_angle_deg


def test_identical_sets_give_zero_and_scale_does_not_matter():
    real = np.random.default_rng(0).random((50, 7)) + 0.1
    assert nearest_real_angle_deg(real, real) == pytest.approx(0.0, abs=1e-6)
    assert nearest_real_angle_deg(3.5 * real[:10], real) == pytest.approx(0.0, abs=1e-6)


def test_known_angles_to_the_nearest_real_pixel():
    real = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    angle = np.radians(10.0)
    generated = np.array([[np.cos(angle), np.sin(angle), 0.0],          # 10° from the first
                          [0.0, np.cos(2 * angle), np.sin(2 * angle)]])  # 20° from the second
    assert nearest_real_angle_deg(generated, real) == pytest.approx(15.0, rel=1e-9)
    tiny = np.array([[1.0, 1e-6, 0.0]])                                  # small angles stay accurate
    assert nearest_real_angle_deg(tiny, real) == pytest.approx(np.degrees(1e-6), rel=1e-6)


def test_chunking_does_not_change_the_result_and_subsampling_is_seeded():
    rng = np.random.default_rng(1)
    generated, real = rng.random((300, 5)), rng.random((500, 5))
    whole = nearest_real_angle_deg(generated, real, chunk=10_000)
    assert nearest_real_angle_deg(generated, real, chunk=7) == pytest.approx(whole, rel=1e-12)
    sub = nearest_real_angle_deg(generated, real, max_generated=100, max_real=200, seed=3)
    assert sub == nearest_real_angle_deg(generated, real, max_generated=100, max_real=200, seed=3)
    assert sub != nearest_real_angle_deg(generated, real, max_generated=100, max_real=200, seed=4)


@pytest.mark.parametrize("generated,real,match", [
    (np.ones((3, 4)), np.ones((3, 5)), "4 bands, real ones 5"),
    (np.ones(4), np.ones((3, 4)), "must be a non-empty \\(pixels, bands\\) array"),
    (np.zeros((2, 4)), np.ones((3, 4)), "2 generated spectra are all zero"),
    (np.full((2, 4), np.nan), np.ones((3, 4)), "NaN or infinite"),
])
def test_bad_spectra(generated, real, match):
    with pytest.raises(UBFInputError, match=match):
        nearest_real_angle_deg(generated, real)
