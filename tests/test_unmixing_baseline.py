"""Classical unmixing baseline: VCA + FCLS on synthetic mixtures, simplex projection, and Samson when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.unmixing.baseline import fcls, project_to_simplex, vca, vca_fcls

SAMSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsi" / "samson.mat"


def _angles_deg(E_true: np.ndarray, E_found: np.ndarray) -> np.ndarray:
    """(k_true, k_found) spectral angles in degrees between columns."""
    a = E_true / np.linalg.norm(E_true, axis=0, keepdims=True)
    b = E_found / np.linalg.norm(E_found, axis=0, keepdims=True)
    return np.degrees(np.arccos(np.clip(a.T @ b, -1.0, 1.0)))


def _assert_matched(E_true: np.ndarray, E_found: np.ndarray, max_deg: float) -> np.ndarray:
    """Each true endmember has its own found endmember within max_deg; returns the matching (true -> found)."""
    ang = _angles_deg(E_true, E_found)
    match = np.argmin(ang, axis=1)
    assert len(set(match.tolist())) == E_true.shape[1], f"two true endmembers share a match: {ang.round(2)}"
    best = ang[np.arange(E_true.shape[1]), match]
    assert np.all(best < max_deg), f"angles to the best match {best.round(2)} exceed {max_deg}°"
    return match


def _synthetic(noise: float = 0.0, seed: int = 0, C: int = 50, k: int = 3, H: int = 30, W: int = 30):
    """Linear mixtures of k smooth positive endmembers with Dirichlet abundances and k pure pixels."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(0.0, 1.0, C)
    E = np.empty((C, k))
    for j in range(k):
        centres = rng.random(3)
        widths = 0.1 + 0.2 * rng.random(3)
        heights = rng.random(3)
        E[:, j] = 0.05 + np.sum(heights * np.exp(-0.5 * ((wl[:, None] - centres) / widths) ** 2), axis=1)
    E /= E.max()
    A = rng.dirichlet(np.full(k, 0.7), size=H * W).T  # (k, P)
    pure = rng.choice(H * W, size=k, replace=False)
    A[:, pure] = np.eye(k)
    A = A.reshape(k, H, W)
    cube = np.einsum("ck,khw->chw", E, A)
    if noise:
        cube = cube + noise * rng.standard_normal(cube.shape)
    return E, A, cube


# ---------------------------------------------------------------------------------------------------------------
# simplex projection
# ---------------------------------------------------------------------------------------------------------------
def test_project_to_simplex_hand_examples():
    np.testing.assert_allclose(project_to_simplex(np.array([0.5, 0.5])), [0.5, 0.5])
    np.testing.assert_allclose(project_to_simplex(np.array([2.0, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(project_to_simplex(np.array([0.3, 0.1])), [0.6, 0.4])
    np.testing.assert_allclose(project_to_simplex(np.array([-1.0, 0.2, 5.0])), [0.0, 0.0, 1.0])
    for x in (-3.0, 0.0, 0.7, 12.0):
        np.testing.assert_allclose(project_to_simplex(np.full(3, x)), np.full(3, 1 / 3))


def test_project_to_simplex_properties():
    rng = np.random.default_rng(0)
    V = 3.0 * rng.standard_normal((4, 7, 50))
    for axis in (0, 1, 2):
        P = project_to_simplex(V, axis=axis)
        assert P.shape == V.shape
        assert P.min() >= 0.0
        np.testing.assert_allclose(P.sum(axis=axis), 1.0, atol=1e-12)
        np.testing.assert_allclose(project_to_simplex(P, axis=axis), P, atol=1e-12)  # idempotent
    # optimality against random points on the simplex: the projection is the closest one
    v = V[:, 0, 0]
    p = project_to_simplex(v)
    others = rng.dirichlet(np.ones(4), size=2000)
    assert np.all(np.sum((others - v) ** 2, axis=1) >= np.sum((p - v) ** 2) - 1e-12)


# ---------------------------------------------------------------------------------------------------------------
# VCA / FCLS on synthetic mixtures
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_vca_recovers_endmembers(noise):
    E, _, cube = _synthetic(noise=noise)
    Y = cube.reshape(cube.shape[0], -1)
    E_hat, idx = vca(Y, 3, seed=0)
    assert E_hat.shape == (50, 3) and idx.shape == (3,)
    np.testing.assert_array_equal(E_hat, Y[:, idx])  # real pixels
    _assert_matched(E, E_hat, 2.0)


def test_fcls_matches_true_abundances():
    E, A, cube = _synthetic(noise=0.0, seed=1)
    Y = cube.reshape(cube.shape[0], -1)
    A_hat = fcls(Y, E)
    assert A_hat.shape == (3, Y.shape[1])
    assert A_hat.min() >= 0.0
    np.testing.assert_allclose(A_hat.sum(axis=0), 1.0, atol=1e-6)
    assert np.mean(np.abs(A_hat - A.reshape(3, -1))) < 0.02


def test_fcls_agrees_with_constrained_nnls():
    # reference: NNLS with a heavily weighted sum-to-one row, on a few noisy pixels
    from scipy.optimize import nnls

    E, _, cube = _synthetic(noise=0.01, seed=2)
    Y = cube.reshape(cube.shape[0], -1)[:, :40]
    A_hat = fcls(Y, E)
    delta = 1e3
    E_aug = np.vstack([E, delta * np.ones((1, 3))])
    A_ref = np.stack([nnls(E_aug, np.append(y, delta))[0] for y in Y.T], axis=1)
    np.testing.assert_allclose(A_hat, A_ref, atol=1e-4)


def test_vca_fcls_cube_and_patches_and_determinism():
    E, A, cube = _synthetic(noise=0.002, seed=3, H=24, W=24)
    E1, A1 = vca_fcls(cube, 3, seed=5, max_pixels=300)
    E2, A2 = vca_fcls(cube, 3, seed=5, max_pixels=300)
    np.testing.assert_array_equal(E1, E2)
    np.testing.assert_array_equal(A1, A2)
    assert A1.shape == (3, 24, 24)
    np.testing.assert_allclose(A1.sum(axis=0), 1.0, atol=1e-6)
    recon = np.einsum("ck,khw->chw", E1, A1)
    assert np.sqrt(np.mean((recon - cube) ** 2)) < 0.01

    patches = cube.reshape(50, 4, 6, 24).transpose(1, 0, 2, 3)  # (N=4, C, 6, 24)
    Ep, Ap = vca_fcls(patches, 3, seed=0)
    assert Ep.shape == (50, 3) and Ap.shape == (4, 3, 6, 24)
    assert Ap.min() >= 0.0
    np.testing.assert_allclose(Ap.sum(axis=1), 1.0, atol=1e-6)
    _assert_matched(E, Ep, 2.0)


def test_vca_same_seed_same_result():
    _, _, cube = _synthetic(noise=0.01, seed=4)
    Y = cube.reshape(cube.shape[0], -1)
    a = vca(Y, 3, seed=7)
    b = vca(Y, 3, seed=7)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_bad_inputs():
    Y = np.random.default_rng(0).random((10, 5))
    with pytest.raises(UBFInputError, match="vca"):
        vca(Y, 6)
    with pytest.raises(UBFInputError, match="vca"):
        vca(Y, 0)
    with pytest.raises(UBFInputError, match="fcls"):
        fcls(Y, np.ones((9, 2)))
    with pytest.raises(UBFInputError, match="vca_fcls"):
        vca_fcls(np.zeros((10, 5)), 2)


# ---------------------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------------------
def test_samson_real_data():
    if not SAMSON.is_file():
        pytest.skip(f"real-data check skipped: {SAMSON} not found (needs ../shared/data/hsi/samson.mat)")
    from scipy.io import loadmat

    mat = loadmat(SAMSON)
    cube = np.asarray(mat["SamSon"], dtype=np.float64).transpose(2, 0, 1)  # HWC -> (156, 95, 95)
    M = np.asarray(mat["M"], dtype=np.float64)  # (156, 3) ground-truth endmembers
    E, A = vca_fcls(cube, 3, seed=0)
    recon = np.einsum("ck,khw->chw", E, A)
    err = float(np.sqrt(np.mean((recon - cube) ** 2)))
    assert err < 0.05, f"Samson reconstruction RMSE {err:.4f}"
    _assert_matched(M, E, 15.0)
