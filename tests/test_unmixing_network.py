"""The unmixing network (encoder → simplex abundances, linear-mixing decoder) and its losses (MAE, SAD, ETV)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ubf_core.errors import UBFInputError
from ubf_core.unmixing import (LinearMixingDecoder, RSABlock, UnmixingEncoder, UnmixingLoss, UnmixingNet,
                               endmember_tv, mae, sad_loss, spectral_angle)

SMALL = {"stem": 8, "widths": (16, 16)}  # a narrow network for the fast tests


# ----------------------------------------------------------------------------------------------------------- network

@pytest.mark.parametrize("hw", [(1, 1), (8, 8), (7, 13), (5, 2), (33, 17)])
def test_abundances_on_simplex_for_any_size(hw):
    torch.manual_seed(0)
    model = UnmixingNet(k=5, n_bands=31)  # the paper's widths
    x = torch.rand(2, 3, *hw) * 3 - 1  # also values outside [0, 1]
    with torch.no_grad():
        a, y = model(x)
    assert a.shape == (2, 5, *hw) and y.shape == (2, 31, *hw)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=1), torch.ones(2, *hw), atol=1e-5, rtol=0)
    assert torch.isfinite(y).all()


def test_rsa_block_shapes_and_residual_paths():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 5)
    change = RSABlock(6, 10)
    assert change(x).shape == (2, 10, 9, 5)
    same = RSABlock(6, 6, reduction=2)
    assert same(x).shape == (2, 6, 9, 5)
    assert isinstance(same.spatial_skip, torch.nn.Identity) and isinstance(same.outer_skip, torch.nn.Identity)
    # channel attention hidden width is max(out // r, 4)
    assert same.attention[1].out_channels == 4 and RSABlock(64, 64).attention[1].out_channels == 16
    # with every convolution zeroed: s = 0 + x, t = 0 + s, attention = sigmoid(0) = ½, y = ½·t + x = 1.5·x
    for p in same.parameters():
        torch.nn.init.zeros_(p)
    torch.testing.assert_close(same(x), 1.5 * x)


def test_encoder_layout_follows_the_paper():
    enc = UnmixingEncoder()
    assert enc.stem.in_channels == 3 and enc.stem.out_channels == 32
    assert [(b.in_ch, b.out_ch) for b in enc.blocks] == [(32, 64), (64, 128), (128, 96), (96, 48)]
    assert enc.head.in_channels == 48 and enc.head.out_channels == 5


def test_decoder_is_endmembers_times_abundances_plus_bias():
    torch.manual_seed(1)
    dec = LinearMixingDecoder(k=4, n_bands=12)
    with torch.no_grad():
        dec.bias.copy_(torch.randn(12) * 0.1)
    a = torch.softmax(torch.randn(3, 4, 6, 7), dim=1)
    E = dec.endmembers()
    expected = torch.einsum("ck,nkhw->nchw", E, a) + dec.bias[None, :, None, None]
    torch.testing.assert_close(dec(a), expected, atol=1e-6, rtol=1e-6)
    # without bias: exactly Ê·A; bias starts at zero
    assert torch.equal(LinearMixingDecoder(4, 12).bias, torch.zeros(12))
    plain = LinearMixingDecoder(4, 12, bias=False, nonnegative=False)
    assert plain.bias is None
    torch.testing.assert_close(plain(a), torch.einsum("ck,nkhw->nchw", plain.endmembers(), a))


def test_endmembers_stay_nonnegative_under_pressure():
    torch.manual_seed(0)
    dec = LinearMixingDecoder(k=3, n_bands=10, nonnegative=True)
    opt = torch.optim.Adam(dec.parameters(), lr=0.5)
    for _ in range(100):
        loss = dec.endmembers().sum()  # pushes every entry towards −∞
        opt.zero_grad()
        loss.backward()
        opt.step()
    E = dec.endmembers()
    assert (E >= 0).all()
    assert E.max() < 1e-3  # it did go down, it just cannot cross zero
    # the unconstrained decoder does go negative under the same pressure
    free = LinearMixingDecoder(k=3, n_bands=10, nonnegative=False)
    opt = torch.optim.Adam(free.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        free.endmembers().sum().backward()
        opt.step()
    assert (free.endmembers() < 0).all()


def test_init_endmembers_round_trip():
    rng = np.random.default_rng(0)
    E0 = torch.as_tensor(rng.uniform(0.01, 1.5, size=(20, 4)), dtype=torch.float32)
    E0[0, 0] = 25.0  # above softplus's linear threshold
    for nonneg in (True, False):
        model = UnmixingNet(4, 20, **SMALL, nonnegative_endmembers=nonneg, init_endmembers=E0)
        torch.testing.assert_close(model.endmembers().detach(), E0, atol=1e-6, rtol=1e-5)
    # non-positive entries are raised to a small epsilon when nonnegative
    bad = E0.clone()
    bad[3, 1], bad[4, 2] = -0.2, 0.0
    E = LinearMixingDecoder(4, 20, init_endmembers=bad).endmembers().detach()
    assert 0 < E[3, 1] < 1e-5 and 0 < E[4, 2] < 1e-5
    torch.testing.assert_close(E[5:], E0[5:], atol=1e-6, rtol=1e-5)
    # unconstrained decoder keeps negatives as given; numpy input is accepted
    E = LinearMixingDecoder(4, 20, nonnegative=False, init_endmembers=bad.numpy()).endmembers().detach()
    assert E[3, 1] == pytest.approx(-0.2)


def test_bad_inputs_raise_one_line_errors():
    model = UnmixingNet(3, 10, **SMALL)
    with pytest.raises(UBFInputError, match="3 channels"):
        model(torch.rand(1, 4, 8, 8))
    with pytest.raises(UBFInputError, match="shape"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(UBFInputError, match="floating"):
        model(torch.ones(1, 3, 4, 4, dtype=torch.int64))
    with pytest.raises(UBFInputError, match=r"\(10, 3\)") as err:
        UnmixingNet(3, 10, **SMALL, init_endmembers=torch.rand(3, 10))
    assert "\n" not in str(err.value)
    with pytest.raises(UBFInputError, match="NaN"):
        LinearMixingDecoder(2, 3, init_endmembers=torch.tensor([[1.0, float("nan")]] * 3))
    with pytest.raises(UBFInputError, match="positive integer"):
        UnmixingNet(0, 10)
    with pytest.raises(UBFInputError, match="widths"):
        UnmixingEncoder(widths=())
    with pytest.raises(UBFInputError, match="unknown keys"):
        UnmixingNet.from_config({"k": 3, "n_bands": 10, "depth": 4})


def test_same_seed_same_weights_and_outputs():
    x = torch.rand(2, 3, 8, 8)

    def build():
        torch.manual_seed(123)
        return UnmixingNet(5, 31)

    m1, m2 = build(), build()
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[key], s2[key]) for key in s1)
    with torch.no_grad():
        for t1, t2 in zip(m1(x), m2(x)):
            assert torch.equal(t1, t2)
    torch.manual_seed(124)
    m3 = UnmixingNet(5, 31)
    assert not torch.equal(m3.endmembers(), m1.endmembers())


def test_config_rebuilds_and_loads_state():
    torch.manual_seed(0)
    model = UnmixingNet(4, 17, stem=8, widths=(16, 24, 12), nonnegative_endmembers=False, bias=False)
    cfg = model.config
    assert cfg == {"k": 4, "n_bands": 17, "stem": 8, "widths": [16, 24, 12], "nonnegative_endmembers": False,
                   "bias": False, "in_channels": 3, "endmembers": "learned", "brightness": False, "atmosphere": [],
                   "mixing": "linear"}
    cfg["widths"].append(99)  # a copy: the model's own config is unchanged
    assert model.config["widths"] == [16, 24, 12]
    torch.manual_seed(1)
    clone = UnmixingNet.from_config(model.config)
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    clone.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(clone(x)[1], model(x)[1])


# ------------------------------------------------------------------------------------------------------------ losses

def test_mae():
    assert float(mae(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 1.0]))) == pytest.approx(4 / 3)
    with pytest.raises(UBFInputError):
        mae(torch.zeros(3), torch.zeros(4))


def test_sad_identical_and_known_angle():
    y = torch.rand(2, 20, 4, 4) + 0.1
    assert float(sad_loss(y, y)) < 1e-3  # ≈ √(2·1e-7), the price of a finite gradient
    assert float(sad_loss(y, 3.0 * y)) < 1e-3  # scale does not matter
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(sad_loss(a, b)) == pytest.approx(math.pi / 4, abs=1e-6)
    c = torch.tensor([[1.0, 2.0, 2.0]])
    d = torch.tensor([[2.0, 1.0, -2.0]])  # dot = 0
    assert float(spectral_angle(c, d, dim=1)[0]) == pytest.approx(math.pi / 2, abs=1e-6)
    e = torch.tensor([3.0, 4.0])
    f = torch.tensor([4.0, 3.0])  # cos = 24/25
    assert float(spectral_angle(e, f, dim=0)) == pytest.approx(math.acos(24 / 25), abs=1e-6)
    # the band axis can be any dim; the result drops it
    assert spectral_angle(torch.rand(4, 5, 6), torch.rand(4, 5, 6), dim=-1).shape == (4, 5)


@pytest.mark.parametrize("case", ["identical", "parallel", "anti-parallel", "zero-zero", "zero-one"])
def test_sad_finite_value_and_gradient(case):
    v = torch.tensor([0.2, 0.5, 0.9, 0.4])
    a, b = {"identical": (v, v), "parallel": (v, 2.5 * v), "anti-parallel": (v, -v),
            "zero-zero": (torch.zeros(4), torch.zeros(4)), "zero-one": (torch.zeros(4), v)}[case]
    a = a.clone()[None, :, None].requires_grad_()
    b = b.clone()[None, :, None].requires_grad_()
    angle = sad_loss(a, b)
    angle.backward()
    angle = angle.detach()
    assert torch.isfinite(angle)
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    expected = {"identical": 0.0, "parallel": 0.0, "anti-parallel": math.pi, "zero-zero": math.pi / 2,
                "zero-one": math.pi / 2}[case]
    assert float(angle) == pytest.approx(expected, abs=1e-3)


def test_endmember_tv():
    flat = torch.ones(20, 3) * torch.tensor([0.2, 0.5, 0.9])
    assert float(endmember_tv(flat)) == 0.0
    E = torch.tensor([[0.0, 1.0],
                      [1.0, 1.0],
                      [0.5, 3.0]])
    # column 0: |1-0| + |0.5-1| = 1.5; column 1: 0 + 2 = 2; mean over endmembers = 1.75
    assert float(endmember_tv(E)) == pytest.approx(1.75)
    torch.manual_seed(0)
    R = torch.rand(15, 5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert float(endmember_tv(R[:, perm])) == pytest.approx(float(endmember_tv(R)), rel=1e-6)
    # reordering the wavelengths changes it (smooth ramp vs shuffled ramp)
    ramp = torch.linspace(0, 1, 15)[:, None].repeat(1, 2)
    shuffled = ramp[torch.randperm(15, generator=torch.Generator().manual_seed(1))]
    assert float(endmember_tv(ramp)) == pytest.approx(1.0)
    assert float(endmember_tv(shuffled)) > 2.0
    with pytest.raises(UBFInputError):
        endmember_tv(torch.rand(3, 4, 5))


def test_unmixing_loss_combines_terms():
    torch.manual_seed(0)
    y = torch.rand(2, 10, 3, 3)
    y_hat = torch.rand(2, 10, 3, 3)
    E = torch.rand(10, 4)
    fn = UnmixingLoss(alpha=0.5, beta=0.2)
    total, parts = fn(y_hat, y, E)
    expected = mae(y_hat, y) + 0.5 * sad_loss(y_hat, y) + 0.2 * endmember_tv(E)
    torch.testing.assert_close(total, expected)
    assert set(parts) == {"loss", "mae", "sad", "etv"} and all(isinstance(v, float) for v in parts.values())
    assert parts["loss"] == pytest.approx(float(total))
    assert UnmixingLoss().alpha == 0.1 and UnmixingLoss().beta == 1e-3
    with pytest.raises(UBFInputError):
        UnmixingLoss(alpha=-1.0)


# ---------------------------------------------------------------------------------------------------------- training

def _synthetic_mixtures(seed: int = 0, n: int = 16, c: int = 20, k: int = 3, size: int = 8):
    """k smooth positive endmembers over c bands, Dirichlet abundances on n size×size patches; x = 3 chosen bands."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, c)[:, None]
    E = 0.5 + 0.3 * np.sin(2 * np.pi * (rng.uniform(0.3, 1.2, k) * t + rng.uniform(0, 1, k)))  # (c, k) in [0.2, 0.8]
    A = rng.dirichlet(np.ones(k), size=(n, size, size)).transpose(0, 3, 1, 2)  # (n, k, H, W)
    Y = np.einsum("ck,nkhw->nchw", E, A)
    X = Y[:, [2, 9, 16]]
    return (torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32),
            torch.as_tensor(E, dtype=torch.float32))


def test_short_training_run_lowers_the_loss():
    """60 Adam steps on noise-free mixtures, endmembers started near the truth (as the pipeline starts from VCA).

    (With the paper's widths and lr 1e-2 the softmax saturates onto one endmember and training stalls; the
    pipeline's default lr is 1e-3.)
    """
    x, y, E_true = _synthetic_mixtures()
    E_start = (E_true + 0.1 * torch.randn(E_true.shape, generator=torch.Generator().manual_seed(5))).clamp_min(0.01)
    torch.manual_seed(0)
    model = UnmixingNet(k=3, n_bands=20, stem=16, widths=(32, 32), init_endmembers=E_start)
    loss_fn = UnmixingLoss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        first, _ = loss_fn(model(x)[1], y, model.endmembers())
    for _ in range(60):
        _, y_hat = model(x)
        loss, _ = loss_fn(y_hat, y, model.endmembers())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        a, y_hat = model(x)
        last, parts = loss_fn(y_hat, y, model.endmembers())
    assert math.isfinite(float(last))
    assert float(last) < float(first) / 3, (float(first), float(last))  # about 4x on this seed
    assert parts["mae"] < 0.03  # the targets lie in [0.2, 0.8]; about 0.018 on this seed
    assert float(a.std(dim=(0, 2, 3)).min()) > 0.02  # abundances vary over pixels: no collapse onto one endmember
    assert (model.endmembers() >= 0).all()
    torch.testing.assert_close(a.sum(dim=1), torch.ones(16, 8, 8), atol=1e-5, rtol=0)


def test_validation_figures_scene_by_scene():
    """Each validation scene gets its own figures; a scene the network reconstructs exactly scores SAD 0, the other
    does not, and VCA+FCLS with the true endmembers is exact on both."""
    from ubf_core.metrics.reconstruction import reconstruction_report
    from ubf_core.unmixing.experiment import FittedUnmixing, validation_by_source

    x, y, E_true = _synthetic_mixtures(n=12)
    torch.manual_seed(0)
    model = UnmixingNet(k=3, n_bands=20, **SMALL, init_endmembers=E_true)
    with torch.no_grad():
        y_model = model(x)[1].numpy()
    y_np = y.numpy().copy()
    sources = np.array(["train"] * 4 + ["scene-a"] * 4 + ["scene-b"] * 4)
    y_np[4:8] = y_model[4:8]                  # scene-a: exactly what the network outputs
    is_val = sources != "train"
    fitted = FittedUnmixing(model, None, None, x.numpy(), {}, E_true.numpy())
    by = validation_by_source(fitted, y_np, is_val, sources, batch_size=3)
    assert sorted(by) == ["scene-a", "scene-b"] and by["scene-a"]["patches"] == 4
    assert by["scene-a"]["network"]["sad_deg"] < 0.05 and by["scene-b"]["network"]["sad_deg"] > 0.5
    assert by["scene-b"]["network"] == pytest.approx(reconstruction_report(y_model[8:], y_np[8:]))
    assert by["scene-b"]["vca_fcls"]["sad_deg"] < 0.05 and by["scene-b"]["vca_fcls"]["psnr"] > 60
