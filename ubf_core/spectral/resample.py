"""Resampling a cube to a target grid (one matrix product), with bad bands and NaN pixels handled."""

from __future__ import annotations

from dataclasses import dataclass

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
    name = _name(cube, name)
    cube, wl, fwhm, good, data = _checked(cube, grid, tolerance_nm, name)
    masked, finite = _nan_mask(data, good)
    stats = BlockStats(wl, good, finite, int(masked.sum()), int(masked.size))
    check_scene(stats, name, max_nan_fraction)
    out = _product(data, wl, fwhm, good, grid, masked, stats.nan_pixels)
    return _aligned(out, cube, grid, wl, good, stats)


@dataclass(frozen=True)
class BlockStats:
    """What the scene-level checks need from a block of a scene's rows (:func:`resample_rows`): the source bands
    (centres in nm, good mask), which bands hold a finite value in the block, and its masked and total pixels."""

    wavelengths: np.ndarray
    good: np.ndarray
    finite: np.ndarray
    nan_pixels: int
    n_pixels: int

    def merge(self, other: "BlockStats") -> "BlockStats":
        """The statistics of both blocks together (same source bands; pixels counted once in each)."""
        return BlockStats(self.wavelengths, self.good, self.finite | other.finite, self.nan_pixels + other.nan_pixels,
                          self.n_pixels + other.n_pixels)


def check_scene(stats: BlockStats, name: str, max_nan_fraction: float) -> None:
    """The checks of a whole scene: a good band with no finite value is a UBFInputError, a NaN share above
    ``max_nan_fraction`` is :class:`SceneRejected` (both naming ``name``)."""
    empty = np.flatnonzero(stats.good & ~stats.finite)
    if empty.size:
        i = int(empty[0])
        raise UBFInputError(name, f"band {i} ({stats.wavelengths[i]:.1f} nm) is all NaN; list it in bad_bands")
    nan_fraction = stats.nan_pixels / float(stats.n_pixels)
    if nan_fraction > max_nan_fraction:
        raise SceneRejected(name, f"{100 * nan_fraction:.1f}% of pixels are NaN (limit {100 * max_nan_fraction:.1f}%)")


def resample_rows(cube: xr.DataArray, grid: SpectralGrid, *, tolerance_nm: float = 5.0, name: str | None = None,
                  count_rows: tuple[int, int] | None = None) -> tuple[xr.DataArray, BlockStats]:
    """:func:`resample_to_grid` for a block of a scene's rows, without the scene-level checks.

    A large scene is resampled in blocks of rows by several tasks; the caller merges their :class:`BlockStats`
    (``merge``) and runs :func:`check_scene` on the whole. ``count_rows`` (start, stop), relative to the block: the
    rows whose masked pixels this block counts (blocks may overlap; each row is counted by one); default all. The
    values equal those of :func:`resample_to_grid` on the whole scene (the product is per pixel; tested).
    """
    name = _name(cube, name)
    cube, wl, fwhm, good, data = _checked(cube, grid, tolerance_nm, name)
    masked, finite = _nan_mask(data, good)
    counted = masked if count_rows is None else masked[count_rows[0]:count_rows[1]]
    stats = BlockStats(wl, good, finite, int(counted.sum()), int(counted.size))
    out = _product(data, wl, fwhm, good, grid, masked, int(masked.sum()))
    return _aligned(out, cube, grid, wl, good, stats), stats


def _name(cube, name: str | None) -> str:
    return str(name if name is not None else (cube.attrs.get("source", "cube") if isinstance(cube, xr.DataArray)
                                              else "cube"))


def _checked(cube: xr.DataArray, grid: SpectralGrid, tolerance_nm: float, name: str):
    """The cube's parts (see :func:`cube_parts`) and its values as float32, after the coverage check."""
    cube, wl, fwhm, good = cube_parts(cube, name)
    n_src, ny, nx = cube.shape
    if ny * nx == 0:
        raise UBFInputError(name, f"cube has no pixels (shape {tuple(cube.shape)})")
    centres = grid.centres
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
    return cube, wl, fwhm, good, data


def _nan_mask(data: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixels with a non-finite value in any good band, per band: whether it holds a finite value (bad: True))."""
    masked = np.zeros(data.shape[1:], bool)
    finite_any = np.ones(data.shape[0], bool)
    finite = np.empty(data.shape[1:], bool)
    for i in np.flatnonzero(good):
        np.isfinite(data[i], out=finite)
        if finite.all():
            continue
        finite_any[i] = finite.any()
        masked |= ~finite
    return masked, finite_any


def _product(data, wl, fwhm, good, grid: SpectralGrid, masked: np.ndarray, nan_pixels: int) -> np.ndarray:
    n_src, ny, nx = data.shape
    R = response_matrix(wl, fwhm, grid.centres, grid.fwhm, good)
    used = np.flatnonzero(R.any(axis=0))                  # good bands with any weight (bad bands have none)
    if used.size and used[-1] - used[0] + 1 == used.size:
        X = data[used[0]:used[-1] + 1].reshape(used.size, ny * nx)   # a run of bands: a view, no copy
    else:
        X = data[used].reshape(used.size, ny * nx)        # never multiply a bad band's NaN by a zero weight
    # one BLAS thread: a multi-threaded sgemm sums in an order that depends on the thread count, and the store
    # must not depend on how many Dask workers/threads ran (parallelism comes from one task per scene or block)
    with np.errstate(invalid="ignore"), threadpool_limits(limits=1, user_api="blas"):
        out = (R[:, used].astype(np.float32) @ X).reshape(len(grid.centres), ny, nx)  # masked pixels: fixed below
    if nan_pixels:
        out[:, masked] = np.nan
    return out


def _aligned(out: np.ndarray, cube: xr.DataArray, grid: SpectralGrid, wl, good, stats: BlockStats) -> xr.DataArray:
    n_src = wl.size
    n_bad = int((~good).sum())
    attrs = dict(cube.attrs)
    attrs["resampled_from"] = (f"{format_range(wl[0], wl[-1])}, {n_src} bands" + (f" ({n_bad} bad)" if n_bad else ""))
    attrs["nan_pixels"] = stats.nan_pixels
    attrs["nan_fraction"] = float(stats.nan_pixels / float(stats.n_pixels))
    coords = spatial_coords(cube)
    coords["wavelength"] = ("wavelength", grid.centres, {"units": "nm", "long_name": "band centre"})
    coords["fwhm"] = ("wavelength", grid.fwhm, {"units": "nm", "long_name": "band FWHM"})
    return xr.DataArray(out.astype(np.float32, copy=False), dims=CUBE_DIMS, coords=coords, attrs=attrs,
                        name=cube.name)
