"""A trained unmixing network on disk, without pickles: a folder of ``unmixing.json`` + ``weights.safetensors``.

``unmixing.json`` holds the format name and version, the architecture (``UnmixingNet.config``: k, n_bands, stem,
widths, nonnegative_endmembers, bias, in_channels) and the model's ``meta`` (set at training, read by
:mod:`ubf_core.unmixing.inference`: ``wavelength_nm``, the endmember grid in nm, one per band; ``input_space``,
``three_band``, ``band_wavelengths_nm``, ``render_response``). ``weights.safetensors`` holds the ``state_dict``
tensors (float32, CPU): the encoder's convolutions and ``decoder.raw_endmembers`` (C, k) from which the decoder
derives the endmembers Ê (C, k, reflectance), plus ``decoder.bias`` (C,) when it has one.

Loading rebuilds the network from this project's classes (:meth:`UnmixingNet.from_config`) and reads the tensors
with safetensors, so no code is ever unpickled and moving a module does not break a saved model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ubf_core.data.stores import replace_path, staging_dir
from ubf_core.errors import UBFInputError
from ubf_core.unmixing.network import UnmixingNet

__all__ = ["SAVED_UNMIXING_FILE", "UNMIXING_WEIGHTS_FILE", "SAVED_FORMAT", "save_unmixing_model",
           "load_unmixing_model"]

SAVED_UNMIXING_FILE = "unmixing.json"
UNMIXING_WEIGHTS_FILE = "weights.safetensors"
_FORMAT = "ubf-unmixing-model"
_VERSION = 1
SAVED_FORMAT = f"{_FORMAT}/{_VERSION}"   # what a registered version is tagged with (tasks/unmixing.py)


def _check_meta(meta, n_bands: int, where: str | Path) -> dict:
    """``meta`` must be a dict whose ``wavelength_nm`` lists one wavelength (nm) per band of the decoder."""
    if not isinstance(meta, dict):
        raise UBFInputError(where, f"the model's meta must be a dict (wavelength_nm, input_space, …), "
                                   f"got {type(meta).__name__}")
    wl = meta.get("wavelength_nm")
    if not isinstance(wl, list) or len(wl) != n_bands:
        have = f"{len(wl)} values" if isinstance(wl, list) else repr(wl)
        raise UBFInputError(where, f"meta['wavelength_nm'] must list the {n_bands} band wavelengths (nm) of the "
                                   f"decoder, got {have}")
    return meta


def save_unmixing_model(model: UnmixingNet, path: str | Path) -> Path:
    """Write ``model`` to the folder ``path``: ``unmixing.json`` (format, version, ``model.config``, ``model.meta``)
    and ``weights.safetensors`` (its ``state_dict``, on the CPU). Returns the folder.

    ``model.meta`` must be a JSON-able dict with ``wavelength_nm`` (C,) in nm, C = ``model.n_bands`` (as
    :func:`~ubf_core.unmixing.experiment.fit_unmixing` sets it). Both files are written in a temporary folder
    beside ``path``, which replaces ``path`` only once complete: a reader never sees a half-written model.
    """
    folder = Path(path)
    if not isinstance(model, UnmixingNet):
        raise UBFInputError(folder, f"expected an UnmixingNet to save, got {type(model).__name__}")
    meta = _check_meta(getattr(model, "meta", None), model.n_bands, folder)
    try:
        description = json.dumps({"format": _FORMAT, "version": _VERSION, "config": model.config, "meta": meta},
                                 indent=2, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise UBFInputError(folder, f"the model's meta cannot be written as JSON ({err})") from None
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    with staging_dir(folder) as tmp:
        staged = tmp / folder.name
        staged.mkdir()
        save_file(tensors, str(staged / UNMIXING_WEIGHTS_FILE), metadata={"format": _FORMAT})
        (staged / SAVED_UNMIXING_FILE).write_text(description + "\n")
        replace_path(staged, folder)
    return folder


def _read_description(folder: Path) -> dict:
    """The checked content of ``folder/unmixing.json``: a dict with ``config`` and ``meta``."""
    file = folder / SAVED_UNMIXING_FILE
    if not file.is_file():
        raise UBFInputError(folder, f"{SAVED_UNMIXING_FILE} missing: not a saved unmixing model")
    try:
        description = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UBFInputError(file, f"unreadable unmixing model description ({err})") from None
    if not isinstance(description, dict) or description.get("format") != _FORMAT:
        found = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise UBFInputError(file, f"format {found!r} is not a saved unmixing model ({_FORMAT!r})")
    if description.get("version") != _VERSION:
        raise UBFInputError(file, f"format version {description.get('version')!r} unknown: this UBF reads version "
                                  f"{_VERSION} (save the model again with this UBF)")
    if not isinstance(description.get("config"), dict):
        raise UBFInputError(file, "no architecture ('config') in the description")
    return description


def load_unmixing_model(path: str | Path) -> UnmixingNet:
    """Restore a model written by :func:`save_unmixing_model`: CPU, eval mode, float32, with its ``meta``; torch's
    global random state is left as it was.

    The network is rebuilt from ``unmixing.json`` with :meth:`UnmixingNet.from_config` and its tensors are read
    with safetensors (no unpickling). A missing or corrupt file, an unknown format version or weights that do not
    fit the architecture is a one-line UBFInputError naming the file.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UBFInputError(folder, "no such folder: not a saved unmixing model")
    description = _read_description(folder)
    config_file = folder / SAVED_UNMIXING_FILE
    try:
        with torch.random.fork_rng(devices=[]):    # the initial weights are overwritten: leave torch's RNG as it was
            model = UnmixingNet.from_config(description["config"])
    except (UBFInputError, TypeError) as err:
        raise UBFInputError(config_file, f"architecture cannot be built: {getattr(err, 'problem', err)}") from None
    model.meta = _check_meta(description.get("meta"), model.n_bands, config_file)
    weights_file = folder / UNMIXING_WEIGHTS_FILE
    if not weights_file.is_file():
        raise UBFInputError(folder, f"{UNMIXING_WEIGHTS_FILE} missing: not a complete saved unmixing model")
    try:
        tensors = load_file(str(weights_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise UBFInputError(weights_file, f"unreadable weights ({err})") from None
    _check_weights(model, tensors, weights_file)
    model.load_state_dict(tensors)
    return model.eval()


def _check_weights(model: UnmixingNet, tensors: dict[str, torch.Tensor], where: Path) -> None:
    """The saved tensors must be exactly the model's state_dict entries, with the same shapes."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(key for key in set(expected) & set(tensors) if tuple(tensors[key].shape) != expected[key])
    if missing or unexpected or wrong:
        parts = [f"{name} {keys[:3]}{' …' if len(keys) > 3 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise UBFInputError(where, f"weights do not fit the architecture in {SAVED_UNMIXING_FILE}: {'; '.join(parts)}")
