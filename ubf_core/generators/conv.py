"""What the compact convolutional VAE and GAN share: building blocks, option checks and latent draws.

Both work on maps of one fixed size (H, W) divisible by 2^levels: an encoder halves the resolution ``levels`` times
and flattens; a decoder maps a latent vector back to k logits per pixel, which the models turn into abundances with
a softmax over k (so every output lies on the simplex).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ubf_core.errors import UBFInputError
from ubf_core.generators.base import AbundanceGenerator

__all__ = ["ConvEncoder", "ConvDecoder", "LatentConvGenerator"]


def _width(channels: int, level: int) -> int:
    """Feature channels at ``level`` (0 = full resolution): channels·2^level."""
    return channels * 2 ** level


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, ch), ch)


class ConvEncoder(nn.Module):
    """Abundance maps (B, k, H, W) → features (B, out_dim), out_dim = channels·2^levels · H/2^levels · W/2^levels.

    ``spectral=True`` puts spectral normalisation on every layer and uses LeakyReLU (a GAN discriminator);
    otherwise SiLU activations (a VAE encoder).
    """

    def __init__(self, k: int, size: tuple[int, int], channels: int, levels: int, spectral: bool = False):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda layer: layer)
        act = (lambda: nn.LeakyReLU(0.2)) if spectral else nn.SiLU
        layers: list[nn.Module] = [wrap(nn.Conv2d(k, channels, 3, padding=1)), act()]
        for level in range(levels):
            layers += [wrap(nn.Conv2d(_width(channels, level), _width(channels, level + 1), 4, stride=2, padding=1)),
                       act()]
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = _width(channels, levels) * (size[0] >> levels) * (size[1] >> levels)

    def forward(self, abundances: torch.Tensor) -> torch.Tensor:
        return self.body(abundances)


class ConvDecoder(nn.Module):
    """Vectors (B, in_dim) → abundance logits (B, k, H, W): a linear layer to (channels·2^levels, H/2^levels,
    W/2^levels), then ``levels`` × (nearest ×2 upsampling, 3×3 convolution, group norm, SiLU), then a 3×3
    convolution to k channels."""

    def __init__(self, in_dim: int, k: int, size: tuple[int, int], channels: int, levels: int):
        super().__init__()
        self.top = (_width(channels, levels), size[0] >> levels, size[1] >> levels)
        self.fc = nn.Linear(in_dim, math.prod(self.top))
        layers: list[nn.Module] = [_norm(self.top[0]), nn.SiLU()]
        for level in range(levels, 0, -1):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(_width(channels, level), _width(channels, level - 1), 3, padding=1),
                       _norm(_width(channels, level - 1)), nn.SiLU()]
        layers.append(nn.Conv2d(channels, k, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(vectors).view(len(vectors), *self.top))


class LatentConvGenerator(AbundanceGenerator):
    """Base of the VAE and GAN: a decoder from a latent vector z ~ N(0, I) (and a class embedding) to abundances.

    Options: channels (feature channels at full resolution, doubled at each level), levels (number of ×2
    down/upsamplings), latent_dim, plus p_uncond and init_seed. Sample option: temperature (the latent draws are
    z = temperature·N(0, I); 1 = the training prior).
    """

    defaults = {"channels": 32, "levels": 2, "latent_dim": 64}
    sample_options = frozenset({"temperature"})

    def _check_config(self) -> None:
        for key in ("channels", "levels", "latent_dim"):
            value = self.config[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UBFInputError(f"{self.name} generator", f"{key} must be a positive integer, got {value!r}")

    def _check_size(self, size: tuple[int, int], where: str) -> None:
        f = 2 ** self.config["levels"]
        if size[0] % f or size[1] % f:
            raise UBFInputError(where, f"size {size[0]}×{size[1]} is not a multiple of {f} (2^levels, levels = "
                                       f"{self.config['levels']})")
        if tuple(size) != self.size:
            raise UBFInputError(where, f"this {self.name} model produces {self.size[0]}×{self.size[1]} maps only, "
                                       f"not {size[0]}×{size[1]}")

    def _class_embedding(self) -> nn.Embedding | None:
        """``len(classes) + 1`` rows of latent_dim (the last = "no class"), or None for an unconditional model."""
        return None if self.classes is None else nn.Embedding(len(self.classes) + 1, self.config["latent_dim"])

    def _decoder_input_dim(self) -> int:
        return self.config["latent_dim"] * (1 if self.classes is None else 2)

    def _latents(self, generators: list[torch.Generator], temperature: float) -> torch.Tensor:
        """z (n, latent_dim): row j drawn from ``generators[j]`` only, times ``temperature``."""
        if not float(temperature) >= 0:
            raise UBFInputError(f"{self.name} generator.sample", f"temperature must be ≥ 0, got {temperature}")
        z = torch.stack([torch.randn(self.config["latent_dim"], generator=g) for g in generators])
        return (z * float(temperature)).to(self.device)

    def _sample_labels(self, n: int, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Class indices (n,) for the decoder: the given ones, "no class" when none are given, None without classes."""
        if self.classes is None:
            return None
        if labels is None:
            labels = torch.full((n,), self.null_class, dtype=torch.long)
        return labels.to(self.device)
