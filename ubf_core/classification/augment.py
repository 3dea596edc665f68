"""Classic (geometric) data augmentation of hyperspectral patch batches: flips, 90° rotations, small affine warps.

All randomness is drawn from the ``torch.Generator`` passed in (a CPU generator), so the same generator state gives
the same augmented batch. Every band of a patch gets the same geometric transform; spectra are never altered
except by the bilinear interpolation of the affine warp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentOptions", "classic_augment"]


@dataclass(frozen=True)
class AugmentOptions:
    """What :func:`classic_augment` does to each patch.

    flip: random horizontal and vertical flips (each with probability 0.5).
    rot90: a random multiple of 90° (0, 90, 180, 270; for non-square patches only 0 or 180, to keep the shape).
    affine_p: probability of a small affine warp; its rotation is uniform in ±``max_rotation_deg`` degrees, its
    translation uniform in ±``max_translation`` (fraction of the patch size, per axis), its isotropic scale uniform in
    [``min_scale``, ``max_scale``]. Pixels pulled from outside the patch are mirrored (reflection padding).
    """

    flip: bool = True
    rot90: bool = True
    affine_p: float = 0.5
    max_rotation_deg: float = 15.0
    max_translation: float = 0.1
    min_scale: float = 0.9
    max_scale: float = 1.1

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentOptions":
        """Build from a mapping of the field names above (None → the defaults); unknown keys are a ValueError."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown augmentation option {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(cls.__dataclass_fields__)}")
        return cls(**d)


def _affine(x: torch.Tensor, generator: torch.Generator, opts: AugmentOptions) -> torch.Tensor:
    n = x.shape[0]
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64)
    apply = u[:, 0] < opts.affine_p
    if not bool(apply.any()):
        return x
    angle = (2 * u[:, 1] - 1) * math.radians(opts.max_rotation_deg)
    scale = opts.min_scale + (opts.max_scale - opts.min_scale) * u[:, 2]
    shift = (2 * u[:, 3:5] - 1) * opts.max_translation * 2      # affine_grid coordinates span [-1, 1] = 2 units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    idx = torch.nonzero(apply).squeeze(1)
    sub = x[idx.to(x.device)]
    grid = F.affine_grid(theta[idx].to(device=x.device, dtype=x.dtype), list(sub.shape), align_corners=False)
    warped = F.grid_sample(sub, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out = x.clone()
    out[idx.to(x.device)] = warped
    return out


@torch.no_grad()
def classic_augment(x: torch.Tensor, generator: torch.Generator, options: AugmentOptions | dict | None = None
                    ) -> torch.Tensor:
    """A randomly flipped / rotated / warped copy of the batch ``x``.

    x: (n, C, H, W) float tensor (any device); generator: a CPU ``torch.Generator``, the only source of randomness;
    options: :class:`AugmentOptions` (or a mapping of its fields; None → defaults). Returns a new tensor of the same
    shape, dtype and device; ``x`` is not modified. Each patch gets its own random transform.
    """
    opts = options if isinstance(options, AugmentOptions) else AugmentOptions.from_dict(options)
    if x.ndim != 4:
        raise ValueError(f"classic_augment expects a batch (n, C, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    out = x.clone()
    if n == 0:
        return out
    if opts.flip:
        flips = torch.rand(n, 2, generator=generator) < 0.5
        fh, fv = flips[:, 0].to(x.device), flips[:, 1].to(x.device)
        out = torch.where(fh[:, None, None, None], out.flip(-1), out)
        out = torch.where(fv[:, None, None, None], out.flip(-2), out)
    if opts.rot90:
        if h == w:
            k = torch.randint(0, 4, (n,), generator=generator)
        else:
            k = 2 * torch.randint(0, 2, (n,), generator=generator)
        for turn in (1, 2, 3):
            sel = torch.nonzero(k == turn).squeeze(1).to(x.device)
            if len(sel):
                out[sel] = torch.rot90(out[sel], turn, dims=(-2, -1))
    if opts.affine_p > 0:
        out = _affine(out, generator, opts)
    return out
