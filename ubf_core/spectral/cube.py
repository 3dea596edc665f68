"""Helpers shared by the cube functions: checking the cube convention and carrying coordinates."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ubf_core.errors import UBFInputError

CUBE_DIMS = ("wavelength", "y", "x")

def format_range(a: float, b: float) -> str:
    return f"{a:.1f} nm" if abs(a - b) < 0.05 else f"{a:.1f}–{b:.1f} nm"


def cube_parts(cube: xr.DataArray, name: str):
    """Validate a cube; return (cube in ("wavelength","y","x") order, wavelengths, fwhm or None, good mask)."""
    if not isinstance(cube, xr.DataArray):
        raise UBFInputError(name, f"expected an xarray.DataArray cube, got {type(cube).__name__}")
    if set(cube.dims) != set(CUBE_DIMS) or cube.ndim != 3:
        raise UBFInputError(name, f"cube dims are {tuple(cube.dims)}, expected {CUBE_DIMS}")
    if cube.dims != CUBE_DIMS:
        cube = cube.transpose(*CUBE_DIMS)
    if "wavelength" not in cube.coords:
        raise UBFInputError(name, "cube has no `wavelength` coordinate (band centres, nm)")
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if wl.size == 0:
        raise UBFInputError(name, "cube has no bands")
    if not np.all(np.isfinite(wl)):
        raise UBFInputError(name, "wavelength coordinate has non-finite values")
    if np.any(np.diff(wl) < 0):
        k = int(np.flatnonzero(np.diff(wl) < 0)[0])
        raise UBFInputError(name, f"band centres must be non-decreasing (band {k + 1} at {wl[k + 1]:.1f} nm follows "
                                  f"{wl[k]:.1f} nm); sort the bands by wavelength")
    fwhm = None
    if "fwhm" in cube.coords:
        fwhm = np.asarray(cube["fwhm"].values, dtype=np.float64).ravel()
        if fwhm.shape != wl.shape:
            raise UBFInputError(name, f"fwhm coordinate has {fwhm.size} values for {wl.size} bands")
    good = np.ones(wl.size, bool)
    if "bad_band" in cube.coords:
        bad = np.asarray(cube["bad_band"].values).astype(bool).ravel()
        if bad.shape != wl.shape:
            raise UBFInputError(name, f"bad_band coordinate has {bad.size} values for {wl.size} bands")
        good = ~bad
    if not good.any():
        raise UBFInputError(name, "every band is marked bad")
    return cube, wl, fwhm, good


def spatial_coords(cube: xr.DataArray) -> dict:
    """Coordinates of the cube that do not involve the wavelength dimension (y, x, lat/lon, ...)."""
    return {k: v for k, v in cube.coords.items() if "wavelength" not in v.dims}
