"""Per-sample random streams: the randomness of generated sample j depends only on (seed, start_index + j).

Every generator draws the noise of one sample from its own ``torch.Generator``, seeded from a hash of the pair
(seed, index). Sampling n maps at once therefore gives exactly the maps that n calls with ``n=1`` and
``start_index = 0, 1, …, n-1`` give, which lets the mass-synthesis stage write the same store whatever its block
size.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch

__all__ = ["sample_seed", "sample_generators", "deterministic_torch"]


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit integer seed for sample ``index`` of the run seeded with ``seed`` (blake2b of the pair).

    Neighbouring pairs give unrelated seeds, so (seed=0, index=1) and (seed=1, index=0) draw unrelated noise.
    """
    digest = hashlib.blake2b(f"ubf-generator-sample:{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def sample_generators(seed: int, start_index: int, n: int) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per sample, for indices ``start_index … start_index + n - 1``."""
    return [torch.Generator(device="cpu").manual_seed(sample_seed(seed, start_index + j)) for j in range(n)]


@contextmanager
def deterministic_torch():
    """Ask torch for deterministic kernels inside the block (warn-only), restoring the caller's setting after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
