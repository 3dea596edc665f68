"""Where torch work runs: one rule for every stage (``device: auto | cpu | cuda | cuda:N`` in params.yaml).

``auto`` is the GPU when torch sees one (``torch.cuda.is_available()``), else the CPU. Asking for ``cuda`` on a
machine without one is an error that says so, rather than a silent fall-back to the CPU (the results differ: GPU and
CPU kernels round differently, and on the GPU both training and sampling run in mixed precision).
On a machine with several GPUs give each worker one with ``CUDA_VISIBLE_DEVICES`` and keep ``cuda``.

Mixed precision, one code path for both kinds of device: :func:`mixed_precision` is ``torch.autocast`` in float16
on a CUDA device and a no-op elsewhere (sampling uses it alone); training loops use :class:`AmpStep`, which adds
the loss scaling that float16 gradients need on CUDA and is exactly a plain float32
``zero_grad(); backward(); step()`` on the CPU, so CPU results do not change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ubf_core.errors import UBFInputError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "AUTOCAST_DTYPE", "AUTOCAST_CHOICES", "pick_device", "is_cuda", "cpu_supports_bfloat16",
           "resolve_autocast", "mixed_precision", "AmpStep", "adam"]

DEVICES = ("auto", "cpu", "cuda")
AUTOCAST_DTYPE = "float16"   # torch.autocast dtype on CUDA, training and sampling (part of a synthesis store's hash)
AUTOCAST_CHOICES = ("auto", "none", "bfloat16", "float16")   # train.autocast of the training loops


def pick_device(name: str | None = "auto", where: str = "device") -> str:
    """The torch device string for ``name``: "cpu", "cuda" or "cuda:N"; ``auto`` (or None) → "cuda" when
    ``torch.cuda.is_available()``, else "cpu". ``where`` names the setting in errors (e.g. "synthesis.device")."""
    import torch

    value = "auto" if name is None else str(name).strip().lower()
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return "cpu"
    kind, _, index = value.partition(":")
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise UBFInputError(where, f"device {value!r} asked for, but torch {torch.__version__} sees no CUDA "
                                       f"device (torch.cuda.is_available() is False); use auto or cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UBFInputError(where, f"device {value!r}: only {torch.cuda.device_count()} CUDA device(s) visible "
                                       f"(CUDA_VISIBLE_DEVICES renumbers them from 0)")
        return value
    raise UBFInputError(where, f"device must be one of auto, cpu, cuda or cuda:N, got {name!r}")


def is_cuda(device: str | torch.device) -> bool:
    """True for "cuda" and "cuda:N" (strings or ``torch.device``)."""
    return str(device).split(":")[0] == "cuda"


def cpu_supports_bfloat16() -> bool:
    """True when this CPU has fast bfloat16 kernels (AVX-512 BF16 or AMX instructions, as oneDNN uses them)."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_autocast(device: str | torch.device, name: str = "auto", where: str = "train.autocast") -> str:
    """The autocast dtype a training run on ``device`` uses for ``name`` (one of AUTOCAST_CHOICES): "float16",
    "bfloat16" or "none".

    ``auto``: float16 on CUDA (AUTOCAST_DTYPE), bfloat16 on a CPU with fast bfloat16 kernels
    (:func:`cpu_supports_bfloat16`; about 1.2–1.3× the steps/s of float32 for the project's networks on such a
    CPU, benchmarks/training_speed.py), none elsewhere. A dtype the device cannot run fast is a UBFInputError
    naming ``where``: float16 on a CPU, bfloat16 on a CPU without those instructions or a GPU without bfloat16.
    """
    import torch

    if name not in AUTOCAST_CHOICES:
        raise UBFInputError(where, f"must be one of {', '.join(AUTOCAST_CHOICES)}, got {name!r}")
    cuda = is_cuda(device)
    if name == "auto":
        return AUTOCAST_DTYPE if cuda else ("bfloat16" if cpu_supports_bfloat16() else "none")
    if name == "float16" and not cuda:
        raise UBFInputError(where, "float16 autocast needs a CUDA device (CPUs have no fast float16 training "
                                   "kernels); use bfloat16, none or auto")
    if name == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
        raise UBFInputError(where, f"bfloat16 autocast: the GPU of {device} does not support bfloat16; use "
                                   f"float16, none or auto")
    if name == "bfloat16" and not cuda and not cpu_supports_bfloat16():
        raise UBFInputError(where, "bfloat16 autocast needs a CPU with AVX-512 BF16 or AMX instructions and this "
                                   "one has neither; use none or auto")
    return name


def _device_default(device: str | torch.device) -> str:
    """The autocast dtype of a device when none is asked for: float16 on CUDA, none elsewhere."""
    return AUTOCAST_DTYPE if is_cuda(device) else "none"


def mixed_precision(device: str | torch.device, dtype: str | None = None):
    """``torch.autocast`` on ``device`` in ``dtype`` ("float16", "bfloat16"; "none": a no-op context). None: the
    device's default, float16 on a CUDA device and no autocast elsewhere. One code path for both kinds of device."""
    import torch

    dtype = _device_default(device) if dtype is None else dtype
    if dtype == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if is_cuda(device) else "cpu", dtype=getattr(torch, dtype))


class AmpStep:
    """Optimisation steps in mixed precision on a CUDA device and in plain float32 elsewhere, through one code path.

    ``device``: "cpu", "cuda", "cuda:N" or a ``torch.device`` (where the model and its batches are). ``dtype``:
    the autocast dtype ("float16", "bfloat16", "none"; :func:`resolve_autocast` turns a ``train.autocast`` param
    into one); None: float16 on CUDA, none elsewhere. bfloat16 keeps float32's exponent range, so it needs no loss
    scaling (the scaler is a pass-through). Per batch::

        amp = AmpStep(device)                          # once, before the loop
        with amp.autocast():
            loss = loss_fn(model(x).float(), y)        # forward in float16 on CUDA; loss in float32
        amp.step(loss, optimizer)                      # or amp.step(loss, optimizer, max_norm=1.0)

    On CUDA, ``autocast`` runs convolutions and matrix products in float16 while parameters, gradients and the
    optimiser state stay float32; ``scaler`` (a ``torch.amp.GradScaler``) multiplies the loss by a scale before
    back-propagation so small float16 gradients do not underflow, divides the gradients by it again before clipping
    and stepping, skips a step whose gradients hold inf or NaN, and adapts the scale (halved after such a step,
    doubled after 2000 clean ones). Elsewhere the scaler is disabled (a pass-through) and, with dtype "none",
    ``autocast`` a no-op, so a step is exactly ``optimizer.zero_grad(); loss.backward(); [clip_grad_norm_];
    optimizer.step()``: the results on the CPU are bit-identical to such a plain loop.

    Losses should be computed in float32 (cast model outputs with ``.float()`` first): float16 has about three
    significant digits and overflows above 65504, too little for ``arccos``, logarithms or long sums.
    One AmpStep may serve several optimisers stepped in turn (a GAN's discriminator and generator): each ``step``
    checks only its own optimiser's gradients for inf/NaN; the scale is shared.
    """

    def __init__(self, device: str | torch.device, dtype: str | None = None):
        import torch

        self.device = str(device)
        self.dtype = _device_default(self.device) if dtype is None else dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=is_cuda(self.device) and self.dtype == "float16")

    @property
    def enabled(self) -> bool:
        """True when steps run in mixed precision with loss scaling (float16 on a CUDA device)."""
        return self.scaler.is_enabled()

    def autocast(self):
        """Context for the forward pass and loss: ``torch.autocast`` in ``dtype`` (:func:`mixed_precision`)."""
        return mixed_precision(self.device, self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_norm: float | None = None,
             parameters: Iterable[torch.Tensor] | None = None) -> None:
        """One update from a 0-d ``loss``: zero ``optimizer``'s gradients, back-propagate the (scaled) loss, and
        step ``optimizer``, then update the scale.

        max_norm: when given, the gradients of ``parameters`` (default: every parameter ``optimizer`` updates) are
            clipped to this total L2 norm (``torch.nn.utils.clip_grad_norm_``) after unscaling, i.e. in the
            loss's own units, as without mixed precision.
        """
        import torch

        optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        if max_norm is not None:
            if parameters is None:
                parameters = [p for group in optimizer.param_groups for p in group["params"]]
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        self.scaler.step(optimizer)
        self.scaler.update()


def adam(parameters: Iterable["torch.Tensor"], lr: float, fused: bool = True, **options) -> "torch.optim.Optimizer":
    """``torch.optim.Adam``, by default with its fused kernel (all parameters updated in one kernel, on the CPU and
    on CUDA): the same update rule as the per-tensor loop (``fused=False``), with far less per-parameter overhead
    for the many small tensors of the project's networks, rounded differently in the last bits (over a long
    training run the weights drift apart). ``options``: Adam's others (betas, weight_decay, …)."""
    import torch

    return torch.optim.Adam(parameters, lr=lr, fused=fused or None, **options)
