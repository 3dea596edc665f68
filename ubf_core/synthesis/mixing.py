"""The linear mixing model that turns abundance maps into HSIs: Ŷ' = Ê·Â' (:func:`mix`), plus white Gaussian noise
at a signal-to-noise ratio, seeded per sample (:func:`add_noise`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ubf_core.errors import UBFInputError

NOISE_STREAM = 1  # the per-sample noise generator is seeded from (seed, index, NOISE_STREAM)


def mix(abundances: np.ndarray, endmembers: np.ndarray) -> np.ndarray:
    """Linear mixing: abundances (n, k, H, W) and endmembers (C, k) → reflectance (n, C, H, W) float32."""
    if abundances.shape[1] != endmembers.shape[1]:
        raise UBFInputError("endmembers", f"k = {endmembers.shape[1]} but the abundances have k = "
                                          f"{abundances.shape[1]}")
    return np.einsum("ck,nkhw->nchw", endmembers.astype(np.float32), abundances.astype(np.float32),
                     optimize=True).astype(np.float32)


def add_noise(reflectance: np.ndarray, snr_db: float | None, seeds: Sequence[int]) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` (signal power = mean square of each sample), seeded per sample."""
    if snr_db is None:
        return reflectance
    out = reflectance.copy()
    for i, s in enumerate(seeds):
        rng = np.random.default_rng([int(s), NOISE_STREAM])
        power = float(np.mean(reflectance[i].astype(np.float64) ** 2))
        sigma = math.sqrt(power / 10 ** (float(snr_db) / 10))
        out[i] += (sigma * rng.standard_normal(reflectance[i].shape)).astype(np.float32)
    return out
