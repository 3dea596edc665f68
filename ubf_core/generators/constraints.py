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
"""

from __future__ import annotations

import math

import torch

__all__ = ["CONSTRAINTS", "abundance_floor", "to_diffusion_space", "to_abundances"]

CONSTRAINTS = ("softmax", "hud")


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
