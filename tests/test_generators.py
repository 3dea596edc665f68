"""Abundance generators (ubf_core.generators): real torch/diffusers models, tiny sizes.

Every sample must lie on the simplex, depend only on (seed, start_index + j), survive save/load bit for bit, and
bad input must raise UBFInputError with a one-line message.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubf_core.errors import UBFInputError
from ubf_core.generators import AbundanceGenerator, TrainSettings, load_generator, make_generator, sample_seed
from ubf_core.generators.constraints import abundance_floor, to_abundances, to_diffusion_space

K, SIZE, T = 3, (8, 8), 50
CLASSES = ["water", "forest"]
TINY_DDPM = dict(num_train_timesteps=T, block_out_channels=(8, 16), norm_num_groups=4)
TINY_CONV = dict(channels=8, latent_dim=8)
SAMPLERS = [("ddpm", None), ("ddim", 6), ("dpm++", 6), ("dpm++sde", 6)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run faster on one thread (and do not fight other processes for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smooth_abundances(n: int, k: int = K, size=SIZE, seed: int = 0, classes: int = 0):
    """Spatially smooth Dirichlet maps (n, k, H, W) float32 and labels (n,): a 3×3 grid of Dirichlet draws,
    bilinearly interpolated (convex combinations stay on the simplex). Class c favours endmember c."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % max(classes, 1)
    coarse = np.empty((n, k, 3, 3))
    for i, c in enumerate(labels):
        alpha = np.full(k, 0.6)
        if classes:
            alpha[c] = 3.0
        coarse[i] = rng.dirichlet(alpha, size=(3, 3)).transpose(2, 0, 1)
    fine = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=size, mode="bilinear", align_corners=True)
    maps = fine.numpy()
    return (maps / maps.sum(axis=1, keepdims=True)).astype(np.float32), labels


def assert_on_simplex(maps: np.ndarray, n: int, k: int = K, size=SIZE):
    assert maps.shape == (n, k, *size) and maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=1e-5)


def build(name: str, classes=None, **options) -> AbundanceGenerator:
    tiny = TINY_DDPM if name == "ddpm" else TINY_CONV
    return make_generator(name, K, SIZE, classes, **{**tiny, **options})


@pytest.fixture(scope="module")
def trained():
    """One briefly trained conditional model of each kind (and an unconditional DDPM), shared by the tests."""
    maps, labels = smooth_abundances(32, classes=len(CLASSES))
    models = {}
    for name in ("ddpm", "vae", "gan"):
        models[name] = build(name, CLASSES)
        models[name].fit(maps, labels, TrainSettings(steps=4, batch_size=16), seed=0, progress=False)
    models["ddpm-uncond"] = build("ddpm")
    models["ddpm-uncond"].fit(maps, settings=TrainSettings(steps=2, batch_size=16), seed=0, progress=False)
    return models


# ---------------------------------------------------------------------------------------------- simplex
@pytest.mark.parametrize("constraint", ["softmax", "hud"])
@pytest.mark.parametrize("sampler,steps", SAMPLERS)
def test_ddpm_samples_are_on_the_simplex(constraint, sampler, steps):
    gen = build("ddpm", constraint=constraint)
    gen.fit(smooth_abundances(16)[0], settings=TrainSettings(steps=2, batch_size=8), progress=False)
    assert_on_simplex(gen.sample(3, seed=1, sampler=sampler, steps=steps), 3)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
def test_ddpm_prediction_types_and_schedules_sample_on_the_simplex(prediction_type, beta_schedule):
    gen = build("ddpm", constraint="hud", prediction_type=prediction_type, beta_schedule=beta_schedule)
    gen.fit(smooth_abundances(16)[0], settings=TrainSettings(steps=2, batch_size=8), progress=False)
    for sampler, steps in SAMPLERS:
        assert_on_simplex(gen.sample(2, seed=1, sampler=sampler, steps=steps), 2)


def test_v_prediction_learns_the_class_where_epsilon_prediction_does_not():
    """The DDPM schedule (β 1e-4 → 0.02, T = 1000) leaves √ᾱ_T ≈ 0.006 of the clean map in the last noise level; an
    ε-predicting network recovers x0 = (x − √(1−ᾱ) ε̂)/√ᾱ from it only as well as its error allows, so the maps'
    mean (far from 0 in HUD space) is never learned and samples come out near x = 0 in every channel, whatever
    the class. v-prediction learns E[x0 | x_t, class] directly. Classes: pure endmember 0 or 1 everywhere."""
    n = 64
    labels = np.arange(n) % 2
    maps = np.full((n, K, *SIZE), 0.02, np.float32)
    maps[np.arange(n), labels] = 0.96
    share = {}
    for kind in ("epsilon", "v_prediction"):
        gen = build("ddpm", CLASSES, constraint="hud", prediction_type=kind, num_train_timesteps=1000,
                    beta_start=1e-4, beta_end=0.02)
        gen.fit(maps, labels, TrainSettings(steps=150, batch_size=16, lr=3e-3, warmup_steps=20), seed=0,
                progress=False)
        share[kind] = [float(gen.sample(8, seed=0, labels=c, sampler="dpm++", steps=10)[:, c].mean())
                       for c in (0, 1)]
    assert min(share["v_prediction"]) > 0.6, share
    assert max(share["epsilon"]) < 0.5, share


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_vae_gan_samples_are_on_the_simplex(trained, name):
    assert_on_simplex(trained[name].sample(4, seed=2), 4)
    assert_on_simplex(trained[name].sample(4, seed=2, labels="forest", temperature=0.5), 4)


@pytest.mark.parametrize("constraint", ["softmax", "hud"])
def test_constraint_maps_round_trip(constraint):
    maps = torch.from_numpy(smooth_abundances(4)[0])
    back = to_abundances(to_diffusion_space(maps, constraint), constraint)
    eps = abundance_floor(K)
    expected = maps.clamp_min(eps) / maps.clamp_min(eps).sum(1, keepdim=True) if constraint == "softmax" \
        else (maps + eps) / (1 + K * eps)
    torch.testing.assert_close(back, expected, atol=1e-5, rtol=0)
    x = to_diffusion_space(maps, constraint)
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.0 + 1e-4
    wild = to_abundances(torch.randn(2, K, 4, 4) * 5, constraint)       # any network output lands on the simplex
    assert wild.min() >= 0 and torch.allclose(wild.sum(1), torch.ones(2, 4, 4), atol=1e-6)


# ---------------------------------------------------------------------------------------------- seeding
def test_sample_seed_depends_on_the_pair():
    assert sample_seed(3, 7) == sample_seed(3, 7)
    assert len({sample_seed(0, 1), sample_seed(1, 0), sample_seed(0, 0), sample_seed(1, 1)}) == 4
    assert 0 <= sample_seed(-5, 10**9) < 2**63


@pytest.mark.parametrize("name,options", [
    ("ddpm", {"sampler": "ddpm", "steps": 12}), ("ddpm", {"sampler": "ddim", "steps": 5, "eta": 1.0}),
    ("ddpm", {"sampler": "dpm++", "steps": 5}), ("ddpm", {"sampler": "dpm++sde", "steps": 5}), ("vae", {}),
    ("gan", {}),
])
def test_same_seed_same_samples_and_batch_equals_one_by_one(trained, name, options):
    gen = trained[name]
    labels = ["water", "forest", 1, "water"]
    batch = gen.sample(4, seed=11, labels=labels, start_index=5, **options)
    again = gen.sample(4, seed=11, labels=labels, start_index=5, **options)
    assert np.array_equal(batch, again)
    one_by_one = np.concatenate([gen.sample(1, seed=11, labels=[labels[j]], start_index=5 + j, **options)
                                 for j in range(4)])
    assert np.array_equal(batch, one_by_one)
    middle = gen.sample(2, seed=11, labels=labels[1:3], start_index=6, **options)
    assert np.array_equal(batch[1:3], middle)
    other = gen.sample(4, seed=12, labels=labels, start_index=5, **options)
    assert not np.allclose(batch, other)
    assert not np.allclose(batch[0], batch[3])   # same label, different index → different sample


@pytest.mark.parametrize("name,options", [("ddpm", {"sampler": "dpm++sde", "steps": 5}), ("vae", {}), ("gan", {})])
def test_micro_batches_are_fixed_groups_of_the_run(trained, name, options):
    """micro_batch m: the networks take m samples per call, grouped by index (0-3, 4-6 for m = 4 and 7 samples), so
    a run split at multiples of m gives the same maps; the same seeds as m = 1 up to float rounding."""
    gen = trained[name]
    labels = ["water", "forest", 1, "water", "forest", "water", 0]
    whole = gen.sample(7, seed=2, labels=labels, micro_batch=4, **options)
    split = np.concatenate([gen.sample(4, seed=2, labels=labels[:4], micro_batch=4, **options),
                            gen.sample(3, seed=2, labels=labels[4:], start_index=4, micro_batch=4, **options)])
    assert np.array_equal(whole, split)
    one = gen.sample(7, seed=2, labels=labels, micro_batch=1, **options)
    np.testing.assert_allclose(whole, one, atol=1e-3)
    assert (whole >= 0).all() and np.allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(UBFInputError, match="start_index 2 is not a multiple of micro_batch 4"):
        gen.sample(2, seed=2, labels=labels[:2], start_index=2, micro_batch=4, **options)
    with pytest.raises(UBFInputError, match="micro_batch must be a positive integer"):
        gen.sample(2, seed=2, labels=labels[:2], micro_batch=0, **options)


@pytest.mark.parametrize("size", [SIZE, (6, 10)])     # (6, 10): a sample is not a multiple of 64 bytes
def test_unconditional_batch_equals_one_by_one(trained, size):
    gen = trained["ddpm-uncond"]
    batch = gen.sample(3, size=size, seed=4, sampler="ddpm", steps=T)
    assert np.array_equal(batch, np.concatenate([gen.sample(1, size=size, seed=4, start_index=j)
                                                 for j in range(3)]))


def test_fit_is_deterministic_given_the_seed():
    maps, _ = smooth_abundances(16)
    runs = []
    for _ in range(2):
        gen = build("ddpm")
        history = gen.fit(maps, settings=TrainSettings(steps=4, batch_size=8, log_every=2), seed=3, progress=False)
        runs.append((history, gen.sample(2, seed=0, sampler="ddim", steps=4)))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])


# ---------------------------------------------------------------------------------------------- training
def test_ddpm_fit_lowers_the_loss_and_reports_every_log_interval():
    maps, _ = smooth_abundances(64, seed=1)
    gen = build("ddpm")
    seen = []
    history = gen.fit(maps, settings=TrainSettings(steps=24, batch_size=16, lr=3e-3, log_every=4, warmup_steps=8), seed=0,
                      progress=True, on_log=lambda step, record: seen.append((step, record)))
    assert [r["step"] for r in history] == list(range(4, 25, 4))
    assert seen == [(r["step"], r) for r in history]
    assert history[0]["lr"] < history[1]["lr"] and history[-1]["lr"] < history[1]["lr"]   # warm-up, then decay
    losses = [r["loss"] for r in history]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_vae_gan_history(name):
    gen = build(name, CLASSES)
    maps, labels = smooth_abundances(16, classes=2)
    history = gen.fit(maps, [CLASSES[c] for c in labels], TrainSettings(steps=4, batch_size=8, log_every=2),
                      progress=False)
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    expected = {"step", "lr", "loss", "recon", "kl"} if name == "vae" else {"step", "lr", "loss", "loss_d"}
    assert set(history[0]) == expected


# ---------------------------------------------------------------------------------------------- conditioning
def test_conditional_sampling_accepts_names_and_indices(trained):
    gen = trained["ddpm"]
    by_name = gen.sample(3, seed=0, labels=["water", "forest", "forest"], sampler="ddim", steps=4)
    by_index = gen.sample(3, seed=0, labels=np.array([0, 1, 1]), sampler="ddim", steps=4)
    assert_on_simplex(by_name, 3)
    assert np.array_equal(by_name, by_index)
    one_label = gen.sample(3, seed=0, labels="forest", sampler="ddim", steps=4)
    assert np.array_equal(one_label[1:], by_name[1:])
    unconditional = gen.sample(3, seed=0, sampler="ddim", steps=4)
    assert_on_simplex(unconditional, 3)
    assert not np.allclose(unconditional, by_name)


def test_last_nfe_counts_network_evaluations(trained):
    gen = trained["ddpm"]
    gen.sample(2, seed=0, sampler="dpm++", steps=7)
    assert gen.last_nfe == 7
    gen.sample(2, seed=0, labels="water", sampler="dpm++", steps=7)
    assert gen.last_nfe == 14
    gen.sample(2, seed=0, labels="water", sampler="ddim", steps=5, guidance_scale=1.0)
    assert gen.last_nfe == 5
    gen.sample(1, seed=0, labels="water")                       # ancestral over all T steps
    assert gen.last_nfe == 2 * T
    trained["ddpm-uncond"].sample(1, seed=0, sampler="ddim")    # default fast-sampler steps
    assert trained["ddpm-uncond"].last_nfe == 20


def test_guidance_scale_changes_conditional_samples(trained):
    gen = trained["ddpm"]
    weak = gen.sample(2, seed=0, labels="water", sampler="ddim", steps=4, guidance_scale=1.0)
    strong = gen.sample(2, seed=0, labels="water", sampler="ddim", steps=4, guidance_scale=4.0)
    assert not np.allclose(weak, strong)


def test_ddim_and_dpm_solver_agree_at_many_steps(trained):
    """Both integrate the same probability-flow ODE with the same clipping of x̂0: at T steps they nearly agree."""
    gen = trained["ddpm-uncond"]
    ddim = gen.sample(2, seed=3, sampler="ddim", steps=T)
    dpm = gen.sample(2, seed=3, sampler="dpm++", steps=T)
    ancestral = gen.sample(2, seed=3, sampler="ddpm")
    assert np.abs(ddim - dpm).mean() < 0.05 * np.abs(ddim - ancestral).mean()


def test_ddpm_samples_other_sizes_that_the_unet_can_take(trained):
    assert_on_simplex(trained["ddpm"].sample(1, size=(6, 10), sampler="ddim", steps=3), 1, size=(6, 10))


# ---------------------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("name", ["ddpm", "vae", "gan", "ddpm-uncond"])
def test_save_load_gives_identical_samples(trained, tmp_path, name):
    gen = trained[name]
    options = {"sampler": "dpm++", "steps": 5} if name.startswith("ddpm") else {}
    labels = None if name == "ddpm-uncond" else ["forest", "water"]
    folder = gen.save(tmp_path / "model")
    back = load_generator(folder)
    assert type(back) is type(gen)
    assert (back.name, back.k, back.size, back.classes, back.config) == (gen.name, gen.k, gen.size, gen.classes,
                                                                         gen.config)
    assert np.array_equal(back.sample(2, seed=9, labels=labels, **options),
                          gen.sample(2, seed=9, labels=labels, **options))


def test_config_rebuilds_the_model():
    gen = build("ddpm", CLASSES, constraint="hud", attention=True)
    assert gen.config["constraint"] == "hud" and gen.config["block_out_channels"] == [8, 16]
    twin = make_generator(gen.name, gen.k, gen.size, gen.classes, **gen.config)
    for a, b in zip(gen.unet.state_dict().values(), twin.unet.state_dict().values()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- bad input
def raises(match: str):
    return pytest.raises(UBFInputError, match=match)


def test_bad_sampling_requests(trained):
    ddpm, vae, gan = trained["ddpm"], trained["vae"], trained["gan"]
    with raises("n \\(number of samples\\) must be a positive integer"):
        ddpm.sample(0)
    with raises("must be a positive integer"):
        vae.sample(-2)
    with raises("not a multiple of 2"):
        ddpm.sample(1, size=(9, 8))
    with raises("produces 8×8 maps only"):
        vae.sample(1, size=(16, 16))
    with raises("produces 8×8 maps only"):
        gan.sample(1, size=(4, 4))
    with raises("class 'desert' is not one the model was trained on"):
        ddpm.sample(1, labels="desert")
    with raises("class index 2 out of range"):
        gan.sample(1, labels=[2])
    with raises("3 labels given for 2 maps"):
        vae.sample(2, labels=["water"] * 3)
    with raises("labels given, but this model was built without classes"):
        trained["ddpm-uncond"].sample(1, labels="water")
    with raises("sampler must be one of"):
        ddpm.sample(1, sampler="euler")
    with raises("steps must be an integer in 1 … 50"):
        ddpm.sample(1, sampler="ddim", steps=51)
    with raises("unknown sampler option"):
        vae.sample(1, steps=3)


def test_bad_training_data():
    gen = build("ddpm")
    maps, _ = smooth_abundances(4)
    with raises("must be \\(N, k, H, W\\)"):
        gen.fit(maps[0], progress=False)
    with raises("not on the simplex"):
        gen.fit(maps * 1.5, progress=False)
    with raises("not on the simplex"):
        gen.fit(maps - 0.1, progress=False)
    with raises("k = 4 endmembers, the model k = 3"):
        gen.fit(np.full((2, 4, 8, 8), 0.25, np.float32), progress=False)
    with raises("built for 8×8"):
        gen.fit(np.full((2, 3, 16, 16), 1 / 3, np.float32), progress=False)
    with raises("labels given, but this model was built without classes"):
        gen.fit(maps, np.zeros(4, int), progress=False)
    with raises("give labels"):
        build("vae", CLASSES).fit(maps, progress=False)
    with raises("class 'desert' is not one"):
        build("gan", CLASSES).fit(maps, ["desert"] * 4, progress=False)


def test_bad_models(tmp_path):
    with raises("unknown generator 'flow'"):
        make_generator("flow", K, SIZE, None)
    with raises("unknown option"):
        make_generator("ddpm", K, SIZE, None, block_channels=(8, 16))
    with raises("constraint must be one of"):
        build("ddpm", constraint="clip")
    with raises("prediction_type must be one of"):
        build("ddpm", prediction_type="x0")
    with raises("beta_schedule must be one of"):
        build("ddpm", beta_schedule="cosine")
    with raises("not a multiple of 4"):
        make_generator("vae", K, (10, 10), None, **TINY_CONV)
    with raises("not a multiple of 2"):
        make_generator("ddpm", K, (7, 8), None, **TINY_DDPM)
    with raises("k \\(number of endmembers\\)"):
        make_generator("gan", 1, SIZE, None)
    with raises("generator.json missing"):
        load_generator(tmp_path)


def test_error_messages_are_one_line(trained):
    with pytest.raises(UBFInputError) as err:
        trained["ddpm"].sample(1, labels="desert")
    assert "\n" not in str(err.value) and str(err.value).startswith("ddpm generator.sample: ")
