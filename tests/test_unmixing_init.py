"""The decoder's start (unmixing.init_endmembers): vca_normalized, which cannot collapse onto dark or duplicate pixels
(ubf_core/unmixing/baseline.py), against plain VCA on a black-background scene; least_squares, the physical cone of
the inputs (ubf_core/unmixing/cone.py) whose endmembers mix into least squares exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubf_core.config import load_params
from ubf_core.errors import UBFInputError
from ubf_core.unmixing.baseline import NormalizedVCA, vca, vca_normalized
from ubf_core.unmixing.experiment import UnmixingSettings, fit_regressions, initial_endmembers
from ubf_core.unmixing.cone import cone_coordinates, cone_vertices, corner_triangles, fiber_abundances
from ubf_core.unmixing.network import UnmixingNet
from ubf_core.unmixing.regression import fit_band_regression, least_squares_endmembers, pixels
from ubf_core.unmixing.saved import load_unmixing_model, save_unmixing_model

from tests.conftest import REPO_ROOT

RULE = NormalizedVCA(min_brightness=0.1, min_angle_deg=5.0, bright_fraction=0.1)
WL = np.linspace(400, 700, 31)


def materials() -> np.ndarray:
    """Three distinct reflectance spectra (31, 3), 400-700 nm."""
    return np.stack([0.1 + 0.7 / (1 + np.exp(-(WL - 600) / 15)),          # red
                     0.08 + 0.5 * np.exp(-0.5 * ((WL - 540) / 30) ** 2),   # green
                     0.6 - 0.4 * (WL - 400) / 300], axis=1)                # blue-white


def black_background_scene(seed: int, pixels: int = 6000, dark: float = 0.6, noise: float = 0.002):
    """(C, P) pixels: ``dark`` share black background (noise only), the rest shaded mixtures of three materials,
    a few of them pure and fully lit; returns (Y, M)."""
    rng = np.random.default_rng(seed)
    M = materials()
    n = int(pixels * (1 - dark))
    a = rng.dirichlet(np.full(3, 0.3), size=n).T
    shade = rng.uniform(0.3, 1.0, size=n)
    a[:, :30], shade[:30] = np.eye(3)[:, np.arange(30) % 3], 1.0
    Y = np.zeros((len(WL), pixels))
    Y[:, :n] = M @ a * shade
    Y = np.maximum(Y + noise * rng.standard_normal(Y.shape), 0.0)
    return Y[:, rng.permutation(pixels)], M


def angles_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    a = A / np.linalg.norm(A, axis=0)
    b = B / np.linalg.norm(B, axis=0)
    return np.degrees(np.arccos(np.clip(a.T @ b, -1, 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_black_background_plain_vca_picks_dark_pixels_normalized_does_not(seed):
    Y, M = black_background_scene(seed)
    p99 = np.quantile(Y.sum(axis=0), 0.99)
    E_plain, _ = vca(Y, 3, seed=seed)
    assert E_plain.sum(axis=0).min() < 0.05 * p99           # the failure: a near-black pixel as an endmember
    E, idx = vca_normalized(Y, 3, RULE, seed=seed)
    ang = angles_deg(E, M)                                  # (chosen, true)
    match = ang.argmin(axis=1)
    assert sorted(match) == [0, 1, 2]                       # one endmember per material
    assert ang.min(axis=1).max() < 2.0                      # each within 2 degrees of its material
    assert np.all(E.sum(axis=0) > 0.3 * p99)                # none is dark
    # at full brightness: the mean of the brightest pixels of its shape, close to the pure material
    np.testing.assert_allclose(E.sum(axis=0), M[:, match].sum(axis=0), rtol=0.1)
    assert np.all(Y[:, idx].sum(axis=0) >= RULE.min_brightness * p99)   # grown from bright candidates


def test_distinct_endmembers_even_when_one_material_dominates():
    rng = np.random.default_rng(5)
    M = materials()
    a = np.zeros((3, 4000))
    a[0, :3600] = 1.0                                       # 90 % pure red, at many brightness levels
    a[:, 3600:] = rng.dirichlet(np.ones(3), size=400).T
    Y = M @ a * rng.uniform(0.2, 1.0, size=4000) + 0.01 * rng.standard_normal((31, 4000))
    Y = np.maximum(Y, 0)
    E, _ = vca_normalized(Y, 4, RULE, seed=0)
    ang = angles_deg(E, E)
    np.fill_diagonal(ang, 90)
    assert ang.min() >= RULE.min_angle_deg


def test_too_few_bright_or_distinct_pixels_are_errors_naming_the_param():
    M = materials()[:, :2]
    Y = np.repeat(M, 200, axis=1) * np.linspace(0.5, 1, 400)          # two shapes only, no mixtures, no noise
    with pytest.raises(UBFInputError, match=r"only 2 spectral shapes .*unmixing.init_normalized.min_angle_deg"):
        vca_normalized(Y, 3, RULE)
    dark = np.zeros((31, 100))
    dark[:, :2] = M
    with pytest.raises(UBFInputError, match="min_brightness"):
        vca_normalized(dark, 3, RULE)
    with pytest.raises(UBFInputError, match="no positive brightness"):
        vca_normalized(np.zeros((31, 50)), 2, RULE)


def test_settings_and_the_decoder_start():
    u = dict(load_params(REPO_ROOT / "params.yaml")["unmixing"])
    s = UnmixingSettings.from_params(u)
    assert s.init_endmembers == "least_squares" and s.init_normalized == NormalizedVCA(**u["init_normalized"])
    Y, M = black_background_scene(0, pixels=2048)
    patches = np.moveaxis(Y.reshape(31, 2, 32, 32), 1, 0)              # (N, C, H, W)
    E_vca = vca(Y, 3, seed=0)[0]
    s3 = UnmixingSettings.from_params({**u, "k": 3, "init_endmembers": "vca"})
    assert initial_endmembers(patches, s3, 0, E_vca) is E_vca          # vca: the VCA+FCLS baseline's, unchanged
    assert initial_endmembers(patches, UnmixingSettings.from_params({**u, "k": 3, "init_endmembers": "random"}),
                              0, E_vca) is None
    E = initial_endmembers(patches, UnmixingSettings.from_params({**u, "k": 3, "init_endmembers": "vca_normalized"}),
                           0, E_vca)
    assert E.shape == (31, 3) and angles_deg(E, M).min(axis=1).max() < 3.0
    with pytest.raises(UBFInputError, match="needs the unmixing.init_normalized section"):
        UnmixingSettings.from_params({k: v for k, v in {**u, "init_endmembers": "vca_normalized"}.items()
                                      if k != "init_normalized"})
    with pytest.raises(UBFInputError, match="unmixing.init_normalized.min_angle_deg"):
        UnmixingSettings.from_params({**u, "init_normalized": {**u["init_normalized"], "min_angle_deg": 0}})
    with pytest.raises(UBFInputError, match="unmixing.init_normalized needs"):
        UnmixingSettings.from_params({**u, "init_normalized": {"min_brightness": 0.1}})
    with pytest.raises(UBFInputError, match="use vca, vca_normalized, least_squares or random"):
        UnmixingSettings.from_params({**u, "init_endmembers": "nfindr"})


def colour_inputs(seed: int, n: int = 4000) -> np.ndarray:
    """(n, 3) three-band inputs as in the HSI scenes: mostly brightness (0.06-3 band sums), a little colour."""
    rng = np.random.default_rng(seed)
    chroma = rng.dirichlet(np.full(3, 40.0), size=n)
    return chroma * rng.uniform(0.06, 3.0, size=(n, 1))


def affine_spectra(seed: int) -> np.ndarray:
    """(4, 31) rows offset, then the spectrum per unit of each input band: positive near the inputs' grey
    chromaticities, negative for saturated ones (as least squares on real scenes)."""
    rng = np.random.default_rng(seed)
    W = np.zeros((4, 31))
    W[0] = rng.uniform(-0.005, 0.01, 31)
    for band, centre in zip(range(3), (26, 15, 5)):          # each input band drives its part of the spectrum
        W[band + 1] = 1.2 * np.exp(-0.5 * ((np.arange(31) - centre) / 5.0) ** 2) - 0.05
    return W


def barycentric(vertices: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weights (n, k) with Σ_j w_j = 1 and x = Σ_j w_j·v_j of the vertices (k, 3) (unique for k = 4)."""
    A = np.vstack([vertices.T, np.ones(len(vertices))])                # (4, k)
    return np.linalg.lstsq(A, np.vstack([x.T, np.ones(len(x))]), rcond=None)[0].T


def coordinates(x: np.ndarray, V: np.ndarray) -> np.ndarray:
    """cone_coordinates of pixel rows (n, 3) → (n, k)."""
    images = torch.as_tensor(x.T.reshape(1, 3, 1, len(x)))
    return cone_coordinates(images, torch.as_tensor(V)).numpy().reshape(len(V), -1).T


@pytest.mark.parametrize("k", [4, 5, 7])
def test_the_physical_cone_holds_the_inputs_and_its_endmembers_mix_into_least_squares(k):
    x = colour_inputs(0)
    W = affine_spectra(1)
    y = np.concatenate([np.ones((len(x), 1)), x], axis=1) @ W
    reg = fit_band_regression(x, y, 1)
    V = cone_vertices(x, reg.coef[0], reg.coef[1:], k)
    assert V.shape == (k, 3) and np.all(V[0] == 0)
    E = least_squares_endmembers(reg, V)
    assert E.shape == (31, k)
    np.testing.assert_allclose(E[:, 0], W[0], atol=1e-9)                 # the black point: the offset spectrum
    assert E[:, 1:].min() > -1e-9                                       # the bright points: reflectances
    assert E[:, 1:].min(axis=0).max() < 1e-6                            # each on the edge of the physical region
    w = coordinates(x, V)
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1)
    within = np.abs(w @ V - x).max(axis=1) < 1e-9                       # the inputs the weights reproduce
    assert within.mean() > 0.97
    if k == 4:                                                          # a simplex: the weights are its own
        np.testing.assert_array_equal(within, barycentric(V, x).min(axis=1) >= -1e-12)
    np.testing.assert_allclose((w @ E.T)[within], reg.predict(x)[within], atol=1e-9)   # least squares exactly
    far = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 9.0]])                  # outside: taken onto the cone
    wf = coordinates(far, V)
    assert np.all(wf >= 0) and np.allclose(wf.sum(axis=1), 1) and (wf @ E.T).min() > -0.01


def test_least_squares_start_in_the_settings_and_its_bad_input():
    u = dict(load_params(REPO_ROOT / "params.yaml")["unmixing"])
    x = colour_inputs(2, n=2 * 32 * 32)
    patches_x = np.moveaxis(x.reshape(2, 32, 32, 3), 3, 1)              # (N, 3, H, W)
    W = affine_spectra(3)
    y = np.moveaxis((np.concatenate([np.ones((len(x), 1)), x], axis=1) @ W).reshape(2, 32, 32, 31), 3, 1)
    regs = fit_regressions(patches_x, y)
    s = UnmixingSettings.from_params({**u, "init_endmembers": "least_squares"})
    ls = regs["least_squares_1"]
    cone = cone_vertices(pixels(patches_x), ls.coef[0], ls.coef[1:], s.k)
    E = initial_endmembers(y, s, 0, None, cone=cone, regressions=regs)
    np.testing.assert_allclose(E, least_squares_endmembers(ls, cone))
    with pytest.raises(UBFInputError, match="needs the cone of the encoder inputs"):
        initial_endmembers(y, s, 0, None)
    with pytest.raises(UBFInputError, match="unmixing.k = 3: init_endmembers least_squares needs at least 4"):
        UnmixingSettings.from_params({**u, "k": 3, "init_endmembers": "least_squares"})
    with pytest.raises(UBFInputError, match="need 3 input bands"):
        cone_vertices(np.ones((10, 2)), ls.coef[0], ls.coef[1:], 5)
    with pytest.raises(UBFInputError, match="not positive in every band"):          # no physical cone
        cone_vertices(pixels(patches_x), ls.coef[0] - 10.0, ls.coef[1:], 5)
    with pytest.raises(UBFInputError, match="order-1 regression"):
        least_squares_endmembers(regs["least_squares_2"], cone)


def test_a_cone_network_starts_at_least_squares_and_keeps_its_cone_through_its_config():
    x = colour_inputs(3, n=2 * 16 * 16)
    W = affine_spectra(4)
    W[0] = np.abs(W[0])                                                 # a non-negative offset: nothing clipped
    y = np.concatenate([np.ones((len(x), 1)), x], axis=1) @ W
    reg = fit_band_regression(x, y, 1)
    V = cone_vertices(x, reg.coef[0], reg.coef[1:], 5)
    E = np.maximum(least_squares_endmembers(reg, V), 0.0)
    torch.manual_seed(0)
    net = UnmixingNet(5, 31, stem=8, widths=[8, 8], init_endmembers=torch.as_tensor(E, dtype=torch.float32),
                      cone=True, cone_vertices=V)
    images = torch.as_tensor(np.moveaxis(x.reshape(2, 16, 16, 3), 3, 1), dtype=torch.float32)
    a, y_hat = net(images)
    want = np.moveaxis(y.reshape(2, 16, 16, 31), 3, 1)
    inside = np.abs(np.einsum("nkhw,kj->njhw", a.detach().numpy(), V) - np.moveaxis(
        x.reshape(2, 16, 16, 3), 3, 1)).max(axis=1) < 1e-4
    assert inside.mean() > 0.97
    err = np.abs(y_hat.detach().numpy() - want).max(axis=1)
    assert err[inside].max() < 1e-4 * want.max()                        # least squares at the start
    plain = UnmixingNet(5, 31, stem=8, widths=[8, 8], init_endmembers=torch.as_tensor(E, dtype=torch.float32))
    assert np.abs(plain(images)[1].detach().numpy() - want).max() > 0.05 * want.max()   # a plain encoder is not
    again = UnmixingNet.from_config(net.config)
    again.load_state_dict(net.state_dict())
    assert net.config["cone"] is True and "cone" not in plain.config
    torch.testing.assert_close(again(images)[1], y_hat)
    with pytest.raises(UBFInputError, match="input cone needs 3 input channels and k >= 4"):
        UnmixingNet(3, 31, cone=True)


@pytest.mark.parametrize("k", [4, 5, 7])
def test_fiber_abundances_give_the_input_back_whatever_the_scores(k):
    x = colour_inputs(5, n=600)
    W = affine_spectra(5)
    reg = fit_band_regression(x, np.concatenate([np.ones((len(x), 1)), x], axis=1) @ W, 1)
    V = cone_vertices(x, reg.coef[0], reg.coef[1:], k)
    images = torch.as_tensor(x.T.reshape(1, 3, 1, len(x)), dtype=torch.float32)
    w = cone_coordinates(images, torch.as_tensor(V, dtype=torch.float32))
    inside = (torch.einsum("nkhw,kc->nchw", w, torch.as_tensor(V, dtype=torch.float32)) - images).abs().amax(1) < 1e-5
    assert inside.float().mean() > 0.97
    n_tri = len(corner_triangles(k))
    assert n_tri == {4: 1, 5: 4, 7: 20}[k]
    seen = []
    for scale in (0.0, 3.0, 30.0):
        scores = scale * torch.randn(1, n_tri, 1, len(x), generator=torch.Generator().manual_seed(k))
        a = fiber_abundances(images, torch.as_tensor(V, dtype=torch.float32), scores)
        assert a.shape == (1, k, 1, len(x)) and a.min() >= 0
        torch.testing.assert_close(a.sum(1), torch.ones(1, 1, len(x)))
        back = torch.einsum("nkhw,kc->nchw", a, torch.as_tensor(V, dtype=torch.float32))
        assert (back - images).abs().amax(1)[inside].max() < 1e-5 * float(images.max())
        seen.append(a)
    if k > 4:       # the scores move the abundances along the set that gives the input back
        assert (seen[2] - seen[0]).abs().max() > 0.05
    else:           # a triangle of corners: the abundances are the input's own
        torch.testing.assert_close(seen[2], seen[0])
    with pytest.raises(UBFInputError, match="fiber scores must be"):
        fiber_abundances(images, torch.as_tensor(V, dtype=torch.float32), torch.zeros(1, n_tri + 1, 1, len(x)))


def test_an_exact_network_gives_the_input_bands_back_before_and_after_training(tmp_path):
    x = colour_inputs(6, n=2 * 16 * 16)
    W = affine_spectra(6)
    W[0] = np.abs(W[0])
    y = np.concatenate([np.ones((len(x), 1)), x], axis=1) @ W
    bands = [26, 15, 5]
    y[:, bands] = x                                                     # the inputs are three of the bands
    reg = fit_band_regression(x, y, 1)
    V = cone_vertices(x, reg.coef[0], reg.coef[1:], 5)
    E = np.maximum(least_squares_endmembers(reg, V), 0.0)
    torch.manual_seed(0)
    net = UnmixingNet(5, 31, stem=8, widths=[8, 8], init_endmembers=torch.as_tensor(E, dtype=torch.float32),
                      cone=True, cone_vertices=V, exact_bands=bands)
    images = torch.as_tensor(np.moveaxis(x.reshape(2, 16, 16, 3), 3, 1), dtype=torch.float32)
    want = torch.as_tensor(np.moveaxis(y.reshape(2, 16, 16, 31), 3, 1), dtype=torch.float32)
    a, y_hat = net(images)
    inside = (torch.einsum("nkhw,kc->nchw", a, torch.as_tensor(V, dtype=torch.float32)) - images).abs().amax(1) < 1e-5
    assert inside.float().mean() > 0.97
    assert (y_hat - want).abs().amax(1)[inside].max() < 1e-4 * float(want.max())   # least squares at the start
    torch.testing.assert_close(net.endmembers()[bands].detach(), torch.as_tensor(V.T, dtype=torch.float32))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(20):                                                 # pull every band away from least squares
        opt.zero_grad()
        (net(images)[1] - 0.5 * want).abs().mean().backward()
        opt.step()
    _, y_hat = net(images)
    assert (y_hat[:, [0, 10, 20]] - want[:, [0, 10, 20]]).abs().max() > 0.01 * float(want.max())   # it learned
    err = (y_hat[:, bands] - images).abs().amax(1)
    assert err[inside].max() < 1e-5 * float(images.max())              # and still gives the inputs back
    assert net.encoder.head.out_channels == 4 and net.decoder.offset()[bands].abs().max() == 0
    net.meta = {"wavelength_nm": [float(v) for v in WL]}
    again = load_unmixing_model(save_unmixing_model(net, tmp_path / "exact"))
    assert again.config["exact_bands"] == bands == net.config["exact_bands"]
    torch.testing.assert_close(again(images)[1], y_hat)
    with pytest.raises(UBFInputError, match="exact_bands .* needs the 3 input band indices and the plain linear"):
        UnmixingNet(5, 31, cone=True, exact_bands=bands, brightness=True)
    with pytest.raises(UBFInputError, match="needs the input cone"):
        UnmixingNet(5, 31, exact_bands=bands)
    with pytest.raises(UBFInputError, match="pinned_bands must be distinct band indices"):
        UnmixingNet(5, 31, cone=True, exact_bands=[1, 1, 40])


def test_exact_input_bands_in_the_settings_and_its_bad_input():
    u = load_params(REPO_ROOT / "params.yaml")["unmixing"]
    s = UnmixingSettings.from_params({**u, "init_endmembers": "least_squares", "exact_input_bands": True})
    assert s.exact_input_bands
    for bad in ({"init_endmembers": "vca"}, {"input_space": "display"}, {"three_band": "render"},
                {"decoder": {**u["decoder"], "brightness": True}}):
        with pytest.raises(UBFInputError, match="unmixing.exact_input_bands needs init_endmembers least_squares"):
            UnmixingSettings.from_params({**u, "init_endmembers": "least_squares", "exact_input_bands": True, **bad})
