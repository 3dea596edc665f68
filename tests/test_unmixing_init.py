"""Endmember initialisation that cannot collapse onto dark or duplicate pixels (unmixing.init_endmembers:
vca_normalized, ubf_core/unmixing/baseline.py vca_normalized), against plain VCA on a black-background scene."""

from __future__ import annotations

import numpy as np
import pytest

from ubf_core.config import load_params
from ubf_core.errors import UBFInputError
from ubf_core.unmixing.baseline import NormalizedVCA, vca, vca_normalized
from ubf_core.unmixing.experiment import UnmixingSettings, initial_endmembers

from tests.conftest import REPO_ROOT

RULE = NormalizedVCA(min_brightness=0.1, min_angle_deg=5.0, bright_fraction=0.1)
WL = np.linspace(400, 700, 31)


def materials() -> np.ndarray:
    """Three distinct reflectance spectra (31, 3), 400-700 nm."""
    return np.stack([0.1 + 0.7 / (1 + np.exp(-(WL - 600) / 15)),          # red
                     0.08 + 0.5 * np.exp(-0.5 * ((WL - 540) / 30) ** 2),   # green
                     0.6 - 0.4 * (WL - 400) / 300], axis=1)                # blue-white


def black_background_scene(seed: int, pixels: int = 6000, dark: float = 0.6, noise: float = 0.002):
    """(C, P) pixels: ``dark`` share black background (noise only), the rest shaded mixtures of three materials,
    a few of them pure and fully lit; returns (Y, M)."""
    rng = np.random.default_rng(seed)
    M = materials()
    n = int(pixels * (1 - dark))
    a = rng.dirichlet(np.full(3, 0.3), size=n).T
    shade = rng.uniform(0.3, 1.0, size=n)
    a[:, :30], shade[:30] = np.eye(3)[:, np.arange(30) % 3], 1.0
    Y = np.zeros((len(WL), pixels))
    Y[:, :n] = M @ a * shade
    Y = np.maximum(Y + noise * rng.standard_normal(Y.shape), 0.0)
    return Y[:, rng.permutation(pixels)], M


def angles_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    a = A / np.linalg.norm(A, axis=0)
    b = B / np.linalg.norm(B, axis=0)
    return np.degrees(np.arccos(np.clip(a.T @ b, -1, 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_black_background_plain_vca_picks_dark_pixels_normalized_does_not(seed):
    Y, M = black_background_scene(seed)
    p99 = np.quantile(Y.sum(axis=0), 0.99)
    E_plain, _ = vca(Y, 3, seed=seed)
    assert E_plain.sum(axis=0).min() < 0.05 * p99           # the failure: a near-black pixel as an endmember
    E, idx = vca_normalized(Y, 3, RULE, seed=seed)
    ang = angles_deg(E, M)                                  # (chosen, true)
    match = ang.argmin(axis=1)
    assert sorted(match) == [0, 1, 2]                       # one endmember per material
    assert ang.min(axis=1).max() < 2.0                      # each within 2 degrees of its material
    assert np.all(E.sum(axis=0) > 0.3 * p99)                # none is dark
    # at full brightness: the mean of the brightest pixels of its shape, close to the pure material
    np.testing.assert_allclose(E.sum(axis=0), M[:, match].sum(axis=0), rtol=0.1)
    assert np.all(Y[:, idx].sum(axis=0) >= RULE.min_brightness * p99)   # grown from bright candidates


def test_distinct_endmembers_even_when_one_material_dominates():
    rng = np.random.default_rng(5)
    M = materials()
    a = np.zeros((3, 4000))
    a[0, :3600] = 1.0                                       # 90 % pure red, at many brightness levels
    a[:, 3600:] = rng.dirichlet(np.ones(3), size=400).T
    Y = M @ a * rng.uniform(0.2, 1.0, size=4000) + 0.01 * rng.standard_normal((31, 4000))
    Y = np.maximum(Y, 0)
    E, _ = vca_normalized(Y, 4, RULE, seed=0)
    ang = angles_deg(E, E)
    np.fill_diagonal(ang, 90)
    assert ang.min() >= RULE.min_angle_deg


def test_too_few_bright_or_distinct_pixels_are_errors_naming_the_param():
    M = materials()[:, :2]
    Y = np.repeat(M, 200, axis=1) * np.linspace(0.5, 1, 400)          # two shapes only, no mixtures, no noise
    with pytest.raises(UBFInputError, match=r"only 2 spectral shapes .*unmixing.init_normalized.min_angle_deg"):
        vca_normalized(Y, 3, RULE)
    dark = np.zeros((31, 100))
    dark[:, :2] = M
    with pytest.raises(UBFInputError, match="min_brightness"):
        vca_normalized(dark, 3, RULE)
    with pytest.raises(UBFInputError, match="no positive brightness"):
        vca_normalized(np.zeros((31, 50)), 2, RULE)


def test_settings_and_the_decoder_start():
    u = dict(load_params(REPO_ROOT / "params.yaml")["unmixing"])
    s = UnmixingSettings.from_params(u)
    assert s.init_endmembers == "vca" and s.init_normalized == NormalizedVCA(**u["init_normalized"])
    Y, M = black_background_scene(0, pixels=2048)
    patches = np.moveaxis(Y.reshape(31, 2, 32, 32), 1, 0)              # (N, C, H, W)
    E_vca = vca(Y, 3, seed=0)[0]
    s3 = UnmixingSettings.from_params({**u, "k": 3})
    assert initial_endmembers(patches, s3, 0, E_vca) is E_vca          # default: the VCA+FCLS baseline's, unchanged
    assert initial_endmembers(patches, UnmixingSettings.from_params({**u, "k": 3, "init_endmembers": "random"}),
                              0, E_vca) is None
    E = initial_endmembers(patches, UnmixingSettings.from_params({**u, "k": 3, "init_endmembers": "vca_normalized"}),
                           0, E_vca)
    assert E.shape == (31, 3) and angles_deg(E, M).min(axis=1).max() < 3.0
    with pytest.raises(UBFInputError, match="needs the unmixing.init_normalized section"):
        UnmixingSettings.from_params({k: v for k, v in {**u, "init_endmembers": "vca_normalized"}.items()
                                      if k != "init_normalized"})
    with pytest.raises(UBFInputError, match="unmixing.init_normalized.min_angle_deg"):
        UnmixingSettings.from_params({**u, "init_normalized": {**u["init_normalized"], "min_angle_deg": 0}})
    with pytest.raises(UBFInputError, match="unmixing.init_normalized needs"):
        UnmixingSettings.from_params({**u, "init_normalized": {"min_brightness": 0.1}})
    with pytest.raises(UBFInputError, match="use vca, vca_normalized or random"):
        UnmixingSettings.from_params({**u, "init_endmembers": "nfindr"})
