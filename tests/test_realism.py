"""Realism metrics must fail: known-bad synthetic sets (shuffled pixels, blurred maps, a pixel-wise baseline,
copies of the training set, wrong classes) score clearly worse than a second real set of the same size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ubf_core.errors import UBFInputError
from ubf_core.evaluation.realism import (c2st, class_fidelity, classification_accuracy, fit_map_classifier,
                                         gradient_magnitude_distance, memorisation, power_spectrum_distance,
                                         purity_histogram_distance, radial_power_spectrum, realism_report)

K, SIZE, N = 5, 32, 96
C2ST_N, C2ST_EPOCHS, C2ST_WIDTH = 64, 20, 16


# ------------------------------------------------------------------------------------------------ synthetic data
def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def scene_maps(n: int, seed: int, k: int = K, size: int = SIZE) -> np.ndarray:
    """"Real" abundance maps (n, k, size, size) with spatial structure: a smooth random field per endmember plus
    sharp rectangles (roofs, fields) and one straight stripe (a runway), through a softmax at low temperature so
    many pixels are (nearly) pure."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(n, k, size, size)), sigma=(0, 0, 2, 2))
    field /= field.std(axis=(2, 3), keepdims=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for _ in range(rng.integers(1, 4)):                       # rectangles
            h, w = rng.integers(4, 12, size=2)
            y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
            field[i, rng.integers(k), y0:y0 + h, x0:x0 + w] += 4.0
        angle = rng.uniform(0, np.pi)                              # runway stripe through a random point
        cy, cx = rng.uniform(8, size - 8, size=2)
        dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        field[i, rng.integers(k)] += 5.0 * (dist < rng.uniform(1.0, 2.5))
    return _softmax(field, temperature=0.5)


def shuffled(maps: np.ndarray, seed: int = 10) -> np.ndarray:
    """Pixels permuted within each map (the same permutation for all channels)."""
    rng = np.random.default_rng(seed)
    n, c, h, w = maps.shape
    flat = maps.reshape(n, c, h * w)
    return np.stack([m[:, rng.permutation(h * w)] for m in flat]).reshape(maps.shape)


def blurred(maps: np.ndarray) -> np.ndarray:
    """Gaussian blur (sigma 2 pixels) per channel; a linear filter, so the maps stay on the simplex."""
    return gaussian_filter(maps, sigma=(0, 0, 2, 2), mode="reflect").astype(np.float32)


def pixel_pool(maps: np.ndarray, seed: int = 11) -> np.ndarray:
    """Pixel-wise baseline: every pixel drawn independently from the pool of real pixels (pixels shuffled across
    all maps), so the pixel distribution is right and the spatial structure gone."""
    rng = np.random.default_rng(seed)
    n, c, h, w = maps.shape
    pixels = np.moveaxis(maps, 1, -1).reshape(-1, c)
    pixels = pixels[rng.permutation(len(pixels))]
    return np.moveaxis(pixels.reshape(n, h, w, c), -1, 1).copy()


def class_maps(cls: str, n: int, seed: int, k: int = 3, size: int = 32) -> np.ndarray:
    """Abundance maps (n, k, size, size) of one structural class, endmember 0 on endmember 1 (the others faint):
    "stripes" (periodic bands at a random angle), "blobs" (a thresholded smooth random field) or "checker" (a
    checkerboard of random block size and phase). About half of each map is endmember 0 in every class, so only the
    spatial structure tells the classes apart."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.empty((n, k, size, size))
    for i in range(n):
        logits = 0.3 * rng.normal(size=(k, size, size))
        a, b = 0, 1                                  # same endmembers in every class: only the structure differs
        if cls == "stripes":
            angle, period = rng.uniform(0, np.pi), rng.uniform(6, 10)
            on = np.sin(2 * np.pi * (yy * np.cos(angle) + xx * np.sin(angle)) / period + rng.uniform(0, 6.3)) > 0
        elif cls == "blobs":
            on = gaussian_filter(rng.normal(size=(size, size)), sigma=4) > 0
        elif cls == "checker":
            block = rng.integers(4, 9)
            oy, ox = rng.integers(0, block, size=2)
            on = (((yy + oy) // block + (xx + ox) // block) % 2) > 0
        else:
            raise ValueError(cls)
        logits[a] += 3.0 * on
        logits[b] += 3.0 * ~on
        out[i] = logits
    return _softmax(out, temperature=0.7)


CLASSES = ("stripes", "blobs", "checker")


def labelled(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    maps = np.concatenate([class_maps(c, n_per_class, seed + 100 * j) for j, c in enumerate(CLASSES)])
    labels = np.repeat(np.array(CLASSES), n_per_class)
    return maps, labels


@pytest.fixture(scope="module")
def sets() -> dict[str, np.ndarray]:
    """Three disjoint real sets (different seeds) and the negative cases built from the first."""
    real_a, real_b, real_c = scene_maps(N, 1), scene_maps(N, 2), scene_maps(N, 3)
    return {"real_a": real_a, "real_b": real_b, "real_c": real_c, "shuffled": shuffled(real_b),
            "blurred": blurred(real_b), "pixel_pool": pixel_pool(real_b)}


@pytest.fixture(scope="module")
def c2st_results(sets) -> dict[str, dict]:
    """C2ST of real_a against real_b and against each negative case (small: 64 maps per side)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: c2st(sets["real_a"][:C2ST_N], sets[name][:C2ST_N], seed=0, epochs=C2ST_EPOCHS,
                           width=C2ST_WIDTH)
                for name in ("real_b", "shuffled", "blurred", "pixel_pool")}
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------ sanity of the data
def test_test_data_are_abundances_with_pure_pixels(sets):
    for name in ("real_a", "blurred", "shuffled", "pixel_pool"):
        x = sets[name]
        assert x.min() >= 0.0 and np.allclose(x.sum(axis=1), 1.0, atol=1e-5), name
    assert (sets["real_a"].max(axis=1) > 0.95).mean() > 0.2          # many (nearly) pure pixels


# ------------------------------------------------------------------------------------------------ C2ST
def test_c2st_real_vs_real_is_near_chance(c2st_results):
    res = c2st_results["real_b"]
    assert res["n_per_side"] == C2ST_N
    assert abs(res["accuracy"] - 0.5) <= max(3 * res["stderr"], 0.12), res


@pytest.mark.parametrize("case", ["shuffled", "blurred", "pixel_pool"])
def test_c2st_flags_bad_cases(c2st_results, case):
    assert c2st_results[case]["accuracy"] >= 0.8, (case, c2st_results[case])


def test_c2st_is_deterministic_and_uses_a_subset(sets, one_torch_thread):
    kw = dict(seed=3, epochs=3, width=8)
    first = c2st(sets["real_a"][:40], sets["blurred"][:30], **kw)
    second = c2st(sets["real_a"][:40], sets["blurred"][:30], **kw)
    assert first == second
    assert first["n_per_side"] == 30


def test_c2st_takes_hsi_cubes(one_torch_thread):
    rng = np.random.default_rng(5)
    endmembers = rng.uniform(0.05, 0.6, size=(59, K)).astype(np.float32)
    cube = lambda a: np.einsum("bk,nkhw->nbhw", endmembers, a)          # noqa: E731
    real, synthetic = cube(scene_maps(24, 7, size=16)), cube(blurred(scene_maps(24, 8, size=16)))
    res = c2st(real, synthetic, seed=0, epochs=2, width=8)
    assert res["n_per_side"] == 24 and 0.0 <= res["accuracy"] <= 1.0


# ------------------------------------------------------------------------------------------------ spatial statistics
def test_radial_power_spectrum_of_white_noise_is_flat():
    rng = np.random.default_rng(0)
    p = radial_power_spectrum(rng.normal(size=(100, 2, 32, 32)))
    assert p.shape == (16,)
    assert np.allclose(p, 1.0, rtol=0.15)                             # unit variance → unit power per cell


def test_radial_power_spectrum_finds_a_sinusoid():
    x = np.sin(2 * np.pi * 5 * np.arange(32) / 32)[None, None, None, :].repeat(32, axis=2)
    assert int(np.argmax(radial_power_spectrum(x))) + 1 == 5


def test_spatial_distances_flag_shuffled_and_blurred(sets):
    real, ref = sets["real_a"], sets["real_b"]
    psd_floor = power_spectrum_distance(real, ref)
    grad_floor = gradient_magnitude_distance(real, ref)
    assert psd_floor < 0.05 and grad_floor < 0.01, (psd_floor, grad_floor)     # two real sets: small distances
    for case in ("shuffled", "blurred"):
        assert power_spectrum_distance(real, sets[case]) >= 3 * psd_floor, case
        assert gradient_magnitude_distance(real, sets[case]) >= 3 * grad_floor, case
    assert power_spectrum_distance(real, real) == 0.0
    assert gradient_magnitude_distance(real, real) == 0.0


def test_gradient_distance_subsampling_is_seeded(sets):
    a, b = sets["real_a"], sets["blurred"]
    d1 = gradient_magnitude_distance(a, b, max_values=5000, seed=4)
    assert d1 == gradient_magnitude_distance(a, b, max_values=5000, seed=4)
    assert d1 == pytest.approx(gradient_magnitude_distance(a, b), rel=0.2)


def test_purity_distance_flags_blurred(sets):
    real = sets["real_a"]
    floor = purity_histogram_distance(real, sets["real_b"])
    assert floor < 0.1
    assert purity_histogram_distance(real, sets["blurred"]) >= 3 * floor
    # shuffling pixels keeps every pixel, so purity cannot see it (that is what the spatial metrics are for)
    assert purity_histogram_distance(sets["real_b"], sets["shuffled"]) == pytest.approx(0.0, abs=1e-12)


def test_purity_rejects_non_abundances(sets):
    with pytest.raises(UBFInputError, match="not abundances"):
        purity_histogram_distance(sets["real_a"], 3.0 * sets["real_b"])


# ------------------------------------------------------------------------------------------------ memorisation
def test_memorisation_flags_copies(sets):
    training, held_out = sets["real_a"], sets["real_b"]
    rng = np.random.default_rng(0)
    copies = training[rng.choice(len(training), 50)] + rng.normal(0, 1e-4, size=(50, K, SIZE, SIZE))
    res = memorisation(training, copies.astype(np.float32), held_out, chunk=16)
    assert res["nn_ratio"] < 0.1 and res["copy_share"] > 0.9, res


def test_memorisation_of_new_real_maps_is_near_one(sets):
    res = memorisation(sets["real_a"], sets["real_c"], sets["real_b"], chunk=16)
    assert res["nn_ratio"] > 0.7 and res["copy_share"] < 0.1, res
    unchunked = memorisation(sets["real_a"], sets["real_c"], sets["real_b"], chunk=1000)
    assert res == pytest.approx(unchunked, rel=1e-12)


# ------------------------------------------------------------------------------------------------ class fidelity
def test_class_fidelity(one_torch_thread):
    train_x, train_y = labelled(24, seed=1)
    test_x, test_y = labelled(20, seed=2)
    syn_x, syn_y = labelled(20, seed=3)
    wrong_y = np.array([CLASSES[(CLASSES.index(c) + 1) % 3] for c in syn_y])     # labels permuted
    kw = dict(seed=0, epochs=30, width=8, batch_size=16, lr=5e-3)
    res = class_fidelity(train_x, train_y, test_x, test_y, syn_x, syn_y, **kw)
    assert res["real_floor"] >= 0.9 and res["cas"] >= 0.9 and res["tstr"] >= 0.75, res
    assert res["chance"] == pytest.approx(1 / 3) and set(res["cas_per_class"]) == set(CLASSES)
    clf = fit_map_classifier(train_x, train_y, res["classes"], **kw)     # the same classifier as inside
    wrong = classification_accuracy(clf, syn_x, wrong_y)
    assert wrong["accuracy"] <= 0.2 and wrong["n"] == len(syn_x), wrong
    assert classification_accuracy(clf, syn_x, syn_y)["accuracy"] == pytest.approx(res["cas"])
    with pytest.raises(UBFInputError, match="'roofs'.*stripes"):
        classification_accuracy(clf, syn_x[:2], ["stripes", "roofs"])


# ------------------------------------------------------------------------------------------------ report
def test_realism_report_keys(sets, one_torch_thread):
    rep = realism_report(sets["real_b"][:24], sets["blurred"][:24], training=sets["real_a"], c2st_epochs=1)
    assert set(rep) == {"c2st", "c2st_stderr", "psd_distance", "gradient_distance", "purity_distance",
                        "nn_ratio", "copy_share"}
    cubes = realism_report(2.0 * sets["real_b"][:24], 2.0 * sets["blurred"][:24], c2st_epochs=1)
    assert "purity_distance" not in cubes and "nn_ratio" not in cubes


# ------------------------------------------------------------------------------------------------ bad inputs
def _one_line_error(call, *needles):
    with pytest.raises(UBFInputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_bad_inputs_are_named(sets):
    a = sets["real_a"][:24]
    other_k = scene_maps(24, 9, k=4)
    other_size = scene_maps(24, 9, size=16)
    for metric in (c2st, power_spectrum_distance, gradient_magnitude_distance, purity_histogram_distance):
        _one_line_error(lambda: metric(a, other_k), "synthetic maps have c = 4", "real maps c = 5")
        _one_line_error(lambda: metric(a, other_size), "16×16", "32×32")
        nan = a.copy()
        nan[0, 0, 0, 0] = np.nan
        _one_line_error(lambda: metric(a, nan), "NaN")
        _one_line_error(lambda: metric(a[0], a), "(n, c, H, W)")
    _one_line_error(lambda: c2st(a[:10], a), "C2ST", "at least 20 maps", "has 10")
    _one_line_error(lambda: power_spectrum_distance(a, a[:1]), "at least 2 maps")
    _one_line_error(lambda: memorisation(a, other_k, a), "memorisation", "c = 4")
    _one_line_error(lambda: memorisation(a, a, a[:1]), "at least 2 maps")


def test_negative_controls_keep_shape_simplex_and_values():
    from ubf_core.evaluation.realism import negative_controls

    rng = np.random.default_rng(3)
    a = rng.random((4, 3, 8, 8)).astype(np.float32)
    a /= a.sum(axis=1, keepdims=True)
    c = negative_controls(a, seed=0)
    assert set(c) == {"pixels shuffled", "blurred", "copies"}
    for m in c.values():
        assert m.shape == a.shape and np.allclose(m.sum(axis=1), 1.0, atol=1e-5) and m.min() >= 0
    np.testing.assert_allclose(np.sort(c["pixels shuffled"].reshape(4, 3, -1), axis=-1),
                               np.sort(a.reshape(4, 3, -1), axis=-1))      # same values, other places
    assert not np.array_equal(c["pixels shuffled"], a) and np.array_equal(c["copies"], a)
    assert c["blurred"].std() < a.std()
