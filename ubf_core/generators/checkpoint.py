"""A generator checkpoint that a longer run trains once and shorter runs start from.

A checkpoint is a saved generator (:meth:`AbundanceGenerator.save`: ``generator.json`` + weights, no pickles) plus
``trained_on.json``: the endmembers (C, k) in reflectance and their wavelengths (nm) of the unmixing model whose
abundance maps it learned, and free-form provenance (command, params hash, MLflow run, steps). A generator that
learned the abundances of other endmembers generates maps that mean something else, so
:func:`load_checkpoint` refuses one whose k, size, classes, options or endmembers do not match the run that wants it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ubf_core.errors import UBFInputError
from ubf_core.generators.base import AbundanceGenerator

__all__ = ["save_checkpoint", "load_checkpoint", "TRAINED_ON_FILE"]

TRAINED_ON_FILE = "trained_on.json"


def save_checkpoint(gen: AbundanceGenerator, folder: str | Path, endmembers: np.ndarray, wavelengths_nm: np.ndarray,
                    provenance: dict) -> Path:
    """Write ``gen`` with what it was trained on to ``folder``, replacing it only once complete (temporary
    folder beside it, then rename). endmembers: (C, k) reflectance; wavelengths_nm: (C,)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    E = np.asarray(endmembers, dtype=float)
    if E.ndim != 2 or E.shape[1] != gen.k or len(wavelengths_nm) != E.shape[0]:
        raise UBFInputError(folder, f"endmembers {E.shape} do not fit k = {gen.k} and {len(wavelengths_nm)} "
                                    f"wavelengths")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)                                # mkdtemp makes it private; a checkpoint is for everyone
    try:
        gen.save(tmp)
        (tmp / TRAINED_ON_FILE).write_text(json.dumps(
            {"endmembers": E.tolist(), "wavelength_nm": [float(w) for w in wavelengths_nm],
             "provenance": provenance}, indent=1) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_checkpoint(folder: str | Path, *, name: str, k: int, size: tuple[int, int], classes: list[str] | None,
                    options: dict, endmembers: np.ndarray, wavelengths_nm: np.ndarray,
                    max_angle_deg: float) -> tuple[AbundanceGenerator, dict]:
    """The checkpoint's generator and its provenance, after checking that it is the model this run would build
    (generator ``name``, ``k``, ``size`` (H, W), ``classes``, every option in ``options``, ``brightness``
    among them: a model with the brightness channel and one without are different models) and that it learned the
    abundances of these ``endmembers`` (C, k) on these ``wavelengths_nm``: each endmember within ``max_angle_deg``
    degrees (spectral angle) of the checkpoint's. Any mismatch is a UBFInputError naming the folder.

    The angle allows for an unmixing model retrained from the same data, params and seed on another CPU, which is
    not bit-identical (float32 kernels differ: an Intel Xeon moved two endmembers by 2.6° and 2.8° from the ones an
    AMD EPYC learned); another unmixing model (other seed, data or k) gives other spectra, tens of degrees apart."""
    from ubf_core.generators import load_generator

    folder = Path(folder)
    info_file = folder / TRAINED_ON_FILE
    if not info_file.is_file():
        raise UBFInputError(folder, f"{TRAINED_ON_FILE} missing: not a generator checkpoint (train one with the "
                                    f"long profile: python -m flows.pretrain_generator --params params.long.yaml)")
    gen = load_generator(folder)
    info = json.loads(info_file.read_text())
    wanted = {"generator": name, "k": int(k), "size": tuple(int(v) for v in size),
              "classes": None if classes is None else [str(c) for c in classes]}
    found = {"generator": gen.name, "k": gen.k, "size": tuple(gen.size), "classes": gen.classes}
    for key, value in wanted.items():
        if found[key] != value:
            raise UBFInputError(folder, f"checkpoint {key} {found[key]} differs from this run's {value}")
    if "brightness" in options and bool(options["brightness"]) != gen.brightness:
        raise UBFInputError(folder, f"checkpoint {'generates' if gen.brightness else 'does not generate'} brightness "
                                    f"but this run's {'does not' if gen.brightness else 'does'} (generator.brightness):"
                                    f" another kind of model; pretrain one of this kind with the long profile or "
                                    f"start from scratch (generator.init_from_checkpoint: false)")
    for key, value in options.items():
        if key in gen.config and gen.config[key] != _plain(value):
            raise UBFInputError(folder, f"checkpoint option {key} = {gen.config[key]!r} differs from this run's "
                                        f"{value!r}")
    E_ck = np.asarray(info["endmembers"], dtype=float)
    E = np.asarray(endmembers, dtype=float)
    wl_ck = np.asarray(info["wavelength_nm"], dtype=float)
    if E_ck.shape != E.shape or not np.allclose(wl_ck, np.asarray(wavelengths_nm, float), atol=0.01):
        raise UBFInputError(folder, f"checkpoint learned {E_ck.shape[1]} endmembers on {len(wl_ck)} bands; this run "
                                    f"has {E.shape[1]} on {len(wavelengths_nm)} (another unmixing model)")
    cos = (E_ck * E).sum(0) / (np.linalg.norm(E_ck, axis=0) * np.linalg.norm(E, axis=0) + 1e-12)
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    if angles.max() > float(max_angle_deg):
        j = int(angles.argmax())
        raise UBFInputError(folder, f"checkpoint learned the abundances of other endmembers (endmember {j + 1} is "
                                    f"{angles[j]:.2f}° from this run's, more than {float(max_angle_deg)}°): "
                                    f"another unmixing model; retrain it with the long profile")
    return gen, dict(info.get("provenance") or {})


def _plain(value):
    """Option values as saved in generator.json (tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
