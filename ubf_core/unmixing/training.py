"""Training the unmixing network: seeded, deterministic on CPU, early stopping on the validation loss.

The trainer knows nothing of MLflow: per-epoch records go to an ``on_epoch`` callback (the task logs them).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ubf_core.devices import AmpStep, adam, resolve_autocast
from ubf_core.metrics.reconstruction import psnr, reconstruction_report, rmse
from ubf_core.unmixing.losses import UnmixingLoss


@dataclass
class TrainConfig:
    """Optimisation settings (params.yaml ``unmixing.train``)."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5            # epochs without a validation-loss improvement before stopping
    min_delta: float = 0.0       # improvement smaller than this does not count
    seed: int = 0
    device: str = "cpu"
    autocast: str = "auto"       # auto | none | bfloat16 | float16: mixed precision of the forward pass
    progress: bool = True


@dataclass
class TrainResult:
    """The best model state (by validation loss), the per-epoch history and where training stopped."""

    best_state: dict
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy, ask torch for deterministic kernels, and return a generator for shuffling."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def _forward(model, x: torch.Tensor, groups: torch.Tensor | None):
    """The model on a batch: ``groups`` (the batch's sensor-group indices) only when there are any, so the default
    model is called exactly as it always was."""
    return model(x) if groups is None else model(x, groups=groups)


@torch.no_grad()
def evaluate(model, loss_fn: UnmixingLoss, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             data_range: float = 1.0, full: bool = True, groups: torch.Tensor | None = None) -> dict:
    """Validation loss and reconstruction metrics: RMSE and PSNR (over ``data_range``), and with ``full`` also
    SSIM, SAD° and ERGAS (:func:`ubf_core.metrics.reconstruction.reconstruction_report`), the costlier ones.
    ``groups`` (N,): each patch's sensor group for the atmosphere term (None: all reflectance)."""
    model.eval()
    recon, total = [], 0.0
    for i in range(0, len(x), batch_size):
        _, y_hat = _forward(model, x[i:i + batch_size], None if groups is None else groups[i:i + batch_size])
        loss, _ = loss_fn(y_hat, y[i:i + batch_size], model.endmembers())
        total += float(loss) * len(y_hat)
        recon.append(y_hat)
    y_hat, y_ref = torch.cat(recon).cpu().numpy(), y.cpu().numpy()
    if full:
        report = reconstruction_report(y_hat, y_ref, data_range=data_range)
    else:
        report = {"rmse": rmse(y_hat, y_ref), "psnr": psnr(y_hat, y_ref, data_range=data_range)}
    return {"val_loss": total / len(x), **{f"val_{k}": v for k, v in report.items()}}


def train_unmixing(model, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                   cfg: TrainConfig, loss_fn: UnmixingLoss | None = None,
                   on_epoch: Callable[[int, dict], None] | None = None, train_groups: np.ndarray | None = None,
                   val_groups: np.ndarray | None = None) -> TrainResult:
    """Fit ``model`` (3-band input (N, 3, H, W) → reconstruction (N, C, H, W)) with Adam.

    ``train_groups`` / ``val_groups`` (N,) int: each patch's sensor group of the decoder's atmosphere term (−1:
    reflectance); None (both): every patch is reflectance and the model is called without them.

    The forward pass runs under ``cfg.autocast`` (:func:`ubf_core.devices.resolve_autocast`; auto: float16 on
    CUDA, bfloat16 on a CPU with fast bfloat16 kernels, float32 elsewhere; :class:`ubf_core.devices.AmpStep`); the
    loss is computed in float32 from the float32 reconstruction, with the endmembers Ê as the float32 parameters
    hold them. The validation pass runs in float32 on every device.

    After each epoch the validation set is scored (loss, RMSE, PSNR); the state with the lowest validation loss is
    kept and restored at the end, and its epoch's record gets the full report (SSIM, SAD°, ERGAS too); training
    stops after ``cfg.patience`` epochs without improvement.
    """
    loss_fn = loss_fn or UnmixingLoss()
    gen = seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model.to(device)
    tx, ty = torch.as_tensor(train_x, device=device), torch.as_tensor(train_y, device=device)
    vx, vy = torch.as_tensor(val_x, device=device), torch.as_tensor(val_y, device=device)
    tg = None if train_groups is None else torch.as_tensor(np.asarray(train_groups, dtype=np.int64), device=device)
    vg = None if val_groups is None else torch.as_tensor(np.asarray(val_groups, dtype=np.int64), device=device)
    # the per-tensor Adam loop: the model stays bit-identical to the one whose endmembers the shipped generator
    # checkpoint learned (checkpoint.py allows 1°); the fused kernel rounds differently
    opt = adam(model.parameters(), lr=cfg.lr, fused=False, weight_decay=cfg.weight_decay)
    amp = AmpStep(device, resolve_autocast(device, cfg.autocast, "unmixing.train.autocast"))
    best, best_epoch, since, history = math.inf, 0, 0, []
    best_state = copy.deepcopy(model.state_dict())
    n_batches = math.ceil(len(tx) / cfg.batch_size)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(tx), generator=gen)
        sums: dict[str, float] = {}
        bar = tqdm(range(n_batches), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", disable=not cfg.progress,
                   leave=False)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size].to(device)
            with amp.autocast():
                _, y_hat = _forward(model, tx[idx], None if tg is None else tg[idx])
                loss, parts = loss_fn(y_hat.float(), ty[idx], model.endmembers())
            amp.step(loss, opt)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        record = {"epoch": epoch, **{f"train_{k}": v / len(tx) for k, v in sums.items()},
                  **evaluate(model, loss_fn, vx, vy, cfg.batch_size, full=False, groups=vg)}
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        if record["val_loss"] < best - cfg.min_delta:
            best, best_epoch, since = record["val_loss"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
            if since >= cfg.patience:
                break
    model.load_state_dict(best_state)
    history[best_epoch - 1].update(evaluate(model, loss_fn, vx, vy, cfg.batch_size, groups=vg))
    return TrainResult(best_state, best_epoch, history, stopped_early=since >= cfg.patience)
