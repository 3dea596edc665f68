"""Patch classifiers for the downstream scene-classification experiment.

Every classifier takes a batch of hyperspectral patches, float32 tensor of shape ``(n, C, H, W)`` holding reflectance
(unitless, typically 0–1; C = number of bands on the experiment's wavelength grid), and returns class logits of shape
``(n, n_classes)`` (unnormalised; apply ``softmax`` for probabilities). H and W may be any size ≥ 4; the nets end in
global average pooling. The first layer of each net is a per-band batch normalisation, so the reflectance scale of
the data set does not matter.

Names (:data:`CLASSIFIERS`):

- ``cnn``: a small 2-D CNN, three conv3×3–batch-norm–ReLU blocks (the first two followed by 2×2 max pooling),
  global average pooling, dropout and a linear layer. Options: ``width`` (channels of the first block, default 32;
  the next two have 2×width), ``dropout`` (default 0.2).
- ``spectral_resnet``: a spectral–spatial net: a 1×1 convolution reduces the C bands to ``reduced_bands`` spectral
  features (default 16), then a 3×3 stem and two residual blocks (the second with stride 2), global average pooling,
  dropout and a linear layer. Options: ``reduced_bands``, ``width`` (default 32), ``dropout`` (default 0.2).
"""

from __future__ import annotations

import torch
from torch import nn

from ubf_core.errors import UBFInputError

__all__ = ["CLASSIFIERS", "PatchCNN", "SpectralResNet", "make_classifier"]


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class PatchCNN(nn.Module):
    """Small 2-D CNN: (n, C, H, W) reflectance → (n, n_classes) logits (see the module docstring, name ``cnn``)."""

    def __init__(self, n_bands: int, n_classes: int, width: int = 32, dropout: float = 0.2):
        super().__init__()
        self.n_bands, self.n_classes = int(n_bands), int(n_classes)
        self.input_norm = nn.BatchNorm2d(n_bands)
        self.features = nn.Sequential(
            _conv_bn_relu(n_bands, width), nn.MaxPool2d(2),
            _conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            _conv_bn_relu(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (n, C, H, W) float32 reflectance → (n, n_classes) logits."""
        return self.head(self.features(self.input_norm(x)))


class _ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class SpectralResNet(nn.Module):
    """1×1 spectral reduction, then a small residual net: (n, C, H, W) → (n, n_classes) logits.

    Name ``spectral_resnet`` (see the module docstring).
    """

    def __init__(self, n_bands: int, n_classes: int, reduced_bands: int = 16, width: int = 32, dropout: float = 0.2):
        super().__init__()
        self.n_bands, self.n_classes = int(n_bands), int(n_classes)
        self.input_norm = nn.BatchNorm2d(n_bands)
        self.spectral = _conv_bn_relu(n_bands, reduced_bands, kernel=1)
        self.features = nn.Sequential(
            _conv_bn_relu(reduced_bands, width),
            _ResidualBlock(width, width, stride=2),
            _ResidualBlock(width, 2 * width, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (n, C, H, W) float32 reflectance → (n, n_classes) logits."""
        return self.head(self.features(self.spectral(self.input_norm(x))))


CLASSIFIERS: dict[str, type[nn.Module]] = {"cnn": PatchCNN, "spectral_resnet": SpectralResNet}
_OPTIONS = {"cnn": ("width", "dropout"), "spectral_resnet": ("reduced_bands", "width", "dropout")}


def make_classifier(name: str, n_bands: int, n_classes: int, seed: int | None = None, **opts) -> nn.Module:
    """A new, untrained classifier ``name`` (one of :data:`CLASSIFIERS`) for ``n_bands`` bands and ``n_classes``.

    Input (n, n_bands, H, W) float32 reflectance, output (n, n_classes) logits. ``seed`` makes the initial weights
    reproducible without touching the caller's global torch random state. ``opts`` are the architecture options
    listed in the module docstring; an unknown name or option is a ``UBFInputError``.
    """
    key = str(name).strip().lower()
    if key not in CLASSIFIERS:
        raise UBFInputError("classifier", f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}")
    unknown = sorted(set(opts) - set(_OPTIONS[key]))
    if unknown:
        raise UBFInputError(f"classifier {key}", f"unknown option {', '.join(map(repr, unknown))}; "
                                                 f"allowed: {', '.join(_OPTIONS[key])}")
    if int(n_bands) < 1 or int(n_classes) < 2:
        raise UBFInputError(f"classifier {key}", f"needs ≥1 band and ≥2 classes, got {n_bands} bands, "
                                                 f"{n_classes} classes")
    if seed is None:
        return CLASSIFIERS[key](int(n_bands), int(n_classes), **opts)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CLASSIFIERS[key](int(n_bands), int(n_classes), **opts)
