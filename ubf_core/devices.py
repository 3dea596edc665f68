"""Where torch work runs: one rule for every stage (``device: auto | cpu | cuda | cuda:N`` in params.yaml).

``auto`` is the GPU when torch sees one (``torch.cuda.is_available()``), else the CPU. Asking for ``cuda`` on a
machine without one is an error that says so, rather than a silent fall-back to the CPU (the results differ: GPU and
CPU kernels round differently, and sampling on the GPU runs in mixed precision, see :func:`mixed_precision`).
On a machine with several GPUs give each worker one with ``CUDA_VISIBLE_DEVICES`` and keep ``cuda``.
"""

from __future__ import annotations

import contextlib

from ubf_core.errors import UBFInputError

__all__ = ["DEVICES", "AUTOCAST_DTYPE", "pick_device", "is_cuda", "mixed_precision"]

DEVICES = ("auto", "cpu", "cuda")
AUTOCAST_DTYPE = "float16"   # torch.autocast dtype of sampling on a CUDA device (part of a synthesis store's hash)


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


def is_cuda(device: str) -> bool:
    """True for "cuda" and "cuda:N"."""
    return str(device).split(":")[0] == "cuda"


def mixed_precision(device: str):
    """``torch.autocast`` in float16 on a CUDA device, a no-op context elsewhere: one code path for both."""
    import torch

    if not is_cuda(device):
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=getattr(torch, AUTOCAST_DTYPE))
