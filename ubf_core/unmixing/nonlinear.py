"""Pixel-adaptive nonlinear spectral mixing after INSS (Liu, Zou & Shi, "Hyperspectral remote sensing image synthesis
based on implicit neural spectral mixing models", IEEE TGRS 61, 2023, Eq. 3–7).

The linear mixture ``l = Ê·Â`` (N, C, H, W, reflectance) is corrected per pixel and per band by small MLPs whose
weights are not trained directly but predicted, for every pixel, from a spatial context map (N, F, H, W):

    y = l + Σ_{k=1..order} l ⊙ Π_{i≤k} M_i          (order 1: y = l + l ⊙ M_1; order 0: y = l exactly)

Each ``M_i`` (N, C, H, W) is dimensionless, a relative change of the linear reflectance, and lies in [−0.1, 0.1]
(``0.1·tanh`` output; ±0.1 itself only where float tanh rounds to ±1), so ``|y − l| ≤ |l| · Σ_{k=1..order} 0.1^k
< |l| / 9``: the correction is a bounded second-order effect (multiple scattering, adjacency), the linear mixture
stays the bulk of the signal.

How M_i is computed (the feature-transform network + hypernetwork, after ASAP-Net-style pixel-wise networks):

1. feature transform: ``context`` (N, F, H, W) → conv 3×3 (F → features) → leaky ReLU → average pooling D×D →
   conv 3×3 (features → features) → leaky ReLU: a feature map (N, features, ⌈H/D⌉, ⌈W/D⌉), D = ``downsample``;
2. hypernetwork head: a 1×1 convolution (features → order · P) predicts, at every low-resolution cell, all P
   weights and biases of the ``order`` MLPs. Its bias is the weights of a shared MLP (so a constant context gives
   one MLP everywhere), its weight the context-dependent change. The predicted weights are used by every pixel of
   the cell's D×D tile: nearest-neighbour upsampling of the parameter map;
3. pixel-wise MLPs: input ``[γ(p), context(p)]`` (4·n_freq + F values), 2 hidden layers × ``hidden`` with leaky
   ReLU (slope 0.01), output C values → ``0.1·tanh`` = M_i(p) over the C bands.

``γ(p)`` is the sinusoidal positional encoding of Eq. 7, ``(sin 2^j π x, cos 2^j π x, sin 2^j π y, cos 2^j π y)``
for j < n_freq, of the pixel's position inside its D×D tile, ``x = (column mod D + ½) / D`` ∈ (0, 1) (same for
rows): it lets one cell's predicted MLP vary smoothly across the D×D pixels it covers. Positions are taken relative
to the tile, not to the image, so the model is translation-equivariant by D pixels and any H × W works.

Choices made where the paper leaves room (its code feeds the MLP the position encoding alone; ours adds the
context):

- the MLP input holds the pixel's own context values besides γ(p). With a context of abundance maps (k values) this
  is the information of the linear mixture ``l = Ê·a`` in k instead of C numbers, at full resolution, so a
  pixel's correction can follow its own mixture (a bilinear Fan/GBM term Σ γ_ij a_i a_j e_i ⊙ e_j does) and not
  only its D×D cell;
- the MLP outputs the C bands directly (the paper's code outputs weights over a spectral library that multiply the
  library spectra), which keeps |M_i| < 0.1 exact and needs no library;
- the hypernetwork head is a single 1×1 convolution on the D×-reduced feature map (the paper: 3×3 then 1×1 with
  spectral normalisation);
- initial state: the shared MLPs' hidden layers start like a standard (Kaiming-uniform) MLP, their output layers
  near zero (|M_i| ≲ 1e-3), so training starts near the linear mixture.

In the UBF pipeline the context is the abundance maps themselves (N, k, H, W): synthesis then needs nothing but
generated abundance maps.

Shapes: N images, C bands, F context channels, H × W pixels (any H, W ≥ 1; not divisible by D is fine: the maps are
padded by edge replication to a multiple of D and cropped back). Units: ``linear_mixture`` and the output in the
reflectance units of the endmembers; the context in its own units (abundances: fractions).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ubf_core.errors import UBFInputError
from ubf_core.unmixing.checks import check_maps, int_at_least

__all__ = ["NeuralMixing", "positional_encoding", "MIXING_BOUND", "LEAKY_SLOPE"]

#: The bound of each M_i: ``M_i = MIXING_BOUND · tanh(·)`` (INSS's 0.1·tanh).
MIXING_BOUND = 0.1
#: Negative slope of the pixel-wise MLPs' and the feature network's leaky ReLU.
LEAKY_SLOPE = 0.01
#: Scale of the shared MLPs' initial output layer, relative to a Kaiming-uniform layer: |M_i| starts ≲ 1e-3.
_OUTPUT_INIT = 1e-2
#: Scale of the hypernetwork head's initial weight relative to the layer scale of the weights it predicts.
_HEAD_INIT = 0.5

_CONFIG_KEYS = ("n_bands", "context_channels", "order", "downsample", "hidden", "features", "n_freq")
_REQUIRED_KEYS = ("n_bands", "context_channels", "order", "downsample")


def positional_encoding(downsample: int, n_freq: int, dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Eq. 7 for the D×D positions of a tile: (D·D, 4·n_freq), row ``r·D + c`` for tile row r, column c.

    Columns per frequency j < n_freq: ``sin(2^j π x), cos(2^j π x), sin(2^j π y), cos(2^j π y)`` with
    ``x = (c + ½)/D``, ``y = (r + ½)/D`` in (0, 1). Dimensionless. n_freq = 0 gives a (D·D, 0) tensor.
    """
    d = int_at_least(downsample, 1, "positional_encoding", "downsample")
    n = int_at_least(n_freq, 0, "positional_encoding", "n_freq")
    centre = (torch.arange(d, dtype=torch.float64) + 0.5) / d
    y, x = torch.meshgrid(centre, centre, indexing="ij")             # (D, D) each
    x, y = x.reshape(-1, 1), y.reshape(-1, 1)                          # (D·D, 1)
    parts = []
    for j in range(n):
        f = (2.0 ** j) * math.pi
        parts += [torch.sin(f * x), torch.cos(f * x), torch.sin(f * y), torch.cos(f * y)]
    enc = torch.cat(parts, dim=1) if parts else torch.zeros(d * d, 0, dtype=torch.float64)
    return enc.to(dtype=dtype, device=device)


class NeuralMixing(nn.Module):
    """Pixel-adaptive nonlinear mixing (module docstring): ``forward(linear_mixture, context) → reconstruction``.

    Parameters
    ----------
    n_bands : int ≥ 1
        C, the bands of the linear mixture and of the output.
    context_channels : int ≥ 1
        F, the channels of the context map (the abundance maps: k).
    order : int ≥ 0
        Number of MLPs M_1 … M_order; 0 is linear mixing (the output is ``linear_mixture`` itself, no parameters).
    downsample : int ≥ 1
        D: the predicted MLP weights are one set per D×D tile.
    hidden : int ≥ 1
        Width of the MLPs' two hidden layers (INSS: 32).
    features : int ≥ 1
        Channels of the feature-transform network.
    n_freq : int ≥ 0 or None
        Frequencies of the positional encoding; None: ⌈log₂ D⌉ (one per halving of the tile, as the INSS code does;
        0 for D = 1, where every pixel is its own tile).

    Weights are initialised with the torch global generator: the same ``torch.manual_seed`` gives the same weights.
    ``config`` / :meth:`from_config` describe the architecture as a plain JSON-able dict; the weights are the
    ``state_dict`` (saved with safetensors beside it, as :mod:`ubf_core.unmixing.saved` does for the network).
    """

    def __init__(self, n_bands: int, context_channels: int, order: int, downsample: int, hidden: int = 32,
                 features: int = 32, n_freq: int | None = None):
        super().__init__()
        where = "NeuralMixing"
        self.n_bands = int_at_least(n_bands, 1, where, "n_bands")
        self.context_channels = int_at_least(context_channels, 1, where, "context_channels")
        self.order = int_at_least(order, 0, where, "order")
        self.downsample = int_at_least(downsample, 1, where, "downsample")
        self.hidden = int_at_least(hidden, 1, where, "hidden")
        self.features = int_at_least(features, 1, where, "features")
        self.n_freq = (math.ceil(math.log2(self.downsample)) if n_freq is None
                       else int_at_least(n_freq, 0, where, "n_freq"))
        self.mlp_inputs = 4 * self.n_freq + self.context_channels
        #: (fan_in, fan_out) of the three layers of each MLP
        self.layers = ((self.mlp_inputs, self.hidden), (self.hidden, self.hidden), (self.hidden, self.n_bands))
        #: scalars (weights then bias, per layer) of one MLP
        self.mlp_size = sum(fi * fo + fo for fi, fo in self.layers)
        self.register_buffer("encoding", positional_encoding(self.downsample, self.n_freq), persistent=False)
        if self.order == 0:
            self.transform, self.head = None, None
            return
        self.transform = nn.Sequential(
            nn.Conv2d(self.context_channels, self.features, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
            nn.AvgPool2d(self.downsample),
            nn.Conv2d(self.features, self.features, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE))
        self.head = nn.Linear(self.features, self.order * self.mlp_size)   # a 1×1 convolution, per cell
        self._init_head()

    @torch.no_grad()
    def _init_head(self) -> None:
        """Head bias = a shared MLP per order (hidden layers Kaiming-uniform for leaky ReLU, output layer ×
        ``_OUTPUT_INIT``); head weight = ``_HEAD_INIT`` × each layer's scale / √features, uniform."""
        bias = torch.empty(self.order * self.mlp_size)
        weight_scale = torch.empty(self.order * self.mlp_size)
        offset = 0
        for _ in range(self.order):
            for n_layer, (fan_in, fan_out) in enumerate(self.layers):
                bound = math.sqrt(6.0 / ((1.0 + LEAKY_SLOPE ** 2) * fan_in))
                if n_layer == len(self.layers) - 1:
                    bound *= _OUTPUT_INIT
                n_w = fan_in * fan_out
                bias[offset:offset + n_w].uniform_(-bound, bound)
                bias[offset + n_w:offset + n_w + fan_out].zero_()
                weight_scale[offset:offset + n_w + fan_out] = bound
                offset += n_w + fan_out
        self.head.bias.copy_(bias)
        w = torch.empty_like(self.head.weight).uniform_(-1.0, 1.0)       # (order·P, features)
        self.head.weight.copy_(w * (_HEAD_INIT * weight_scale / math.sqrt(self.features))[:, None])

    @property
    def config(self) -> dict:
        """The constructor arguments as a plain JSON-able dict (``n_freq`` resolved)."""
        return {key: int(getattr(self, key)) for key in _CONFIG_KEYS}

    @classmethod
    def from_config(cls, cfg: dict) -> "NeuralMixing":
        """A new (freshly initialised) module with the architecture ``cfg`` describes (as ``config`` gives it)."""
        where = "NeuralMixing config"
        if not isinstance(cfg, dict):
            raise UBFInputError(where, f"must be a dict, got {type(cfg).__name__}")
        unknown = sorted(set(cfg) - set(_CONFIG_KEYS))
        if unknown:
            raise UBFInputError(where, f"unknown keys {unknown}; allowed: {list(_CONFIG_KEYS)}")
        missing = [key for key in _REQUIRED_KEYS if key not in cfg]
        if missing:
            raise UBFInputError(where, f"missing keys {missing}")
        return cls(**cfg)

    def mixing_factors(self, context: torch.Tensor) -> list[torch.Tensor]:
        """The ``order`` relative corrections M_i, each (N, C, H, W), dimensionless, in [−0.1, 0.1].

        ``context``: (N, F, H, W) floating. Empty list for order 0. Computed in the module's dtype (float32 unless
        it was converted), whatever the context's.
        """
        ctx = check_maps(context, "NeuralMixing context", "the context map", self.context_channels)
        if self.order == 0:
            return []
        ctx = ctx.to(self.head.weight.dtype)
        n, _, h, w = ctx.shape
        d = self.downsample
        hp, wp = -(-h // d) * d, -(-w // d) * d
        if (hp, wp) != (h, w):                                             # edge-replicate to a multiple of D
            ctx = F.pad(ctx, (0, wp - w, 0, hp - h), mode="replicate")
        th, tw = hp // d, wp // d
        cells = n * th * tw
        feats = self.transform(ctx).permute(0, 2, 3, 1).reshape(cells, self.features)   # (N·hp/D·wp/D, features)
        params = self.head(feats)                                          # (cells, order·P)
        # per-pixel MLP inputs, tile layout (cells, D·D, inputs): position in the tile, then the context
        ctx_tiles = (ctx.reshape(n, self.context_channels, th, d, tw, d).permute(0, 2, 4, 3, 5, 1)
                     .reshape(cells, d * d, self.context_channels))
        enc = self.encoding.to(dtype=ctx.dtype).expand(cells, d * d, 4 * self.n_freq)
        inputs = torch.cat([enc, ctx_tiles], dim=2)
        sizes = [size for fan_in, fan_out in self.layers for size in (fan_in * fan_out, fan_out)]
        chunks = iter(params.split(sizes * self.order, dim=1))           # one split: a cheap backward
        factors = []
        for _ in range(self.order):
            x = inputs
            for n_layer, (fan_in, fan_out) in enumerate(self.layers):
                weight = next(chunks).reshape(cells, fan_in, fan_out)
                bias = next(chunks).unsqueeze(1)
                x = torch.baddbmm(bias, x, weight)                          # (cells, D·D, fan_out)
                if n_layer < len(self.layers) - 1:
                    x = F.leaky_relu(x, LEAKY_SLOPE)
            m = MIXING_BOUND * torch.tanh(x)                                # (cells, D·D, C)
            m = (m.reshape(n, th, tw, d, d, self.n_bands).permute(0, 5, 1, 3, 2, 4)
                 .reshape(n, self.n_bands, hp, wp))
            factors.append(m[:, :, :h, :w])
        return factors

    def forward(self, linear_mixture: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``l`` (N, C, H, W) reflectance, ``context`` (N, F, H, W) → ``l + Σ_k l ⊙ Π_{i≤k} M_i`` (N, C, H, W).

        Order 0 returns ``linear_mixture`` itself. ``context`` must have the same N, H, W as ``linear_mixture``.
        """
        lin = check_maps(linear_mixture, "NeuralMixing linear_mixture", "the linear mixture", self.n_bands)
        ctx = check_maps(context, "NeuralMixing context", "the context map", self.context_channels)
        if (ctx.shape[0], *ctx.shape[2:]) != (lin.shape[0], *lin.shape[2:]):
            raise UBFInputError("NeuralMixing context", f"the context map {tuple(ctx.shape)} must have the N, H, W "
                                                        f"of the linear mixture {tuple(lin.shape)}")
        if self.order == 0:
            return lin
        out, term = lin, lin
        for m in self.mixing_factors(ctx):
            term = term * m.to(lin.dtype)                                  # l ⊙ Π_{i≤k} M_i
            out = out + term
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={getattr(self, key)}" for key in _CONFIG_KEYS)
