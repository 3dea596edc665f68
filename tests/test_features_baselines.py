"""The in-project feature network and the pixel-wise GMM baseline: training, determinism, saving, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from ubf_core.generators.pixel_gmm import PixelGMM
from ubf_core.errors import UBFInputError
from ubf_core.metrics.features import (CONFIG_FILE, WEIGHTS_FILE, FeatureNet, embed, load_feature_net, save_feature_net,
                               train_feature_net)


def _separable_set(n_per_class: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two sources told apart by their spectra: class 0 bright in bands 0-3, class 1 bright in bands 4-7."""
    rng = np.random.default_rng(seed)
    x = 0.2 + 0.1 * rng.random((2 * n_per_class, 8, 8, 8))
    x[:n_per_class, :4] += 0.3
    x[n_per_class:, 4:] += 0.3
    y = np.repeat([0, 1], n_per_class)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    x, y = _separable_set()
    history = []
    net = train_feature_net(x, y, epochs=12, batch_size=8, lr=3e-3, seed=0, dim=16, width=8,
                            progress=lambda epoch, rec: history.append(rec))
    return net, x, y, history


def test_feature_net_training_lowers_the_loss_and_learns_the_classes(trained):
    net, x, y, history = trained
    assert len(history) == 12
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    import torch

    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    assert accuracy > 0.9                              # chance is 0.5


def test_embed_shape_and_batch_size_independence(trained):
    net, x, _, _ = trained
    feats = embed(net, x, batch_size=5)
    assert feats.shape == (len(x), 16) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, embed(net, x, batch_size=64), atol=1e-5)


def test_training_is_deterministic_given_the_seed(trained):
    net, x, y, _ = trained
    again = train_feature_net(x, y, epochs=12, batch_size=8, lr=3e-3, seed=0, dim=16, width=8)
    np.testing.assert_array_equal(embed(net, x), embed(again, x))


def test_save_load_round_trip_gives_identical_embeddings(trained, tmp_path):
    net, x, _, _ = trained
    folder = save_feature_net(net, tmp_path / "features")
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])   # no temp files left
    loaded = load_feature_net(folder)
    assert isinstance(loaded, FeatureNet) and loaded.config == net.config
    np.testing.assert_array_equal(embed(loaded, x), embed(net, x))


def test_feature_net_errors(trained, tmp_path):
    net, x, y, _ = trained
    with pytest.raises(UBFInputError, match="2 distinct"):
        train_feature_net(x, np.zeros(len(x), dtype=int), epochs=1)
    with pytest.raises(UBFInputError, match="labels must be"):
        train_feature_net(x, y[:-1], epochs=1)
    with pytest.raises(UBFInputError, match="bands but the network takes 8"):
        embed(net, x[:, :5])
    with pytest.raises(UBFInputError, match="H, W ≥ 4"):
        embed(net, x[:, :, :2, :2])
    with pytest.raises(UBFInputError, match="not a saved feature net"):
        load_feature_net(tmp_path)


# --------------------------------------------------------------------------------------------------- GMM baseline
@pytest.fixture(scope="module")
def real_hsi() -> np.ndarray:
    """Pixels from two spectral populations (a two-component mixture), (n, C, H, W) float32."""
    rng = np.random.default_rng(20)
    x = 0.3 + 0.02 * rng.standard_normal((6, 5, 10, 10))
    x[:3, :2] += 0.4
    return x.astype(np.float32)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_pixel_gmm_samples_shape_dtype_seed_and_mean(real_hsi, covariance):
    gmm = PixelGMM(n_components=2, covariance_type=covariance, seed=0).fit(real_hsi)
    cubes = gmm.sample(4, 12, seed=1)
    assert cubes.shape == (4, 5, 12, 12) and cubes.dtype == np.float32
    assert (cubes >= 0).all()
    np.testing.assert_array_equal(cubes, gmm.sample(4, 12, seed=1))
    assert not np.array_equal(cubes, gmm.sample(4, 12, seed=2))
    np.testing.assert_allclose(cubes.mean(axis=(0, 2, 3)), real_hsi.mean(axis=(0, 2, 3)), atol=0.03)


def test_pixel_gmm_subsampling_is_seeded(real_hsi):
    a = PixelGMM(n_components=2, max_pixels=150, seed=5).fit(real_hsi).sample(1, 4, seed=0)
    b = PixelGMM(n_components=2, max_pixels=150, seed=5).fit(real_hsi).sample(1, 4, seed=0)
    np.testing.assert_array_equal(a, b)


def test_pixel_gmm_errors(real_hsi):
    with pytest.raises(UBFInputError, match="not fitted"):
        PixelGMM().sample(1, 4)
    with pytest.raises(UBFInputError, match="covariance_type"):
        PixelGMM(covariance_type="tied")
    with pytest.raises(UBFInputError, match="needs at least 8 pixels"):
        PixelGMM(n_components=8).fit(real_hsi[:1, :, :2, :2])
