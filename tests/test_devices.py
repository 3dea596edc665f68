"""Mixed precision through one code path (ubf_core.devices.AmpStep): float16 with loss scaling on CUDA, plain
float32 on the CPU, bit-identical there to a hand-written ``zero_grad(); backward(); [clip]; step()`` loop, and
bfloat16 on a CPU that has fast kernels for it (train.autocast, ubf_core.devices.resolve_autocast).

The CUDA tests run only where torch sees a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ubf_core.devices import AmpStep, cpu_supports_bfloat16, mixed_precision, resolve_autocast

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def _batches(n: int = 5, device: str = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(6, 3, 8, 8, generator=g).to(device), torch.randint(0, 4, (6,), generator=g).to(device))
            for _ in range(n)]


def _train_amp(amp: AmpStep, max_norm: float | None = None, device: str = "cpu") -> nn.Module:
    model = _model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for x, y in _batches(device=device):
        with amp.autocast():
            loss = nn.functional.cross_entropy(model(x).float(), y)
        amp.step(loss, opt, max_norm=max_norm)
    return model


def _train_plain(max_norm: float | None = None) -> nn.Module:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for x, y in _batches():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
    return model


def _same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p.cpu(), q.cpu()) for p, q in zip(a.parameters(), b.parameters()))


def test_cpu_scaler_disabled_and_autocast_is_a_no_op():
    amp = AmpStep("cpu")
    assert amp.scaler.is_enabled() is False and amp.enabled is False
    model, x = _model(), torch.randn(2, 3, 8, 8)
    with amp.autocast():
        assert not torch.is_autocast_enabled("cpu")
        out = model(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, model(x))
    assert AmpStep(torch.device("cpu")).enabled is False


@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_cpu_step_is_bit_identical_to_a_plain_loop(max_norm):
    assert _same_parameters(_train_amp(AmpStep("cpu"), max_norm), _train_plain(max_norm))


def test_clipping_applies_and_defaults_to_the_optimisers_parameters():
    clipped, free = _train_amp(AmpStep("cpu"), max_norm=0.05), _train_amp(AmpStep("cpu"))
    assert not _same_parameters(clipped, free)                  # 0.05 binds: clipping changed the steps
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    amp = AmpStep("cpu")
    for x, y in _batches():
        amp.step(nn.functional.cross_entropy(model(x), y), opt, max_norm=0.05, parameters=model.parameters())
    assert _same_parameters(model, clipped)


def test_loss_scaling_unscales_before_clipping():
    """An enabled scaler (the CPU one, a power-of-two scale, so scaling and unscaling are exact) must give the
    plain loop's parameters: the gradients are clipped in the loss's own units, not the scaled ones."""
    amp = AmpStep("cpu")
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    assert amp.enabled
    assert _same_parameters(_train_amp(amp, max_norm=0.05), _train_plain(max_norm=0.05))


def test_unmixing_decoder_mixes_in_float32_under_autocast():
    from ubf_core.unmixing import UnmixingNet

    torch.manual_seed(0)
    net = UnmixingNet(k=3, n_bands=10, stem=4, widths=(8,))
    x = torch.rand(2, 3, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        abundances, y_hat = net(x)
    assert net.endmembers().dtype == torch.float32
    assert y_hat.dtype == torch.float32
    expected = torch.einsum("ck,nkhw->nchw", net.endmembers(), abundances.float()) + net.decoder.bias[:, None, None]
    torch.testing.assert_close(y_hat, expected)


def test_every_training_loop_steps_through_amp_step(monkeypatch):
    """Each training loop of the library backpropagates through AmpStep.step, once per optimiser and batch."""
    from ubf_core.classification import make_classifier, train_classifier
    from ubf_core.metrics.features import train_feature_net
    from ubf_core.generators import TrainSettings, make_generator
    from ubf_core.unmixing import UnmixingNet
    from ubf_core.unmixing.training import TrainConfig, train_unmixing

    calls: list[torch.optim.Optimizer] = []
    real_step = AmpStep.step

    def counting_step(self, loss, optimizer, *args, **kwargs):
        calls.append(optimizer)
        return real_step(self, loss, optimizer, *args, **kwargs)

    monkeypatch.setattr(AmpStep, "step", counting_step)
    rng = np.random.default_rng(0)

    def count(run) -> int:
        calls.clear()
        run()
        return len(calls)

    x, y = rng.random((4, 3, 4, 4), dtype=np.float32), rng.random((4, 10, 4, 4), dtype=np.float32)
    torch.manual_seed(0)
    net = UnmixingNet(k=3, n_bands=10, stem=4, widths=(8,))
    assert count(lambda: train_unmixing(net, x[:2], y[:2], x[2:], y[2:],
                                        TrainConfig(epochs=1, batch_size=1, progress=False))) == 2

    a = rng.random((4, 3, 8, 8)).astype(np.float32)
    a /= a.sum(axis=1, keepdims=True)
    tiny = {"ddpm": dict(num_train_timesteps=10, block_out_channels=[8, 8], norm_num_groups=4),
            "vae": dict(channels=4, levels=1, latent_dim=4), "gan": dict(channels=4, levels=1, latent_dim=4)}
    for name, options in tiny.items():
        gen = make_generator(name, 3, (8, 8), **options)
        steps = count(lambda: gen.fit(a, settings=TrainSettings(steps=2, batch_size=2), progress=False))
        assert steps == (4 if name == "gan" else 2), name        # the GAN steps its discriminator and generator

    px, py = rng.random((8, 6, 8, 8), dtype=np.float32), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    assert count(lambda: train_classifier(make_classifier("cnn", 6, 3, seed=0), px, py, epochs=1,
                                          batch_size=4)) == 2
    assert count(lambda: train_feature_net(px, py, epochs=1, batch_size=4, width=4, dim=4)) == 2


def test_autocast_choices_resolve_per_device_and_bad_ones_name_the_param(monkeypatch):
    """train.autocast: auto picks float16 on CUDA and bfloat16 only on a CPU with fast bfloat16 kernels; a dtype
    the device cannot run is a one-line error naming the param (the probe is forced both ways to cover both)."""
    import ubf_core.devices as devices
    from ubf_core.errors import UBFInputError
    from ubf_core.generators import TrainSettings
    from ubf_core.unmixing.experiment import UnmixingSettings

    assert resolve_autocast("cuda", "auto") == "float16" and resolve_autocast("cpu", "none") == "none"
    for fast in (True, False):
        monkeypatch.setattr(devices, "cpu_supports_bfloat16", lambda fast=fast: fast)
        assert resolve_autocast("cpu", "auto") == ("bfloat16" if fast else "none")
        if fast:
            assert resolve_autocast("cpu", "bfloat16") == "bfloat16"
        else:
            with pytest.raises(UBFInputError, match="unmixing.train.autocast: bfloat16 autocast needs a CPU with "
                                                    "AVX-512 BF16 or AMX"):
                resolve_autocast("cpu", "bfloat16", "unmixing.train.autocast")
    with pytest.raises(UBFInputError, match="generator.train.autocast: float16 autocast needs a CUDA device"):
        resolve_autocast("cpu", "float16", "generator.train.autocast")
    with pytest.raises(UBFInputError, match="generator.train.autocast: must be one of auto, none, bfloat16, "
                                            "float16, got 'fp8'"):
        TrainSettings(autocast="fp8")
    with pytest.raises(UBFInputError, match="unmixing.train.autocast: float16 autocast needs a CUDA device"):
        UnmixingSettings.from_params({"train": {"device": "cpu", "autocast": "float16"}})


@pytest.mark.skipif(not cpu_supports_bfloat16(), reason="needs a CPU with AVX-512 BF16 or AMX")
def test_cpu_bfloat16_training_runs_the_forward_pass_in_bfloat16_and_learns():
    """bfloat16 autocast on the CPU: convolutions in bfloat16, float32 weights and loss, no loss scaling; the
    DDPM loss falls and the same seed gives the same weights."""
    from ubf_core.generators import TrainSettings, make_generator

    amp = AmpStep("cpu", "bfloat16")
    assert not amp.enabled and amp.dtype == "bfloat16"
    model = _model()
    with amp.autocast():
        assert model[0](torch.randn(2, 3, 8, 8)).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())

    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.full(3, 0.3), size=(16, 8, 8)).transpose(0, 3, 1, 2).astype(np.float32)
    runs = []
    for _ in range(2):
        gen = make_generator("ddpm", 3, (8, 8), num_train_timesteps=50, block_out_channels=[8, 8],
                             norm_num_groups=4)
        history = gen.fit(a, settings=TrainSettings(steps=40, batch_size=8, lr=3e-3, log_every=10, ema_decay=0,
                                                    autocast="bfloat16"), seed=1, progress=False)
        runs.append((history, gen.unet.conv_in.weight.detach().clone()))
    assert runs[0][0][-1]["loss"] < runs[0][0][0]["loss"]
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


@needs_cuda
def test_cuda_step_runs_in_float16_with_float32_weights():
    amp = AmpStep("cuda")
    assert amp.enabled
    model = _model().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    for x, y in _batches(device="cuda"):
        with amp.autocast():
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
        assert logits.dtype == torch.float16 and loss.dtype == torch.float32
        assert torch.isfinite(loss)
        amp.step(loss, opt, max_norm=1.0)
    assert set(seen) == {torch.float16}
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    assert not _same_parameters(model, _model())                 # the optimiser did step
    assert amp.scaler.get_scale() > 0
    with mixed_precision("cuda:0"):
        assert torch.is_autocast_enabled("cuda")


@needs_cuda
def test_cuda_training_loops_stay_finite():
    """Unmixing (SAD loss, arccos) and the generators (KL, spectral norm) train in mixed precision without NaN."""
    from ubf_core.generators import TrainSettings, make_generator
    from ubf_core.unmixing import UnmixingNet
    from ubf_core.unmixing.training import TrainConfig, train_unmixing

    rng = np.random.default_rng(0)
    x, y = rng.random((8, 3, 8, 8), dtype=np.float32), rng.random((8, 10, 8, 8), dtype=np.float32)
    torch.manual_seed(0)
    net = UnmixingNet(k=3, n_bands=10, stem=4, widths=(8,))
    result = train_unmixing(net, x[:6], y[:6], x[6:], y[6:],
                            TrainConfig(epochs=2, batch_size=2, device="cuda", progress=False))
    assert all(np.isfinite(v) for record in result.history for v in record.values())
    assert all(isinstance(v, float) for k, v in result.history[-1].items() if k.startswith("val_"))
    assert net.endmembers().dtype == torch.float32 and bool((net.endmembers() > 0).all())

    a = rng.random((8, 3, 8, 8)).astype(np.float32)
    a /= a.sum(axis=1, keepdims=True)
    tiny = {"ddpm": dict(num_train_timesteps=10, block_out_channels=[8, 8], norm_num_groups=4),
            "vae": dict(channels=4, levels=1, latent_dim=4), "gan": dict(channels=4, levels=1, latent_dim=4)}
    for name, options in tiny.items():
        gen = make_generator(name, 3, (8, 8), ["a", "b"], **options).to("cuda")
        history = gen.fit(a, ["a", "b"] * 4, TrainSettings(steps=4, batch_size=4), progress=False)
        assert all(np.isfinite(v) for record in history for v in record.values()), name
        for net_ in gen.networks().values():
            assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net_.parameters()), name
