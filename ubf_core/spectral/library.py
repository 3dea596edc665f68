"""A spectral library as fixed endmembers: read it, keep the usable spectra on the pipeline grid, select N of them.

The library file (``unmixing.library.path``; the embedded copy is the USGS Digital Spectral Library resampled to the
AVIRIS channels, data/README.md) is a MATLAB .mat with

* ``datalib`` (B, M): one column per entry, B samples along wavelength;
* ``names`` (M, L) character codes (uint8 or text): the name of each column.

A column's name says what it holds: ``Wavelengths in microns ...`` (or ``... in nanometers``) is the wavelength
axis, ``Resolution in microns ...`` (or nanometers) the FWHM of each sample, ``Data value = channel number`` is a
channel index and is ignored; every other column is a reflectance spectrum (0-1). Samples need not be sorted
(AVIRIS's spectrometers overlap); they are sorted by wavelength, and wavelengths are nm from here on.

What is kept, in this order (each rule's count is in :attr:`SpectralLibrary.dropped`):

1. ``missing_values``: a value at or below ``missing_below`` (the USGS files use −1.23e34) or not finite is
   missing. Rule ``drop``: a spectrum with any missing value is dropped. Rule ``mask``: its missing samples are
   left out of its resampling (as bad bands), and it is kept when the others still cover the grid (rule 2).
2. ``not_covering``: a spectrum whose non-missing samples do not cover every band of the target grid
   (:func:`ubf_core.spectral.response.coverage`, the grid's ``coverage_tolerance_nm``) is dropped. A file whose
   wavelengths do not cover the grid at all is an error.
3. ``nonpositive``: a resampled spectrum with a negative value or no positive one (not a reflectance) is dropped.
4. ``duplicates``: in file order, a spectrum within ``duplicate_angle_deg`` (spectral angle on the target grid) of a
   spectrum already kept is dropped.

Resampling is the pipeline's own (:func:`ubf_core.spectral.resample.resample_to_grid`: Gaussian responses from the
library's sample FWHM to the grid's), so library spectra and scene spectra see the same band responses.

Selection of N (``selection``):

* ``greedy_nnls``: a sample of ``sample_pixels`` training pixels (drawn with the params seed) is explained by
  non-negative combinations of the chosen spectra (NNLS: abundances ≥ 0, no sum-to-one, so brightness is free).
  Starting from none, each step adds the spectrum whose one-column non-negative fit to the current residuals
  removes most of their energy: ``Σ_p max(0, uᵀ r_p)²`` with ``u`` the spectrum scaled to unit norm (the exact
  residual drop of adding it alone with the others held), then refits every pixel's abundances over all chosen
  spectra (projected-gradient NNLS) before the next step. The spectra are thus chosen for what they add to the
  span of the scene spectra, not for their individual similarity (which would pick N near-copies of the commonest
  material). They are not an identification of the scene's materials: on 59 smooth bands (398-698 nm) many
  triples of library spectra span nearly the same space, and neither this rule nor ranking a full-library NNLS
  fit named the three spectra a synthetic scene was mixed from (10 of 10 trials), while explaining > 99.5 % of
  its energy with three.
* ``first``: the first N usable spectra in file order (no training data; for tests and comparisons).

The endmembers are never rescaled: reflectance as in the library, on the pipeline grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.io.matfile import load_mat_arrays
from ubf_core.spectral.cube import format_range
from ubf_core.spectral.grid import SpectralGrid
from ubf_core.spectral.resample import resample_to_grid
from ubf_core.spectral.response import coverage

__all__ = ["LibrarySettings", "SpectralLibrary", "read_library", "load_library", "select_spectra",
           "library_endmembers", "select_library_endmembers", "MISSING_RULES", "SELECTION_RULES"]

MISSING_RULES = ("mask", "drop")
SELECTION_RULES = ("greedy_nnls", "first")
DATA_VARIABLE = "datalib"
NAMES_VARIABLE = "names"
_UNITS = {"microns": 1000.0, "micrometers": 1000.0, "um": 1000.0, "µm": 1000.0, "nanometers": 1.0, "nm": 1.0}
_DROP_RULES = ("missing_values", "not_covering", "nonpositive", "duplicates")
_NNLS_ITERATIONS = 300      # projected-gradient steps per refit (warm-started, so each refit moves little)


@dataclass(frozen=True)
class LibrarySettings:
    """params.yaml ``unmixing.library`` (+ the params seed and ``grid.coverage_tolerance_nm``).

    Attributes: ``path`` (the .mat file), ``n`` (spectra to select), ``duplicate_angle_deg``, ``missing_below``
    (values at or below are missing), ``missing_rule`` (:data:`MISSING_RULES`), ``selection``
    (:data:`SELECTION_RULES`), ``sample_pixels`` (training pixels the selection sees), ``seed``, ``tolerance_nm``.
    """

    path: str
    n: int
    duplicate_angle_deg: float
    missing_below: float
    missing_rule: str
    selection: str
    sample_pixels: int
    seed: int
    tolerance_nm: float

    def __post_init__(self):
        where = "params.yaml"
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise UBFInputError(where, f"unmixing.library.n = {self.n!r}: must be a positive integer")
        if not (isinstance(self.duplicate_angle_deg, (int, float)) and 0 <= self.duplicate_angle_deg < 90):
            raise UBFInputError(where, f"unmixing.library.duplicate_angle_deg = {self.duplicate_angle_deg!r}: "
                                       f"must be in [0, 90) degrees")
        if self.missing_rule not in MISSING_RULES:
            raise UBFInputError(where, f"unmixing.library.missing_rule = {self.missing_rule!r}: use "
                                       f"{' or '.join(MISSING_RULES)}")
        if self.selection not in SELECTION_RULES:
            raise UBFInputError(where, f"unmixing.library.selection = {self.selection!r}: use "
                                       f"{' or '.join(SELECTION_RULES)}")
        if isinstance(self.sample_pixels, bool) or not isinstance(self.sample_pixels, (int, np.integer)) \
                or self.sample_pixels < 1:
            raise UBFInputError(where, f"unmixing.library.sample_pixels = {self.sample_pixels!r}: must be a "
                                       f"positive integer")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "LibrarySettings":
        """From a whole params dict: ``unmixing.library``, ``seed`` and ``grid.coverage_tolerance_nm``."""
        try:
            lib = params["unmixing"]["library"]
            return cls(path=str(lib["path"]), n=lib["n"], duplicate_angle_deg=float(lib["duplicate_angle_deg"]),
                       missing_below=float(lib["missing_below"]), missing_rule=str(lib["missing_rule"]),
                       selection=str(lib["selection"]), sample_pixels=lib["sample_pixels"],
                       seed=int(params["seed"]), tolerance_nm=float(params["grid"]["coverage_tolerance_nm"]))
        except KeyError as err:
            raise UBFInputError("params.yaml", f"missing key {err.args[0]!r} for the spectral library "
                                               f"(unmixing.library, seed, grid.coverage_tolerance_nm)") from None

    def record(self) -> dict:
        """The settings as a flat dict for store attrs and MLflow params (``library_<key>``)."""
        return {f"library_{k}": v for k, v in self.__dict__.items() if k not in ("seed", "tolerance_nm")}


@dataclass(frozen=True)
class SpectralLibrary:
    """Library spectra on one wavelength axis.

    Attributes
    ----------
    path : str
        The file they came from.
    names : tuple of str, length N
    wavelength_nm : np.ndarray (C,), float64, nm
    reflectance : np.ndarray (C, N), float64; NaN marks a missing value (only in :func:`read_library`'s result)
    fwhm_nm : np.ndarray (C,) or None
        Sample FWHM (nm) when the file has a resolution column.
    dropped : dict
        Rule name → number of spectra it dropped (:data:`_DROP_RULES`, in order), and ``in_file``.
    selection : dict
        How the N were chosen (rule, ``usable``, ``selected``, the selection's residual); empty before selection.
    """

    path: str
    names: tuple[str, ...]
    wavelength_nm: np.ndarray
    reflectance: np.ndarray
    fwhm_nm: np.ndarray | None = None
    dropped: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.reflectance.shape[1])

    def record(self) -> dict:
        """Provenance for store attrs / MLflow: file, counts dropped per rule, selection figures, names."""
        rec = {"library_file": self.path, "library_spectra": self.n,
               **{f"library_dropped_{k}": int(v) for k, v in self.dropped.items() if k != "in_file"}}
        if "in_file" in self.dropped:
            rec["library_in_file"] = int(self.dropped["in_file"])
        rec.update({f"library_selection_{k}": v for k, v in self.selection.items()})
        rec["library_names"] = list(self.names)
        return rec


# ------------------------------------------------------------------------------------------------ reading

def _decode_names(arr: np.ndarray, m: int, path: Path) -> list[str]:
    arr = np.asarray(arr)
    if arr.dtype.kind in "US":
        names = [str(s).strip() for s in arr.ravel()]
    else:
        if arr.ndim != 2:
            raise UBFInputError(path, f"variable {NAMES_VARIABLE!r} has shape {arr.shape}, expected (entries, "
                                      f"characters)")
        if arr.shape[0] != m and arr.shape[1] == m:
            arr = arr.T
        names = [bytes(np.clip(row, 0, 255).astype(np.uint8)).decode("latin-1").strip(" \x00\n\r\t")
                 for row in arr]
    if len(names) != m:
        raise UBFInputError(path, f"{len(names)} names for {m} columns of {DATA_VARIABLE!r}")
    return names


def _axis_column(names: list[str], kind: str) -> tuple[int, float] | None:
    """(column, factor to nm) of the column named ``<kind> in <unit>``, or None."""
    for j, name in enumerate(names):
        words = name.lower().split()
        if len(words) >= 3 and words[0] == kind and words[1] == "in" and words[2] in _UNITS:
            return j, _UNITS[words[2]]
    return None


def read_library(path: str | Path, missing_below: float) -> SpectralLibrary:
    """The library file as stored: every spectrum column, wavelengths in nm sorted ascending, missing values NaN.

    ``path``: the .mat file (format in the module docstring); ``missing_below``: values at or below are missing.
    Returns a :class:`SpectralLibrary` with ``reflectance`` (B, M) float64 (NaN = missing), ``wavelength_nm``
    (B,), ``fwhm_nm`` (B,) or None, ``dropped = {"in_file": M}``. Raises :class:`UBFInputError` naming the file
    when it has no wavelength column, no spectrum, or a wavelength axis that is not finite and positive.
    """
    path = Path(path)
    if not path.is_file():
        raise UBFInputError(path, "spectral library file not found (unmixing.library.path)")
    arrays, _ = load_mat_arrays(path, {DATA_VARIABLE: "the library: one column per entry",
                                       NAMES_VARIABLE: "the name of each column"})
    data = np.asarray(arrays[DATA_VARIABLE], dtype=np.float64)
    if data.ndim != 2 or data.size == 0:
        raise UBFInputError(path, f"variable {DATA_VARIABLE!r} has shape {data.shape}, expected (samples, columns)")
    names = _decode_names(arrays[NAMES_VARIABLE], data.shape[1], path)
    wl_col = _axis_column(names, "wavelengths")
    if wl_col is None:
        raise UBFInputError(path, "no wavelength column: no column is named 'Wavelengths in microns' (or "
                                  "nanometers), so the spectra have no wavelengths")
    res_col = _axis_column(names, "resolution")
    wl = data[:, wl_col[0]] * wl_col[1]
    if not np.all(np.isfinite(wl)) or np.any(wl <= 0):
        raise UBFInputError(path, f"the wavelength column ({names[wl_col[0]]!r}) has missing, non-finite or "
                                  f"non-positive values")
    skip = {wl_col[0]} | ({res_col[0]} if res_col else set())
    skip |= {j for j, name in enumerate(names) if name.lower().startswith("data value = channel number")}
    cols = [j for j in range(data.shape[1]) if j not in skip]
    if not cols:
        raise UBFInputError(path, f"no spectrum column in {DATA_VARIABLE!r} (only {', '.join(map(repr, names))})")
    fwhm = None
    if res_col is not None:
        fwhm = data[:, res_col[0]] * res_col[1]
        fwhm = np.where(np.isfinite(fwhm) & (fwhm > 0) & (fwhm < 1e6), fwhm, np.nan)
        if np.isnan(fwhm).all():
            fwhm = None
    order = np.argsort(wl, kind="stable")
    spectra = data[:, cols][order]
    spectra = np.where(np.isfinite(spectra) & (spectra > missing_below), spectra, np.nan)
    return SpectralLibrary(path=str(path), names=tuple(names[j] for j in cols), wavelength_nm=wl[order],
                           reflectance=spectra, fwhm_nm=None if fwhm is None else fwhm[order],
                           dropped={"in_file": len(cols)})


# ------------------------------------------------------------------------------------------------ usable spectra

def grid_of(wavelengths_nm, fwhm_nm: float | None = None, where: str = "wavelengths") -> SpectralGrid:
    """The evenly spaced :class:`SpectralGrid` whose centres are ``wavelengths_nm`` (C,) (nm); an error if they
    are not evenly spaced (the pipeline's grids always are)."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
    if wl.size < 2 or not np.all(np.isfinite(wl)):
        raise UBFInputError(where, f"expected at least 2 finite band centres (nm), got {wl.size}")
    grid = SpectralGrid(float(wl[0]), float(wl[-1]), int(wl.size), fwhm_nm)
    if not np.allclose(grid.centres, wl, rtol=0, atol=1e-6 * max(1.0, float(np.abs(wl).max()))):
        raise UBFInputError(where, "band centres are not evenly spaced; give the pipeline grid's centres")
    return grid


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spectral angles (degrees) between the columns of ``a`` (C, m) and of ``b`` (C, n) → (m, n)."""
    an = a / np.linalg.norm(a, axis=0, keepdims=True)
    bn = b / np.linalg.norm(b, axis=0, keepdims=True)
    return np.degrees(np.arccos(np.clip(an.T @ bn, -1.0, 1.0)))


def load_library(settings: LibrarySettings, grid: SpectralGrid) -> SpectralLibrary:
    """The usable spectra of ``settings.path`` resampled to ``grid`` (rules 1-4 of the module docstring).

    Returns a :class:`SpectralLibrary` with ``wavelength_nm = grid.centres`` (C,), ``reflectance`` (C, M_usable)
    float64, ``fwhm_nm = grid.fwhm`` and ``dropped`` = ``{"in_file", "missing_values", "not_covering",
    "nonpositive", "duplicates"}``. Raises :class:`UBFInputError` naming the file when its wavelengths do not cover
    the grid, or when no spectrum is usable.
    """
    raw = read_library(settings.path, settings.missing_below)
    path, centres = raw.path, grid.centres
    tol = settings.tolerance_nm
    cov = coverage(raw.wavelength_nm, centres, None, tol)
    if not cov.complete:
        ranges = ", ".join(format_range(a, b) for a, b in cov.uncovered_ranges)
        raise UBFInputError(path, f"the library's wavelengths ({format_range(*cov.src_range)}) do not cover the "
                                  f"target grid {format_range(centres[0], centres[-1])}: {ranges} not covered "
                                  f"(tolerance {tol:g} nm)")
    dropped = dict(raw.dropped, **{k: 0 for k in _DROP_RULES})
    missing = np.isnan(raw.reflectance)                                   # (B, M)
    keep = np.ones(raw.n, bool)
    if settings.missing_rule == "drop":
        keep &= ~missing.any(axis=0)
        dropped["missing_values"] = int((~keep).sum())
    out = np.full((centres.size, raw.n), np.nan)
    # spectra with the same missing samples are resampled together, those samples marked as bad bands
    patterns: dict[bytes, list[int]] = {}
    for j in np.flatnonzero(keep):
        patterns.setdefault(np.packbits(missing[:, j]).tobytes(), []).append(int(j))
    for cols in patterns.values():
        good = ~missing[:, cols[0]]
        if not coverage(raw.wavelength_nm, centres, good, tol).complete:
            keep[cols] = False
            dropped["not_covering"] += len(cols)
            continue
        cube = xr.DataArray(np.where(good[:, None], raw.reflectance[:, cols], 0.0)[:, None, :].astype(np.float32),
                            dims=("wavelength", "y", "x"),
                            coords={"wavelength": raw.wavelength_nm, "bad_band": ("wavelength", ~good),
                                    **({"fwhm": ("wavelength", np.nan_to_num(raw.fwhm_nm, nan=-1.0))}
                                       if raw.fwhm_nm is not None else {})})
        res = resample_to_grid(cube, grid, tolerance_nm=tol, max_nan_fraction=1.0, name=path)
        out[:, cols] = np.asarray(res.values, dtype=np.float64)[:, 0, :]
    for j in np.flatnonzero(keep):
        s = out[:, j]
        if not np.all(np.isfinite(s)) or np.any(s < 0) or not np.any(s > 0):
            keep[j] = False
            dropped["nonpositive"] += 1
    kept: list[int] = []                        # columns of the file kept
    cand = np.flatnonzero(keep)
    if cand.size:
        ang = _angles_deg(out[:, cand], out[:, cand])
        kept_pos: list[int] = []                # their positions in cand
        for i, j in enumerate(cand):
            if kept_pos and np.min(ang[i, kept_pos]) <= settings.duplicate_angle_deg:
                dropped["duplicates"] += 1
            else:
                kept_pos.append(i)
                kept.append(int(j))
    if not kept:
        raise UBFInputError(path, f"no usable spectrum on the grid {format_range(centres[0], centres[-1])} "
                                  f"(dropped: {_dropped_text(dropped)})")
    return SpectralLibrary(path=path, names=tuple(raw.names[j] for j in kept), wavelength_nm=centres.copy(),
                           reflectance=out[:, kept], fwhm_nm=grid.fwhm, dropped=dropped)


def _dropped_text(dropped: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items() if k != "in_file")


# ------------------------------------------------------------------------------------------------ selection

def _training_pixels(y_train, n_bands: int, sample: int, seed: int) -> np.ndarray:
    """Training reflectance (N, C, H, W) patches or (C, P) pixels → a seeded sample of finite pixels (C, ≤ sample)."""
    y = np.asarray(y_train, dtype=np.float64)
    if y.ndim == 4:
        y = np.moveaxis(y, 1, 0).reshape(y.shape[1], -1)
    if y.ndim != 2 or y.shape[0] != n_bands:
        raise UBFInputError("library selection", f"training spectra have shape {np.shape(y_train)}, expected "
                                                 f"(N, {n_bands}, H, W) patches or ({n_bands}, P) pixels")
    y = y[:, np.all(np.isfinite(y), axis=0)]
    if y.shape[1] == 0:
        raise UBFInputError("library selection", "no finite training pixel")
    if y.shape[1] > sample:
        pick = np.sort(np.random.default_rng(seed).choice(y.shape[1], size=sample, replace=False))
        y = y[:, pick]
    return y


def nnls_pixels(Y: np.ndarray, E: np.ndarray, A0: np.ndarray | None = None,
                iterations: int = _NNLS_ITERATIONS) -> np.ndarray:
    """Non-negative abundances A (k, P) minimising ‖Y − E·A‖² per pixel, by accelerated projected gradient.

    ``Y`` (C, P), ``E`` (C, k); ``A0`` (k, P) a warm start (default zeros). Fixed iteration count: deterministic.
    """
    G = E.T @ E
    B = E.T @ Y
    L = float(np.linalg.eigvalsh(G)[-1])
    A = np.zeros((E.shape[1], Y.shape[1])) if A0 is None else np.maximum(A0, 0.0)
    if not L > 0:
        return A
    Z, t = A.copy(), 1.0
    for _ in range(int(iterations)):
        A_new = np.maximum(Z - (G @ Z - B) / L, 0.0)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        Z = A_new + ((t - 1.0) / t_new) * (A_new - A)
        A, t = A_new, t_new
    return A


def select_spectra(library: SpectralLibrary, y_train, settings: LibrarySettings) -> SpectralLibrary:
    """N = ``settings.n`` spectra of ``library`` (its usable spectra on the grid) chosen by ``settings.selection``.

    ``y_train``: training reflectance on the same grid, (N, C, H, W) patches or (C, P) pixels (only
    ``greedy_nnls`` reads it). Returns the library restricted to the chosen spectra, in the order chosen, with
    ``selection`` = ``{"rule", "usable", "selected", "pixels", "residual_rms", "explained"}`` (``explained``: the
    share of the sample's energy the NNLS fit on the chosen spectra explains; NaN for ``first``). Raises
    :class:`UBFInputError` naming ``unmixing.library.n`` when N exceeds the usable spectra.
    """
    n, usable = int(settings.n), library.n
    if n > usable:
        raise UBFInputError("params.yaml", f"unmixing.library.n = {n} exceeds the {usable} usable spectra of "
                                           f"{library.path} (dropped: {_dropped_text(library.dropped)})")
    E_all = library.reflectance
    info: dict[str, Any] = {"rule": settings.selection, "usable": usable, "selected": n}
    if settings.selection == "first":
        chosen = list(range(n))
        info.update(pixels=0, residual_rms=float("nan"), explained=float("nan"))
    else:
        Y = _training_pixels(y_train, E_all.shape[0], settings.sample_pixels, settings.seed)
        U = E_all / np.linalg.norm(E_all, axis=0, keepdims=True)             # (C, M) unit-norm spectra
        chosen, R, A = [], Y.copy(), None
        free = np.ones(usable, bool)
        for _ in range(n):
            gain = np.sum(np.maximum(U.T @ R, 0.0) ** 2, axis=1)             # (M,) residual energy removed
            gain[~free] = -np.inf
            j = int(np.argmax(gain))
            chosen.append(j)
            free[j] = False
            E = E_all[:, chosen]
            A = nnls_pixels(Y, E, None if A is None else np.vstack([A, np.zeros((1, Y.shape[1]))]))
            R = Y - E @ A
        energy = float(np.sum(Y ** 2))
        info.update(pixels=int(Y.shape[1]), residual_rms=float(np.sqrt(np.mean(R ** 2))),
                    explained=float(1.0 - np.sum(R ** 2) / energy) if energy > 0 else float("nan"))
    return replace(library, names=tuple(library.names[j] for j in chosen),
                   reflectance=library.reflectance[:, chosen].copy(), selection=info)


# ------------------------------------------------------------------------------------------------ one call

def select_library_endmembers(settings: LibrarySettings | Mapping[str, Any], wavelengths_nm, y_train,
                              fwhm_nm: float | None = None) -> SpectralLibrary:
    """The chosen library endmembers with their provenance: :func:`load_library` on the grid whose centres are
    ``wavelengths_nm`` (C,) (nm), then :func:`select_spectra` against ``y_train`` ((N, C, H, W) or (C, P)
    reflectance on that grid). ``settings``: :class:`LibrarySettings` (the band FWHM is then ``fwhm_nm``, default
    the band spacing) or a whole params dict (the grid, FWHM included, is its ``grid`` section, which must have
    the centres ``wavelengths_nm``)."""
    grid = grid_of(wavelengths_nm, fwhm_nm, where="library grid")
    if not isinstance(settings, LibrarySettings):
        params_grid = SpectralGrid.from_params(settings.get("grid", {}), where="params.yaml grid")
        if params_grid.n_bands != grid.n_bands or not np.allclose(params_grid.centres, grid.centres, atol=1e-6):
            raise UBFInputError("library grid", f"the wavelengths ({grid.n_bands} bands "
                                                f"{format_range(grid.start_nm, grid.stop_nm)}) are not the params "
                                                f"grid's ({params_grid.n_bands} bands "
                                                f"{format_range(params_grid.start_nm, params_grid.stop_nm)})")
        grid = params_grid
        settings = LibrarySettings.from_params(settings)
    return select_spectra(load_library(settings, grid), y_train, settings)


def library_endmembers(settings: LibrarySettings | Mapping[str, Any], wavelengths_nm,
                       y_train) -> tuple[np.ndarray, list[str]]:
    """Fixed endmembers for the decoder (``unmixing.decoder.endmembers: library``).

    Parameters
    ----------
    settings : LibrarySettings or the whole params dict
    wavelengths_nm : (C,) the pipeline grid's band centres (nm, evenly spaced)
    y_train : (N, C, H, W) training reflectance patches (or (C, P) pixels) on that grid

    Returns
    -------
    E : np.ndarray (C, N) float32, library reflectance on the grid (never rescaled)
    names : list of N library names, in the columns' order
    """
    lib = select_library_endmembers(settings, wavelengths_nm, y_train)
    return lib.reflectance.astype(np.float32), list(lib.names)
