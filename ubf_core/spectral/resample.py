"""Resampling a cube to a target grid (one matrix product), with bad bands and NaN pixels handled."""

from __future__ import annotations

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from ubf_core.errors import UBFInputError
from ubf_core.spectral.cube import CUBE_DIMS, cube_parts, format_range, spatial_coords
from ubf_core.spectral.grid import SpectralGrid
from ubf_core.spectral.response import coverage, response_matrix


class SceneRejected(UBFInputError):
    """A scene with too many NaN pixels; callers may skip it with a warning instead of failing."""


def resample_to_grid(cube: xr.DataArray, grid: SpectralGrid, *, tolerance_nm: float = 5.0,
                     max_nan_fraction: float = 0.1, name: str | None = None) -> xr.DataArray:
    """Resample a cube onto a target grid with Gaussian band responses (one matrix product).

    Parameters
    ----------
    cube : xr.DataArray (wavelength, y, x)
        Reflectance; ``wavelength`` (nm), optional ``fwhm`` (nm) and ``bad_band`` (bool) coordinates.
    grid : SpectralGrid
        Target grid.
    tolerance_nm : float
        How far (nm) a target centre may lie beyond the good source bands (see :func:`coverage`).
    max_nan_fraction : float
        Largest accepted share of NaN pixels; above it :class:`SceneRejected` is raised.
    name : str, optional
        Data-set name for errors; default ``cube.attrs["source"]`` or "cube".

    Returns
    -------
    xr.DataArray (wavelength, y, x), float32
        ``wavelength`` = ``grid.centres`` (nm), ``fwhm`` = ``grid.fwhm`` (nm); masked pixels (any non-finite value
        in a good source band) are NaN in every band. attrs: the input's plus ``resampled_from``, ``nan_pixels``,
        ``nan_fraction``.

    Raises
    ------
    UBFInputError
        A target band not covered by the good source bands, a good band that is all NaN, a malformed cube.
    SceneRejected
        More than ``max_nan_fraction`` of the pixels are NaN.
    """
    name = str(name if name is not None else (cube.attrs.get("source", "cube") if isinstance(cube, xr.DataArray)
                                             else "cube"))
    cube, wl, fwhm, good = cube_parts(cube, name)
    n_src, ny, nx = cube.shape
    if ny * nx == 0:
        raise UBFInputError(name, f"cube has no pixels (shape {tuple(cube.shape)})")
    centres, dst_fwhm = grid.centres, grid.fwhm

    cov = coverage(wl, centres, good, tolerance_nm)
    if not cov.complete:
        ranges = ", ".join(format_range(a, b) for a, b in cov.uncovered_ranges)
        n_unc = int((~cov.covered).sum())
        verb = "band {} is".format(ranges) if n_unc == 1 else "bands {} are".format(ranges)
        raise UBFInputError(name, f"target grid {format_range(centres[0], centres[-1])}: {verb} not covered by the "
                                  f"source (good bands {format_range(*cov.src_range)}, tolerance {tolerance_nm:g} nm)")

    data = np.asarray(cube.data)
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    good_idx = np.flatnonzero(good)

    # Pixels with any non-finite value in a good band are masked; a good band with no finite value is an error.
    masked = np.zeros((ny, nx), bool)
    for i in good_idx:
        finite = np.isfinite(data[i])
        if not finite.any():
            raise UBFInputError(name, f"band {i} ({wl[i]:.1f} nm) is all NaN; list it in bad_bands")
        masked |= ~finite
    nan_pixels = int(masked.sum())
    nan_fraction = nan_pixels / float(ny * nx)
    if nan_fraction > max_nan_fraction:
        raise SceneRejected(name, f"{100 * nan_fraction:.1f}% of pixels are NaN (limit {100 * max_nan_fraction:.1f}%)")

    R = response_matrix(wl, fwhm, centres, dst_fwhm, good)
    used = np.flatnonzero(R.any(axis=0))                  # good bands with any weight (bad bands have none)
    if used.size == n_src:
        X = data.reshape(n_src, ny * nx)
    else:
        X = data[used].reshape(used.size, ny * nx)        # never multiply a bad band's NaN by a zero weight
    # one BLAS thread: a multi-threaded sgemm sums in an order that depends on the thread count, and the store
    # must not depend on how many Dask workers/threads ran (parallelism comes from one task per scene)
    with np.errstate(invalid="ignore"), threadpool_limits(limits=1, user_api="blas"):
        out = (R[:, used].astype(np.float32) @ X).reshape(len(centres), ny, nx)  # masked pixels: fixed below
    if nan_pixels:
        out[:, masked] = np.nan

    n_bad = int((~good).sum())
    attrs = dict(cube.attrs)
    attrs["resampled_from"] = (f"{format_range(wl[0], wl[-1])}, {n_src} bands" + (f" ({n_bad} bad)" if n_bad else ""))
    attrs["nan_pixels"] = nan_pixels
    attrs["nan_fraction"] = float(nan_fraction)
    coords = spatial_coords(cube)
    coords["wavelength"] = ("wavelength", centres, {"units": "nm", "long_name": "band centre"})
    coords["fwhm"] = ("wavelength", dst_fwhm, {"units": "nm", "long_name": "band FWHM"})
    return xr.DataArray(out.astype(np.float32, copy=False), dims=CUBE_DIMS, coords=coords, attrs=attrs,
                        name=cube.name)
