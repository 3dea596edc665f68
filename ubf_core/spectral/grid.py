"""Target spectral grids: band centres and FWHM in nm, and the presets of the papers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ubf_core.errors import UBFInputError


@dataclass(frozen=True)
class SpectralGrid:
    """An evenly spaced target grid of Gaussian bands.

    Parameters
    ----------
    start_nm, stop_nm : float
        First and last band centre (nm), inclusive.
    n_bands : int
        Number of bands (>= 2, or 1 with an explicit ``fwhm_nm``).
    fwhm_nm : float or None
        Band FWHM (nm); None means the band spacing.
    """

    start_nm: float
    stop_nm: float
    n_bands: int
    fwhm_nm: float | None = None

    def __post_init__(self):
        where = "grid"
        for key in ("start_nm", "stop_nm"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value) or value <= 0:
                raise UBFInputError(where, f"`{key}` must be a positive number of nm, got {value!r}")
        if isinstance(self.n_bands, bool) or not isinstance(self.n_bands, (int, np.integer)) or self.n_bands < 1:
            raise UBFInputError(where, f"`n_bands` must be a positive integer, got {self.n_bands!r}")
        if self.n_bands > 1 and not self.stop_nm > self.start_nm:
            raise UBFInputError(where, f"`stop_nm` ({self.stop_nm}) must be greater than `start_nm` ({self.start_nm})")
        if self.fwhm_nm is not None:
            if isinstance(self.fwhm_nm, bool) or not isinstance(self.fwhm_nm, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(self.fwhm_nm) or self.fwhm_nm <= 0:
                raise UBFInputError(where, f"`fwhm_nm` must be a positive number of nm or null, got {self.fwhm_nm!r}")
        elif self.n_bands == 1:
            raise UBFInputError(where, "a one-band grid needs an explicit `fwhm_nm` (there is no band spacing)")

    @property
    def centres(self) -> np.ndarray:
        """Band centres (nm), float64, shape (n_bands,): ``np.linspace(start_nm, stop_nm, n_bands)``."""
        return np.linspace(float(self.start_nm), float(self.stop_nm), int(self.n_bands), dtype=np.float64)

    @property
    def spacing(self) -> float:
        """Band spacing (nm); for a one-band grid, its FWHM."""
        if self.n_bands == 1:
            return float(self.fwhm_nm)
        return (float(self.stop_nm) - float(self.start_nm)) / (int(self.n_bands) - 1)

    @property
    def fwhm(self) -> np.ndarray:
        """Band FWHM (nm), float64, shape (n_bands,); the band spacing when ``fwhm_nm`` is None."""
        value = self.spacing if self.fwhm_nm is None else float(self.fwhm_nm)
        return np.full(int(self.n_bands), value, dtype=np.float64)

    @classmethod
    def from_params(cls, d: Mapping[str, Any], where: str = "grid") -> "SpectralGrid":
        """Build a grid from params.yaml's ``grid`` section.

        Parameters
        ----------
        d : mapping
            ``preset`` ("remote_sensing": 398-698 nm x 59, "natural": 400-700 nm x 31) and/or explicit
            ``start_nm``, ``stop_nm``, ``n_bands``, ``fwhm_nm`` (explicit keys override the preset's).
            ``coverage_tolerance_nm`` may be present and is ignored here; other keys are an error.
        where : str
            Names the section in error messages.

        Returns
        -------
        SpectralGrid
        """
        if not isinstance(d, Mapping):
            raise UBFInputError(where, "expected a mapping with `preset` or `start_nm`, `stop_nm`, `n_bands`")
        known = {"preset", "start_nm", "stop_nm", "n_bands", "fwhm_nm", "coverage_tolerance_nm"}
        unknown = sorted(set(map(str, d)) - known)
        if unknown:
            raise UBFInputError(where, f"unknown key {', '.join(map(repr, unknown))}; "
                                       f"known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        preset = d.get("preset")
        if preset is not None:
            if preset not in PRESETS:
                raise UBFInputError(where, f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
            p = PRESETS[preset]
            values = {"start_nm": p.start_nm, "stop_nm": p.stop_nm, "n_bands": p.n_bands, "fwhm_nm": p.fwhm_nm}
        for key in ("start_nm", "stop_nm", "n_bands", "fwhm_nm"):
            if key in d and (d[key] is not None or key == "fwhm_nm"):
                values[key] = d[key]
        missing = [k for k in ("start_nm", "stop_nm", "n_bands") if k not in values]
        if missing:
            raise UBFInputError(where, f"missing {', '.join(map(repr, missing))} (give them, or a `preset`: "
                                       f"{', '.join(PRESETS)})")
        n = values["n_bands"]
        if isinstance(n, float) and n.is_integer():
            values["n_bands"] = int(n)
        return cls(**values)


REMOTE_SENSING = SpectralGrid(398.0, 698.0, 59)   # the UBF / MSF-Diff papers' setting
NATURAL = SpectralGrid(400.0, 700.0, 31)          # CAVE / ARAD / ICVL style natural-scene grid
PRESETS = {"remote_sensing": REMOTE_SENSING, "natural": NATURAL}
