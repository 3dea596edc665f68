"""Losses for the unmixing network: L = MAE + α·SAD + β·ETV.

- MAE: mean absolute error between the reconstruction Ŷ and the hyperspectral target Y (reflectance units).
- SAD: mean spectral angle (radians) between Ŷ and Y per pixel, along the band dimension (dim 1).
- ETV: total variation of the endmember spectra Ê (C × k) along wavelength, to keep them smooth.

Two faults of the public reference code are avoided: the cosine is clamped before ``arccos`` (no NaN value or
gradient for parallel, anti-parallel or zero spectra), and the TV is taken along wavelength, not across endmembers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ubf_core.errors import UBFInputError

__all__ = ["mae", "spectral_angle", "sad_loss", "endmember_tv", "UnmixingLoss", "COS_CLAMP"]

#: The cosine is clamped to [-1 + COS_CLAMP, 1 - COS_CLAMP] before arccos, so d arccos/d cos = −1/√(1 − cos²)
#: stays finite (≤ ~2.3e3 in float32). Consequence: identical spectra give an angle of about √(2·COS_CLAMP) ≈
#: 4.5e-4 rad (0.026°) in float64, up to ~4.9e-4 rad in float32, instead of exactly 0; opposite spectra give π
#: minus the same.
COS_CLAMP = 1e-7


def _same_shape(a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise UBFInputError(where, f"expects torch tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise UBFInputError(where, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def mae(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (same shapes), a 0-d tensor."""
    _same_shape(y_hat, y, "mae")
    return (y_hat - y).abs().mean()


def spectral_angle(a: torch.Tensor, b: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Angle (radians, in [0, π]) between the spectra of ``a`` and ``b`` along ``dim``; that dim is removed.

    ``cos = (a·b) / max(|a|·|b|, eps)``, clamped to [−1 + COS_CLAMP, 1 − COS_CLAMP] before ``arccos``, so the
    result and its gradient are finite for identical, parallel, anti-parallel and zero spectra (a zero spectrum
    gives cos = 0, i.e. π/2). ``max(|a|·|b|, eps)`` is computed as ``√max(|a|²·|b|², eps²)`` so no square root of
    zero is ever differentiated.
    """
    _same_shape(a, b, "spectral_angle")
    if a.ndim == 0:
        raise UBFInputError("spectral_angle", "expects at least one dimension (the spectral one)")
    dot = (a * b).sum(dim=dim)
    norms_sq = (a * a).sum(dim=dim) * (b * b).sum(dim=dim)
    denom = norms_sq.clamp_min(eps * eps).sqrt()
    cos = (dot / denom).clamp(-1.0 + COS_CLAMP, 1.0 - COS_CLAMP)
    return torch.arccos(cos)


def sad_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle (radians) over pixels; bands on dim 1, e.g. (N, C, H, W) or (N, C)."""
    _same_shape(y_hat, y, "sad_loss")
    if y.ndim < 2:
        raise UBFInputError("sad_loss", f"expects bands on dim 1, e.g. (N, C, H, W); got shape {tuple(y.shape)}")
    return spectral_angle(y_hat, y, dim=1).mean()


def endmember_tv(E: torch.Tensor) -> torch.Tensor:
    """Total variation of the endmembers along wavelength: ``mean_j Σ_i |E[i+1, j] − E[i, j]|``.

    ``E`` is (C, k): C bands in wavelength order (rows), k endmembers (columns). Summed over adjacent band pairs i,
    averaged over endmembers j. 0 for flat spectra (and for C = 1); unchanged by reordering the endmembers;
    changed by reordering the bands.
    """
    if not isinstance(E, torch.Tensor) or E.ndim != 2:
        shape = tuple(E.shape) if isinstance(E, torch.Tensor) else type(E).__name__
        raise UBFInputError("endmember_tv", f"expects endmembers of shape (C, k), got {shape}")
    if E.shape[0] < 2:
        return E.sum() * 0.0
    return (E[1:] - E[:-1]).abs().sum(dim=0).mean()


@dataclass
class UnmixingLoss:
    """``L = MAE(Ŷ, Y) + alpha·SAD(Ŷ, Y) + beta·ETV(Ê)``.

    ``loss_fn(y_hat, y, E)`` returns ``(total, parts)``: ``total`` a 0-d tensor to back-propagate, ``parts`` plain
    floats ``{"loss", "mae", "sad", "etv"}`` (``sad`` in radians, unweighted terms) for logging.
    """

    alpha: float = 0.1
    beta: float = 1e-3

    def __post_init__(self):
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 \
                    or value == float("inf"):
                raise UBFInputError("UnmixingLoss", f"{name} must be a finite number >= 0, got {value!r}")
            setattr(self, name, float(value))

    def __call__(self, y_hat: torch.Tensor, y: torch.Tensor, E: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        l_mae = mae(y_hat, y)
        l_sad = sad_loss(y_hat, y)
        l_etv = endmember_tv(E)
        total = l_mae + self.alpha * l_sad + self.beta * l_etv
        parts = {"loss": float(total.detach()), "mae": float(l_mae.detach()), "sad": float(l_sad.detach()),
                 "etv": float(l_etv.detach())}
        return total, parts
