"""Argument checks shared by the unmixing network (:mod:`~ubf_core.unmixing.network`) and its neural mixing
(:mod:`~ubf_core.unmixing.nonlinear`): integers with a lower bound and (N, channels, H, W) float tensors, each a
one-line :class:`~ubf_core.errors.UBFInputError` naming the argument."""

from __future__ import annotations

import operator
from typing import Any

import torch

from ubf_core.errors import UBFInputError


def int_at_least(value: Any, minimum: int, where: str, name: str, wanted: str | None = None) -> int:
    """``value`` as an int ≥ ``minimum`` (Python or NumPy integers; bools and floats are refused). The error says
    ``{name} must be {wanted}``, ``wanted`` defaulting to "an integer >= {minimum}"."""
    wanted = wanted or f"an integer >= {minimum}"
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise UBFInputError(where, f"{name} must be {wanted}, got {value!r}") from None
    if value < minimum:
        raise UBFInputError(where, f"{name} must be {wanted}, got {value}")
    return value


def positive_int(value: Any, where: str, name: str) -> int:
    """``value`` as an int ≥ 1 (:func:`int_at_least`; the error says "a positive integer")."""
    return int_at_least(value, 1, where, name, "a positive integer")


def check_maps(x: Any, where: str, name: str, channels: int, empty_batch: bool = False) -> torch.Tensor:
    """``x`` must be a floating (N, channels, H, W) tensor with H, W ≥ 1, and N ≥ 1 unless ``empty_batch``."""
    if not isinstance(x, torch.Tensor):
        raise UBFInputError(where, f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise UBFInputError(where, f"{name} must have shape (N, {channels}, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise UBFInputError(where, f"{name} must have {channels} channels (dim 1), got shape {tuple(x.shape)}")
    if min(x.shape[2], x.shape[3]) < 1 or (x.shape[0] < 1 and not empty_batch):
        dims = "H, W" if empty_batch else "N, H, W"
        raise UBFInputError(where, f"{name} must have {dims} >= 1, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise UBFInputError(where, f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x
