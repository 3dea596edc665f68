"""The decoder options of the unmixing network (``unmixing.decoder``): brightness, fixed (library) endmembers, the
per-sensor solar–atmosphere factor t, data-set units, their round trip on disk, the stores they write, synthesis in
reflectance or radiance, and every bad input as a one-line error (or, for radiance with the term off, a warning)."""

from __future__ import annotations

import json
import warnings

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from ubf_core.data.prepare import prepare_hsi_store
from ubf_core.data.stores import open_store, write_store
from ubf_core.errors import UBFInputError
from ubf_core.io.source import HSISource, require_units
from ubf_core.synthesis.job import SynthesisJob
from ubf_core.synthesis.mixing import mix
from ubf_core.unmixing import UnmixingLoss, UnmixingNet
from ubf_core.unmixing.abundance_store import abundance_dataset, endmember_dataset, unmix_dataset
from ubf_core.unmixing.decoder import DecoderSettings, atmosphere_groups, check_decoder, patch_units
from ubf_core.unmixing.experiment import UnmixingSettings, fit_unmixing, reconstruct, validation_figures
from ubf_core.unmixing.inference import encode, encode_with_brightness
from ubf_core.unmixing.saved import load_unmixing_model, save_unmixing_model
from ubf_core.unmixing.training import TrainConfig

C, K = 12, 3
WL = np.linspace(400.0, 700.0, C)


NEURAL = {"order": 2, "downsample": 2, "hidden": 4, "features": 3, "n_freq": 1}


def net(seed: int = 0, **options) -> UnmixingNet:
    torch.manual_seed(seed)
    return UnmixingNet(K, C, stem=4, widths=(6, 5), **options)


def x_batch(n: int = 3, size: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------- the network
def test_default_model_is_the_linear_model_with_the_same_weights():
    """No option on: the same parameters, drawn the same, as the model before the options; the brightness head is
    created last, so the other layers of a brightness model start from the same weights too."""
    plain, explicit = net(), net(endmembers="learned", brightness=False, atmosphere=(), mixing="linear")
    assert list(plain.state_dict()) == list(explicit.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), explicit.state_dict().values()))
    assert not any("brightness" in k or "transmission" in k or "fixed" in k for k in plain.state_dict())
    bright = net(brightness=True).state_dict()
    assert all(torch.equal(bright[k], v) for k, v in plain.state_dict().items())
    x = x_batch()
    a, s = plain.encode(x)
    assert s is None and torch.equal(plain(x)[1], explicit(x)[1])


def test_brightness_scale_starts_at_one_stays_non_negative_and_abundances_stay_on_the_simplex():
    model = net(brightness=True)
    x = x_batch()
    a, s = model.encode(x)
    assert a.shape == (3, K, 6, 6) and s.shape == (3, 1, 6, 6)
    assert torch.allclose(s, torch.ones_like(s))                       # s = 1 at the start
    with torch.no_grad():                                              # push the head hard negative
        model.encoder.brightness_head.bias.fill_(-30.0)
    a, s = model.encode(x)
    assert (s >= 0).all() and s.max() < 1e-6
    assert (a >= 0).all() and torch.allclose(a.sum(1), torch.ones(3, 6, 6), atol=1e-6)
    _, y = model(x)                                                    # s ≈ 0: only the offset b is left
    assert torch.allclose(y, model.decoder.bias[None, :, None, None].expand_as(y), atol=1e-5)


def test_brightness_scales_the_mixture_but_not_the_offset():
    model = net(brightness=True)
    with torch.no_grad():
        model.decoder.bias.fill_(0.05)
        model.encoder.brightness_head.bias.fill_(2.0)
    x = x_batch()
    a, s = model.encode(x)
    mixture = torch.einsum("ck,nkhw->nchw", model.endmembers(), a)
    assert torch.allclose(model(x)[1], s * mixture + 0.05, atol=1e-6)


def test_atmosphere_factor_applies_to_radiance_groups_only():
    model = net(atmosphere=["aviris", "hyspex"])
    t = model.transmission()
    assert t.shape == (2, C) and torch.equal(t, torch.ones(2, C))     # t = 1 at the start
    with torch.no_grad():
        model.decoder.log_transmission[0] = torch.linspace(-1, 1, C)
        model.decoder.bias.zero_()
    x = x_batch()
    _, plain = model(x)
    _, y = model(x, groups=torch.tensor([-1, 0, 1]))
    assert torch.equal(y[0], plain[0]) and torch.allclose(y[2], plain[2])
    assert torch.allclose(y[1], plain[1] * torch.exp(torch.linspace(-1, 1, C))[:, None, None], atol=1e-6)
    assert (model.transmission() > 0).all()
    with pytest.raises(UBFInputError, match="group index out of range"):
        model(x, groups=torch.tensor([0, 2, -1]))
    with pytest.raises(UBFInputError, match="groups must be"):
        model(x, groups=torch.tensor([0.0, 1.0, 0.0]))


def test_fixed_endmembers_are_a_buffer_that_training_does_not_move():
    E = torch.rand(C, K) * 0.5 + 0.1
    model = net(endmembers="fixed", init_endmembers=E)
    assert torch.allclose(model.endmembers(), E)
    assert "decoder.fixed_endmembers" in model.state_dict()
    assert all("endmembers" not in name for name, _ in model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = x_batch()
    (model(x)[1] - 1.0).abs().mean().backward()
    opt.step()
    assert torch.allclose(model.endmembers(), E)


@pytest.mark.parametrize("kwargs, match", [
    ({"endmembers": "fixed"}, "needs the matrix"),
    ({"endmembers": "fixed", "init_endmembers": -torch.ones(C, K)}, ">= 0"),
    ({"endmembers": "library"}, "endmembers must be one of"),
    ({"mixing": "bilinear"}, "mixing must be one of"),
    ({"mixing": "neural"}, "needs mixing_options"),
    ({"mixing": "neural", "mixing_options": {"order": 2}}, "missing"),
    ({"mixing": "linear", "mixing_options": {"order": 2, "downsample": 2}}, "for mixing neural"),
    ({"brightness": "yes"}, "brightness must be true or false"),
    ({"atmosphere": "aviris"}, "list of sensor-group names"),
    ({"atmosphere": ["a", "a"]}, "distinct"),
])
def test_bad_decoder_arguments(kwargs, match):
    with pytest.raises(UBFInputError, match=match):
        net(**kwargs)


@pytest.mark.parametrize("options", [{}, {"brightness": True}, {"atmosphere": ["aviris"]},
                                     {"brightness": True, "atmosphere": ["aviris", "hyspex"]},
                                     {"endmembers": "fixed", "init_endmembers": torch.rand(C, K)},
                                     {"endmembers": "fixed", "init_endmembers": torch.rand(C, K),
                                      "atmosphere": ["aviris"], "brightness": True},
                                     {"mixing": "neural", "mixing_options": NEURAL},
                                     {"mixing": "neural", "mixing_options": NEURAL, "brightness": True,
                                      "atmosphere": ["aviris"]}])
def test_every_option_round_trips_on_disk(tmp_path, options):
    model = net(**options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.meta = {"wavelength_nm": [float(v) for v in WL], "endmember_names": ["a", "b", "c"]}
    loaded = load_unmixing_model(save_unmixing_model(model, tmp_path / "m"))
    assert loaded.config == model.config
    assert loaded.meta["endmember_names"] == ["a", "b", "c"]
    x = x_batch()
    groups = torch.zeros(3, dtype=torch.int64) if model.atmosphere else None
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x, groups=groups)[1], loaded(x, groups=groups)[1])
        assert torch.equal(model.endmembers(), loaded.endmembers())
    a, s = encode_with_brightness(loaded, x.numpy(), progress=False)
    assert (s is None) == (not model.has_brightness)
    assert np.array_equal(a, encode(loaded, x.numpy(), progress=False))


def test_neural_mixing_corrects_the_linear_mixture_and_leaves_the_rest_as_without_it():
    linear, neural = net(seed=3), net(seed=3, mixing="neural", mixing_options=NEURAL)
    plain = {k: v for k, v in neural.state_dict().items() if not k.startswith("nonlinear.")}
    assert plain.keys() == linear.state_dict().keys()
    assert all(torch.equal(v, linear.state_dict()[k]) for k, v in plain.items())   # drawn after the others
    assert neural.config["mixing_options"] == NEURAL and "mixing_options" not in linear.config
    x = x_batch()
    with torch.no_grad():
        neural.nonlinear.head.bias.add_(0.5)                                        # a visible correction
        a, y_neural = neural(x)
        _, y_linear = linear(x)
        lin = y_linear - linear.decoder.bias[None, :, None, None]
        # y = NM(E·A; A) + b: the correction is relative and bounded by |l|·Σ 0.1^k
        rel = (y_neural - y_linear).abs() / lin.abs().clamp_min(1e-9)
        assert rel.max() > 1e-4 and rel.max() <= 0.1 + 0.01 + 1e-5
        assert torch.allclose(y_neural, neural.nonlinear(lin, a) + neural.decoder.bias[None, :, None, None])


def test_a_config_saved_before_the_options_is_the_linear_model():
    old = {"k": K, "n_bands": C, "stem": 4, "widths": [6, 5], "nonnegative_endmembers": True, "bias": True,
           "in_channels": 3}
    model = UnmixingNet.from_config(old)
    assert model.config == {**old, "endmembers": "learned", "brightness": False, "atmosphere": [],
                            "mixing": "linear"}


# ----------------------------------------------------------------------------------------------- settings, units
def test_decoder_settings_defaults_and_bad_values():
    assert DecoderSettings.from_params(None) == DecoderSettings()
    good = {"endmembers": "library", "brightness": True, "atmosphere": "always", "mixing": "linear"}
    assert DecoderSettings.from_params(good).to_dict() == good
    assert DecoderSettings.from_params(good).mixing_options() is None
    neural = DecoderSettings.from_params({**good, "mixing": "neural", "order": 2})
    assert neural.mixing_options() == {"order": 2, "downsample": 4, "hidden": 32, "features": 32, "n_freq": 2}
    assert neural.to_dict()["order"] == 2
    for bad, match in [({"endmembers": "usgs"}, "unmixing.decoder.endmembers"),
                       ({"brightness": 1}, "unmixing.decoder.brightness"),
                       ({"atmosphere": False}, "unmixing.decoder.atmosphere"),   # YAML's `off`
                       ({"atmosphere": "on"}, "unmixing.decoder.atmosphere"),
                       ({"mixing": "nonlinear"}, "unmixing.decoder.mixing"),
                       ({"order": -1}, "unmixing.decoder.order"),
                       ({"downsample": 0}, "unmixing.decoder.downsample"),
                       ({"n_freq": 1.5}, "unmixing.decoder.n_freq"),
                       ({"depth": 3}, "unknown key unmixing.decoder.depth")]:
        with pytest.raises(UBFInputError, match=match):
            DecoderSettings.from_params(bad)


SOURCES = np.array(["abu-a", "abu-a", "abu-b", "salton", "samson"])
UNITS = np.array(["radiance", "radiance", "radiance", "reflectance", "reflectance"])
SENSORS = np.array(["aviris", "aviris", "aviris", "", ""])


def test_atmosphere_auto_follows_the_training_data():
    is_val = np.array([False, False, True, False, True])
    groups = atmosphere_groups("auto", UNITS, SENSORS, SOURCES, is_val)
    assert groups.names == ("aviris",) and groups.index.tolist() == [0, 0, 0, -1, -1] and groups.warning is None
    # radiance only among the validation scenes: auto stays off (and warns: they are fitted as reflectance)
    with pytest.warns(UserWarning, match="abu-a, abu-b"):
        off = atmosphere_groups("auto", UNITS, SENSORS, SOURCES, np.array([True, True, True, False, False]))
    assert off.names == () and off.index is None


def test_atmosphere_never_with_radiance_data_warns_naming_them():
    with pytest.warns(UserWarning, match=r"never but data sets abu-a, abu-b are radiance"):
        groups = atmosphere_groups("never", UNITS, SENSORS, SOURCES, np.zeros(5, bool))
    assert groups.index is None and "abu-a, abu-b" in groups.warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # reflectance only: silent
        atmosphere_groups("never", ["reflectance"] * 2, ["", ""], ["x", "y"], np.array([False, True]))


def test_atmosphere_bad_inputs():
    with pytest.raises(UBFInputError, match="always but no HSI data set is radiance"):
        atmosphere_groups("always", ["reflectance"], [""], ["x"], [False])
    with pytest.raises(UBFInputError, match="salton: unknown units 'dn'"):
        atmosphere_groups("auto", ["dn"], [""], ["salton"], [False])
    with pytest.raises(UBFInputError, match="abu-a: units: radiance needs a `sensor`"):
        atmosphere_groups("auto", ["radiance"], [""], ["abu-a"], [False])


def test_data_set_units_are_declared_and_checked(tmp_path):
    base = {"path": "x.mat", "variable": "data"}
    src = HSISource.from_params("abu-1", {**base, "units": "radiance", "sensor": "aviris"}, tmp_path)
    assert (src.units, src.sensor) == ("radiance", "aviris")
    with pytest.raises(UBFInputError, match="abu-1: unknown units 'Radiance'"):
        HSISource.from_params("abu-1", {**base, "units": "Radiance"}, tmp_path)
    with pytest.raises(UBFInputError, match="abu-1: units: radiance needs `sensor:`"):
        HSISource.from_params("abu-1", {**base, "units": "radiance"}, tmp_path)
    with pytest.raises(UBFInputError, match="salton: `sensor` only applies to units: radiance"):
        HSISource.from_params("salton", {**base, "units": "reflectance", "sensor": "aviris"}, tmp_path)
    missing = HSISource.from_params("salton", base, tmp_path)
    with pytest.raises(UBFInputError, match="salton: `units` is missing"):
        require_units([src, missing])
    out = tmp_path / "hsi.zarr"             # prepare_hsi refuses before any work, nothing written
    with pytest.raises(UBFInputError, match="salton: `units` is missing"):
        prepare_hsi_store([src, missing], None, None, out, client=None)
    assert not out.exists()


def test_params_declare_units_for_every_data_set():
    from ubf_core.config import load_params

    for name in ("params.yaml", "params.paper.yaml"):
        params = load_params(name)
        for ds_name, spec in params["hsi"]["datasets"].items():
            assert spec.get("units") in ("reflectance", "radiance"), (name, ds_name)
            assert (spec["units"] == "radiance") == ds_name.startswith("abu-"), (name, ds_name)


def test_patches_carry_units_and_sensor(tmp_path):
    from ubf_core.config import load_params
    from ubf_core.data.patches import PatchSpec
    from ubf_core.parallel import dask_client
    from ubf_core.spectral import REMOTE_SENSING

    repo = Path(__file__).resolve().parents[1]
    datasets = load_params(repo / "params.yaml")["hsi"]["datasets"]
    sources = [HSISource.from_params(n, datasets[n], repo) for n in ("abu-beach-2", "samson")]
    out = tmp_path / "hsi.zarr"
    with dask_client(n_workers=1, processes=False) as client:
        prepare_hsi_store(sources, REMOTE_SENSING, PatchSpec(size=32, stride=32), out, client=client)
    store = open_store(out)
    units, sensors = patch_units(store, out)
    names = np.array([str(v) for v in store["source"].values])
    assert set(names) == {"abu-beach-2", "samson"}
    assert set(units[names == "abu-beach-2"]) == {"radiance"} and set(units[names == "samson"]) == {"reflectance"}
    assert set(sensors[names == "abu-beach-2"]) == {datasets["abu-beach-2"]["sensor"]}
    assert set(sensors[names == "samson"]) == {""}
    with pytest.raises(UBFInputError, match="records no units per patch"):
        patch_units(store.drop_vars(["units", "sensor"]), "old.zarr")


def test_a_registered_model_with_another_decoder_is_refused():
    uri = "models:/ubf-unmixing/7"
    linear, bright = net(), net(brightness=True, atmosphere=["aviris"])
    check_decoder(linear, DecoderSettings(atmosphere="never"), uri, radiance=True)
    check_decoder(linear, DecoderSettings(atmosphere="auto"), uri, radiance=False)
    check_decoder(bright, DecoderSettings(brightness=True, atmosphere="auto"), uri, radiance=True)
    with pytest.raises(UBFInputError, match=r"models:/ubf-unmixing/7: .*brightness False \(params: True\)"):
        check_decoder(linear, DecoderSettings(brightness=True, atmosphere="never"), uri, radiance=False)
    with pytest.raises(UBFInputError, match=r"atmosphere off \(params: on\)"):
        check_decoder(linear, DecoderSettings(atmosphere="auto"), uri, radiance=True)
    with pytest.raises(UBFInputError, match=r"endmembers learned \(params: library\)"):
        check_decoder(linear, DecoderSettings(endmembers="library", atmosphere="never"), uri, radiance=False)


# ----------------------------------------------------------------------------------------------- fitting
def _data(n: int = 8, size: int = 8):
    rng = np.random.default_rng(0)
    E = rng.uniform(0.05, 0.6, (C, K)).astype(np.float32)
    a = rng.dirichlet(np.ones(K), (n, size, size)).transpose(0, 3, 1, 2).astype(np.float32)
    y = np.einsum("ck,nkhw->nchw", E, a).astype(np.float32)
    sources = np.array(["abu-a", "abu-a", "abu-b", "abu-b", "salton", "salton", "samson", "samson"])
    units = np.where(np.char.startswith(sources.astype(str), "abu"), "radiance", "reflectance")
    sensors = np.where(units == "radiance", "aviris", "")
    t = np.linspace(0.6, 1.4, C, dtype=np.float32)
    y[units == "radiance"] *= t[None, :, None, None]
    is_val = np.isin(sources, ["abu-b", "samson"]) & (np.arange(n) % 2 == 0)
    return y, sources, units, sensors, is_val


def _settings(**decoder) -> UnmixingSettings:
    return UnmixingSettings(k=K, stem=4, widths=(6, 5), decoder=DecoderSettings(**decoder),
                            train=TrainConfig(epochs=2, batch_size=4, progress=False))


@pytest.mark.parametrize("decoder", [{"brightness": True, "atmosphere": "auto"},
                                     {"brightness": False, "atmosphere": "always"}])
def test_fit_with_brightness_and_atmosphere(decoder):
    y, sources, units, sensors, is_val = _data()
    rgb = np.random.default_rng(1).random((4, 3, 8, 8)).astype(np.float32)
    fitted = fit_unmixing(y, WL, is_val, rgb, _settings(**decoder), units=units, sensors=sensors, sources=sources)
    model = fitted.model
    assert model.atmosphere == ["aviris"] and model.transmission().shape == (1, C)
    assert model.has_brightness == decoder["brightness"]
    assert fitted.atmosphere.index.tolist() == [0 if u == "radiance" else -1 for u in units]
    rec = reconstruct(model, fitted.x, fitted.atmosphere.index)
    assert rec.shape == y.shape and np.isfinite(rec).all()
    _, compared = validation_figures(fitted, y, is_val, sources)
    assert np.isfinite(compared["network"]["pooled"]["psnr"])


def test_fit_with_fixed_library_endmembers_keeps_them_and_their_names():
    y, sources, units, sensors, is_val = _data()
    rgb = np.random.default_rng(1).random((4, 3, 8, 8)).astype(np.float32)
    E = np.random.default_rng(2).uniform(0.1, 0.5, (C, 4)).astype(np.float32)   # N = 4 ≠ k: k follows the library
    fitted = fit_unmixing(y, WL, is_val, rgb, _settings(endmembers="library", atmosphere="auto"), units=units,
                          sensors=sensors, sources=sources, fixed_endmembers=E, endmember_names=list("abcd"))
    assert fitted.model.k == 4 and np.array_equal(fitted.model.endmembers().numpy(), E)
    assert fitted.model.meta["endmember_names"] == list("abcd")
    with pytest.raises(UBFInputError, match="library needs the library spectra"):
        fit_unmixing(y, WL, is_val, rgb, _settings(endmembers="library"))
    with pytest.raises(UBFInputError, match="one name per spectrum"):
        fit_unmixing(y, WL, is_val, rgb, _settings(endmembers="library"), fixed_endmembers=E,
                     endmember_names=["a"])
    with pytest.raises(UBFInputError, match="use library"):
        fit_unmixing(y, WL, is_val, rgb, _settings(), fixed_endmembers=E, endmember_names=list("abcd"))
    s = _settings(endmembers="library", atmosphere="auto")
    s.library_n = 5                                     # unmixing.library.n says 5, 4 spectra given
    with pytest.raises(UBFInputError, match="unmixing.library.n = 5"):
        fit_unmixing(y, WL, is_val, rgb, s, units=units, sensors=sensors, sources=sources, fixed_endmembers=E,
                     endmember_names=list("abcd"))


def test_fit_with_neural_mixing_and_the_inss_losses():
    from ubf_core.spectral import load_cie1931

    y, sources, units, sensors, is_val = _data()
    rgb = np.random.default_rng(1).random((4, 3, 8, 8)).astype(np.float32)
    s = _settings(mixing="neural", order=2, downsample=2, hidden=4, features=3, n_freq=1, atmosphere="never")
    s.band_l1, s.hsv = 0.5, 0.2
    wl = np.linspace(450, 650, C)
    cie = load_cie1931(Path(__file__).resolve().parents[1] / "data/spectra/ciexyz31_1.csv")
    fitted = fit_unmixing(y, wl, is_val, rgb, s, colour_response=cie)
    assert fitted.model.mixing == "neural" and fitted.model.nonlinear.order == 2
    assert {"train_band_l1", "train_hsv"} <= set(fitted.result.history[0])
    with pytest.raises(UBFInputError, match="colour response"):
        fit_unmixing(y, wl, is_val, rgb, s)
    s.band_l1, s.hsv = 0.0, 0.0
    assert s.loss() == UnmixingLoss(alpha=s.alpha, beta=s.beta)                       # today's loss


# ----------------------------------------------------------------------------------------------- stores, synthesis
def test_brightness_and_transmission_in_the_stores(tmp_path):
    like = xr.Dataset(coords={"source": ("patch", np.array(["a", "b"], dtype=object))})
    a = np.full((2, K, 4, 4), 1 / K, np.float32)
    s = np.full((2, 4, 4), 1.5, np.float32)
    write_store(abundance_dataset(a, like, {}, s), tmp_path / "ab.zarr")
    ds = open_store(tmp_path / "ab.zarr")
    assert ds["brightness"].dims == ("patch", "y", "x") and float(ds["brightness"].max()) == 1.5
    assert "brightness" not in abundance_dataset(a, like, {})
    t = np.stack([np.linspace(0.5, 1.5, C)]).astype(np.float32)
    write_store(endmember_dataset(np.ones((C, K)), WL, {}, t, ["aviris"]), tmp_path / "em.zarr", dim="endmember")
    em = open_store(tmp_path / "em.zarr")
    assert em["transmission"].dims == ("sensor", "wavelength") and em["sensor"].values.tolist() == ["aviris"]
    assert np.allclose(em["transmission"].values, t)
    assert unmix_dataset(a[0], np.ones((C, K)), WL, {}, s[0])["brightness"].dims == ("y", "x")


def test_mix_with_brightness_and_transmission():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(K), (2, 3, 3)).transpose(0, 3, 1, 2)
    E = rng.random((C, K))
    s = rng.random((2, 3, 3))
    t = np.linspace(0.5, 1.5, C)
    plain = mix(a, E)
    assert np.allclose(mix(a, E, s, t), plain * s[:, None] * t[None, :, None, None], atol=1e-6)
    with pytest.raises(UBFInputError, match="brightness"):
        mix(a, E, brightness=s[:, :2])
    with pytest.raises(UBFInputError, match="transmission"):
        mix(a, E, transmission=t[:3])


def test_synthesis_applies_the_decoder_neural_mixing_to_generated_abundances():
    from ubf_core.synthesis.mixing import mixing_record

    model = net(seed=1, mixing="neural", mixing_options=NEURAL)
    with torch.no_grad():
        model.nonlinear.head.bias.add_(0.3)
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(K), (2, 4, 4)).transpose(0, 3, 1, 2).astype(np.float32)
    E = model.endmembers().detach().numpy()
    record = mixing_record(model.nonlinear)
    y = mix(a, E, mixing=record)
    with torch.no_grad():   # the decoder on the same abundances, without its offset b
        want = model.decoder(torch.as_tensor(a), nonlinear=model.nonlinear) - model.decoder.bias[None, :, None, None]
    assert np.allclose(y, want.numpy(), atol=1e-6) and not np.allclose(y, mix(a, E), atol=1e-5)
    t = np.linspace(0.5, 1.5, C)
    assert np.allclose(mix(a, E, transmission=t, mixing=record), y * t[None, :, None, None], atol=1e-6)
    with pytest.raises(UBFInputError, match="neural mixing is for"):
        mix(a[:, :2], E[:, :2], mixing=record)


def test_synthesis_job_units():
    common = dict(labels=np.array(["", ""], dtype=object), seed=0, size=(4, 4), endmembers=np.ones((C, K)),
                  wavelengths_nm=WL)
    plain = SynthesisJob(**common)
    assert plain.config_hash() == SynthesisJob(**common, units="reflectance", brightness=False).config_hash()
    radiance = SynthesisJob(**common, units="radiance", transmission=np.full(C, 0.8))
    radiance.check_units()
    assert radiance.config_hash() != plain.config_hash()
    assert SynthesisJob(**common, brightness=True).config_hash() != plain.config_hash()
    with pytest.raises(UBFInputError, match="synthesis.units: radiance needs"):
        SynthesisJob(**common, units="radiance").check_units()
    with pytest.raises(UBFInputError, match="synthesis.units: 'dn' unknown"):
        SynthesisJob(**common, units="dn").check_units()


def test_synthesis_store_records_units_and_brightness(tmp_path):
    from ubf_core.synthesis.store import BRIGHTNESS_NOTE, create_store, store_attrs

    common = dict(labels=np.array(["", ""], dtype=object), seed=0, size=(4, 4), endmembers=np.ones((C, K)),
                  wavelengths_nm=WL)
    create_store(tmp_path / "a.zarr", SynthesisJob(**common), 2, K, {})
    create_store(tmp_path / "b.zarr", SynthesisJob(**common, units="radiance", transmission=np.ones(C),
                                                   brightness=True), 2, K, {})
    a, b = store_attrs(tmp_path / "a.zarr"), store_attrs(tmp_path / "b.zarr")
    assert (a["units"], a["brightness"]) == ("reflectance", "none")
    assert (b["units"], b["brightness"]) == ("radiance", BRIGHTNESS_NOTE)
    assert "s = 1" in json.dumps(b["brightness"])
