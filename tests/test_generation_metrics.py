"""Set-level metrics for generated HSIs: hand-computed values, chunking, minimum sample sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.metrics.distribution import (block_diversity, frechet_distance, kernel_inception_distance,
                                         point_fidelity, precision_recall, sum_to_one_residual)


@pytest.fixture
def images() -> np.ndarray:
    """(n, C, H, W) positive reflectance with spatial structure (a different spectrum per pixel)."""
    rng = np.random.default_rng(0)
    return (0.05 + rng.random((3, 6, 8, 8))).astype(np.float32)


def _brute_mean_best_cosine(g: np.ndarray, r: np.ndarray) -> float:
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    return float(np.mean(np.max(g @ r.T, axis=1)))


# ---------------------------------------------------------------------------------------------------- point fidelity
def test_point_fidelity_is_one_for_identical_sets(images):
    assert point_fidelity(images, images) == pytest.approx(1.0, abs=1e-6)


def test_point_fidelity_ignores_scale(images):
    assert point_fidelity(3.0 * images, images) == pytest.approx(1.0, abs=1e-6)


def test_point_fidelity_of_orthogonal_spectra_is_zero():
    gen = np.zeros((2, 4, 3, 3), np.float32)
    real = np.zeros((5, 4, 2, 2), np.float32)
    gen[:, :2] = 1.0 + np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)   # bands 0, 1 only
    real[:, 2:] = 0.5                                                         # bands 2, 3 only
    assert point_fidelity(gen, real) == pytest.approx(0.0, abs=1e-7)


def test_point_fidelity_hand_computed_two_pixels():
    real = np.array([[1.0, 0.0], [0.0, 1.0]])
    gen = np.array([[3.0, 4.0], [1.0, 1.0]])          # best cosines: 4/5 (with (0,1)) and 1/√2
    expected = (0.8 + 1.0 / math.sqrt(2.0)) / 2.0
    assert point_fidelity(gen, real) == pytest.approx(expected, abs=1e-6)
    # the same pixels as images (n=1, C=2, H=1, W=2) give the same value
    as_images = lambda p: p.T.reshape(1, 2, 1, 2)     # noqa: E731
    assert point_fidelity(as_images(gen), as_images(real)) == pytest.approx(expected, abs=1e-6)


def test_point_fidelity_chunked_equals_brute_force():
    rng = np.random.default_rng(1)
    gen, real = rng.normal(size=(50, 5)), rng.normal(size=(37, 5))
    expected = _brute_mean_best_cosine(gen, real)
    for chunk in (1, 7, 36, 4096):
        assert point_fidelity(gen, real, chunk=chunk) == pytest.approx(expected, abs=1e-6)


def test_point_fidelity_rejects_bad_input(images):
    with pytest.raises(UBFInputError, match="point fidelity.*at least 1 pixel"):
        point_fidelity(np.zeros((0, 6)), images)
    with pytest.raises(UBFInputError, match="bands"):
        point_fidelity(images[:, :5], images)
    with pytest.raises(UBFInputError, match="chunk must be at least 1"):
        point_fidelity(images, images, chunk=0)
    with pytest.raises(UBFInputError, match="NaN"):
        point_fidelity(np.full((2, 6), np.nan), images)


# --------------------------------------------------------------------------------------------------- block diversity
def _shuffle_inside_blocks(x: np.ndarray, block: int, rng) -> np.ndarray:
    """The same pixels, each b×b tile's pixel positions permuted (spectra stay intact)."""
    out = x.copy()
    n, c, h, w = x.shape
    for i in range(n):
        for y in range(0, h, block):
            for xx in range(0, w, block):
                tile = out[i, :, y:y + block, xx:xx + block].reshape(c, -1)
                out[i, :, y:y + block, xx:xx + block] = tile[:, rng.permutation(block * block)].reshape(
                    c, block, block)
    return out


def test_block_diversity_is_one_for_identical_sets(images):
    assert block_diversity(images, images, block=4) == pytest.approx(1.0, abs=1e-6)


def test_block_diversity_falls_when_pixels_are_shuffled_inside_blocks(images):
    shuffled = _shuffle_inside_blocks(images, 4, np.random.default_rng(2))
    d_b = block_diversity(shuffled, images, block=4)
    assert d_b < 0.99
    # the pixel spectra are unchanged, so point fidelity does not notice
    assert point_fidelity(shuffled, images) == pytest.approx(1.0, abs=1e-6)


def test_block_diversity_with_one_pixel_blocks_is_point_fidelity(images):
    rng = np.random.default_rng(3)
    gen = rng.random((2, 6, 5, 5)).astype(np.float32)
    assert block_diversity(gen, images, block=1) == pytest.approx(point_fidelity(gen, images), abs=1e-6)


def test_block_diversity_chunked_equals_brute_force_and_drops_partial_blocks(images):
    rng = np.random.default_rng(4)
    gen = rng.random((2, 6, 9, 7)).astype(np.float32)           # 9×7 → 2×1 whole 4×4 blocks per image

    def blocks(x):
        return np.stack([x[i, :, y:y + 4, xx:xx + 4].ravel() for i in range(len(x))
                         for y in range(0, x.shape[2] - 3, 4) for xx in range(0, x.shape[3] - 3, 4)])

    expected = _brute_mean_best_cosine(blocks(gen).astype(np.float64), blocks(images).astype(np.float64))
    for chunk in (1, 3, 4096):
        assert block_diversity(gen, images, block=4, chunk=chunk) == pytest.approx(expected, abs=1e-6)


def test_block_diversity_needs_one_block(images):
    with pytest.raises(UBFInputError, match="block diversity.*at least 1 image of at least 16×16"):
        block_diversity(images, images, block=16)
    with pytest.raises(UBFInputError, match="images"):
        block_diversity(images[:, :, 0, 0], images)


# --------------------------------------------------------------------------------------------------- Fréchet distance
def test_frechet_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(5).normal(size=(200, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_of_a_shifted_set_is_the_squared_shift():
    feats = np.random.default_rng(6).normal(size=(200, 8))
    shift = np.arange(8) * 0.25
    assert frechet_distance(feats, feats + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_matches_the_closed_form_for_1d_gaussians():
    rng = np.random.default_rng(7)
    a, b = rng.normal(1.0, 2.0, size=(300, 1)), rng.normal(-0.5, 0.5, size=(400, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_minimum_samples():
    with pytest.raises(UBFInputError, match="Fréchet distance: needs at least 2 samples per set"):
        frechet_distance(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.warns(RuntimeWarning, match="fewer than d \\+ 1"):
        frechet_distance(np.random.default_rng(8).normal(size=(3, 4)), np.random.default_rng(9).normal(size=(3, 4)))
    with pytest.raises(UBFInputError, match="different dimensions"):
        frechet_distance(np.ones((5, 3)), np.ones((5, 2)))


# ------------------------------------------------------------------------------------------------------------ KID
def test_kid_is_near_zero_for_one_distribution_and_larger_for_another():
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    c = rng.normal(0.7, 1.0, size=(400, 6))
    same_mean, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=200, seed=0)
    diff_mean, _ = kernel_inception_distance(a, c, subsets=20, subset_size=200, seed=0)
    assert abs(same_mean) < 0.05
    assert same_std >= 0.0
    assert diff_mean > 0.5
    assert diff_mean > 10 * abs(same_mean)


def test_kid_is_seeded_and_hand_checked_on_two_points():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(60, 3))
    assert kernel_inception_distance(a, b, 5, 20, seed=3) == kernel_inception_distance(a, b, 5, 20, seed=3)
    # m = 2 samples, d = 1: x = (0, 1), y = (2, 3); k(u, v) = (u·v + 1)³
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    k = lambda u, v: (u * v + 1.0) ** 3                             # noqa: E731
    expected = k(0, 1) + k(2, 3) - 2.0 * np.mean([k(0, 2), k(0, 3), k(1, 2), k(1, 3)])
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=10)
    assert mean == pytest.approx(expected) and std == pytest.approx(0.0)


def test_kid_minimum_samples():
    with pytest.raises(UBFInputError, match="kernel inception distance: needs at least 2 samples"):
        kernel_inception_distance(np.ones((1, 3)), np.ones((4, 3)))


# ------------------------------------------------------------------------------------------- precision and recall
def test_precision_recall_identical_sets_are_one():
    feats = np.random.default_rng(12).normal(size=(60, 4))
    assert precision_recall(feats, feats, k=3) == (1.0, 1.0)


def test_precision_recall_far_away_generated_set_is_zero():
    real = np.random.default_rng(13).normal(size=(60, 4))
    assert precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_hand_computed_on_a_line():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])      # k = 1: every real ball has radius 1
    gen = np.array([[2.9], [3.5], [10.0], [10.5]])     # 2.9, 3.5 inside B(3, 1); 10, 10.5 outside
    precision, recall = precision_recall(real, gen, k=1)
    assert precision == pytest.approx(0.5)
    # generated radii: 0.6 (2.9), 0.6 (3.5), 0.5 (10), 0.5 (10.5); only real 3 lies within 0.6 of 2.9
    assert recall == pytest.approx(0.25)


def test_precision_recall_chunked_equals_unchunked():
    rng = np.random.default_rng(14)
    real, gen = rng.normal(size=(41, 3)), rng.normal(0.5, 1.2, size=(29, 3))
    full = precision_recall(real, gen, k=3, chunk=4096)
    assert 0.0 < full[0] < 1.0 and 0.0 < full[1] < 1.0
    for chunk in (1, 5, 28):
        assert precision_recall(real, gen, k=3, chunk=chunk) == full


def test_precision_recall_minimum_samples():
    with pytest.raises(UBFInputError, match="precision/recall: needs at least 4 samples per set"):
        precision_recall(np.ones((3, 2)), np.ones((10, 2)), k=3)
    with pytest.raises(UBFInputError, match="k must be at least 1"):
        precision_recall(np.ones((3, 2)), np.ones((10, 2)), k=0)


# ------------------------------------------------------------------------------------------------ sum-to-one residual
def test_sum_to_one_residual_valid_and_hand_computed():
    rng = np.random.default_rng(15)
    a = rng.random((2, 3, 4, 4))
    a /= a.sum(axis=1, keepdims=True)
    valid = sum_to_one_residual(a)
    assert valid["max_abs_residual"] < 1e-12 and valid["mean_abs_residual"] < 1e-12 and valid["min_value"] >= 0
    b = np.zeros((3, 1, 2))                            # (k, H, W): two pixels
    b[:, 0, 0] = [0.5, 0.5, 0.2]                       # sums to 1.2 → residual 0.2
    b[:, 0, 1] = [1.0, 0.1, -0.2]                      # sums to 0.9 → residual 0.1, one negative value
    r = sum_to_one_residual(b)
    assert r["max_abs_residual"] == pytest.approx(0.2)
    assert r["mean_abs_residual"] == pytest.approx(0.15)
    assert r["min_value"] == pytest.approx(-0.2)


def test_sum_to_one_residual_rejects_bad_shapes():
    with pytest.raises(UBFInputError, match="sum-to-one residual"):
        sum_to_one_residual(np.ones((3, 4)))


def test_abundance_histograms_are_distributions_and_their_distance_is_bounded():
    from ubf_core.metrics.distribution import abundance_histogram_distance, abundance_histograms

    rng = np.random.default_rng(5)
    a = rng.dirichlet(np.ones(4), size=(6, 8, 8)).transpose(0, 3, 1, 2)  # (N, k, H, W) on the simplex
    h = abundance_histograms(a, bins=10)
    assert h.shape == (4, 10)
    np.testing.assert_allclose(h.sum(axis=1), 1.0)
    assert abundance_histogram_distance(a, a) == 0.0
    # a different number and size of patches with the same distribution stays close; disjoint values give 1
    b = rng.dirichlet(np.ones(4), size=(20, 5, 5)).transpose(0, 3, 1, 2)
    assert abundance_histogram_distance(a, b) < 0.15
    pure = np.zeros((2, 4, 3, 3))
    pure[:, 0] = 1.0
    half = np.full((2, 4, 3, 3), 0.25)
    assert abundance_histogram_distance(pure, half) == pytest.approx(1.0)
    with pytest.raises(UBFInputError, match="k = 4 and k = 3"):
        abundance_histogram_distance(a, a[:, :3])
