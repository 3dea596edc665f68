"""Maps between abundances on the simplex and the unconstrained space a diffusion model works in.

Both modes map abundances A (N, k, H, W) to x in [-1, 1] (the range the β schedule and the clipping of the
predicted clean sample assume) and map any x back onto the simplex with a softmax over k, so every sample is a valid
abundance map whatever the network produced:

* ``"softmax"`` (MSF-Diff, Algorithm 2): x = 2A − 1. Back: A = softmax_k(ln max((x + 1)/2, ε)), i.e. the
  abundance estimate (x + 1)/2 floored at ε and renormalised. For a sample already on the simplex this returns it
  (up to the floor), unlike softmax_k(x), which would pull every pixel towards 1/k (x ∈ [-1, 1] gives logits that
  differ by at most 2).
* ``"hud"`` (HUD): Z = ln(A + ε), scaled affinely from [ln ε, ln(1 + ε)] to x ∈ [-1, 1] (a fixed change of
  units). Back: undo the affine map and A = softmax_k(Z) = (A + ε)/(1 + kε) for an exact Z.

ε = e^(−ln k − 8) = 1/(k·e⁸) (≈ 6.7e-5 for k = 5) in both modes.

The optional brightness channel (a generator built with ``brightness=True``) carries the per-pixel scale s ≥ 0 of
the extended linear mixing model Ŷ = s·Ê·Â, dimensionless. It is modelled as the standardised logarithm

    x_s = (ln max(s, s_min) − μ) / (c·σ),   s_min = 1e-6 (``BRIGHTNESS_FLOOR``), c = 3 (``BRIGHTNESS_SPREAD``)

with μ, σ the mean and standard deviation of ln max(s, s_min) over every training pixel
(:func:`brightness_log_stats`, stored in the generator's config as ``brightness_log_stats``), so ±3σ of the
training distribution lands on ±1: the range the β schedule and the clipping of x̂0 assume, as for the abundance
channels. Back: s = exp(μ + c·σ·x_s) (:func:`to_brightness`), ≥ s_min for any x_s, exactly the inverse of the forward
map for s ≥ s_min (up to float32 rounding). A diffusion model's clipping of x̂0 to [-1, 1] therefore bounds
generated s to the training mean ± 3σ in log space.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["CONSTRAINTS", "abundance_floor", "to_diffusion_space", "to_abundances", "BRIGHTNESS_FLOOR",
           "BRIGHTNESS_SPREAD", "brightness_log_stats", "to_brightness_space", "to_brightness"]

CONSTRAINTS = ("softmax", "hud")
BRIGHTNESS_FLOOR = 1e-6       # s_min: brightness below it enters the logarithm as s_min (ln 0 is −∞)
BRIGHTNESS_SPREAD = 3.0       # c: standard deviations of ln s mapped onto ±1
_MIN_LOG_STD = 1e-3           # σ floor: a training set of one brightness still gives a finite map
_MAX_LOG = 60.0               # ln s is capped here on the way back, so s stays finite in float32 (e^60 ≈ 1e26)


def abundance_floor(k: int) -> float:
    """ε = e^(−ln k − 8): the HUD offset inside the logarithm, and the floor of the softmax mode."""
    return math.exp(-math.log(k) - 8.0)


def _hud_range(k: int) -> tuple[float, float]:
    eps = abundance_floor(k)
    return math.log(eps), math.log1p(eps)


def to_diffusion_space(abundances: torch.Tensor, constraint: str) -> torch.Tensor:
    """Abundances (N, k, H, W) on the simplex → diffusion variable x (N, k, H, W) in [-1, 1]."""
    if constraint == "softmax":
        return 2.0 * abundances - 1.0
    lo, hi = _hud_range(abundances.shape[1])
    z = torch.log(abundances.clamp_min(0.0) + abundance_floor(abundances.shape[1]))
    return 2.0 * (z - lo) / (hi - lo) - 1.0


def to_abundances(x: torch.Tensor, constraint: str) -> torch.Tensor:
    """Diffusion variable x (N, k, H, W), any real values → abundances (N, k, H, W): ≥ 0, summing to 1 over k."""
    k = x.shape[1]
    if constraint == "softmax":
        return torch.softmax(torch.log(((x + 1.0) / 2.0).clamp_min(abundance_floor(k))), dim=1)
    lo, hi = _hud_range(k)
    return torch.softmax(lo + (x + 1.0) / 2.0 * (hi - lo), dim=1)


def brightness_log_stats(brightness: np.ndarray) -> list[float]:
    """[μ, σ] of ln max(s, s_min) over every pixel of ``brightness`` (N, H, W) (float64 sums; σ ≥ 1e-3)."""
    log_s = np.log(np.maximum(np.asarray(brightness, dtype=np.float64), BRIGHTNESS_FLOOR))
    return [float(log_s.mean()), max(float(log_s.std()), _MIN_LOG_STD)]


def to_brightness_space(brightness: torch.Tensor, stats) -> torch.Tensor:
    """Brightness s (N, H, W) ≥ 0 → the model's channel x_s (N, 1, H, W), with ``stats`` = [μ, σ]."""
    mu, sigma = float(stats[0]), float(stats[1])
    return ((torch.log(brightness.clamp_min(BRIGHTNESS_FLOOR)) - mu) / (BRIGHTNESS_SPREAD * sigma)).unsqueeze(1)


def to_brightness(x: torch.Tensor, stats) -> torch.Tensor:
    """The model's channel x_s (N, 1, H, W), any real values → brightness s (N, H, W) in [s_min, e^60]: > 0 and
    finite (ln s is clamped there; the forward map floors s at s_min too)."""
    mu, sigma = float(stats[0]), float(stats[1])
    return torch.exp((mu + BRIGHTNESS_SPREAD * sigma * x[:, 0]).clamp(math.log(BRIGHTNESS_FLOOR), _MAX_LOG))
