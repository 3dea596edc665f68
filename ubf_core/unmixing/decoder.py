"""The decoder options of the unmixing network (params.yaml ``unmixing.decoder``), which sensor group each patch's
solar–atmosphere factor belongs to, and the check that a trained model has the decoder the settings ask for.

``unmixing.decoder`` (the network itself: :mod:`ubf_core.unmixing.network`)::

    endmembers: learned    # learned: k spectra trained from unmixing.init_endmembers | library: fixed spectra
    brightness: false      # a per-pixel scale s >= 0 predicted by the encoder: Y = s * E A + b
    atmosphere: auto       # auto | always | never: a factor t (C,) per sensor group for radiance patches
    mixing: linear         # linear | neural: Ê·Â corrected per pixel by NeuralMixing (INSS) with Â as context
    order: 3               # neural: the order of the response (number of MLPs M_i)
    downsample: 4          # neural: one predicted MLP per D×D tile
    hidden: 32             # neural: the MLPs' two hidden widths
    features: 32           # neural: channels of the feature-transform network
    n_freq: 2              # neural: frequencies of the tile position encoding (Eq. 7; ⌈log₂ D⌉ as INSS)

Units and sensor groups: every HSI data set declares ``units: reflectance | radiance`` (radiance ones also a
``sensor``), and prepare_hsi writes both as per-patch coordinates of the HSI store (``units``, ``sensor``). With the
atmosphere term on, each distinct ``sensor`` of the radiance patches is one group with its own t (C,), in sorted
name order; reflectance patches have group −1 (no t). ``atmosphere: auto`` switches it on when a *training* patch is
radiance; ``never`` with radiance data present warns (naming the data sets) and treats them as reflectance;
``always`` without radiance data is an error. (The words are not on/off: YAML reads those as booleans.)
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ubf_core.errors import UBFInputError
from ubf_core.units import UNITS
from ubf_core.unmixing.network import MIXING, MIXING_OPTIONS

__all__ = ["DecoderSettings", "AtmosphereGroups", "atmosphere_groups", "check_decoder", "patch_units", "ENDMEMBERS",
           "ATMOSPHERE", "RADIANCE_OFF_WARNING"]

ENDMEMBERS = ("learned", "library")
ATMOSPHERE = ("auto", "always", "never")
RADIANCE_OFF_WARNING = "unmixing.decoder.atmosphere is never but data sets {names} are radiance: they are fitted as " \
                       "if they were reflectance (no solar-atmosphere factor t)"
WHERE = "params.yaml"


@dataclass(frozen=True)
class DecoderSettings:
    """params.yaml ``unmixing.decoder``; the defaults are today's linear model with learned endmembers."""

    endmembers: str = "learned"
    brightness: bool = False
    atmosphere: str = "auto"
    mixing: str = "linear"
    order: int = 3
    downsample: int = 4
    hidden: int = 32
    features: int = 32
    n_freq: int = 2

    @classmethod
    def from_params(cls, d: dict | None) -> "DecoderSettings":
        """From the ``unmixing.decoder`` mapping; every bad value is a one-line error naming the key."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise UBFInputError(WHERE, f"unmixing.decoder must be a mapping, got {d!r}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise UBFInputError(WHERE, f"unknown key unmixing.decoder.{unknown[0]}; allowed: "
                                       f"{', '.join(cls.__dataclass_fields__)}")
        s = cls(**d)
        if s.endmembers not in ENDMEMBERS:
            raise UBFInputError(WHERE, f"unmixing.decoder.endmembers {s.endmembers!r}: use {' or '.join(ENDMEMBERS)}")
        if not isinstance(s.brightness, bool):
            raise UBFInputError(WHERE, f"unmixing.decoder.brightness must be true or false, got {s.brightness!r}")
        if s.atmosphere not in ATMOSPHERE:
            raise UBFInputError(WHERE, f"unmixing.decoder.atmosphere {s.atmosphere!r}: use one of "
                                       f"{', '.join(ATMOSPHERE)}")
        if s.mixing not in MIXING:
            raise UBFInputError(WHERE, f"unmixing.decoder.mixing {s.mixing!r}: use {' or '.join(MIXING)}")
        for key, low in (("order", 0), ("downsample", 1), ("hidden", 1), ("features", 1), ("n_freq", 0)):
            value = getattr(s, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UBFInputError(WHERE, f"unmixing.decoder.{key} must be an integer >= {low}, got {value!r}")
        return s

    def to_dict(self) -> dict:
        """All keys; the neural mixing's only with ``mixing: neural`` (they do not describe a linear model)."""
        d = asdict(self)
        return d if self.mixing == "neural" else {k: v for k, v in d.items() if k not in MIXING_OPTIONS}

    def mixing_options(self) -> dict | None:
        """The network's ``mixing_options`` (order, downsample, hidden, features, n_freq) for mixing neural;
        None for linear."""
        return {key: getattr(self, key) for key in MIXING_OPTIONS} if self.mixing == "neural" else None


@dataclass(frozen=True)
class AtmosphereGroups:
    """The atmosphere term of a data split: the group names (the model's ``atmosphere``; empty: off), each patch's
    group index (N,) int64 (−1: reflectance or term off; None when off), and the warning given, if any."""

    names: tuple[str, ...]
    index: np.ndarray | None
    warning: str | None = None


def _check_units(units: np.ndarray, sensors: np.ndarray, sources: np.ndarray) -> None:
    bad = sorted({str(u) for u in units} - set(UNITS))
    if bad:
        src = sorted({str(s) for s, u in zip(sources, units) if str(u) in bad})
        raise UBFInputError(src[0], f"unknown units {bad[0]!r}; use one of {', '.join(UNITS)}")
    missing = sorted({str(s) for s, u, g in zip(sources, units, sensors) if u == "radiance" and not str(g)})
    if missing:
        raise UBFInputError(missing[0], "units: radiance needs a `sensor` (the group sharing one factor t)")


def atmosphere_groups(setting: str, units, sensors, sources, is_val) -> AtmosphereGroups:
    """Resolve ``unmixing.decoder.atmosphere`` (auto | always | never) on a split.

    ``units``, ``sensors``, ``sources`` (N,): the HSI store's per-patch coordinates (``units`` reflectance |
    radiance; ``sensor`` "" for reflectance); ``is_val`` (N,) bool. Off with radiance patches present: a
    ``UserWarning`` naming the data sets, also returned in ``warning`` for the caller's log.
    """
    units, sensors, sources = _text(units), _text(sensors), _text(sources)
    is_val = np.asarray(is_val, dtype=bool)
    _check_units(units, sensors, sources)
    radiance = units == "radiance"
    if setting == "auto":
        on = bool((radiance & ~is_val).any())
    elif setting == "always":
        if not radiance.any():
            raise UBFInputError(WHERE, "unmixing.decoder.atmosphere is always but no HSI data set is radiance")
        on = True
    elif setting == "never":
        on = False
    else:
        raise UBFInputError(WHERE, f"unmixing.decoder.atmosphere {setting!r}: use one of {', '.join(ATMOSPHERE)}")
    if not on:
        message = None
        if radiance.any():
            message = RADIANCE_OFF_WARNING.format(names=", ".join(sorted(set(sources[radiance]))))
            warnings.warn(message, UserWarning, stacklevel=2)
        return AtmosphereGroups((), None, message)
    names = tuple(sorted(set(sensors[radiance])))
    index = np.array([names.index(g) if r else -1 for g, r in zip(sensors, radiance)], dtype=np.int64)
    return AtmosphereGroups(names, index)


def patch_units(ds, where) -> tuple[np.ndarray, np.ndarray]:
    """(units (N,), sensor (N,)) of an HSI store's patches (its ``units`` and ``sensor`` coordinates); a store
    written before units were recorded is a one-line error naming it."""
    if "units" not in ds.coords or "sensor" not in ds.coords:
        raise UBFInputError(where, "the HSI store records no units per patch (written before data sets declared "
                                   "units): rerun prepare_hsi (dvc repro prepare_hsi)")
    return _text(ds["units"].values), _text(ds["sensor"].values)


def _text(values) -> np.ndarray:
    """Any 1-d array of strings (object, numpy or Zarr's variable-width StringDType) as a numpy ``str_`` array."""
    return np.array([str(v) for v in np.asarray(values).ravel()], dtype=str)


def check_decoder(model, decoder: DecoderSettings, uri: str, radiance: bool) -> None:
    """Refuse a model whose decoder is not the one ``decoder`` asks for: one line naming the model (``uri``); the
    atmosphere term is compared as on/off (auto: on when ``radiance``).

    ``radiance``: whether the data it is used on hold radiance patches (what ``atmosphere: auto`` follows)."""
    cfg = model.config
    have = {"endmembers": "library" if cfg.get("endmembers") == "fixed" else "learned",
            "brightness": bool(cfg.get("brightness", False)), "mixing": cfg.get("mixing", "linear"),
            "atmosphere": "on" if cfg.get("atmosphere") else "off"}
    want_atm = {"auto": "on" if radiance else "off", "always": "on", "never": "off"}[decoder.atmosphere]
    want = {"endmembers": decoder.endmembers, "brightness": decoder.brightness, "mixing": decoder.mixing,
            "atmosphere": want_atm}
    if decoder.mixing == "neural" and have["mixing"] == "neural":
        saved = cfg.get("mixing_options") or {}
        for key, value in decoder.mixing_options().items():
            have[key], want[key] = saved.get(key), value
    diff = [f"{key} {have[key]!s} (params: {want[key]!s})" for key in want if have[key] != want[key]]
    if diff:
        raise UBFInputError(uri, f"the model's decoder differs from params unmixing.decoder: {'; '.join(diff)}; "
                                 f"retrain (dvc repro train_unmixing) or name another model in unmixing.model_uri")
