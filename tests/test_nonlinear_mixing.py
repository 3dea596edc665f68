"""Tests for ubf_core.unmixing.nonlinear: INSS pixel-adaptive nonlinear mixing (NeuralMixing)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ubf_core.errors import UBFInputError
from ubf_core.unmixing.network import LinearMixingDecoder
from ubf_core.unmixing.nonlinear import MIXING_BOUND, NeuralMixing, positional_encoding


def _maps(n=2, c=7, k=3, h=9, w=11, seed=0):
    """A linear mixture (N, C, H, W) in [0.05, 0.6] and abundance maps (N, k, H, W) on the simplex."""
    g = torch.Generator().manual_seed(seed)
    lin = 0.05 + 0.55 * torch.rand(n, c, h, w, generator=g)
    abundances = torch.softmax(2.0 * torch.randn(n, k, h, w, generator=g), dim=1)
    return lin, abundances


def _mixing(order=2, downsample=4, c=7, k=3, seed=0, **kw):
    torch.manual_seed(seed)
    return NeuralMixing(c, k, order, downsample, **kw)


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("downsample", [1, 3, 4])
@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (8, 8), (13, 18)])
def test_shapes_for_any_size(order, downsample, hw, one_torch_thread):
    lin, ab = _maps(h=hw[0], w=hw[1])
    mixing = _mixing(order, downsample)
    out = mixing(lin, ab)
    assert out.shape == lin.shape and out.dtype == lin.dtype
    factors = mixing.mixing_factors(ab)
    assert len(factors) == order and all(m.shape == lin.shape for m in factors)
    assert torch.isfinite(out).all()


def test_double_precision_inputs_keep_their_dtype():
    lin, ab = _maps()
    mixing = _mixing(order=2)
    out = mixing(lin.double(), ab.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), mixing(lin, ab), rtol=1e-6, atol=1e-7)


def test_order_zero_is_exactly_the_linear_mixture():
    lin, ab = _maps()
    mixing = _mixing(order=0)
    assert mixing(lin, ab) is lin
    assert list(mixing.parameters()) == [] and mixing.mixing_factors(ab) == []


def test_response_is_the_order_n_product_series():
    """y = l + l·M1 + l·M1·M2 + l·M1·M2·M3 for order 3, from the module's own factors."""
    lin, ab = _maps()
    mixing = _mixing(order=3)
    m1, m2, m3 = mixing.mixing_factors(ab)
    expected = lin + lin * m1 + lin * m1 * m2 + lin * m1 * m2 * m3
    torch.testing.assert_close(mixing(lin, ab), expected, rtol=0, atol=1e-7)
    assert not torch.equal(mixing(lin, ab), lin)
    # starts near linear mixing: |M| of order 1e-3
    assert 0 < float(m1.detach().abs().max()) < 2e-2


@pytest.mark.parametrize("order", [1, 2, 3])
def test_correction_stays_within_the_tanh_bound_even_when_saturated(order):
    """|M_i| ≤ 0.1, so |y − l| ≤ |l|·Σ 0.1^k; driven to saturation the bound is reached, not exceeded."""
    lin, ab = _maps()
    mixing = _mixing(order=order)
    with torch.no_grad():                     # huge predicted weights: tanh saturates at ±1
        mixing.head.bias.mul_(1e4)
        factors = mixing.mixing_factors(ab)
        out = mixing(lin, ab)
    assert all(float(m.abs().max()) <= MIXING_BOUND * (1 + 1e-6) for m in factors)   # float32 tanh reaches 1
    assert float(factors[0].abs().max()) > 0.99 * MIXING_BOUND          # saturated: the 0.1 is the real bound
    relative = ((out - lin) / lin).abs()
    bound = sum(MIXING_BOUND ** k for k in range(1, order + 1))
    assert float(relative.max()) <= bound * (1 + 1e-5)
    assert float(relative.max()) > 0.9 * MIXING_BOUND


@torch.no_grad()
def test_weights_are_per_tile_and_the_pixel_context_matters():
    """A constant context gives the same factors in every interior D×D tile (weights per cell + in-tile position);
    changing one pixel's context changes that pixel's factors, and within its tile more than outside it."""
    d = 4
    mixing = _mixing(order=1, downsample=d)
    lin = torch.full((1, 7, 32, 32), 0.3)
    ctx = torch.full((1, 3, 32, 32), 1 / 3)
    (m,) = mixing.mixing_factors(ctx)
    tiles = m[0, :, 8:24, 8:24].reshape(7, 4, d, 4, d)                 # interior tiles, away from conv padding
    torch.testing.assert_close(tiles, tiles[:, :1, :, :1].expand_as(tiles), rtol=0, atol=1e-6)
    assert float((m[0, :, 9, 9] - m[0, :, 10, 10]).abs().max()) > 0   # the in-tile position encoding matters
    changed = ctx.clone()
    changed[0, :, 13, 14] = torch.tensor([1.0, 0.0, 0.0])
    (m2,) = mixing.mixing_factors(changed)
    assert float((m2 - m)[0, :, 13, 14].abs().max()) > 0
    assert mixing(lin, changed).shape == lin.shape


def test_deterministic_given_the_seed():
    lin, ab = _maps()
    a, b, c = _mixing(seed=5), _mixing(seed=5), _mixing(seed=6)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert torch.equal(a(lin, ab), b(lin, ab))
    assert not torch.equal(a(lin, ab), c(lin, ab))


def test_config_round_trips_through_json_and_safetensors(tmp_path):
    lin, ab = _maps()
    mixing = _mixing(order=3, downsample=3, hidden=16, features=8)
    cfg = json.loads(json.dumps(mixing.config))
    assert cfg == {"n_bands": 7, "context_channels": 3, "order": 3, "downsample": 3, "hidden": 16, "features": 8,
                   "n_freq": 2}                                         # n_freq: ceil(log2 3)
    save_file({k: v.contiguous() for k, v in mixing.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.manual_seed(123)
    restored = NeuralMixing.from_config(cfg)
    assert not torch.equal(restored(lin, ab), mixing(lin, ab))
    restored.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    assert torch.equal(restored(lin, ab), mixing(lin, ab))
    assert NeuralMixing.from_config(restored.config).config == cfg
    assert NeuralMixing.from_config({"n_bands": 7, "context_channels": 3, "order": 0, "downsample": 1}).config[
        "n_freq"] == 0


def test_gradient_reaches_every_parameter():
    lin, ab = _maps()
    lin.requires_grad_(True)
    mixing = _mixing(order=3)
    mixing(lin, ab).square().mean().backward()
    names = [name for name, _ in mixing.named_parameters()]
    assert names and all(p.grad is not None and float(p.grad.abs().max()) > 0
                         for _, p in mixing.named_parameters()), names
    assert float(lin.grad.abs().max()) > 0


def test_positional_encoding_is_eq7_of_the_tile_position():
    enc = positional_encoding(4, 2)
    assert enc.shape == (16, 8)
    x = (torch.arange(4) + 0.5) / 4                                     # columns of tile row 0
    torch.testing.assert_close(enc[:4, 0], torch.sin(torch.pi * x))
    torch.testing.assert_close(enc[:4, 5], torch.cos(2 * torch.pi * x))
    torch.testing.assert_close(enc[::4, 2], torch.sin(torch.pi * x))   # y along the tile's rows
    assert positional_encoding(1, 0).shape == (1, 0)


def _gbm_scene(n=4, size=16, c=24, k=3, gamma=0.5, seed=0):
    """A bilinear (generalised bilinear model, Fan for γ = 1) scene: y = E·a + Σ_{i<j} γ a_i a_j e_i ⊙ e_j."""
    g = torch.Generator().manual_seed(seed)
    wl = torch.linspace(0, 1, c)
    centres, widths = torch.rand(k, generator=g), 0.2 + 0.3 * torch.rand(k, generator=g)
    E = 0.05 + 0.5 * torch.exp(-((wl[:, None] - centres[None]) / widths[None]) ** 2)         # (C, k) reflectance
    logits = torch.nn.functional.interpolate(3 * torch.randn(n, k, size // 4, size // 4, generator=g),
                                             size=(size, size), mode="bilinear", align_corners=False)
    A = torch.softmax(logits, dim=1)
    y = torch.einsum("ck,nkhw->nchw", E, A)
    for i in range(k):
        for j in range(i + 1, k):
            y = y + gamma * (A[:, i] * A[:, j])[:, None] * (E[:, i] * E[:, j])[None, :, None, None]
    return E, A, y


def _fit(E, A, y, order, steps=300):
    """MSE after ``steps`` Adam steps of a linear decoder (from the true endmembers) with or without neural mixing,
    the abundances given."""
    torch.manual_seed(0)
    decoder = LinearMixingDecoder(E.shape[1], E.shape[0], init_endmembers=E)
    mixing = NeuralMixing(E.shape[0], E.shape[1], order, 2) if order else None
    params = list(decoder.parameters()) + (list(mixing.parameters()) if mixing else [])
    opt = torch.optim.Adam(params, lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        lin = decoder(A)
        ((mixing(lin, A) if mixing else lin) - y).square().mean().backward()
        opt.step()
    with torch.no_grad():
        lin = decoder(A)
        return float(((mixing(lin, A) if mixing else lin) - y).square().mean())


def test_learns_a_bilinear_mixture_the_linear_decoder_cannot(one_torch_thread):
    E, A, y = _gbm_scene()
    linear = _fit(E, A, y, order=0)
    neural = _fit(E, A, y, order=1)
    assert linear > 1e-6                              # the bilinear part is out of the linear decoder's reach
    assert neural < 0.05 * linear, (neural, linear)


@pytest.mark.parametrize("kwargs, match", [
    ({"order": -1}, "order must be an integer >= 0"),
    ({"downsample": 0}, "downsample must be an integer >= 1"),
    ({"n_bands": 0}, "n_bands must be an integer >= 1"),
    ({"context_channels": 2.0}, "context_channels must be an integer"),
    ({"order": True}, "order must be an integer"),
    ({"n_freq": -1}, "n_freq must be an integer >= 0"),
    ({"hidden": 0}, "hidden must be an integer >= 1"),
])
def test_bad_constructor_arguments(kwargs, match):
    args = {"n_bands": 7, "context_channels": 3, "order": 1, "downsample": 2, **kwargs}
    with pytest.raises(UBFInputError, match=match) as err:
        NeuralMixing(**args)
    assert str(err.value).startswith("NeuralMixing: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("lin_shape, ctx_shape, match", [
    ((2, 6, 9, 11), (2, 3, 9, 11), "the linear mixture must have 7 channels"),
    ((2, 7, 9, 11), (2, 4, 9, 11), "the context map must have 3 channels"),
    ((7, 9, 11), (2, 3, 9, 11), r"the linear mixture must have shape \(N, 7, H, W\)"),
    ((2, 7, 9, 11), (2, 3, 9, 10), "must have the N, H, W of the linear mixture"),
    ((2, 7, 9, 11), (1, 3, 9, 11), "must have the N, H, W of the linear mixture"),
    ((2, 7, 0, 11), (2, 3, 0, 11), "H, W >= 1"),
])
def test_bad_inputs_are_one_line_errors(lin_shape, ctx_shape, match):
    mixing = _mixing(order=1)
    with pytest.raises(UBFInputError, match=match) as err:
        mixing(torch.rand(lin_shape), torch.rand(ctx_shape))
    assert "\n" not in str(err.value) and str(err.value).startswith("NeuralMixing ")
    with pytest.raises(UBFInputError, match="floating-point"):
        mixing(torch.ones(2, 7, 4, 4, dtype=torch.int64), torch.rand(2, 3, 4, 4))
    with pytest.raises(UBFInputError, match="torch.Tensor"):
        mixing(torch.rand(2, 7, 4, 4), [[0.0]])


@pytest.mark.parametrize("cfg, match", [
    ({"n_bands": 7, "context_channels": 3, "order": 1}, r"missing keys \['downsample'\]"),
    ({"n_bands": 7, "context_channels": 3, "order": 1, "downsample": 2, "depth": 3}, r"unknown keys \['depth'\]"),
    ([7, 3, 1, 2], "must be a dict"),
])
def test_bad_configs(cfg, match):
    with pytest.raises(UBFInputError, match=match):
        NeuralMixing.from_config(cfg)
