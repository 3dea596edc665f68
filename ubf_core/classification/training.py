"""Training and scoring patch classifiers: seeded and deterministic on CPU.

Class imbalance is handled by **weighting the cross-entropy loss** by default (``balance="loss"``): class k gets
weight n / (K · n_k), n samples, K classes present, n_k samples of class k, so every class contributes equally to the
loss whatever its size. ``balance="sampler"`` instead draws each epoch's n samples with replacement, with
probability ∝ 1/n_k (balanced batches in expectation); ``balance="none"`` uses the plain loss.

Reproducibility: the same model initial state (see ``make_classifier(seed=...)``), data and ``seed`` give the same
weights and hence the same accuracy on CPU. Shuffling, balanced sampling and augmentation draw from a
``torch.Generator`` seeded with ``seed``; dropout draws from torch's global generator, which is seeded with ``seed``
inside a forked random state, so the caller's global random state is left as it was.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ubf_core.classification.augment import AugmentOptions, classic_augment
from ubf_core.devices import AmpStep, adam
from ubf_core.generators.seeding import deterministic_torch

__all__ = ["BALANCE_MODES", "TrainResult", "class_weights", "evaluate", "predict", "train_classifier"]

BALANCE_MODES = ("loss", "sampler", "none")


@dataclass
class TrainResult:
    """Per-epoch history (``epoch``, ``loss`` = mean training loss, ``train_accuracy`` on the (augmented) training
    batches, ``seconds``) and the total training time in seconds."""

    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be a 1-D array of {n} class indices, got shape {y.shape}")
    if len(y) and (y.dtype.kind not in "iu" or y.min() < 0):
        raise ValueError("labels must be non-negative integer class indices")
    return y.astype(np.int64)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Loss weights n / (K · n_k) per class, shape (n_classes,), float64; classes absent from ``y`` get 0.

    y: (n,) integer class indices in [0, n_classes); K is the number of classes present.
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def _check_x(x: np.ndarray | torch.Tensor, model) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 4:
        raise ValueError(f"patches must be (n, C, H, W), got shape {tuple(t.shape)}")
    n_bands = getattr(model, "n_bands", None)
    if n_bands is not None and t.shape[1] != n_bands:
        raise ValueError(f"patches have {t.shape[1]} bands, the model expects {n_bands}")
    if not torch.isfinite(t).all():
        raise ValueError("patches hold NaN or infinite values; drop or fill them before classification")
    return t.to(torch.float32)


def train_classifier(model: torch.nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray, epochs: int = 15,
                     batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                     augment: bool | dict | AugmentOptions = False,
                     device: str = "cpu", progress: bool | Callable[[int, dict], None] | None = None,
                     balance: str = "loss", weight_decay: float = 1e-4, n_classes: int | None = None) -> TrainResult:
    """Fit ``model`` in place with Adam and cross-entropy; returns a :class:`TrainResult`.

    x: (n, C, H, W) float32 reflectance patches; y: (n,) int class indices in [0, n_classes) (n_classes defaults to
    ``model.n_classes``, else max(y)+1). epochs, batch_size: full passes and patches per step; lr: Adam learning rate;
    weight_decay: L2 on all weights. augment: False, True (default :class:`AugmentOptions`), or options — classic
    augmentation of every training batch (:func:`classic_augment`). balance: ``"loss"`` (default, class-weighted
    loss), ``"sampler"`` or ``"none"`` (module docstring). device: torch device of the training. progress: None/False
    silent, True a progress bar over epochs, or a callable ``progress(epoch, record)`` called after each epoch with
    the history record. The model is left in eval mode on ``device``. On a CUDA device the forward pass runs in
    mixed precision (float16 activations, float32 weights and loss; :class:`ubf_core.devices.AmpStep`).
    """
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {', '.join(BALANCE_MODES)}, got {balance!r}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs ≥ 1, batch_size ≥ 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    tx = _check_x(x, model)
    ty = _labels(y, len(tx))
    if len(tx) == 0:
        raise ValueError("no training patches")
    n_classes = int(n_classes or getattr(model, "n_classes", 0) or ty.max() + 1)
    if ty.max() >= n_classes:
        raise ValueError(f"label {ty.max()} is outside the {n_classes} classes")
    aug = None if augment is False or augment is None else (
        AugmentOptions() if augment is True else
        augment if isinstance(augment, AugmentOptions) else AugmentOptions.from_dict(augment))
    dev = torch.device(device)
    weights = class_weights(ty, n_classes)
    loss_weight = torch.as_tensor(weights, dtype=torch.float32, device=dev) if balance == "loss" else None
    sample_p = torch.as_tensor(weights[ty] / weights[ty].sum()) if balance == "sampler" else None
    tx, tyt = tx.to(dev), torch.as_tensor(ty, device=dev)
    model.to(dev)
    opt = adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    amp = AmpStep(dev)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    result = TrainResult()
    n = len(tx)
    n_batches = math.ceil(n / batch_size)
    rng_devices = [dev.index or 0] if dev.type == "cuda" else []
    start = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=progress is not True, leave=False)
    with torch.random.fork_rng(devices=rng_devices), deterministic_torch():
        torch.manual_seed(int(seed))
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            order = (torch.multinomial(sample_p, n, replacement=True, generator=gen) if sample_p is not None
                     else torch.randperm(n, generator=gen))
            total, correct, seen = 0.0, 0, 0
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size].to(dev)
                if len(idx) < 2 and seen:      # batch norm cannot train on a single patch
                    continue
                xb, yb = tx[idx], tyt[idx]
                if aug is not None:
                    xb = classic_augment(xb, gen, aug)
                with amp.autocast():
                    logits = model(xb).float()
                    loss = F.cross_entropy(logits, yb, weight=loss_weight)
                amp.step(loss, opt)
                total += float(loss.detach()) * len(idx)
                correct += int((logits.detach().argmax(1) == yb).sum())
                seen += len(idx)
            record = {"epoch": epoch, "loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                      "seconds": time.perf_counter() - t0}
            result.history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_accuracy']:.2f}")
            if callable(progress):
                progress(epoch, record)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def predict(model: torch.nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 256,
            device: str | None = None) -> np.ndarray:
    """Predicted class indices, (n,) int64, for patches x (n, C, H, W) float32 reflectance (model in eval mode).

    device: where to run (default: where the model's parameters are).
    """
    tx = _check_x(x, model)
    dev = torch.device(device) if device else next(model.parameters()).device
    model.to(dev).eval()
    out = [model(tx[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(tx), batch_size)]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, np.int64)


def evaluate(model: torch.nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray, n_classes: int,
             batch_size: int = 256, device: str | None = None) -> dict:
    """Accuracy of ``model`` on patches x (n, C, H, W) with true classes y (n,) in [0, n_classes).

    Returns ``overall`` (fraction of patches right, 0–1), ``per_class`` (list of n_classes fractions: recall of each
    class; NaN for a class with no test patch), ``average`` (mean of the defined per-class values, "AA"),
    ``confusion`` (n_classes × n_classes counts, rows = true class, columns = predicted) and ``support`` (test
    patches per class).
    """
    ty = _labels(y, len(x))
    pred = predict(model, x, batch_size, device)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (ty, pred), 1)
    support = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    defined = per_class[~np.isnan(per_class)]
    return {"overall": float((pred == ty).mean()) if len(ty) else float("nan"),
            "per_class": [float(v) for v in per_class],
            "average": float(defined.mean()) if len(defined) else float("nan"),
            "confusion": confusion.tolist(), "support": support.tolist()}
