"""Non-learned references for the unmixing network: spectra regressed on the three input bands, and the mean spectrum.

The network maps three bands to a full spectrum through k endmembers. These baselines answer how much of that a
plain per-pixel regression already does, fitted on the same training pixels and fed exactly the network's inputs
(:attr:`ubf_core.unmixing.experiment.FittedUnmixing.x`, made by :func:`ubf_core.unmixing.inputs.three_band` and the
input space):

* :func:`fit_band_regression` with ``order=1``: least squares on the features (1, b1, b2, b3) — three bands plus an
  offset; ``order=2`` adds b1², b2², b3², b1·b2, b1·b3, b2·b3 (a second-order polynomial, 10 features).
* :func:`fit_mean_spectrum`: the training pixels' mean spectrum, the same for every pixel (ignores the inputs).

Arrays: ``inputs`` (N, 3) are the network's input values of N pixels (linear reflectance for ``input_space:
linear``; sRGB-encoded for ``display``), ``spectra`` (N, C) reflectance in the C bands of the HSI store
(wavelengths in nm on the store's grid). :func:`pixels` and :func:`patches` convert between patches
(P, bands, H, W) and pixel rows (P·H·W, bands). Everything is solved in float64; predictions are float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubf_core.errors import UBFInputError

__all__ = ["ORDERS", "n_features", "band_features", "BandRegression", "fit_band_regression", "MeanSpectrum",
           "fit_mean_spectrum", "least_squares_endmembers", "pixels", "patches"]

ORDERS = (1, 2)
_WHERE = "band regression"


def n_features(n_inputs: int, order: int) -> int:
    """Number of features of :func:`band_features`: 1 + n for order 1, plus n squares and n(n−1)/2 products for 2."""
    return 1 + n_inputs + (n_inputs + n_inputs * (n_inputs - 1) // 2 if order == 2 else 0)


def band_features(inputs, order: int = 1) -> np.ndarray:
    """Design matrix (N, F) of the pixel inputs (N, n): columns 1, b1..bn, and for ``order=2`` the squares
    b1²..bn² then the pairwise products b_i·b_j (i < j) in the order (1,2), (1,3), …, (2,3), …"""
    if order not in ORDERS:
        raise UBFInputError(_WHERE, f"order must be 1 or 2, got {order}")
    b = np.asarray(inputs, dtype=np.float64)
    cols = [np.ones((len(b), 1)), b]
    if order == 2:
        n = b.shape[1]
        cols.append(b * b)
        cols += [(b[:, i] * b[:, j])[:, None] for i in range(n) for j in range(i + 1, n)]
    return np.concatenate(cols, axis=1)


def _matrix(name: str, arr) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2:
        raise UBFInputError(_WHERE, f"{name} must be (pixels, bands), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise UBFInputError(_WHERE, f"{name} contains NaN or infinite values")
    return a


@dataclass
class BandRegression:
    """Spectra as a linear function of the input features: ``spectra ≈ band_features(inputs, order) @ coef``.

    ``coef`` is (F, C): row 0 the offset spectrum, rows 1..n the spectrum each input band adds per unit, and for
    order 2 the rows of the squares and products (see :func:`band_features`)."""

    order: int
    coef: np.ndarray
    n_inputs: int = 3

    def predict(self, inputs) -> np.ndarray:
        """Pixel inputs (N, n) → spectra (N, C) float64."""
        b = _matrix("inputs", inputs)
        if b.shape[1] != self.n_inputs:
            raise UBFInputError(_WHERE, f"the model takes {self.n_inputs} input bands, got {b.shape[1]}")
        return band_features(b, self.order) @ self.coef


def fit_band_regression(inputs, spectra, order: int = 1) -> BandRegression:
    """Least squares (``numpy.linalg.lstsq``) of the spectra (N, C) on the features of the inputs (N, n).

    Needs at least as many pixels as features (4 for order 1 with 3 inputs, 10 for order 2). Data that is exactly
    linear (order 1) or quadratic (order 2) in the inputs is reproduced exactly (to rounding)."""
    if order not in ORDERS:
        raise UBFInputError(_WHERE, f"order must be 1 or 2, got {order}")
    b, y = _matrix("inputs", inputs), _matrix("spectra", spectra)
    if len(b) != len(y):
        raise UBFInputError(_WHERE, f"{len(b)} input pixels but {len(y)} spectra")
    need = n_features(b.shape[1], order)
    if len(b) < need:
        raise UBFInputError(_WHERE, f"order {order} with {b.shape[1]} inputs has {need} features and needs at least "
                                    f"{need} pixels, got {len(b)}")
    coef, *_ = np.linalg.lstsq(band_features(b, order), y, rcond=None)
    return BandRegression(order, coef, b.shape[1])


@dataclass
class MeanSpectrum:
    """One spectrum (C,) for every pixel: the training pixels' mean reflectance."""

    mean: np.ndarray

    def predict(self, inputs) -> np.ndarray:
        """Pixel inputs (N, n) (only N is used) → (N, C) float64 copies of the mean spectrum."""
        n = len(np.asarray(inputs))
        return np.broadcast_to(self.mean, (n, len(self.mean))).copy()


def fit_mean_spectrum(spectra) -> MeanSpectrum:
    """The mean over pixels of the spectra (N, C), N ≥ 1."""
    y = _matrix("spectra", spectra)
    if len(y) == 0:
        raise UBFInputError(_WHERE, "the mean spectrum needs at least 1 pixel, got 0")
    return MeanSpectrum(y.mean(axis=0))


def least_squares_endmembers(regression: BandRegression, vertices) -> np.ndarray:
    """Endmembers (C, k): the order-1 regression's spectra at the input-space ``vertices`` (k, 3) of
    :func:`ubf_core.unmixing.cone.cone_vertices` (column 0 the black point's: the regression's offset). A pixel
    inside the cone mixed from them with its :func:`~ubf_core.unmixing.cone.cone_coordinates` is exactly the
    regression's spectrum (``unmixing.init_endmembers: least_squares``). Values may be slightly negative (the
    offset); a decoder with non-negative endmembers raises them to its minimum."""
    if regression.order != 1:
        raise UBFInputError(_WHERE, f"least-squares endmembers need the order-1 regression, got order "
                                    f"{regression.order}")
    return regression.predict(vertices).T


def pixels(x) -> np.ndarray:
    """Patches (P, bands, H, W) → pixel rows (P·H·W, bands), patch-major (as ``patches`` undoes)."""
    a = np.asarray(x)
    if a.ndim != 4:
        raise UBFInputError(_WHERE, f"expected patches (P, bands, H, W), got shape {a.shape}")
    return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])


def patches(rows, n: int, h: int, w: int) -> np.ndarray:
    """Pixel rows (n·h·w, bands) → patches (n, bands, h, w); the inverse of :func:`pixels`."""
    r = np.asarray(rows)
    return r.reshape(n, h, w, r.shape[1]).transpose(0, 3, 1, 2)
