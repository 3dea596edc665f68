"""Tests for INSS's losses beside the unmixing loss (band-weighted L1, HSV colour) and the rendering matrix they use."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.spectral import linear_rgb_matrix, load_cie1931, render_rgb
from ubf_core.unmixing.losses import (UnmixingLoss, band_weighted_l1, band_weights_from_std, endmember_tv, hsv_loss,
                                      mae, rgb_to_hsv, sad_loss)

SPECTRA = Path(__file__).resolve().parents[1] / "data" / "spectra"
WL = np.linspace(400.0, 700.0, 31)                      # nm


@pytest.fixture(scope="module")
def cmf():
    return load_cie1931(SPECTRA / "ciexyz31_1.csv")


@pytest.fixture(scope="module")
def rgb_matrix(cmf):
    return torch.as_tensor(linear_rgb_matrix(WL, cmf), dtype=torch.float32)


def _spectra(seed=0, n=2, c=31, h=5, w=6):
    g = torch.Generator().manual_seed(seed)
    return 0.05 + 0.6 * torch.rand(n, c, h, w, generator=g), 0.05 + 0.6 * torch.rand(n, c, h, w, generator=g)


def test_zero_weights_reproduce_the_existing_loss_bit_for_bit(rgb_matrix):
    y_hat, y = _spectra()
    E = torch.rand(31, 4)
    old = UnmixingLoss(alpha=0.3, beta=0.01)
    new = UnmixingLoss(alpha=0.3, beta=0.01, band_l1=0.0, hsv=0.0, band_weights=torch.rand(31),
                       rgb_matrix=rgb_matrix)
    y_a, y_b = y_hat.clone().requires_grad_(True), y_hat.clone().requires_grad_(True)
    (total_a, parts_a), (total_b, parts_b) = old(y_a, y, E), new(y_b, y, E)
    assert torch.equal(total_a, total_b) and parts_a == parts_b
    assert set(parts_b) == {"loss", "mae", "sad", "etv"}
    assert torch.equal(total_a, mae(y_hat, y) + 0.3 * sad_loss(y_hat, y) + 0.01 * endmember_tv(E))
    total_a.backward()
    total_b.backward()
    assert torch.equal(y_a.grad, y_b.grad)
    assert UnmixingLoss() == UnmixingLoss(band_l1=0, hsv=0)


def test_inss_terms_add_to_the_total(rgb_matrix):
    y_hat, y = _spectra()
    E = torch.rand(31, 4)
    weights = band_weights_from_std(y)
    base, _ = UnmixingLoss(alpha=0.1, beta=0.0)(y_hat, y, E)
    total, parts = UnmixingLoss(alpha=0.1, beta=0.0, band_l1=2.0, hsv=0.5, band_weights=weights,
                                rgb_matrix=rgb_matrix)(y_hat, y, E)
    assert parts["band_l1"] > 0 and parts["hsv"] > 0
    expected = base + 2.0 * band_weighted_l1(y_hat, y, weights) + 0.5 * hsv_loss(y_hat, y, rgb_matrix)
    torch.testing.assert_close(total, expected)
    assert parts["loss"] == pytest.approx(float(expected))


def test_band_weighted_l1():
    y_hat, y = _spectra()
    torch.testing.assert_close(band_weighted_l1(y_hat, y, torch.ones(31)), mae(y_hat, y))
    off = y.clone()
    off[:, 7] += 0.2                                      # an error in band 7 only
    w = torch.ones(31)
    assert float(band_weighted_l1(off, y, w)) == pytest.approx(0.2 / 31, rel=1e-5)
    w[7] = 3.0
    assert float(band_weighted_l1(off, y, w)) == pytest.approx(0.6 / 31, rel=1e-5)
    w[7] = 0.0
    assert float(band_weighted_l1(off, y, w)) == 0.0
    with pytest.raises(UBFInputError, match=r"weights must be a tensor of shape \(31,\)"):
        band_weighted_l1(y_hat, y, torch.ones(30))


def test_band_weights_from_std():
    g = np.random.default_rng(0)
    y = g.normal(0.3, 1.0, (50, 4, 3, 3)) * np.array([0.01, 0.02, 0.04, 0.01])[None, :, None, None]
    w = band_weights_from_std(y)
    assert w.shape == (4,) and w.dtype == torch.float32
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-6)
    std = y.transpose(1, 0, 2, 3).reshape(4, -1).std(axis=1)
    np.testing.assert_allclose(w.numpy(), std / std.mean(), rtol=1e-6)
    assert torch.equal(band_weights_from_std(torch.as_tensor(y)), w)
    with pytest.raises(UBFInputError, match="every band is constant"):
        band_weights_from_std(np.ones((5, 4, 2, 2)))
    with pytest.raises(UBFInputError, match="NaN"):
        band_weights_from_std(np.full((5, 4), np.nan))


def test_rgb_to_hsv_matches_colorsys():
    g = np.random.default_rng(1)
    rgb = g.uniform(0.0, 1.0, (200, 3))
    rgb = rgb[np.ptp(rgb, axis=1) > 0.01]                 # the chroma floor only acts on near-greys
    hsv = rgb_to_hsv(torch.as_tensor(rgb.T[None, :, :, None], dtype=torch.float64))[0, :, :, 0].T.numpy()
    ref = np.array([colorsys.rgb_to_hsv(*px) for px in rgb])
    np.testing.assert_allclose(hsv, ref, atol=1e-12)
    pure = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.4, 0.4, 0.4]]).T[None, :, :, None]
    out = rgb_to_hsv(pure)[0, :, :, 0].T
    torch.testing.assert_close(out, torch.tensor([[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [0, 0, 0.4]]))


def test_hsv_loss_behaviour(rgb_matrix):
    y_hat, y = _spectra()
    assert float(hsv_loss(y, y, rgb_matrix)) == 0.0
    assert float(hsv_loss(y_hat, y, rgb_matrix)) > 0
    # a pure brightness change keeps hue and saturation: only the V term, |ΔV| / 3
    darker = 0.8 * y
    rgb = torch.einsum("rc,nchw->nrhw", rgb_matrix, y).clamp_min(0)
    expected = (0.2 * rgb.max(dim=1).values).mean() / 3
    torch.testing.assert_close(hsv_loss(darker, y, rgb_matrix), expected, rtol=1e-4, atol=1e-7)
    # black and grey pixels: finite loss and gradients
    flat = torch.zeros(1, 31, 2, 2)
    flat[0, :, 0, 0] = 0.5
    pred = torch.full((1, 31, 2, 2), 0.2, requires_grad=True)
    loss = hsv_loss(pred, flat, rgb_matrix)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    with pytest.raises(UBFInputError, match=r"rgb_matrix must be a tensor of shape \(3, 31\)"):
        hsv_loss(y_hat, y, rgb_matrix[:, :30])


def test_hue_distance_wraps_around_the_colour_circle():
    """Two reds either side of hue 0 are near in hue, whatever the direction."""
    eye = torch.eye(3)                                    # a 3-band "spectrum" rendered by the identity
    a = torch.tensor([1.0, 0.0, 0.05]).reshape(1, 3, 1, 1)    # hue ≈ 0.992
    b = torch.tensor([1.0, 0.05, 0.0]).reshape(1, 3, 1, 1)    # hue ≈ 0.008
    hue_a, hue_b = float(rgb_to_hsv(a)[0, 0]), float(rgb_to_hsv(b)[0, 0])
    assert hue_a > 0.99 and hue_b < 0.01
    assert float(hsv_loss(a, b, eye)) == pytest.approx((1 - hue_a + hue_b) / 3, rel=1e-5)


def test_linear_rgb_matrix_is_what_render_rgb_applies(cmf):
    M = linear_rgb_matrix(WL, cmf)
    assert M.shape == (3, 31)
    np.testing.assert_allclose(M.sum(axis=1), 1.0, rtol=1e-12)     # white balance: flat 1 → (1, 1, 1)
    g = np.random.default_rng(2)
    refl = g.uniform(0.2, 0.5, (31, 4, 5)).astype(np.float32)       # muted colours: nothing clipped
    cube = xr.DataArray(refl, dims=("wavelength", "y", "x"), coords={"wavelength": WL})
    rendered = render_rgb(cube, cmf, encoding="linear").values
    np.testing.assert_allclose(np.einsum("rc,cyx->ryx", M, refl), rendered, atol=1e-6)
    with pytest.raises(UBFInputError, match="loss.hsv: wavelengths"):
        linear_rgb_matrix(WL[::-1], cmf, where="loss.hsv")
    with pytest.raises(UBFInputError, match="no signal over the cube's bands"):
        linear_rgb_matrix(np.linspace(900.0, 1000.0, 5), cmf)


@pytest.mark.parametrize("kwargs, match", [
    ({"band_l1": 1.0}, "band_l1 > 0 needs band_weights"),
    ({"hsv": 1.0}, "hsv > 0 needs rgb_matrix"),
    ({"band_l1": -1.0, "band_weights": torch.ones(31)}, "band_l1 must be a finite number >= 0"),
    ({"hsv": float("inf"), "rgb_matrix": torch.ones(3, 31)}, "hsv must be a finite number >= 0"),
    ({"band_l1": 1.0, "band_weights": -torch.ones(31)}, "band_weights must be >= 0"),
    ({"band_l1": 1.0, "band_weights": torch.ones(31, 1)}, r"band_weights must have shape \(C,\)"),
    ({"hsv": 1.0, "rgb_matrix": torch.ones(4, 31)}, r"rgb_matrix must have shape \(3, C\)"),
    ({"hsv": 1.0, "rgb_matrix": torch.full((3, 31), float("nan"))}, "rgb_matrix contains NaN"),
])
def test_bad_loss_settings_are_one_line_errors(kwargs, match):
    with pytest.raises(UBFInputError, match=match) as err:
        UnmixingLoss(**kwargs)
    assert str(err.value).startswith("UnmixingLoss: ") and "\n" not in str(err.value)


def test_weights_that_do_not_fit_the_bands_are_refused_at_call():
    y_hat, y = _spectra()
    fn = UnmixingLoss(band_l1=1.0, band_weights=torch.ones(30))
    with pytest.raises(UBFInputError, match=r"shape \(31,\)"):
        fn(y_hat, y, torch.rand(31, 4))
