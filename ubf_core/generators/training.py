"""How a generator is trained, apart from what it is: the settings of a run (counted in optimizer steps), the
learning-rate schedule, the exponential moving average (EMA) of the weights used for sampling, and the dihedral
augmentation of abundance maps.

* :class:`TrainSettings` — every number of a run, as data (``TrainSettings.from_params(params["generator"]["train"])``).
* :func:`lr_factor` — linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` × lr (or constant).
* :class:`WeightEMA` — θ_ema ← d·θ_ema + (1 − d)·θ after every step, with the usual warm-up of the decay
  d_t = min(d, (1 + t) / (10 + t)), so early averages are not dominated by the random initial weights.
* :func:`dihedral` — each map of a batch flipped and rotated by one of the 8 symmetries of the square (flips only
  for non-square maps), drawn from the run's torch generator: aerial scenes have no preferred orientation, so this
  multiplies the training maps by eight without changing what a scene looks like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ubf_core.devices import AUTOCAST_CHOICES
from ubf_core.errors import UBFInputError

__all__ = ["TrainSettings", "lr_factor", "WeightEMA", "dihedral", "DECAYS"]

DECAYS = ("cosine", "constant")


@dataclass(frozen=True)
class TrainSettings:
    """One training run of a generator.

    steps: optimizer steps (batches; 0: none, for a model that starts from a checkpoint); batch_size: maps per step; lr: peak learning rate (None: the model's
    ``default_lr``); warmup_steps: linear warm-up from lr/warmup_steps to lr; decay: "cosine" (to
    ``min_lr_ratio``·lr at the last step) or "constant"; ema_decay: decay d of the weight EMA used for sampling
    (0: no EMA, the last weights are kept); augment: random flips and 90° rotations of every batch;
    log_every: steps per history record (losses averaged over them); autocast: mixed precision of the forward
    passes, auto | none | bfloat16 | float16 (:func:`ubf_core.devices.resolve_autocast`).
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float | None = None
    warmup_steps: int = 0
    decay: str = "cosine"
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    augment: bool = True
    log_every: int = 50
    autocast: str = "auto"

    def __post_init__(self) -> None:
        where = "generator.train"
        for name in ("steps", "batch_size", "log_every"):
            value, low = getattr(self, name), 0 if name == "steps" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UBFInputError(where, f"{name} must be an integer ≥ {low}, got {value!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise UBFInputError(where, f"warmup_steps must be an integer ≥ 0, got {self.warmup_steps!r}")
        if self.lr is not None and not float(self.lr) > 0:
            raise UBFInputError(where, f"lr must be positive, got {self.lr}")
        if self.decay not in DECAYS:
            raise UBFInputError(where, f"decay must be one of {DECAYS}, got {self.decay!r}")
        if not 0.0 <= float(self.min_lr_ratio) <= 1.0:
            raise UBFInputError(where, f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise UBFInputError(where, f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.autocast not in AUTOCAST_CHOICES:
            raise UBFInputError(f"{where}.autocast", f"must be one of {', '.join(AUTOCAST_CHOICES)}, "
                                                     f"got {self.autocast!r}")

    @classmethod
    def from_params(cls, d: dict | None) -> "TrainSettings":
        """From a params section such as ``generator.train``; ``device`` (chosen elsewhere) is ignored, any other
        unknown key is an error naming it."""
        d = {k: v for k, v in (d or {}).items() if k != "device"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UBFInputError("generator.train", f"unknown key(s) {unknown}; known: {sorted(known | {'device'})}")
        return cls(**d)


def lr_factor(step: int, settings: TrainSettings) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based): warm-up, then cosine decay or constant."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    if settings.decay == "constant":
        return 1.0
    span = max(1, settings.steps - settings.warmup_steps - 1)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    low = float(settings.min_lr_ratio)
    return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WeightEMA:
    """Exponential moving average of the floating-point parameters and buffers of some networks.

    ``update()`` after each optimizer step; ``copy_to()`` writes the averages into the networks (what sampling
    then uses). Averages are kept in float32 on the networks' device.
    """

    def __init__(self, networks: dict[str, torch.nn.Module], decay: float):
        self.decay = float(decay)
        self.updates = 0
        # (live tensor, its float32 average) for every floating-point entry of the state dicts; the live tensors
        # share storage with the networks' parameters and buffers, which optimisers update in place
        self._live = [value for net in networks.values() for value in net.state_dict().values()
                      if value.is_floating_point()]
        self._shadow = [value.detach().clone().float() for value in self._live]

    @torch.no_grad()
    def update(self) -> None:
        """average ← d·average + (1 − d)·live, with d = min(decay, (1 + updates) / (10 + updates)) (a short
        warm-up, so early averages do not cling to the random initial weights); one fused call for all tensors."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._shadow, [v.detach().float() for v in self._live], 1.0 - d)

    @torch.no_grad()
    def copy_to(self) -> None:
        for value, average in zip(self._live, self._shadow):
            value.copy_(average.to(value.dtype))


def dihedral(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, k, H, W) → the same maps, each under a random symmetry of the square (drawn from ``gen``, CPU)."""
    square = batch.shape[-1] == batch.shape[-2]
    choice = torch.randint(0, 8 if square else 4, (len(batch),), generator=gen)
    out = batch.clone()
    for c in range(8 if square else 4):
        idx = torch.nonzero(choice == c).flatten()
        if len(idx) == 0:
            continue
        x = batch[idx.to(batch.device)]
        if c & 1:
            x = x.flip(-1)
        if c & 2:
            x = x.flip(-2)
        if c & 4:
            x = x.transpose(-1, -2)
        out[idx.to(batch.device)] = x
    return out
