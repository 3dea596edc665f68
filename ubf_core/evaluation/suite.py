"""Every generation metric for every candidate set, against one held-out real set: one table.

A *candidate* is a set of HSI cubes (n, C, H, W) reflectance, e.g. the synthetic store, the samples of another
generator, the pixel-GMM baseline, or the real training set itself (the reference every generator is measured
against). Each gets: point fidelity F_p, block diversity D_b and D_b/F_p (HUD) on the held-out real cubes; the
Fréchet distance, KID and precision/recall on features of a network trained in-project on the real training
cubes; and, when the candidate has abundance maps, their histogram distance to the generator's training maps and
their sum-to-one residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubf_core.errors import UBFInputError
from ubf_core.metrics.features import FeatureNet, embed
from ubf_core.metrics.distribution import (block_diversity, frechet_distance, kernel_inception_distance,
                                         point_fidelity, precision_recall, sum_to_one_residual)
from ubf_core.metrics.distribution import abundance_histogram_distance


@dataclass(frozen=True)
class Candidate:
    """cubes: (n, C, H, W) float32 reflectance; abundances: (n, k, H, W) on the simplex, or None (no maps)."""

    cubes: np.ndarray
    abundances: np.ndarray | None = None


@dataclass(frozen=True)
class SuiteSettings:
    """block: D_b tile size (pixels); pr_k: neighbours of the precision/recall manifolds; kid_subsets and
    kid_subset_size: KID's random subsets (subset size is cut to the smaller set); max_pixels: at most this many
    pixels of each side enter F_p (drawn with ``seed``); hist_bins: bins of the abundance histograms."""

    block: int = 4
    pr_k: int = 3
    kid_subsets: int = 50
    kid_subset_size: int = 100
    max_pixels: int = 200_000
    hist_bins: int = 20
    seed: int = 0


def check_grid(name: str, wavelengths_nm: np.ndarray, real_wavelengths_nm: np.ndarray,
               tolerance_nm: float = 0.01) -> None:
    """A candidate whose wavelength grid (nm) differs from the real one cannot be compared: UBFInputError."""
    a, b = np.asarray(wavelengths_nm, float), np.asarray(real_wavelengths_nm, float)
    if a.shape != b.shape or not np.allclose(a, b, atol=tolerance_nm):
        describe = (lambda w: f"{w[0]:g}–{w[-1]:g} nm × {len(w)}" if len(w) else "no bands")
        raise UBFInputError(name, f"wavelength grid {describe(a)} differs from the real grid {describe(b)}")


def _pixels(cubes: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """(n, C, H, W) → at most ``limit`` pixel spectra (N, C), drawn without replacement."""
    px = np.moveaxis(np.asarray(cubes, np.float32), 1, -1).reshape(-1, cubes.shape[1])
    if len(px) > limit:
        px = px[np.sort(rng.choice(len(px), limit, replace=False))]
    return px


def evaluate_candidates(candidates: dict[str, Candidate], heldout: np.ndarray, net: FeatureNet,
                        training_abundances: np.ndarray | None, settings: SuiteSettings = SuiteSettings()
                        ) -> dict[str, dict[str, float]]:
    """{candidate name: {metric: value}} for every candidate against the held-out real cubes (n, C, H, W).

    Metrics (definitions in :mod:`ubf_core.metrics.distribution`): ``F_p``, ``D_b``, ``D_b/F_p``, ``frechet``,
    ``kid_e3`` (KID × 10³, and ``kid_std_e3``), ``precision``, ``recall``; with abundances also ``abundance_hist_distance`` (to
    ``training_abundances`` (N, k, H, W)) and ``sum_to_one_max`` / ``abundance_min``. ``n`` is the set's size.
    The minimum set size is ``settings.pr_k + 1`` cubes (precision/recall), also for the held-out set.
    """
    if len(heldout) < settings.pr_k + 1:
        raise UBFInputError("held-out real set", f"{len(heldout)} patches; the metrics need at least "
                                                 f"{settings.pr_k + 1} (precision/recall with k = {settings.pr_k})")
    rng = np.random.default_rng(settings.seed)
    real_px = _pixels(heldout, settings.max_pixels, rng)
    real_feat = embed(net, heldout)
    table: dict[str, dict[str, float]] = {}
    for name, cand in candidates.items():
        if len(cand.cubes) < settings.pr_k + 1:
            raise UBFInputError(name, f"{len(cand.cubes)} samples; the metrics need at least {settings.pr_k + 1}")
        feat = embed(net, cand.cubes)
        fp = point_fidelity(_pixels(cand.cubes, settings.max_pixels, rng), real_px)
        db = block_diversity(cand.cubes, heldout, block=settings.block)
        m = min(settings.kid_subset_size, len(feat), len(real_feat))
        kid, kid_std = kernel_inception_distance(feat, real_feat, subsets=settings.kid_subsets, subset_size=m,
                                                 seed=settings.seed)
        precision, recall = precision_recall(real_feat, feat, k=settings.pr_k)
        row = {"n": len(cand.cubes), "F_p": fp, "D_b": db, "D_b/F_p": db / fp if fp else float("nan"),
               "frechet": frechet_distance(feat, real_feat), "kid_e3": 1e3 * kid, "kid_std_e3": 1e3 * kid_std,
               "precision": precision, "recall": recall}
        if cand.abundances is not None:
            res = sum_to_one_residual(cand.abundances)
            row["sum_to_one_max"] = res["max_abs_residual"]
            row["abundance_min"] = res["min_value"]
            if training_abundances is not None:
                row["abundance_hist_distance"] = abundance_histogram_distance(cand.abundances, training_abundances,
                                                                              bins=settings.hist_bins)
        table[name] = {k: float(v) for k, v in row.items()}
    return table
