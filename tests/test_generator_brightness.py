"""The generator's brightness channel (``brightness=True``, params ``generator.brightness``): the per-pixel scale s of
extended linear mixing learned with the abundances, kept through save/load and checkpoints, taken from the abundance
stores, written and mixed by synthesis. Without it every generator is the one it always was (the shipped checkpoint
samples what it sampled before). Real torch/diffusers models, real Zarr and Dask; tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.generators import TrainSettings, load_generator, make_generator
from ubf_core.generators.checkpoint import load_checkpoint, save_checkpoint
from ubf_core.generators.constraints import (BRIGHTNESS_SPREAD, brightness_log_stats, to_brightness,
                                             to_brightness_space)
from ubf_core.generators.training_data import training_set_with_brightness, use_brightness
from ubf_core.synthesis.job import SynthesisJob, plan_labels

K, SIZE, CLASSES = 3, (8, 8), ["bright", "dark"]
TINY_DDPM = dict(num_train_timesteps=50, block_out_channels=[8, 16], norm_num_groups=4,
                 prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2")
TINY_CONV = dict(channels=8, latent_dim=8)
WL = np.linspace(400, 700, 6)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def two_classes(n: int = 32, seed: int = 0):
    """Blocky abundance maps (n, K, 8, 8), labels alternating bright/dark and brightness s (n, 8, 8): about 2 for
    "bright" maps, about 0.5 for "dark" ones (a log-normal spread of 10 % per map)."""
    rng = np.random.default_rng(seed)
    coarse = rng.dirichlet(np.ones(K), size=(n, 2, 2)).transpose(0, 3, 1, 2)
    maps = np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3).astype(np.float32)
    labels = np.array(CLASSES * (n // 2))
    level = np.where(labels == "bright", 2.0, 0.5) * np.exp(0.1 * rng.standard_normal(n))
    s = np.broadcast_to(level[:, None, None], (n, *SIZE)).astype(np.float32)
    return maps, labels, s


def geometric_mean(s: np.ndarray) -> float:
    return float(np.exp(np.log(s).mean()))


# ----------------------------------------------------------------------------------------------- the log space
def test_the_brightness_space_inverts_exactly_and_stays_positive():
    s = np.array([[[0.0, 1e-9, 0.3], [1.0, 2.5, 40.0]]], dtype=np.float32)          # (1, 2, 3)
    stats = brightness_log_stats(s)
    x = to_brightness_space(torch.from_numpy(s), stats)
    assert x.shape == (1, 1, 2, 3)
    back = to_brightness(x, stats).numpy()
    np.testing.assert_allclose(back[s >= 1e-6], s[s >= 1e-6], rtol=1e-5)       # exact above the floor
    np.testing.assert_allclose(back[s < 1e-6], 1e-6, rtol=1e-5)                 # s = 0 comes back as the floor
    wild = to_brightness(torch.tensor([[[[-1e6, -5.0, 0.0, 5.0, 1e6]]]]), stats)
    assert (wild > 0).all() and torch.isfinite(wild).all()
    # ±1 is ±3σ of the training set around its mean, in ln s
    one = float(to_brightness(torch.ones(1, 1, 1, 1), [0.0, 0.5]))
    assert one == pytest.approx(np.exp(BRIGHTNESS_SPREAD * 0.5), rel=1e-6)
    assert brightness_log_stats(np.full((2, 3, 3), 2.0))[1] > 0                 # constant s: σ floored, finite


# ----------------------------------------------------------------------------------------------- learning s
@pytest.fixture(scope="module")
def bright_ddpm():
    maps, labels, s = two_classes()
    gen = make_generator("ddpm", K, SIZE, CLASSES, brightness=True, **TINY_DDPM)
    gen.fit(maps, labels, TrainSettings(steps=200, batch_size=16, lr=3e-3, ema_decay=0.9), brightness=s, seed=0,
            progress=False)
    return gen, s


def test_a_ddpm_learns_each_class_brightness(bright_ddpm):
    """Trained on s ≈ 2 (bright) and ≈ 0.5 (dark), the samples of each class come back near their class's s (a
    model that ignored the channel, or mixed the classes, would give s ≈ 1 for both)."""
    gen, s = bright_ddpm
    assert gen.channels == K + 1 and gen.config["brightness_log_stats"] == brightness_log_stats(s)
    found = {}
    for c in CLASSES:
        a, b = gen.sample_with_brightness(16, seed=1, labels=c, sampler="dpm++", steps=10, guidance_scale=1.0)
        assert a.shape == (16, K, *SIZE) and b.shape == (16, *SIZE) and b.dtype == np.float32
        assert (a >= 0).all() and np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
        assert (b > 0).all() and np.isfinite(b).all()
        found[c] = geometric_mean(b)
    assert 1.3 < found["bright"] < 3.0 and 0.33 < found["dark"] < 0.75, found
    # sample() gives the same abundances without the brightness
    a, _ = gen.sample_with_brightness(3, seed=4, labels="dark", sampler="ddim", steps=4)
    assert np.array_equal(a, gen.sample(3, seed=4, labels="dark", sampler="ddim", steps=4))


def test_a_brightness_model_survives_save_and_load(bright_ddpm, tmp_path):
    gen, _ = bright_ddpm
    loaded = load_generator(gen.save(tmp_path / "g"))
    assert loaded.brightness and loaded.config == gen.config
    assert json.loads((tmp_path / "g" / "generator.json").read_text())["config"]["brightness"] is True
    kw = dict(seed=2, labels=["bright", "dark", "dark"], sampler="dpm++sde", steps=5)
    for x, y in zip(gen.sample_with_brightness(3, **kw), loaded.sample_with_brightness(3, **kw)):
        assert np.array_equal(x, y)
    # the config rebuilds it (untrained) with the same standardisation
    again = make_generator("ddpm", K, SIZE, CLASSES, **gen.config)
    assert again.brightness_log_stats == gen.brightness_log_stats


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_vae_and_gan_learn_brightness_too(name, tmp_path):
    maps, labels, s = two_classes()
    gen = make_generator(name, K, SIZE, CLASSES, brightness=True, **TINY_CONV)
    gen.fit(maps, labels, TrainSettings(steps=300, batch_size=16, ema_decay=0.9), brightness=s, seed=0,
            progress=False)
    bright = gen.sample_with_brightness(16, seed=1, labels="bright")[1]
    dark = gen.sample_with_brightness(16, seed=1, labels="dark")[1]
    assert (dark > 0).all() and geometric_mean(bright) > 2.0 * geometric_mean(dark)
    loaded = load_generator(gen.save(tmp_path / name))
    for x, y in zip(gen.sample_with_brightness(2, seed=3), loaded.sample_with_brightness(2, seed=3)):
        assert np.array_equal(x, y)


# ----------------------------------------------------------------------------------------------- without it
@pytest.mark.parametrize("name", ["ddpm", "vae", "gan"])
def test_without_brightness_training_and_samples_are_unchanged(name):
    """brightness=False (the default) builds the same networks, trains the same and samples the same as a model
    built without the option; sample_with_brightness gives no brightness."""
    maps, labels, _ = two_classes(8)
    opts = TINY_DDPM if name == "ddpm" else TINY_CONV
    runs = []
    for extra in ({}, {"brightness": False}):
        gen = make_generator(name, K, SIZE, CLASSES, **opts, **extra)
        hist = gen.fit(maps, labels, TrainSettings(steps=3, batch_size=4, log_every=1), seed=1, progress=False)
        kw = dict(sampler="ddim", steps=3) if name == "ddpm" else {}
        a, b = gen.sample_with_brightness(2, seed=0, labels="dark", **kw)
        assert b is None and gen.channels == K
        runs.append(([h["loss"] for h in hist], a))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])


# Samples of the shipped checkpoint (checkpoints/generator, retrained on the abundances of the least_squares-start
# unmixing model), taken when it was written: two maps (labels Airport, Commercial; seed 0; dpm++, 4 steps), mean
# abundance per endmember and endmember fractions at pixel (5, 7). A change that alters what a saved checkpoint
# without brightness samples fails here. CPU kernels round differently across machines, hence the tolerance (far
# below the differences between classes or seeds).
CHECKPOINT_MEAN = [0.8532108068466187, 0.04755234718322754, 0.048129141330718994, 0.029373031109571457,
                   0.021734680980443954]
CHECKPOINT_PIXEL = [[0.7199167609214783, 0.10306599736213684, 0.08400849252939224, 0.05235378071665764,
                     0.04065501317381859],
                    [0.7905228734016418, 0.05269581824541092, 0.0776221826672554, 0.04082118719816208,
                     0.03833791986107826]]


def test_the_shipped_checkpoint_samples_what_it_did_before():
    gen = load_generator(ROOT / "checkpoints" / "generator")
    assert not gen.brightness and gen.channels == gen.k == 5
    a, s = gen.sample_with_brightness(2, seed=0, labels=["Airport", "Commercial"], sampler="dpm++", steps=4)
    assert s is None
    np.testing.assert_allclose(a.mean(axis=(0, 2, 3)), CHECKPOINT_MEAN, atol=1e-4)
    np.testing.assert_allclose(a[:, :, 5, 7], CHECKPOINT_PIXEL, atol=1e-4)


# ----------------------------------------------------------------------------------------------- bad input
def test_bad_brightness_input_is_one_line():
    maps, labels, s = two_classes(4)
    bright = make_generator("vae", K, SIZE, CLASSES, brightness=True, **TINY_CONV)
    plain = make_generator("vae", K, SIZE, CLASSES, **TINY_CONV)
    settings = TrainSettings(steps=1, batch_size=4)
    cases = [
        (lambda: bright.fit(maps, labels, settings, progress=False), "give brightness"),
        (lambda: plain.fit(maps, labels, settings, brightness=s, progress=False), "built without it"),
        (lambda: bright.fit(maps, labels, settings, brightness=s[:, :4], progress=False), r"must be \(N, H, W\)"),
        (lambda: bright.fit(maps, labels, settings, brightness=-s, progress=False), "finite and ≥ 0"),
        (lambda: bright.fit(maps, labels, settings, brightness=np.where(s > 1, np.nan, s), progress=False),
         "finite and ≥ 0"),
        (lambda: bright.fit(maps, labels, settings, brightness=s.astype(int), progress=False), "floating point"),
        (lambda: make_generator("vae", K, SIZE, brightness="yes", **TINY_CONV), "brightness must be true or false"),
        (lambda: make_generator("vae", K, SIZE, brightness=True, brightness_log_stats=[0.0, 0.0], **TINY_CONV),
         "brightness_log_stats must be null or"),
    ]
    for call, match in cases:
        with pytest.raises(UBFInputError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
    assert bright.config["brightness_log_stats"] is None          # nothing taken from refused input


def test_a_checkpoint_of_the_other_kind_is_refused(tmp_path):
    maps, labels, s = two_classes(4)
    E = np.abs(np.random.default_rng(1).normal(size=(len(WL), K))) + 0.1
    kw = dict(name="vae", k=K, size=SIZE, classes=CLASSES, endmembers=E, wavelengths_nm=WL, max_angle_deg=5.0)
    for has in (True, False):
        gen = make_generator("vae", K, SIZE, CLASSES, brightness=has, **TINY_CONV)
        gen.fit(maps, labels, TrainSettings(steps=1, batch_size=4), brightness=s if has else None, progress=False)
        folder = save_checkpoint(gen, tmp_path / f"ck{has}", E, WL, {})
        loaded, _ = load_checkpoint(folder, options={**TINY_CONV, "brightness": has}, **kw)
        assert loaded.brightness == has and loaded.config == gen.config
        with pytest.raises(UBFInputError, match="checkpoint (generates|does not generate) brightness but this "
                                                "run's (does not|does)") as err:
            load_checkpoint(folder, options={**TINY_CONV, "brightness": not has}, **kw)
        assert str(folder) in str(err.value) and "\n" not in str(err.value)


def test_the_stage_builds_the_generator_the_brightness_setting_asks_for(tmp_path):
    from tasks.generator import initial_generator

    params = {"_root": str(tmp_path), "generator": {"options": TINY_CONV, "checkpoint": "ck",
                                                    "init_from_checkpoint": False}}
    maps, E = two_classes(4)[0], np.ones((len(WL), K))
    gen, _ = initial_generator(params, "vae", maps, CLASSES, E, WL, pretrain=False, brightness=True)
    assert gen.brightness and gen.channels == K + 1
    gen, _ = initial_generator(params, "vae", maps, CLASSES, E, WL, pretrain=False)
    assert not gen.brightness
    params["generator"]["options"] = {**TINY_CONV, "brightness": True}
    with pytest.raises(UBFInputError, match="generator.options.brightness: is not an option to set here"):
        initial_generator(params, "vae", maps, CLASSES, E, WL, pretrain=False)
    # the shipped checkpoint (no brightness) is refused by a run whose stores carry brightness
    from ubf_core.generators.checkpoint import TRAINED_ON_FILE

    shipped = ROOT / "checkpoints" / "generator"
    info = json.loads((shipped / TRAINED_ON_FILE).read_text())
    params = {"_root": str(ROOT), "generator": {"options": {}, "checkpoint": "checkpoints/generator",
                                                "init_from_checkpoint": True, "checkpoint_max_angle_deg": 5.0}}
    ck = load_generator(shipped)
    maps = np.full((1, ck.k, *ck.size), 1.0 / ck.k, np.float32)
    with pytest.raises(UBFInputError, match="checkpoints/generator: checkpoint does not generate brightness"):
        initial_generator(params, "ddpm", maps, ck.classes, np.asarray(info["endmembers"]),
                          np.asarray(info["wavelength_nm"]), pretrain=False, brightness=True)


# ----------------------------------------------------------------------------------------------- training set
def test_the_brightness_setting_follows_the_stores():
    assert use_brightness("auto", {"a.zarr": True, "b.zarr": True}) is True
    assert use_brightness("auto", {"a.zarr": False}) is False
    assert use_brightness("never", {"a.zarr": True}) is False
    assert use_brightness("always", {"a.zarr": True}) is True
    with pytest.raises(UBFInputError, match="^b.zarr: has no brightness variable but generator.brightness is always"):
        use_brightness("always", {"a.zarr": True, "b.zarr": False})
    with pytest.raises(UBFInputError, match="^b.zarr: has no brightness variable but a.zarr has"):
        use_brightness("auto", {"a.zarr": True, "b.zarr": False})
    with pytest.raises(UBFInputError, match="generator.brightness: True unknown"):
        use_brightness(True, {"a.zarr": True})                  # YAML's on/off would arrive as booleans


def test_the_training_brightness_belongs_to_its_maps():
    rng = np.random.default_rng(0)
    rgb, hsi = rng.dirichlet(np.ones(K), size=(10, *SIZE)), rng.dirichlet(np.ones(K), size=(6, *SIZE))
    rgb, hsi = rgb.transpose(0, 3, 1, 2), hsi.transpose(0, 3, 1, 2)
    # each map's brightness carries its own abundance of endmember 0 at pixel (0, 0), so the pairing can be checked
    s_rgb = np.broadcast_to(rgb[:, 0, :1, :1] + 1.0, (10, *SIZE))
    s_hsi = np.broadcast_to(hsi[:, 0, :1, :1] + 5.0, (6, *SIZE))
    labels = np.array(["a", "b"] * 5)
    maps, labs, s = training_set_with_brightness("both", rgb, labels, hsi, 0.5, 3, rgb_brightness=s_rgb,
                                                 hsi_brightness=s_hsi, brightness=True)
    is_hsi = np.array([lab is None for lab in labs])
    assert s.shape == (len(maps), *SIZE) and s.dtype == np.float32
    np.testing.assert_allclose(s[:, 0, 0], maps[:, 0, 0, 0] + np.where(is_hsi, 5.0, 1.0), rtol=1e-6)
    assert training_set_with_brightness("rgb", rgb, labels, None, brightness=False)[2] is None
    with pytest.raises(UBFInputError, match="generator.brightness: is on but the HSI abundances come without"):
        training_set_with_brightness("hsi", None, None, hsi, rgb_brightness=s_rgb, brightness=True)
    with pytest.raises(UBFInputError, match=r"RGB brightness has shape \(9, 8, 8\)"):
        training_set_with_brightness("rgb", rgb, labels, None, rgb_brightness=s_rgb[:9], brightness=True)


def _abundance_store(path: Path, n: int, brightness: bool, seed: int):
    from ubf_core.data.stores import write_store
    from ubf_core.unmixing.abundance_store import abundance_dataset

    rng = np.random.default_rng(seed)
    a = rng.dirichlet(np.ones(K), size=(n, *SIZE)).transpose(0, 3, 1, 2).astype(np.float32)
    like = xr.Dataset(coords={"source": ("patch", np.array([f"img{i // 2}" for i in range(n)], dtype=object)),
                              "label": ("patch", np.array(["x", "y"] * (n // 2), dtype=object))})
    s = rng.uniform(0.5, 2.0, (n, *SIZE)).astype(np.float32) if brightness else None
    write_store(abundance_dataset(a, like, {}, s), path)
    return a, s


def test_the_stage_takes_the_stores_brightness(tmp_path):
    """generator_training_data: auto takes the stores' brightness when they have it, never ignores it, always on
    a store without it is an error naming that store; held-out RGB images are left out of both."""
    from tasks.generator import generator_training_data

    a_rgb, s_rgb = _abundance_store(tmp_path / "stores" / "abundance_rgb.zarr", 16, True, 0)
    _abundance_store(tmp_path / "stores" / "abundance_hsi.zarr", 4, False, 1)
    g = {"source": "rgb", "hsi_share": 0.5, "conditional": False, "brightness": "auto"}
    params = {"_root": str(tmp_path), "seed": 0, "heldout_rgb_per_class": 1, "heldout_sources": [], "generator": g}
    data = generator_training_data(params)
    assert data.brightness is not None and data.brightness.shape == (len(data.maps), *SIZE)
    for m, s in zip(data.maps, data.brightness):                  # each map with its own brightness
        i = int(np.flatnonzero((a_rgb == m).all(axis=(1, 2, 3)))[0])
        assert np.array_equal(s, s_rgb[i])
    assert generator_training_data({**params, "generator": {**g, "brightness": "never"}}).brightness is None
    with pytest.raises(UBFInputError, match=r"stores/abundance_hsi.zarr: has no brightness variable but "
                                            r"generator.brightness is always"):
        generator_training_data({**params, "generator": {**g, "source": "hsi", "brightness": "always"}})
    with pytest.raises(UBFInputError, match=r"stores/abundance_hsi.zarr: has no brightness variable but "
                                            r"stores/abundance_rgb.zarr has"):
        generator_training_data({**params, "generator": {**g, "source": "both"}})


# ----------------------------------------------------------------------------------------------- synthesis
@pytest.fixture(scope="module")
def bright_vae_dir(tmp_path_factory):
    """An untrained VAE with the brightness channel, standardised as if trained on s with ln s ~ N(ln 2, 0.3²)."""
    gen = make_generator("vae", K, SIZE, CLASSES, brightness=True, brightness_log_stats=[float(np.log(2.0)), 0.3],
                         **TINY_CONV)
    return str(gen.save(tmp_path_factory.mktemp("gen") / "vae"))


def _job(**kw):
    E = np.random.default_rng(0).uniform(0.05, 0.6, (len(WL), K)).astype(np.float32)
    return SynthesisJob(labels=plan_labels(6, {"bright": 1, "dark": 1}, CLASSES), seed=3, size=SIZE, endmembers=E,
                        wavelengths_nm=WL, config={"generator": "test-vae"}, **kw)


def test_synthesis_writes_and_mixes_the_generated_brightness(bright_vae_dir, tmp_path):
    from ubf_core.parallel import dask_client
    from ubf_core.synthesis.blocks import synthesize
    from ubf_core.synthesis.mixing import mix
    from ubf_core.synthesis.store import GENERATED_BRIGHTNESS_NOTE

    job = _job(brightness=True, generated_brightness=True, snr_db=None)
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        synthesize(job, bright_vae_dir, tmp_path / "b1.zarr", client=client, block_size=1)
        synthesize(job, bright_vae_dir, tmp_path / "b4.zarr", client=client, block_size=4)
    one, four = (xr.open_zarr(tmp_path / f"{b}.zarr", consolidated=False) for b in ("b1", "b4"))
    for var in ("reflectance", "abundance", "brightness"):
        assert np.array_equal(one[var].values, four[var].values), var
    s, a, y = one["brightness"].values, one["abundance"].values, one["reflectance"].values
    assert one["brightness"].dims == ("sample", "y", "x") and one["brightness"].attrs["units"] == "1"
    assert (s > 0).all() and not np.allclose(s, 1.0)
    np.testing.assert_allclose(y, mix(a, job.endmembers) * s[:, None], rtol=1e-5)      # Ŷ' = s·Ê·Â'
    assert one.attrs["brightness"] == GENERATED_BRIGHTNESS_NOTE
    gen = load_generator(bright_vae_dir)
    a_gen, s_gen = gen.sample_with_brightness(6, seed=3, labels=list(job.labels))
    assert np.array_equal(s, s_gen) and np.array_equal(a, a_gen)


def test_synthesis_refuses_a_brightness_mismatch_and_hashes_it(bright_vae_dir, tmp_path):
    from ubf_core.synthesis.blocks import plan_blocks

    plain = _job(brightness=True)                                  # the s = 1 path: a generator without it
    generated = _job(brightness=True, generated_brightness=True)
    assert plain.unit_brightness and not generated.unit_brightness
    assert len({_job().config_hash(), plain.config_hash(), generated.config_hash()}) == 3
    with pytest.raises(UBFInputError, match="the generator makes brightness but the job's generated_brightness"):
        plan_blocks(plain, bright_vae_dir, tmp_path / "x.zarr")
    with pytest.raises(UBFInputError, match="synthesis: the generator makes brightness but the unmixing model has "
                                            "no brightness term"):
        plan_blocks(_job(generated_brightness=True), bright_vae_dir, tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists() and not list(tmp_path.glob(".x.zarr*"))


def test_the_synthesis_job_pairs_the_generator_with_the_unmixing_model(bright_vae_dir):
    from tasks.generator import SynthesisModels, synthesis_job

    params = {"seed": 0, "synthesis": {"units": "reflectance", "micro_batch": 1, "noise_snr_db": None,
                                       "device": "cpu"}}
    E = np.ones((len(WL), K), np.float32)
    models = {b: SynthesisModels("models:/g/1", "g", 1, "", "models:/u/2", "u", 2, E, WL, brightness=b)
              for b in (True, False)}
    bright, plain = load_generator(bright_vae_dir), make_generator("vae", K, SIZE, CLASSES, **TINY_CONV)
    job = synthesis_job(params, models[True], bright, n=2, class_mix=None)
    assert job.generated_brightness and not job.unit_brightness
    job = synthesis_job(params, models[True], plain, n=2, class_mix=None)
    assert job.unit_brightness                                     # the warning's case: s = 1
    assert not synthesis_job(params, models[False], plain, n=2, class_mix=None).brightness
    with pytest.raises(UBFInputError, match="models:/u/2: has no brightness term but models:/g/1 generates "
                                            "brightness"):
        synthesis_job(params, models[False], bright, n=2, class_mix=None)


# ----------------------------------------------------------------------------------------------- evaluation
def test_the_brightness_distance_is_in_units_of_ln_s():
    from ubf_core.metrics.distribution import brightness_log_distance

    rng = np.random.default_rng(0)
    s = np.exp(0.3 * rng.standard_normal((20, 8, 8)))
    other = np.exp(0.3 * rng.standard_normal((30, 8, 8)))
    assert brightness_log_distance(s, s) == 0.0
    assert brightness_log_distance(s, other) < 0.1                          # same distribution, other draws
    assert brightness_log_distance(2.0 * s, s) == pytest.approx(np.log(2.0), rel=1e-6)   # twice as bright
    assert brightness_log_distance(s, np.ones_like(s)) > 0.15               # s = 1 everywhere is told apart
    with pytest.raises(UBFInputError, match="brightness_log_distance: b holds negative brightness"):
        brightness_log_distance(s, -s)
    with pytest.raises(UBFInputError, match="brightness_log_distance: a holds no pixels"):
        brightness_log_distance(np.zeros((0, 8, 8)), s)
