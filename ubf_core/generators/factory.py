"""Choosing a generator by name and restoring a saved one.

Implementations are imported on first use, so importing :mod:`ubf_core.generators` does not load diffusers.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ubf_core.errors import UBFInputError
from ubf_core.generators.base import SAVED_GENERATOR_FILE, AbundanceGenerator

__all__ = ["GENERATORS", "generator_class", "make_generator", "load_generator"]

GENERATORS: dict[str, str] = {             # name → "module:class"
    "ddpm": "ubf_core.generators.ddpm:DDPMGenerator",
    "vae": "ubf_core.generators.vae:VAEGenerator",
    "gan": "ubf_core.generators.gan:GANGenerator",
}


def generator_class(name: str) -> type[AbundanceGenerator]:
    """The class registered under ``name`` ("ddpm", "vae" or "gan")."""
    if name not in GENERATORS:
        raise UBFInputError("generator", f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    module, cls = GENERATORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_generator(name: str, k: int, size: tuple[int, int], classes: list[str] | None = None,
                   **options) -> AbundanceGenerator:
    """A new, untrained generator of abundance maps (N, k, H, W) with (H, W) = ``size``.

    name: "ddpm", "vae" or "gan". classes: class names for a class-conditional model, None for an unconditional
    one. options: the implementation's options (see its ``defaults``); unknown ones raise UBFInputError.
    """
    return generator_class(name)(k, size, classes, **options)


def load_generator(path: str | Path) -> AbundanceGenerator:
    """Restore a generator written by ``AbundanceGenerator.save(path)``, whatever its implementation."""
    folder = Path(path)
    meta_file = folder / SAVED_GENERATOR_FILE
    if not meta_file.is_file():
        raise UBFInputError(folder, f"{SAVED_GENERATOR_FILE} missing: not a saved generator folder")
    try:
        meta = json.loads(meta_file.read_text())
        name = meta["name"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UBFInputError(meta_file, f"unreadable generator description ({err})") from None
    return generator_class(name)._restore(folder, meta)
