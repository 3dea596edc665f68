"""The baselines beside the unmixing network: least squares from the 3 input bands and the mean spectrum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubf_core.errors import UBFInputError
from ubf_core.metrics.reconstruction import reconstruction_report
from ubf_core.unmixing.regression import (band_features, fit_band_regression, fit_mean_spectrum, n_features, patches,
                                          pixels)


def _inputs(n: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, 3))


def test_features_of_each_order():
    b = np.array([[2.0, 3.0, 5.0]])
    np.testing.assert_array_equal(band_features(b, 1), [[1, 2, 3, 5]])
    np.testing.assert_array_equal(band_features(b, 2), [[1, 2, 3, 5, 4, 9, 25, 6, 10, 15]])
    assert n_features(3, 1) == 4 and n_features(3, 2) == 10


@pytest.mark.parametrize("order", [1, 2])
def test_exact_on_data_of_its_order(order):
    """Spectra that are exactly linear (order 1) / quadratic (order 2) in the inputs: the coefficients and the
    spectra come back to rounding."""
    rng = np.random.default_rng(1)
    b = _inputs()
    coef = rng.normal(size=(n_features(3, order), 7))
    y = band_features(b, order) @ coef
    model = fit_band_regression(b, y, order)
    assert model.coef.shape == coef.shape and model.n_inputs == 3
    np.testing.assert_allclose(model.coef, coef, atol=1e-9)
    b_new = _inputs(50, seed=2)
    np.testing.assert_allclose(model.predict(b_new), band_features(b_new, order) @ coef, atol=1e-9)


def test_order_1_is_not_exact_on_quadratic_data_and_order_2_is():
    b = _inputs()
    y = np.stack([b[:, 0] ** 2, b[:, 1] * b[:, 2]], axis=1)
    assert np.abs(fit_band_regression(b, y, 1).predict(b) - y).max() > 1e-2
    np.testing.assert_allclose(fit_band_regression(b, y, 2).predict(b), y, atol=1e-10)


def test_mean_spectrum():
    y = np.array([[0.1, 0.2], [0.3, 0.6]])
    m = fit_mean_spectrum(y)
    np.testing.assert_allclose(m.predict(np.zeros((3, 3))), [[0.2, 0.4]] * 3)


def test_pixels_and_patches_round_trip():
    x = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    rows = pixels(x)
    assert rows.shape == (40, 3)
    np.testing.assert_array_equal(rows[7], x[0, :, 1, 2])
    np.testing.assert_array_equal(patches(rows, 2, 4, 5), x)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((5, 3)), np.zeros((4, 2)), 1), "5 input pixels but 4 spectra"),
    ((np.zeros((3, 3)), np.zeros((3, 2)), 1), "needs at least 4 pixels, got 3"),
    ((np.zeros((9, 3)), np.zeros((9, 2)), 2), "needs at least 10 pixels, got 9"),
    ((np.zeros((9, 3)), np.zeros((9, 2)), 3), "order must be 1 or 2"),
    ((np.full((9, 3), np.nan), np.zeros((9, 2)), 1), "NaN"),
    ((np.zeros(9), np.zeros((9, 2)), 1), "must be \\(pixels, bands\\)"),
])
def test_bad_inputs_are_one_line_errors(args, match):
    with pytest.raises(UBFInputError, match=match) as err:
        fit_band_regression(*args)
    assert "\n" not in str(err.value)


def test_predict_refuses_another_number_of_inputs_and_mean_needs_pixels():
    model = fit_band_regression(_inputs(), _inputs(), 1)
    with pytest.raises(UBFInputError, match="takes 3 input bands, got 2"):
        model.predict(np.zeros((4, 2)))
    with pytest.raises(UBFInputError, match="at least 1 pixel"):
        fit_mean_spectrum(np.zeros((0, 4)))


# ------------------------------------------------------------------------------------------ in the experiment

WL = np.linspace(400.0, 700.0, 16)


def _scenes(seed: int = 0):
    """Patches (12, 16, 6, 6) of 3 endmembers mixed linearly, plus a quadratic bump in band 0 (not an input band):
    the spectra are linear in the 3 selected bands (650/550/450 nm) except band 0. Scenes: 4 train, 2 × 4 val."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, len(WL))[:, None]
    E = 0.5 + 0.3 * np.sin(2 * np.pi * (rng.uniform(0.3, 1.2, 3) * t + rng.uniform(0, 1, 3)))
    A = rng.dirichlet(np.ones(3), size=(12, 6, 6)).transpose(0, 3, 1, 2)
    y = np.einsum("ck,nkhw->nchw", E, A)
    y[:, 0] += 0.3 * A[:, 0] * A[:, 1]
    sources = np.array(["train"] * 4 + ["scene-a"] * 4 + ["scene-b"] * 4)
    return y.astype(np.float32), sources


def _references(y, sources, **change):
    from ubf_core.unmixing.experiment import UnmixingSettings, fit_references

    s = UnmixingSettings(k=3, **change)
    rgb = np.random.default_rng(0).uniform(0, 1, (4, 3, 6, 6)).astype(np.float32)
    return fit_references(y, WL, sources != "train", rgb, s, seed=0)


def test_baselines_see_the_networks_inputs_and_are_scored_with_and_without_them():
    from ubf_core.unmixing.experiment import validation_figures
    from ubf_core.unmixing.inputs import band_indices

    y, sources = _scenes()
    is_val = sources != "train"
    fitted = _references(y, sources)
    assert fitted.model is None and sorted(fitted.regressions) == ["least_squares_1", "least_squares_2",
                                                                  "mean_spectrum"]
    sel = band_indices(WL, (650.0, 550.0, 450.0))
    np.testing.assert_array_equal(fitted.input_bands, sel)
    np.testing.assert_array_equal(fitted.x, y[:, sel])            # linear space: the selected bands themselves
    by, comp = validation_figures(fitted, y, is_val, sources, wavelengths_nm=WL)
    assert sorted(by) == ["scene-a", "scene-b"] and "network" not in comp
    assert set(by["scene-a"]) == {"patches", "vca_fcls", "least_squares_1", "least_squares_2", "mean_spectrum"}
    assert comp["input_bands"]["indices"] == [int(i) for i in sel] and comp["input_bands"]["excluded"]
    ls1 = comp["least_squares_1"]
    keep = [i for i in range(len(WL)) if i not in sel]
    # the input bands are reproduced exactly (100 dB each), so leaving them out lowers the PSNR
    assert ls1["pooled"]["psnr"] > ls1["pooled_without_inputs"]["psnr"]
    y_hat = np.concatenate([fitted.regressions["least_squares_1"].predict(pixels(fitted.x[sources == s]))
                            .reshape(4, 6, 6, -1).transpose(0, 3, 1, 2) for s in ("scene-a", "scene-b")])
    assert ls1["pooled_without_inputs"] == pytest.approx(reconstruction_report(y_hat[:, keep], y[is_val][:, keep]))
    assert ls1["per_scene"]["scene-b"] == by["scene-b"]["least_squares_1"]
    # the 2nd order fits the bump in band 0 (a product of abundances: quadratic in the inputs) exactly
    assert comp["least_squares_2"]["pooled"]["psnr"] == pytest.approx(100.0)
    assert comp["mean_spectrum"]["pooled"]["psnr"] < ls1["pooled"]["psnr"] < 100.0


def test_rendered_inputs_leave_no_band_out():
    from ubf_core.unmixing.experiment import validation_figures

    y, sources = _scenes()
    fitted = _references(y, sources)
    fitted.input_bands = None                          # as with three_band: render
    _, comp = validation_figures(fitted, y, sources != "train", sources)
    assert comp["input_bands"]["excluded"] is False and "render" in comp["input_bands"]["note"]
    for name in ("vca_fcls", "least_squares_1", "mean_spectrum"):
        assert comp[name]["pooled"] == comp[name]["pooled_without_inputs"]


def test_the_network_is_trained_as_before():
    """The baselines draw no random numbers: same seed → the network's weights equal a network trained alone."""
    from ubf_core.unmixing import UnmixingLoss, UnmixingNet
    from ubf_core.unmixing.experiment import UnmixingSettings, fit_unmixing, validation_figures
    from ubf_core.unmixing.training import TrainConfig, train_unmixing

    y, sources = _scenes()
    is_val = sources != "train"
    s = UnmixingSettings(k=3, stem=4, widths=(8,), train=TrainConfig(epochs=2, batch_size=4, progress=False))
    rgb = np.random.default_rng(0).uniform(0, 1, (4, 3, 6, 6)).astype(np.float32)
    fitted = fit_unmixing(y, WL, is_val, rgb, s, seed=3)
    torch.manual_seed(3)
    alone = UnmixingNet(3, len(WL), stem=4, widths=(8,),
                        init_endmembers=torch.as_tensor(fitted.vca_endmembers, dtype=torch.float32))
    x = fitted.x
    train_unmixing(alone, x[~is_val], y[~is_val], x[is_val], y[is_val],
                   TrainConfig(**{**s.train.__dict__, "seed": 3}), UnmixingLoss(alpha=s.alpha, beta=s.beta))
    for (name, a), b in zip(fitted.model.state_dict().items(), alone.cpu().state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    by, comp = validation_figures(fitted, y, is_val, sources)
    assert list(comp)[:3] == ["input_bands", "network", "vca_fcls"]
    assert by["scene-a"]["network"] == comp["network"]["per_scene"]["scene-a"]
