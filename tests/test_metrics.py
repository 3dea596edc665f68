"""Reconstruction metrics: known values, edge cases, shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.metrics.reconstruction import ergas, psnr, reconstruction_report, rmse, sad_degrees, ssim


@pytest.fixture
def cube() -> np.ndarray:
    rng = np.random.default_rng(0)
    # smooth-ish positive reflectance cube (C, H, W) in [0.1, 0.9]
    base = rng.random((8, 16, 16))
    return (0.1 + 0.8 * base).astype(np.float64)


def test_psnr_identical_is_cap(cube):
    assert psnr(cube, cube) == 100.0
    assert psnr(cube, cube, max_db=60.0) == 60.0


def test_psnr_known_constant_error(cube):
    e = 0.05
    expected = 10.0 * math.log10(1.0 / e**2)
    assert psnr(cube + e, cube, data_range=1.0) == pytest.approx(expected, rel=1e-9)
    # data_range enters as its square
    assert psnr(cube + e, cube, data_range=2.0) == pytest.approx(10.0 * math.log10(4.0 / e**2), rel=1e-9)


def test_psnr_is_mean_over_bands():
    x = np.zeros((2, 4, 4))
    x_hat = x.copy()
    x_hat[0] += 0.1
    x_hat[1] += 0.01
    expected = 0.5 * (10 * math.log10(1 / 0.1**2) + 10 * math.log10(1 / 0.01**2))
    assert psnr(x_hat, x) == pytest.approx(expected)


def test_rmse_known_error(cube):
    assert rmse(cube, cube) == 0.0
    assert rmse(cube - 0.03, cube) == pytest.approx(0.03)
    x_hat = cube.copy()
    x_hat[0] += 0.2  # one band of eight off by 0.2
    assert rmse(x_hat, cube) == pytest.approx(math.sqrt(0.2**2 / 8))


def test_sad_cases():
    rng = np.random.default_rng(1)
    x = rng.random((5, 4, 4)) + 0.1
    assert sad_degrees(x, x) == pytest.approx(0.0, abs=1e-5)
    assert sad_degrees(3.0 * x, x) == pytest.approx(0.0, abs=1e-5)
    a = np.zeros((2, 1, 1))
    b = np.zeros((2, 1, 1))
    a[0] = 1.0
    b[1] = 1.0
    assert sad_degrees(a, b) == pytest.approx(90.0)
    zero = np.zeros_like(x)
    value = sad_degrees(zero, x)
    assert np.isfinite(value)
    assert value == pytest.approx(90.0)
    assert np.isfinite(sad_degrees(zero, zero))


def test_ssim_identical_and_noise(cube):
    rng = np.random.default_rng(2)
    assert ssim(cube, cube) == pytest.approx(1.0)
    noise = rng.standard_normal(cube.shape)
    s_small = ssim(cube + 0.02 * noise, cube)
    s_large = ssim(cube + 0.2 * noise, cube)
    assert s_small < 1.0
    assert s_large < s_small


@pytest.mark.parametrize("shape", [(8, 16, 16), (3, 5, 32, 32), (3, 100, 8, 8), (2, 4, 4, 4), (2, 3, 5, 9),
                                   (1, 2, 3, 3)])
def test_ssim_equals_scikit_image_per_band(shape):
    """The one-call SSIM equals skimage's structural_similarity (Wang et al. settings) averaged band by band."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(4)
    x = rng.random(shape)
    x_hat = np.clip(x + 0.1 * rng.standard_normal(shape), 0, 1)
    h, w = shape[-2:]
    win = min(h, w, 7) - (1 - min(h, w, 7) % 2)
    ref = np.mean([structural_similarity(a, b, win_size=win, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
                   for a, b in zip(x_hat.reshape(-1, h, w), x.reshape(-1, h, w))])
    assert ssim(x_hat, x, data_range=2.0) == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_ergas_identical_is_zero(cube):
    assert ergas(cube, cube) == 0.0
    # relative error 10 % in every band -> 100 * 0.1
    assert ergas(1.1 * np.ones((3, 4, 4)), np.ones((3, 4, 4))) == pytest.approx(10.0)
    assert ergas(1.1 * np.ones((3, 4, 4)), np.ones((3, 4, 4)), ratio=0.25) == pytest.approx(2.5)


def test_shape_mismatch():
    with pytest.raises(UBFInputError, match=r"metrics: shapes \(3, 4, 4\) and \(3, 4, 5\) differ"):
        rmse(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))
    for fn in (psnr, ssim, sad_degrees, ergas, reconstruction_report):
        with pytest.raises(UBFInputError):
            fn(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4 + 1)))


@pytest.mark.parametrize("shape", [(6, 4, 4), (3, 6, 4, 4), (2, 5, 3, 8)])
def test_tiny_shapes_and_batches(shape):
    rng = np.random.default_rng(3)
    x = (0.2 + 0.6 * rng.random(shape)).astype(np.float32)
    x_hat = x + np.float32(0.01) * rng.standard_normal(shape).astype(np.float32)
    report = reconstruction_report(x_hat, x)
    assert set(report) == {"rmse", "psnr", "ssim", "sad_deg", "ergas"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in report.values())
    assert 0.0 < report["ssim"] < 1.0
    assert report["rmse"] == pytest.approx(0.01, rel=0.3)
    assert reconstruction_report(x, x)["psnr"] == 100.0


def test_batch_band_mse_pools_patches():
    # (N, C, H, W): band MSE is over N, H, W, so the batch PSNR equals that of the patches laid side by side
    rng = np.random.default_rng(4)
    x = rng.random((3, 4, 5, 5))
    x_hat = x + 0.05 * rng.standard_normal(x.shape)
    side_by_side = np.concatenate(list(x), axis=-1)  # (C, H, N*W)
    side_by_side_hat = np.concatenate(list(x_hat), axis=-1)
    assert psnr(x_hat, x) == pytest.approx(psnr(side_by_side_hat, side_by_side))
    assert ergas(x_hat, x) == pytest.approx(ergas(side_by_side_hat, side_by_side))
    assert sad_degrees(x_hat, x) == pytest.approx(sad_degrees(side_by_side_hat, side_by_side))
