"""Losses for the unmixing network: L = MAE + α·SAD + β·ETV (+ γ·band-weighted L1 + δ·HSV colour, INSS's terms).

- MAE: mean absolute error between the reconstruction Ŷ and the hyperspectral target Y (reflectance units).
- SAD: mean spectral angle (radians) between Ŷ and Y per pixel, along the band dimension (dim 1). It is the spectral
  angle mapper (SAM) of INSS as well: INSS's cosine term (1 − cos, on all bands and on its VNIR bands) is a monotone
  function of the same angle, so no second angle term is added.
- ETV: total variation of the endmember spectra Ê (C × k) along wavelength, to keep them smooth.
- band-weighted L1 (INSS): ``mean(w_c · |Ŷ − Y|)`` with per-band weights w (C,); INSS takes each band's standard
  deviation over the training set, normalised to mean 1 (:func:`band_weights_from_std`), so the bands where the
  scenes differ most count most. Off by default (weight 0).
- HSV colour (INSS): Ŷ and Y rendered to linear RGB through the project's rendering matrix
  (:func:`ubf_core.spectral.linear_rgb_matrix`: CIE 1931 or a camera, white-balanced to a flat unit reflectance),
  converted to hue, saturation, value differentiably, L1 between them. Off by default (weight 0).

Two faults of the public reference code are avoided: the cosine is clamped before ``arccos`` (no NaN value or
gradient for parallel, anti-parallel or zero spectra), and the TV is taken along wavelength, not across endmembers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ubf_core.errors import UBFInputError

__all__ = ["mae", "spectral_angle", "sad_loss", "endmember_tv", "band_weighted_l1", "band_weights_from_std",
           "rgb_to_hsv", "hsv_loss", "UnmixingLoss", "COS_CLAMP", "HSV_EPS"]

#: The cosine is clamped to [-1 + COS_CLAMP, 1 - COS_CLAMP] before arccos, so d arccos/d cos = −1/√(1 − cos²)
#: stays finite (≤ ~2.3e3 in float32). Consequence: identical spectra give an angle of about √(2·COS_CLAMP) ≈
#: 4.5e-4 rad (0.026°) in float64, up to ~4.9e-4 rad in float32, instead of exactly 0; opposite spectra give π
#: minus the same.
COS_CLAMP = 1e-7

#: Floor of the value V and the chroma (max − min of R, G, B) in denominators of the HSV conversion: a grey or black
#: pixel gets a finite hue and saturation and finite gradients (at most ~1/(6·HSV_EPS) per unit RGB for the hue).
HSV_EPS = 1e-3


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


def band_weighted_l1(y_hat: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``mean(w_c · |Ŷ − Y|)`` over all elements, a 0-d tensor (reflectance units × the weights' units).

    ``y_hat``, ``y``: same shape, bands on dim 1, e.g. (N, C, H, W). ``weights``: (C,), ≥ 0, used as given (a
    weight vector of ones gives :func:`mae`; :func:`band_weights_from_std` gives INSS's mean-1 weights).
    """
    _same_shape(y_hat, y, "band_weighted_l1")
    if y.ndim < 2:
        raise UBFInputError("band_weighted_l1", f"expects bands on dim 1, e.g. (N, C, H, W); got shape "
                                                f"{tuple(y.shape)}")
    if not isinstance(weights, torch.Tensor) or weights.shape != (y.shape[1],):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise UBFInputError("band_weighted_l1", f"weights must be a tensor of shape ({y.shape[1]},) (one per band), "
                                                f"got {shape}")
    w = weights.to(device=y.device, dtype=y.dtype).reshape(1, -1, *([1] * (y.ndim - 2)))
    return (w * (y_hat - y).abs()).mean()


def band_weights_from_std(y: Any) -> torch.Tensor:
    """INSS's band weights: each band's standard deviation over a training set, divided by their mean.

    ``y``: array or tensor (N, C, H, W) or (N, C), reflectance, bands on dim 1. Returns (C,) float32, mean 1, ≥ 0.
    A set with no variation in any band (all stds 0) or non-finite values is a UBFInputError.
    """
    arr = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[1] < 1 or arr.size == 0:
        raise UBFInputError("band_weights_from_std", f"expects bands on dim 1, e.g. (N, C, H, W); got shape "
                                                     f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UBFInputError("band_weights_from_std", "the training spectra contain NaN or infinite values")
    std = np.moveaxis(arr, 1, 0).reshape(arr.shape[1], -1).std(axis=1)
    if not std.mean() > 0:
        raise UBFInputError("band_weights_from_std", "every band is constant over the training set: no weights")
    return torch.as_tensor(std / std.mean(), dtype=torch.float32)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """Linear RGB (N, 3, H, W), ≥ 0 → hue, saturation, value (N, 3, H, W), differentiable.

    ``V = max(R, G, B)`` (the RGB units), ``S = (V − min) / max(V, HSV_EPS)`` in [0, 1], ``H`` in [0, 1) (fraction
    of the colour circle: 0 red, 1/3 green, 2/3 blue) with the chroma ``V − min`` floored at ``HSV_EPS`` in its
    denominator. Greys (R = G = B) get H = 0, S = 0.
    """
    if not isinstance(rgb, torch.Tensor) or rgb.ndim != 4 or rgb.shape[1] != 3:
        shape = tuple(rgb.shape) if isinstance(rgb, torch.Tensor) else type(rgb).__name__
        raise UBFInputError("rgb_to_hsv", f"expects RGB of shape (N, 3, H, W), got {shape}")
    r, g, b = rgb.unbind(dim=1)
    value, argmax = rgb.max(dim=1)
    chroma = value - rgb.min(dim=1).values
    c = chroma.clamp_min(HSV_EPS)
    hue = torch.where(argmax == 0, torch.remainder((g - b) / c, 6.0),
                      torch.where(argmax == 1, (b - r) / c + 2.0, (r - g) / c + 4.0)) / 6.0
    saturation = chroma / value.clamp_min(HSV_EPS)
    return torch.stack([hue, saturation, value], dim=1)


def hsv_loss(y_hat: torch.Tensor, y: torch.Tensor, rgb_matrix: torch.Tensor) -> torch.Tensor:
    """INSS's colour loss: Ŷ and Y (N, C, H, W, reflectance) rendered to linear RGB with ``rgb_matrix`` (3, C)
    (:func:`ubf_core.spectral.linear_rgb_matrix`), negative values set to 0, converted with :func:`rgb_to_hsv`;
    returns the mean of the three L1 terms (a 0-d tensor, dimensionless for H and S, RGB units for V):

    ``(mean(S_Y · d(H_Ŷ, H_Y)) + mean|S_Ŷ − S_Y| + mean|V_Ŷ − V_Y|) / 3``

    with ``d`` the distance on the hue circle (``min(|Δ|, 1 − |Δ|)``: red at 0.99 and at 0.01 are 0.02 apart)
    weighted by the target's saturation, since a grey pixel has no hue (INSS takes a plain L1 on H).
    """
    _same_shape(y_hat, y, "hsv_loss")
    if y.ndim != 4:
        raise UBFInputError("hsv_loss", f"expects (N, C, H, W) spectra, got shape {tuple(y.shape)}")
    if not isinstance(rgb_matrix, torch.Tensor) or rgb_matrix.shape != (3, y.shape[1]):
        shape = tuple(rgb_matrix.shape) if isinstance(rgb_matrix, torch.Tensor) else type(rgb_matrix).__name__
        raise UBFInputError("hsv_loss", f"rgb_matrix must be a tensor of shape (3, {y.shape[1]}) (R, G, B over the "
                                        f"bands), got {shape}")
    m = rgb_matrix.to(device=y.device, dtype=y.dtype)
    hsv_hat = rgb_to_hsv(torch.einsum("rc,nchw->nrhw", m, y_hat).clamp_min(0.0))
    hsv = rgb_to_hsv(torch.einsum("rc,nchw->nrhw", m, y).clamp_min(0.0))
    dh = (hsv_hat[:, 0] - hsv[:, 0]).abs()
    hue = (torch.minimum(dh, 1.0 - dh) * hsv[:, 1]).mean()
    return (hue + (hsv_hat[:, 1] - hsv[:, 1]).abs().mean() + (hsv_hat[:, 2] - hsv[:, 2]).abs().mean()) / 3.0


def _weight_tensor(value: Any, name: str, ndim: int, rows: int | None = None) -> torch.Tensor:
    """``value`` as a finite float32 tensor of ``ndim`` dims (and ``rows`` rows if given)."""
    t = torch.as_tensor(value.detach().cpu() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=float),
                        dtype=torch.float32)
    if t.ndim != ndim or (rows is not None and t.shape[0] != rows) or t.numel() == 0:
        want = "(C,)" if ndim == 1 else f"({rows}, C)"
        raise UBFInputError("UnmixingLoss", f"{name} must have shape {want}, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise UBFInputError("UnmixingLoss", f"{name} contains NaN or infinite values")
    return t


@dataclass
class UnmixingLoss:
    """``L = MAE(Ŷ, Y) + alpha·SAD(Ŷ, Y) + beta·ETV(Ê) + band_l1·BL1(Ŷ, Y; w) + hsv·HSV(Ŷ, Y; M)``.

    ``loss_fn(y_hat, y, E)`` returns ``(total, parts)``: ``total`` a 0-d tensor to back-propagate, ``parts`` plain
    floats ``{"loss", "mae", "sad", "etv"}`` (``sad`` in radians, unweighted terms) for logging, plus ``"band_l1"``
    and ``"hsv"`` when their weight is > 0.

    INSS's terms are off by default: with ``band_l1 = 0`` and ``hsv = 0`` they are not computed at all and the total
    is the MAE + SAD + ETV loss bit for bit. ``band_weights`` (C,) (:func:`band_weights_from_std`) is needed when
    ``band_l1 > 0``, ``rgb_matrix`` (3, C) (:func:`ubf_core.spectral.linear_rgb_matrix` over the bands' wavelengths
    in nm) when ``hsv > 0``; both are moved to the data's device and dtype at each call.
    """

    alpha: float = 0.1
    beta: float = 1e-3
    band_l1: float = 0.0
    hsv: float = 0.0
    band_weights: Any = field(default=None, compare=False, repr=False)
    rgb_matrix: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        for name in ("alpha", "beta", "band_l1", "hsv"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 \
                    or value == float("inf"):
                raise UBFInputError("UnmixingLoss", f"{name} must be a finite number >= 0, got {value!r}")
            setattr(self, name, float(value))
        if self.band_l1 > 0:
            if self.band_weights is None:
                raise UBFInputError("UnmixingLoss", "band_l1 > 0 needs band_weights (C,), e.g. band_weights_from_std "
                                                    "of the training spectra")
            self.band_weights = _weight_tensor(self.band_weights, "band_weights", 1)
            if (self.band_weights < 0).any():
                raise UBFInputError("UnmixingLoss", "band_weights must be >= 0")
        if self.hsv > 0:
            if self.rgb_matrix is None:
                raise UBFInputError("UnmixingLoss", "hsv > 0 needs rgb_matrix (3, C), e.g. "
                                                    "ubf_core.spectral.linear_rgb_matrix of the band wavelengths")
            self.rgb_matrix = _weight_tensor(self.rgb_matrix, "rgb_matrix", 2, rows=3)

    def __call__(self, y_hat: torch.Tensor, y: torch.Tensor, E: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        l_mae = mae(y_hat, y)
        l_sad = sad_loss(y_hat, y)
        l_etv = endmember_tv(E)
        total = l_mae + self.alpha * l_sad + self.beta * l_etv
        extra = {}
        if self.band_l1 > 0:
            extra["band_l1"] = band_weighted_l1(y_hat, y, self.band_weights)
            total = total + self.band_l1 * extra["band_l1"]
        if self.hsv > 0:
            extra["hsv"] = hsv_loss(y_hat, y, self.rgb_matrix)
            total = total + self.hsv * extra["hsv"]
        parts = {"loss": float(total.detach()), "mae": float(l_mae.detach()), "sad": float(l_sad.detach()),
                 "etv": float(l_etv.detach()), **{k: float(v.detach()) for k, v in extra.items()}}
        return total, parts
