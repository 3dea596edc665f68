"""An in-project feature network for judging generated HSIs: no downloaded weights.

Inception features (FID/KID) are trained on RGB photographs and do not take C-band cubes, so, as HUD does, a small
CNN is trained per data set to tell which real source (scene or class, integer labels from the caller) each real
patch comes from; its penultimate layer is the embedding fed to :mod:`ubf_core.metrics.distribution`
(Fréchet distance, KID, precision/recall).

Architecture (:class:`FeatureNet`): per-band standardisation (mean/std of the training patches, kept as buffers)
→ 2×2 average pool → 1×1 conv C→w (a learned spectral projection) → ReLU → 3×3 conv w→w → ReLU → 2×2 average
pool → 3×3 conv w→2w → ReLU → global average pool → linear 2w→d = **embedding** → linear d→classes (the head).
Patches must be at least 4×4 pixels; any size works (global pooling). Pooling first keeps it cheap: one epoch
over 400 patches of 59×32×32 takes about a second on 2 CPU cores (w = 32).

Saved form (:func:`save_feature_net`): a folder with ``feature_net.json`` (configuration) and
``feature_net.pt`` (torch state dict), each written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ubf_core.devices import AmpStep, adam
from ubf_core.errors import UBFInputError
from ubf_core.generators.seeding import deterministic_torch

__all__ = ["FeatureNet", "train_feature_net", "embed", "save_feature_net", "load_feature_net"]

CONFIG_FILE = "feature_net.json"
WEIGHTS_FILE = "feature_net.pt"
_FORMAT = "ubf-feature-net"
_WHERE = "feature net"


class FeatureNet(nn.Module):
    """Small CNN: HSI patches (n, C, H, W) float reflectance → embedding (n, dim), plus a class head.

    ``in_bands`` C, ``n_classes`` (≥ 2) source labels, ``dim`` embedding length, ``width`` w channels of the
    first convolutions. ``forward`` returns class logits (n, n_classes); :meth:`embedding` the (n, dim) features.
    """

    def __init__(self, in_bands: int, n_classes: int, dim: int = 64, width: int = 32):
        super().__init__()
        if in_bands < 1 or n_classes < 2 or dim < 1 or width < 1:
            raise UBFInputError(_WHERE, f"needs in_bands ≥ 1, n_classes ≥ 2, dim ≥ 1, width ≥ 1; got {in_bands}, "
                                        f"{n_classes}, {dim}, {width}")
        self.config = {"in_bands": int(in_bands), "n_classes": int(n_classes), "dim": int(dim), "width": int(width)}
        self.register_buffer("band_mean", torch.zeros(in_bands))
        self.register_buffer("band_std", torch.ones(in_bands))
        w = int(width)
        self.body = nn.Sequential(
            nn.AvgPool2d(2), nn.Conv2d(in_bands, w, 1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * w, dim),
        )
        self.head = nn.Linear(dim, n_classes)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) reflectance → (n, dim) features (before the class head)."""
        x = (x - self.band_mean[:, None, None]) / self.band_std[:, None, None]
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) reflectance → (n, n_classes) class logits."""
        return self.head(self.embedding(x))


def _patches(patches, where: str, in_bands: int | None = None) -> np.ndarray:
    """Check and return float32 patches (n, C, H, W) with n ≥ 1, H, W ≥ 4 and (if given) C == in_bands."""
    x = np.asarray(patches)
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[2] < 4 or x.shape[3] < 4:
        raise UBFInputError(where, f"expected patches (n, C, H, W) with n ≥ 1 and H, W ≥ 4, got shape {x.shape}")
    if in_bands is not None and x.shape[1] != in_bands:
        raise UBFInputError(where, f"patches have {x.shape[1]} bands but the network takes {in_bands}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise UBFInputError(where, "patches hold NaN or infinite values")
    return x


def train_feature_net(patches, labels, epochs: int = 20, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                      device: str = "cpu", dim: int = 64, width: int = 32,
                      progress: Callable[[int, dict], None] | None = None) -> FeatureNet:
    """Train a :class:`FeatureNet` to classify real patches by source; returns it in eval mode on the CPU.

    patches: (n, C, H, W) float reflectance, n ≥ 2, H, W ≥ 4; labels: (n,) ints 0 … n_classes−1 with at least two
    distinct values (n_classes = max label + 1). Loss: cross-entropy, Adam with learning rate ``lr``, mini-batches
    of ``batch_size`` shuffled by a ``torch.Generator`` seeded with ``seed``; weights are initialised after
    ``torch.manual_seed(seed)`` inside a forked RNG (the caller's global RNG state is left as it was), with
    deterministic kernels requested: the same inputs and seed give the same network on the CPU. On a CUDA
    ``device`` training runs in mixed precision (:class:`ubf_core.devices.AmpStep`); :func:`embed` stays float32.
    ``progress(epoch, {"loss", "accuracy"})`` is called after each epoch (mean training loss and accuracy).
    """
    x = _patches(patches, _WHERE)
    y = np.asarray(labels)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise UBFInputError(_WHERE, f"labels must be {len(x)} integers (one per patch), got shape {y.shape} of "
                                    f"{y.dtype}")
    if len(x) < 2 or y.min() < 0 or len(np.unique(y)) < 2:
        raise UBFInputError(_WHERE, f"training needs at least 2 patches and 2 distinct non-negative labels, got "
                                    f"{len(x)} patches with labels {sorted(np.unique(y).tolist())[:10]}")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise UBFInputError(_WHERE, f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = FeatureNet(x.shape[1], int(y.max()) + 1, dim=dim, width=width)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    net.band_mean.copy_(xt.mean(dim=(0, 2, 3)))
    net.band_std.copy_(xt.std(dim=(0, 2, 3)).clamp_min(1e-6))
    net.to(device)
    opt = adam(net.parameters(), lr=float(lr))
    amp = AmpStep(device)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(int(seed))
    with deterministic_torch():
        for epoch in range(int(epochs)):
            net.train()
            total, correct = 0.0, 0
            for idx in torch.randperm(len(xt), generator=gen).split(int(batch_size)):
                xb, yb = xt[idx].to(device), yt[idx].to(device)
                with amp.autocast():
                    logits = net(xb).float()
                    loss = loss_fn(logits, yb)
                amp.step(loss, opt)
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(dim=1) == yb).sum())
            if progress is not None:
                progress(epoch, {"loss": total / len(xt), "accuracy": correct / len(xt)})
    return net.to("cpu").eval()


@torch.no_grad()
def embed(net: FeatureNet, patches, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Features of patches: (n, C, H, W) float reflectance (C = the net's bands, H, W ≥ 4) → float32 (n, dim)."""
    x = _patches(patches, _WHERE, net.config["in_bands"])
    if int(batch_size) < 1:
        raise UBFInputError(_WHERE, f"batch_size must be at least 1, got {batch_size}")
    net = net.to(device).eval()
    out = [net.embedding(torch.from_numpy(x[i:i + batch_size]).to(device)).cpu()
           for i in range(0, len(x), int(batch_size))]
    net.to("cpu")
    return torch.cat(out).numpy().astype(np.float32)


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp)`` to a temporary name beside ``path``, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_feature_net(net: FeatureNet, path: str | Path) -> Path:
    """Write ``net`` to the folder ``path`` (created): ``feature_net.pt`` (state dict, incl. the band statistics)
    and ``feature_net.json`` (format, version, configuration), each atomically. Returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    _replace_atomically(folder / WEIGHTS_FILE, lambda tmp: torch.save(state, tmp))
    meta = {"format": _FORMAT, "version": 1, "config": net.config}
    _replace_atomically(folder / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def load_feature_net(path: str | Path) -> FeatureNet:
    """Restore a network written by :func:`save_feature_net` (eval mode, CPU)."""
    folder = Path(path)
    config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise UBFInputError(folder, f"not a saved feature net: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    meta = json.loads(config_file.read_text())
    if meta.get("format") != _FORMAT:
        raise UBFInputError(config_file, f"format is {meta.get('format')!r}, expected {_FORMAT!r}")
    net = FeatureNet(**meta["config"])
    net.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    return net.eval()
