"""Baseline HSI generators to compare the unmixing-based pipeline against.

:class:`PixelGMM` is the pixel-wise Gaussian-mixture baseline (the weakest comparison in MSF-Diff): a Gaussian
mixture fitted to real pixel spectra, sampled independently at every pixel. Its spectra are realistic on average
but it has no spatial structure at all, so it scores well on pixel metrics (point fidelity) and badly on spatial
ones (block diversity, feature distances).
"""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError

__all__ = ["PixelGMM"]

_WHERE = "pixel GMM baseline"


class PixelGMM:
    """Gaussian mixture over pixel spectra: fit on real HSIs, sample cubes of independent pixels.

    ``p(x) = Σ_m π_m N(x; μ_m, Σ_m)`` over spectra x ∈ R^C (reflectance), fitted by EM
    (``sklearn.mixture.GaussianMixture``) with ``n_components`` components and ``covariance_type`` "diag" or
    "full". At most ``max_pixels`` pixels, drawn without replacement with ``numpy.random.default_rng(seed)``, are
    used for the fit; the fit itself is seeded with ``seed`` too.
    """

    def __init__(self, n_components: int = 8, covariance_type: str = "diag", max_pixels: int = 100_000,
                 seed: int = 0):
        if covariance_type not in ("diag", "full"):
            raise UBFInputError(_WHERE, f"covariance_type must be 'diag' or 'full', got {covariance_type!r}")
        if int(n_components) < 1 or int(max_pixels) < 1:
            raise UBFInputError(_WHERE, f"n_components and max_pixels must be at least 1, got {n_components} and "
                                        f"{max_pixels}")
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.max_pixels = int(max_pixels)
        self.seed = int(seed)
        self.gmm = None

    def fit(self, hsi) -> "PixelGMM":
        """Fit to real images (n, C, H, W) float reflectance (or pixels (N, C)); needs at least ``n_components``
        pixels. Returns ``self``."""
        x = np.asarray(hsi)
        if x.ndim == 4:
            x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
        elif x.ndim != 2:
            raise UBFInputError(_WHERE, f"expected images (n, C, H, W) or pixels (N, C), got shape {x.shape}")
        if x.shape[0] < self.n_components or x.shape[1] < 1:
            raise UBFInputError(_WHERE, f"fitting {self.n_components} components needs at least "
                                        f"{self.n_components} pixels, got {x.shape[0]}")
        if not np.isfinite(x).all():
            raise UBFInputError(_WHERE, "the real pixels hold NaN or infinite values")
        rng = np.random.default_rng(self.seed)
        if len(x) > self.max_pixels:
            x = x[np.sort(rng.choice(len(x), self.max_pixels, replace=False))]
        from sklearn.mixture import GaussianMixture

        self.gmm = GaussianMixture(n_components=self.n_components, covariance_type=self.covariance_type,
                                   random_state=self.seed).fit(x.astype(np.float64))
        return self

    @property
    def n_bands(self) -> int:
        """C, the number of bands of the fitted spectra."""
        self._check_fitted()
        return int(self.gmm.means_.shape[1])

    def _check_fitted(self) -> None:
        if self.gmm is None:
            raise UBFInputError(_WHERE, "not fitted: call fit(real_hsi) before sample")

    def sample(self, n: int, size: int, seed: int = 0) -> np.ndarray:
        """n cubes (n, C, size, size) float32 of independent pixels drawn from the mixture.

        Each pixel draws its component m with probability π_m, then ``x = μ_m + L_m z`` with z ~ N(0, I) and
        L_m the Cholesky factor of Σ_m (√diag for "diag"), all from ``numpy.random.default_rng(seed)``: the same
        seed gives the same cubes. Negative reflectance (a Gaussian tail) is clipped to 0.
        """
        self._check_fitted()
        if int(n) < 1 or int(size) < 1:
            raise UBFInputError(_WHERE, f"n and size must be at least 1, got {n} and {size}")
        n, size = int(n), int(size)
        rng = np.random.default_rng(seed)
        count = n * size * size
        comp = rng.choice(self.n_components, size=count, p=self.gmm.weights_ / self.gmm.weights_.sum())
        z = rng.standard_normal((count, self.n_bands))
        if self.covariance_type == "diag":
            factors = [np.diag(np.sqrt(v)) for v in self.gmm.covariances_]
        else:
            factors = list(np.linalg.cholesky(self.gmm.covariances_))
        x = np.empty_like(z)
        for m, factor in enumerate(factors):
            at = comp == m
            x[at] = self.gmm.means_[m] + z[at] @ factor.T
        x = np.clip(x, 0.0, None).astype(np.float32)
        return np.ascontiguousarray(x.reshape(n, size, size, -1).transpose(0, 3, 1, 2))
