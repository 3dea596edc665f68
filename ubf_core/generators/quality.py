"""How close generated spectra are to real ones: the mean spectral angle to the nearest real pixel.

For each generated pixel spectrum g (C bands) the nearest real spectrum is the one with the smallest angle
arccos(⟨g, r⟩ / (‖g‖‖r‖)); the figure is the mean of those smallest angles, in degrees. 0 means every generated
pixel has an exact (up to scale) real counterpart. The abundance-histogram distance, the other quality figure used
for generators, is :func:`ubf_core.metrics.distribution.abundance_histogram_distance`.
"""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError

__all__ = ["nearest_real_angle_deg"]

_WHERE = "nearest_real_angle_deg"


def _unit_rows(spectra, what: str) -> np.ndarray:
    x = np.asarray(spectra, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise UBFInputError(_WHERE, f"{what} spectra must be a non-empty (pixels, bands) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise UBFInputError(_WHERE, f"{what} spectra contain NaN or infinite values")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if (norm == 0).any():
        raise UBFInputError(_WHERE, f"{int((norm == 0).sum())} {what} spectra are all zero: their angle is undefined")
    return x / norm


def _subsample(x: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(x) <= limit:
        return x
    return x[np.sort(rng.choice(len(x), size=int(limit), replace=False))]


def nearest_real_angle_deg(generated_spectra, real_spectra, *, max_generated: int | None = None,
                           max_real: int | None = None, seed: int = 0, chunk: int = 4096) -> float:
    """Mean over generated pixels of the spectral angle (degrees) to their nearest real pixel.

    generated_spectra: (P, C); real_spectra: (Q, C), same bands C, any positive scale (reflectance, or abundance
        vectors when comparing in abundance space). Rows must be finite and not all zero.
    max_generated, max_real: use a random subset of at most this many rows of each (drawn with ``seed``).
    chunk: rows per block; the search holds one chunk × chunk float32 matrix (64 MiB at 4096), so P and Q of 1e5
        and more fit in memory.

    The nearest neighbour is searched with float32 cosines; the angle to it is then computed in float64 as
    2·atan2(‖u − v‖, ‖u + v‖) for the unit vectors u, v, which stays accurate for angles near 0.
    """
    g, r = _unit_rows(generated_spectra, "generated"), _unit_rows(real_spectra, "real")
    if g.shape[1] != r.shape[1]:
        raise UBFInputError(_WHERE, f"generated spectra have {g.shape[1]} bands, real ones {r.shape[1]}")
    if chunk < 1:
        raise UBFInputError(_WHERE, f"chunk must be positive, got {chunk}")
    rng = np.random.default_rng(seed)
    g, r = _subsample(g, max_generated, rng), _subsample(r, max_real, rng)
    g32, r32 = g.astype(np.float32), r.astype(np.float32)
    nearest = np.empty(len(g), dtype=np.int64)
    for g0 in range(0, len(g), chunk):
        block = g32[g0:g0 + chunk]
        best_cos = np.full(len(block), -np.inf, dtype=np.float32)
        best = np.zeros(len(block), dtype=np.int64)
        for r0 in range(0, len(r), chunk):
            cos = block @ r32[r0:r0 + chunk].T
            j = np.argmax(cos, axis=1)
            c = cos[np.arange(len(block)), j]
            better = c > best_cos
            best_cos[better], best[better] = c[better], j[better] + r0
        nearest[g0:g0 + chunk] = best
    v = r[nearest]
    angles = 2.0 * np.arctan2(np.linalg.norm(g - v, axis=1), np.linalg.norm(g + v, axis=1))
    return float(np.degrees(angles).mean())
