"""The linear mixing model that turns abundance maps into HSIs: Ŷ' = Ê·Â' (:func:`mix`), plus white Gaussian noise
at a signal-to-noise ratio, seeded per sample (:func:`add_noise`).

The unmixing decoder's options enter here too: a brightness scale s (n, H, W) multiplies each pixel (Ŷ' = s·Ê·Â'),
and for radiance output the solar–atmosphere factor t (C,) multiplies each band (Ŷ' = t ⊙ s·Ê·Â'). The decoder's
per-band offset b is not added: synthesis writes the mixture of the endmembers, as it always has."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ubf_core.errors import UBFInputError

NOISE_STREAM = 1  # the per-sample noise generator is seeded from (seed, index, NOISE_STREAM)


def mix(abundances: np.ndarray, endmembers: np.ndarray, brightness: np.ndarray | None = None,
        transmission: np.ndarray | None = None) -> np.ndarray:
    """Linear mixing: abundances (n, k, H, W) and endmembers (C, k) → reflectance (n, C, H, W) float32; times the
    brightness s (n, H, W) ≥ 0 when given, and times the factor t (C,) when given (radiance)."""
    if abundances.shape[1] != endmembers.shape[1]:
        raise UBFInputError("endmembers", f"k = {endmembers.shape[1]} but the abundances have k = "
                                          f"{abundances.shape[1]}")
    y = np.einsum("ck,nkhw->nchw", endmembers.astype(np.float32), abundances.astype(np.float32),
                  optimize=True).astype(np.float32)
    if brightness is not None:
        want = (abundances.shape[0], *abundances.shape[2:])
        if brightness.shape != want:
            raise UBFInputError("brightness", f"must have shape (n, H, W) = {want}, got {brightness.shape}")
        y *= brightness.astype(np.float32)[:, None]
    if transmission is not None:
        if np.shape(transmission) != (endmembers.shape[0],):
            raise UBFInputError("transmission", f"must have shape (C,) = ({endmembers.shape[0]},), got "
                                                f"{np.shape(transmission)}")
        y *= np.asarray(transmission, dtype=np.float32)[None, :, None, None]
    return y


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
