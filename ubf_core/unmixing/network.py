"""The scene-based unmixing network of UBF (supplement Tables s1–s2) and MSF-Diff (§4.1).

A 3-band image X (N, 3, H, W) goes through a fully convolutional encoder that ends in a softmax over k channels,
giving abundances Â (N, k, H, W) on the probability simplex (Â ≥ 0, Σ_k Â = 1 per pixel). A linear-mixing decoder,
a single 1×1 convolution whose weight is the endmember matrix Ê (C × k, reflectance units), reconstructs the
hyperspectral image Ŷ = Ê·Â + b (N, C, H, W).

Decoder options (params.yaml ``unmixing.decoder``; every one off gives exactly the model above, same weights for the
same seed):

- ``brightness``: extended linear mixing Ŷ = s·(Ê·Â) + b. The encoder predicts a per-pixel scale s (N, 1, H, W),
  dimensionless, s = softplus(z + ln(e − 1)) ≥ 0 from a zero-initialised 3×3 convolution on the encoder's last
  features, so s = 1 at the start. Â stays on the simplex; s carries the pixel's brightness (shade, slope, albedo
  scaling of the same material). The per-band offset b stays outside the scale: it is the one additive term of the
  model (sensor offset, or path radiance for radiance data), not a property of the material.
- ``endmembers: fixed`` (params ``endmembers: library``): Ê is a given matrix (C, k), a buffer saved with the
  weights, never trained and never renormalised; the names of its spectra travel in the model's ``meta``.
- ``atmosphere`` (a list of sensor-group names, G ≥ 1): INSS's solar–atmosphere signature. Patches of a radiance
  data set of group g are reconstructed as Ŷ = t_g ⊙ (s·Ê·Â) + b with t_g = exp(τ_g) (C,) > 0, τ initialised to 0
  (t = 1); reflectance patches (group −1) skip t. Ê then stays a reflectance-like spectrum shared by both kinds.
- ``mixing: neural``: INSS's pixel-adaptive nonlinear mixing (:class:`ubf_core.unmixing.nonlinear.NeuralMixing`,
  ``mixing_options``: order, downsample, hidden, features, n_freq) corrects the linear mixture l = s·Ê·Â with the
  abundance maps Â as its context: Ŷ = t_g ⊙ NM(l; Â) + b. NM multiplies l band by band (l + Σ l ⊙ Π M_i), so it
  commutes with t; b stays the one additive term. Synthesis applies the same NM to generated abundances
  (:mod:`ubf_core.synthesis.mixing`). Its weights are drawn after every other module's, so the encoder and the
  decoder start as without it.

After training on paired (3-band, HSI) patches, the encoder alone maps unpaired RGB images into the same abundance
space, and ``endmembers()`` gives the spectra that turn generated abundances back into hyperspectral cubes.

Shapes: N images, C spectral bands, k endmembers, H × W pixels. All modules keep H × W (padding 1 for 3×3
convolutions), so any H, W ≥ 1 works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ubf_core.errors import UBFInputError
from ubf_core.unmixing.checks import check_maps, positive_int
from ubf_core.unmixing.cone import MIN_VERTICES, cone_coordinates, corner_triangles, fiber_abundances
from ubf_core.unmixing.nonlinear import NeuralMixing

__all__ = [
    "RSABlock",
    "UnmixingEncoder",
    "LinearMixingDecoder",
    "UnmixingNet",
    "softplus_inverse",
    "MIXING",
    "MIXING_OPTIONS",
    "ENDMEMBER_KINDS",
]

#: Endmember values at or below zero are raised to this before the inverse softplus (nonnegative decoders only).
ENDMEMBER_EPS = 1e-6
#: the smallest cone coordinate the encoder's scores take the log of (a vertex a pixel does not use)
CONE_FLOOR = 1e-7
#: s = softplus(z + BRIGHTNESS_SHIFT) is 1 at z = 0 (the zero-initialised brightness head).
BRIGHTNESS_SHIFT = math.log(math.e - 1.0)
#: How abundances and endmembers mix (the decoder's ``mixing``): linear Ê·Â, or neural (Ê·Â corrected by
#: :class:`~ubf_core.unmixing.nonlinear.NeuralMixing` with the abundances as context).
MIXING = ("linear", "neural")
#: The NeuralMixing arguments ``mixing_options`` may hold (n_bands and context_channels come from the network).
MIXING_OPTIONS = ("order", "downsample", "hidden", "features", "n_freq")
#: learned: Ê a trained parameter; fixed: Ê a given matrix (library spectra), never trained.
ENDMEMBER_KINDS = ("learned", "fixed")


def _conv3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """3×3 convolution that keeps H × W."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)


def _skip(in_ch: int, out_ch: int) -> nn.Module:
    """Identity when the channel count stays, else a 1×1 projection."""
    return nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, kernel_size=1)


class RSABlock(nn.Module):
    """Residual spatial–spectral attention block: (N, in_ch, H, W) → (N, out_ch, H, W).

    1. spatial block: ``s = conv3(relu(conv3(x))) + P₁(x)``, with P₁ a 1×1 projection when in_ch ≠ out_ch, else
       the identity;
    2. spectral-attention block: ``t = conv3(relu(conv3(s))) + s``, then squeeze-and-excitation channel attention
       ``w = sigmoid(conv1(relu(conv1(avgpool(t)))))`` of shape (N, out_ch, 1, 1) (hidden width
       ``max(out_ch // reduction, 4)``; the global average over H × W is the "squeeze"), applied as ``a = t · w``;
    3. outer residual: ``y = a + P₂(x)``, with P₂ another 1×1 projection when channels change, else the identity.

    All 3×3 convolutions use padding 1, so H × W is kept for any H, W ≥ 1.
    """

    def __init__(self, in_ch: int, out_ch: int, reduction: int = 4):
        super().__init__()
        where = "RSABlock"
        self.in_ch = positive_int(in_ch, where, "in_ch")
        self.out_ch = positive_int(out_ch, where, "out_ch")
        self.reduction = positive_int(reduction, where, "reduction")
        hidden = max(self.out_ch // self.reduction, 4)
        # spatial block
        self.spatial = nn.Sequential(_conv3(self.in_ch, self.out_ch), nn.ReLU(inplace=True),
                                     _conv3(self.out_ch, self.out_ch))
        self.spatial_skip = _skip(self.in_ch, self.out_ch)
        # spectral-attention block
        self.spectral = nn.Sequential(_conv3(self.out_ch, self.out_ch), nn.ReLU(inplace=True),
                                      _conv3(self.out_ch, self.out_ch))
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                       nn.Conv2d(self.out_ch, hidden, kernel_size=1), nn.ReLU(inplace=True),
                                       nn.Conv2d(hidden, self.out_ch, kernel_size=1), nn.Sigmoid())
        # outer residual
        self.outer_skip = _skip(self.in_ch, self.out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_ch, H, W) → (N, out_ch, H, W)."""
        s = self.spatial(x) + self.spatial_skip(x)
        t = self.spectral(s) + s
        a = t * self.attention(t)
        return a + self.outer_skip(x)

    def extra_repr(self) -> str:
        return f"in_ch={self.in_ch}, out_ch={self.out_ch}, reduction={self.reduction}"


class UnmixingEncoder(nn.Module):
    """3-band image (N, in_channels, H, W) → abundances (N, k, H, W) on the simplex.

    Conv3×3(in_channels→stem) → RSABlock(stem→widths[0]) → … → RSABlock(widths[-2]→widths[-1]) →
    Conv3×3(widths[-1]→k) → softmax over the k channel. Fully convolutional: any H, W ≥ 1.

    ``cone=True`` (3 input channels): the scores are a correction to the pixel's coordinates in the input cone,
    ``softmax(log max(w, CONE_FLOOR) + head(features))`` with w = :func:`~ubf_core.unmixing.cone.cone_coordinates`
    of the input and the buffer ``cone_vertices`` (k, 3); the head starts at zero, so the encoder starts at the
    cone coordinates themselves (with least-squares endmembers: least squares).

    ``exact=True`` (with ``cone``): the abundances are :func:`~ubf_core.unmixing.cone.fiber_abundances`, those
    that give the input back through the vertices (Vᵀa = x); the head scores the C(k − 1, 3) triangles of bright
    corners instead of the k endmembers, zero at the start (every containing triangle alike).
    """

    def __init__(self, k: int = 5, in_channels: int = 3, stem: int = 32,
                 widths: Sequence[int] = (64, 128, 96, 48), reduction: int = 4, brightness: bool = False,
                 cone: bool = False, exact: bool = False):
        super().__init__()
        where = "UnmixingEncoder"
        self.k = positive_int(k, where, "k")
        self.in_channels = positive_int(in_channels, where, "in_channels")
        self.stem_channels = positive_int(stem, where, "stem")
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) == 0:
            raise UBFInputError(where, f"widths must be a non-empty sequence of positive integers, got {widths!r}")
        self.widths = tuple(positive_int(w, where, "each of widths") for w in widths)
        self.stem = _conv3(self.in_channels, self.stem_channels)
        chans = (self.stem_channels, *self.widths)
        self.blocks = nn.Sequential(*(RSABlock(a, b, reduction) for a, b in zip(chans[:-1], chans[1:])))
        self.has_exact = bool(exact)
        if self.has_exact and not cone:
            raise UBFInputError(where, "exact (abundances that give the input back) needs the input cone (cone=True)")
        self.head = _conv3(self.widths[-1], len(corner_triangles(self.k)) if self.has_exact else self.k)
        self.has_brightness = bool(brightness)
        if self.has_brightness:   # zero-initialised, drawing no random numbers: every other weight of the model
            with torch.random.fork_rng(devices=[]):   # starts as without it
                self.brightness_head = _conv3(self.widths[-1], 1)
            nn.init.zeros_(self.brightness_head.weight)
            nn.init.zeros_(self.brightness_head.bias)
        self.has_cone = bool(cone)
        if self.has_cone:
            if self.in_channels != 3 or self.k < MIN_VERTICES:
                raise UBFInputError(where, f"the input cone needs 3 input channels and k >= {MIN_VERTICES}, got "
                                           f"{self.in_channels} and {self.k}")
            self.register_buffer("cone_vertices", torch.zeros(self.k, 3))
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def set_cone(self, vertices: Any) -> None:
        """Set the input-cone vertices (k, 3) (:func:`~ubf_core.unmixing.cone.cone_vertices`): finite, row 0 black."""
        v = torch.as_tensor(vertices, dtype=torch.float32)
        if not self.has_cone or v.shape != self.cone_vertices.shape or not torch.isfinite(v).all():
            raise UBFInputError("UnmixingEncoder cone_vertices", f"must be finite ({self.k}, 3) for an encoder built "
                                                                 f"with cone=True, got {tuple(v.shape)}")
        self.cone_vertices.copy_(v)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = check_maps(x, "UnmixingEncoder input", "the 3-band image", self.in_channels, empty_batch=True)
        return self.blocks(self.stem(x))

    def _scores(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        scores = self.head(features)
        if self.has_exact:
            return scores
        if self.has_cone:
            scores = scores + torch.log(cone_coordinates(x.float(), self.cone_vertices).clamp_min(CONE_FLOOR))
        return scores

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores (N, k, H, W) (``exact``: of the triangles, (N, T, H, W))."""
        return self._scores(x, self._features(x))

    def _abundances(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        scores = self._scores(x, features)
        if self.has_exact:
            return fiber_abundances(x.float(), self.cone_vertices, scores.float()).to(scores.dtype)
        return torch.softmax(scores, dim=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, in_channels, H, W) → (abundances (N, k, H, W) on the simplex, brightness s (N, 1, H, W) ≥ 0, or
        None without the brightness head)."""
        features = self._features(x)
        abundances = self._abundances(x, features)
        if not self.has_brightness:
            return abundances, None
        return abundances, F.softplus(self.brightness_head(features) + BRIGHTNESS_SHIFT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) float → abundances (N, k, H, W), ≥ 0 and summing to one over dim 1."""
        return self.encode(x)[0]


def softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    """Inverse of ``softplus(x) = log(1 + eˣ)`` for y > 0: ``x = y + log(1 − e^(−y))`` (stable for all y > 0).

    Computed in float64 and returned in ``y``'s dtype.
    """
    y64 = y.double()
    return (y64 + torch.log(-torch.expm1(-y64))).to(y.dtype)


class LinearMixingDecoder(nn.Module):
    """Abundances (N, k, H, W) → reconstruction Ŷ = t_g ⊙ (s·Ê·Â) + b (N, C, H, W): one 1×1 convolution k → C.

    The convolution weight is the endmember matrix Ê (C × k, column j = spectrum of endmember j, reflectance
    units). With ``nonnegative=True`` the stored parameter ``raw_endmembers`` is unconstrained and
    ``Ê = softplus(raw_endmembers)`` (strictly monotone, so Ê > 0 up to float underflow, always ≥ 0); otherwise
    ``Ê = raw_endmembers``. Ê is never renormalised: ``endmembers()`` is the matrix the decoder multiplies with.

    ``bias`` adds a learnable per-band offset b (C,), zero-initialised. ``init_endmembers`` (C, k) sets Ê exactly
    (through the inverse softplus; values ≤ 0 are raised to ``ENDMEMBER_EPS`` when nonnegative). Without it, Ê is
    drawn uniformly from [0.1, 0.9] with the torch global generator (deterministic given ``torch.manual_seed``).

    ``endmembers="fixed"``: Ê is the buffer ``fixed_endmembers`` (C, k), set from ``init_endmembers`` as given
    (finite, ≥ 0; required), saved in the state_dict and never trained (``nonnegative`` does not apply).
    ``atmosphere``: names of G sensor groups; ``log_transmission`` (G, C) holds τ, t_g = exp(τ_g) > 0, zeros at
    the start (t = 1). The scale s (N, 1, H, W) and the group index of each image (N,) (−1: reflectance, no t) are
    arguments of :meth:`forward`.

    ``pinned_bands`` (P band indices): Ê's rows at those bands are the buffer ``pinned_endmembers`` (P, k), set
    with :meth:`set_pinned` and never trained, and the offset b is 0 there (``exact_input_bands``: the rows are
    the input cone's vertices, so the input bands come back exactly).
    """

    def __init__(self, k: int, n_bands: int, nonnegative: bool = True, bias: bool = True,
                 init_endmembers: torch.Tensor | None = None, endmembers: str = "learned",
                 atmosphere: Sequence[str] = (), pinned_bands: Sequence[int] = ()):
        super().__init__()
        where = "LinearMixingDecoder"
        self.k = positive_int(k, where, "k")
        self.n_bands = positive_int(n_bands, where, "n_bands")
        self.nonnegative = bool(nonnegative)
        if endmembers not in ENDMEMBER_KINDS:
            raise UBFInputError(where, f"endmembers must be one of {', '.join(ENDMEMBER_KINDS)}, got {endmembers!r}")
        self.endmember_kind = endmembers
        self.atmosphere = _group_names(atmosphere, where)
        if self.endmember_kind == "fixed":
            if init_endmembers is None:
                raise UBFInputError(where, "endmembers 'fixed' needs the matrix (C, k) (init_endmembers)")
            self.register_buffer("fixed_endmembers", torch.zeros(self.n_bands, self.k))
        else:
            self.raw_endmembers = nn.Parameter(torch.empty(self.n_bands, self.k))
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.n_bands))
        else:
            self.register_parameter("bias", None)
        if self.atmosphere:
            self.log_transmission = nn.Parameter(torch.zeros(len(self.atmosphere), self.n_bands))
        self.pinned_bands = tuple(int(b) for b in pinned_bands)
        if self.pinned_bands:
            if (len(set(self.pinned_bands)) != len(self.pinned_bands)
                    or not all(0 <= b < self.n_bands for b in self.pinned_bands)):
                raise UBFInputError(where, f"pinned_bands must be distinct band indices in 0..{self.n_bands - 1}, got "
                                           f"{list(self.pinned_bands)}")
            if self.endmember_kind == "fixed":
                raise UBFInputError(where, "pinned_bands are for learned endmembers; fixed ones are fixed already")
            mask = torch.zeros(self.n_bands, dtype=torch.bool)
            mask[list(self.pinned_bands)] = True
            self.register_buffer("pinned_mask", mask, persistent=False)
            self.register_buffer("pinned_endmembers", torch.zeros(len(self.pinned_bands), self.k))
        if init_endmembers is None:
            with torch.no_grad():
                self.set_endmembers(torch.rand(self.n_bands, self.k) * 0.8 + 0.1)
        else:
            self.set_endmembers(init_endmembers)

    @torch.no_grad()
    def set_endmembers(self, endmembers: Any) -> None:
        """Set Ê to ``endmembers`` (C, k), array-like, reflectance units (exactly, up to float32 rounding)."""
        where = "LinearMixingDecoder init_endmembers"
        E = torch.as_tensor(endmembers)
        if E.ndim != 2 or tuple(E.shape) != (self.n_bands, self.k):
            raise UBFInputError(where, f"endmembers must have shape (n_bands, k) = ({self.n_bands}, {self.k}), "
                                       f"got {tuple(E.shape)}")
        E = E.detach().to(dtype=torch.float64)
        if not torch.isfinite(E).all():
            raise UBFInputError(where, "endmembers contain NaN or infinite values")
        if self.endmember_kind == "fixed":
            if (E < 0).any():
                raise UBFInputError(where, "fixed endmembers must be >= 0 (reflectance)")
            self.fixed_endmembers.copy_(E.to(self.fixed_endmembers.device, self.fixed_endmembers.dtype))
            return
        E = E.to(device=self.raw_endmembers.device)
        if self.nonnegative:
            raw = softplus_inverse(E.clamp_min(ENDMEMBER_EPS))
        else:
            raw = E
        self.raw_endmembers.copy_(raw.to(self.raw_endmembers.dtype))

    @torch.no_grad()
    def set_pinned(self, values: Any) -> None:
        """Set the pinned rows (P, k) of Ê (``pinned_bands``): finite, ≥ 0 (reflectance; a rounding-level
        negative, above −1e-6 of the largest value, is 0)."""
        v = torch.as_tensor(values, dtype=torch.float32)
        if v.numel() and torch.isfinite(v).all() and v.min() >= -1e-6 * v.abs().max():
            v = v.clamp_min(0.0)
        if (not self.pinned_bands or v.shape != self.pinned_endmembers.shape or not torch.isfinite(v).all()
                or (v < 0).any()):
            raise UBFInputError("LinearMixingDecoder pinned_endmembers", f"must be finite, >= 0 and "
                                f"({len(self.pinned_bands)}, {self.k}) for a decoder with pinned_bands, got "
                                f"{tuple(v.shape)}")
        self.pinned_endmembers.copy_(v)

    def endmembers(self) -> torch.Tensor:
        """Ê (C, k) in reflectance units, differentiable (the decoder's actual weight)."""
        if self.endmember_kind == "fixed":
            return self.fixed_endmembers
        E = F.softplus(self.raw_endmembers) if self.nonnegative else self.raw_endmembers
        if self.pinned_bands:
            E = E.index_put((torch.tensor(self.pinned_bands, device=E.device),), self.pinned_endmembers.to(E.dtype))
        return E

    def offset(self) -> torch.Tensor | None:
        """b (C,), 0 at the pinned bands; None without the offset."""
        if self.bias is None or not self.pinned_bands:
            return self.bias
        return self.bias.masked_fill(self.pinned_mask, 0.0)

    def transmission(self) -> torch.Tensor | None:
        """t (G, C) > 0, one row per sensor group of ``atmosphere`` (None without the atmosphere term)."""
        return torch.exp(self.log_transmission) if self.atmosphere else None

    def forward(self, abundances: torch.Tensor, brightness: torch.Tensor | None = None,
                groups: torch.Tensor | None = None, nonlinear: nn.Module | None = None) -> torch.Tensor:
        """(N, k, H, W) → t_g ⊙ NM(s·Ê·Â; Â) + b, (N, C, H, W).

        ``brightness`` s: (N, 1, H, W) ≥ 0 or None (s = 1). ``groups``: (N,) integer sensor-group index of each
        image into ``atmosphere``, −1 for reflectance (no t); None: all reflectance. ``nonlinear``: NM, a module
        called as ``nonlinear(linear_mixture, abundances)`` (:class:`NeuralMixing`), or None (linear).
        Computed in the wider of the abundances' and the endmembers' dtypes, with mixed precision
        (``torch.autocast``) switched off: under autocast the float32 endmembers still mix in float32.
        """
        A = check_maps(abundances, "LinearMixingDecoder input", "abundances", self.k, empty_batch=True)
        with torch.autocast(A.device.type, enabled=False):
            E = self.endmembers()
            dtype = torch.promote_types(A.dtype, E.dtype)
            weight = E.to(dtype)[:, :, None, None]  # (C, k, 1, 1): a 1×1 convolution k → C
            bias = self.offset()
            bias = None if bias is None else bias.to(dtype)
            if brightness is None and groups is None and nonlinear is None:
                return F.conv2d(A.to(dtype), weight, bias)     # the plain linear model, as it always was
            y = F.conv2d(A.to(dtype), weight)
            if brightness is not None:
                if brightness.shape != (A.shape[0], 1, *A.shape[2:]):
                    raise UBFInputError("LinearMixingDecoder", f"brightness must have shape (N, 1, H, W) = "
                                                               f"{(A.shape[0], 1, *A.shape[2:])}, got "
                                                               f"{tuple(brightness.shape)}")
                y = y * brightness.to(dtype)
            if nonlinear is not None:
                y = nonlinear(y, A.to(dtype)).to(dtype)
            if groups is not None:
                y = y * self._transmission_of(groups, A.shape[0], E.device).to(dtype)[:, :, None, None]
            return y if bias is None else y + bias[None, :, None, None]

    def _transmission_of(self, groups: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
        """The factor (N, C) of each image: t of its group, 1 for group −1."""
        groups = torch.as_tensor(groups, device=device)
        if groups.shape != (n,) or groups.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8):
            raise UBFInputError("LinearMixingDecoder", f"groups must be ({n},) integers, got {tuple(groups.shape)} "
                                                       f"{groups.dtype}")
        g = len(self.atmosphere)
        if ((groups < -1) | (groups >= g)).any():
            raise UBFInputError("LinearMixingDecoder", f"group index out of range: -1 (reflectance) or 0..{g - 1} "
                                                       f"(sensor groups {list(self.atmosphere)})")
        ones = torch.ones(n, self.n_bands, device=groups.device)
        if not g:
            return ones
        t = torch.cat([torch.ones(1, self.n_bands, device=groups.device), self.transmission()], dim=0)
        return t[groups.long() + 1]

    def extra_repr(self) -> str:
        return (f"k={self.k}, n_bands={self.n_bands}, nonnegative={self.nonnegative}, "
                f"bias={self.bias is not None}, endmembers={self.endmember_kind}, atmosphere={list(self.atmosphere)}"
                + (f", pinned_bands={list(self.pinned_bands)}" if self.pinned_bands else ""))


def _group_names(names: Any, where: str) -> tuple[str, ...]:
    """Sensor-group names: distinct non-empty strings."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise UBFInputError(where, f"atmosphere must be a list of sensor-group names, got {names!r}")
    out = tuple(names)
    if any(not isinstance(n, str) or not n for n in out) or len(set(out)) != len(out):
        raise UBFInputError(where, f"atmosphere must list distinct non-empty names, got {list(out)}")
    return out


class UnmixingNet(nn.Module):
    """Encoder + linear-mixing decoder: 3-band image (N, 3, H, W) → (abundances (N, k, H, W), Ŷ (N, C, H, W)).

    ``config`` is a plain dict of the constructor arguments (without ``init_endmembers``; ``widths`` as a list so
    it survives JSON/YAML) and ``UnmixingNet.from_config(cfg)`` rebuilds an equally shaped model, to which a saved
    ``state_dict`` can then be loaded. Weight initialisation uses the torch global generator: the same
    ``torch.manual_seed`` gives the same weights.
    """

    def __init__(self, k: int, n_bands: int, stem: int = 32, widths: Sequence[int] = (64, 128, 96, 48),
                 nonnegative_endmembers: bool = True, bias: bool = True,
                 init_endmembers: torch.Tensor | None = None, in_channels: int = 3, endmembers: str = "learned",
                 brightness: bool = False, atmosphere: Sequence[str] = (), mixing: str = "linear",
                 mixing_options: dict | None = None, cone: bool = False, cone_vertices: Any = None,
                 exact_bands: Sequence[int] = ()):
        super().__init__()
        if mixing not in MIXING:
            raise UBFInputError("UnmixingNet", f"mixing must be one of {', '.join(MIXING)}, got {mixing!r}")
        options = _mixing_options(mixing, mixing_options)
        if not isinstance(brightness, bool):
            raise UBFInputError("UnmixingNet", f"brightness must be true or false, got {brightness!r}")
        exact_bands = [int(b) for b in exact_bands]
        if exact_bands and (len(exact_bands) != 3 or brightness or atmosphere or mixing != "linear"):
            raise UBFInputError("UnmixingNet", "exact_bands (the input bands reproduced exactly) needs the 3 input "
                                               "band indices and the plain linear decoder (no brightness, atmosphere "
                                               f"or neural mixing), got {exact_bands}")
        self.encoder = UnmixingEncoder(k=k, in_channels=in_channels, stem=stem, widths=widths,
                                       brightness=brightness, cone=cone, exact=bool(exact_bands))
        self.decoder = LinearMixingDecoder(k, n_bands, nonnegative=nonnegative_endmembers, bias=bias,
                                           init_endmembers=init_endmembers, endmembers=endmembers,
                                           atmosphere=atmosphere, pinned_bands=exact_bands)
        if cone_vertices is not None:
            self.set_cone(cone_vertices)
        # built last: the encoder's and the decoder's initial weights are those of the linear model
        self.nonlinear = NeuralMixing(int(n_bands), int(k), **options) if mixing == "neural" else None
        if self.nonlinear is not None:
            options = {key: self.nonlinear.config[key] for key in MIXING_OPTIONS}   # n_freq resolved
        self._config = {"k": int(k), "n_bands": int(n_bands), "stem": int(stem),
                        "widths": [int(w) for w in self.encoder.widths],
                        "nonnegative_endmembers": bool(nonnegative_endmembers), "bias": bool(bias),
                        "in_channels": int(in_channels), "endmembers": endmembers, "brightness": brightness,
                        "atmosphere": list(self.decoder.atmosphere), "mixing": mixing}
        if mixing == "neural":          # only then: a linear model's config is what it always was
            self._config["mixing_options"] = dict(options)
        if cone:
            self._config["cone"] = True
        if exact_bands:
            self._config["exact_bands"] = exact_bands

    @property
    def config(self) -> dict:
        """Constructor arguments (a fresh copy): k, n_bands, stem, widths, nonnegative_endmembers, bias, in_channels,
        endmembers (learned | fixed), brightness, atmosphere (sensor-group names), mixing, for mixing neural
        mixing_options (order, downsample, hidden, features, n_freq), cone (true: the encoder corrects the input
        cone's coordinates; its vertices are a buffer of the state_dict), and exact_bands (the 3 input bands'
        indices, reproduced exactly: Ê's rows there are the cone's vertices and the encoder keeps Vᵀa = x)."""
        return {key: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                for key, v in self._config.items()}

    @classmethod
    def from_config(cls, cfg: dict) -> "UnmixingNet":
        """A new (freshly initialised) model with the shapes described by ``cfg`` (as given by ``config``).

        A config saved before the decoder options (no endmembers, brightness, atmosphere, mixing) is the linear
        model with learned endmembers. Fixed endmembers start as zeros here: the saved state_dict fills them.
        """
        where = "UnmixingNet config"
        if not isinstance(cfg, dict):
            raise UBFInputError(where, f"must be a dict, got {type(cfg).__name__}")
        allowed = {"k", "n_bands", "stem", "widths", "nonnegative_endmembers", "bias", "in_channels", "endmembers",
                   "brightness", "atmosphere", "mixing", "mixing_options", "cone", "exact_bands"}
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise UBFInputError(where, f"unknown keys {unknown}; allowed: {sorted(allowed)}")
        missing = sorted({"k", "n_bands"} - set(cfg))
        if missing:
            raise UBFInputError(where, f"missing keys {missing}")
        kwargs = dict(cfg)
        if "widths" in kwargs:
            kwargs["widths"] = tuple(kwargs["widths"])
        if kwargs.get("endmembers") == "fixed":
            kwargs["init_endmembers"] = torch.zeros(int(kwargs["n_bands"]), int(kwargs["k"]))
        return cls(**kwargs)

    @property
    def k(self) -> int:
        return self._config["k"]

    @property
    def n_bands(self) -> int:
        return self._config["n_bands"]

    @property
    def has_brightness(self) -> bool:
        return self._config["brightness"]

    @property
    def atmosphere(self) -> list[str]:
        """The sensor groups with a solar–atmosphere factor t (empty: no atmosphere term)."""
        return list(self._config["atmosphere"])

    @property
    def mixing(self) -> str:
        """linear | neural."""
        return self._config["mixing"]

    def set_cone(self, vertices: Any) -> None:
        """Set the input-cone vertices (k, 3) of the encoder and, with ``exact_bands``, the decoder's rows at
        those bands (Vᵀ, (3, k))."""
        self.encoder.set_cone(vertices)
        if self.decoder.pinned_bands:
            self.decoder.set_pinned(torch.as_tensor(vertices, dtype=torch.float32).T)

    def endmembers(self) -> torch.Tensor:
        """Ê (C, k) in reflectance units (differentiable; ``.detach()`` it for export)."""
        return self.decoder.endmembers()

    def transmission(self) -> torch.Tensor | None:
        """t (G, C) > 0 per sensor group of :attr:`atmosphere`, or None."""
        return self.decoder.transmission()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, 3, H, W) → (abundances (N, k, H, W), brightness s (N, 1, H, W) or None without the brightness term)."""
        return self.encoder.encode(x)

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) → (abundances (N, k, H, W), reconstruction (N, C, H, W)).

        ``groups`` (N,) int: each image's sensor group (index into :attr:`atmosphere`, −1 reflectance); None: every
        image is reflectance. The reconstruction is in each image's own units (radiance for a radiance group).
        """
        if not self.has_brightness and groups is None and self.nonlinear is None:
            abundances = self.encoder(x)
            return abundances, self.decoder(abundances)
        abundances, brightness = self.encoder.encode(x)
        return abundances, self.decoder(abundances, brightness, groups, self.nonlinear)


def _mixing_options(mixing: str, options: dict | None) -> dict:
    """The NeuralMixing arguments of ``mixing: neural`` (order and downsample required); none for linear."""
    if mixing != "neural":
        if options:
            raise UBFInputError("UnmixingNet", f"mixing_options are for mixing neural, not {mixing!r}")
        return {}
    if not isinstance(options, dict):
        raise UBFInputError("UnmixingNet", f"mixing neural needs mixing_options (a dict of {', '.join(MIXING_OPTIONS)})"
                                           f", got {options!r}")
    unknown = sorted(set(options) - set(MIXING_OPTIONS))
    missing = sorted({"order", "downsample"} - set(options))
    if unknown or missing:
        raise UBFInputError("UnmixingNet", f"mixing_options: unknown {unknown}, missing {missing}; allowed: "
                                           f"{', '.join(MIXING_OPTIONS)}")
    return dict(options)


def n_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(math.prod(p.shape) for p in model.parameters() if p.requires_grad)
