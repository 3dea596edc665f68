"""What a data set holds and how it covers the target grid: the facts `ubf info` prints; whether its values can be
reflectance at all (:func:`not_reflectance`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ubf_core.spectral import SpectralGrid, coverage


def describe_cube(cube: xr.DataArray, grid: SpectralGrid, tolerance_nm: float = 5.0) -> dict:
    """Shape, dtype, wavelength range, bad bands, NaN share and grid coverage of a cube (wavelength, y, x)."""
    wl = cube["wavelength"].values.astype(float)
    bad = cube["bad_band"].values.astype(bool) if "bad_band" in cube.coords else np.zeros(len(wl), bool)
    values = cube.values
    good_values = values[~bad] if (~bad).any() else values
    nan_pixels = ~np.isfinite(good_values).all(axis=0)
    all_nan_bands = [int(i) for i in np.where(~np.isfinite(values).any(axis=(1, 2)))[0]]
    cov = coverage(wl, grid.centres, good=~bad, tolerance_nm=tolerance_nm)
    finite = good_values[np.isfinite(good_values)]
    return {
        "source": cube.attrs.get("source", ""),
        "path": cube.attrs.get("path", ""),
        "format": cube.attrs.get("format", ""),
        "shape": {"bands": int(cube.sizes["wavelength"]), "height": int(cube.sizes["y"]),
                  "width": int(cube.sizes["x"])},
        "dtype": cube.attrs.get("stored_dtype", str(cube.dtype)),
        "scale": cube.attrs.get("scale", 1.0),
        "wavelength_nm": [float(wl.min()), float(wl.max())],
        "wavelength_source": cube.attrs.get("wavelength_source", ""),
        "fwhm_nm": ([float(np.nanmin(cube["fwhm"])), float(np.nanmax(cube["fwhm"]))]
                    if "fwhm" in cube.coords else None),
        "bad_bands": [int(i) for i in np.where(bad)[0]],
        "all_nan_bands": all_nan_bands,
        "nan_pixel_share": float(nan_pixels.mean()),
        "value_range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "grid": f"{grid.start_nm:g}-{grid.stop_nm:g} nm, {grid.n_bands} bands",
        "grid_covered_bands": int(cov.covered.sum()),
        "grid_uncovered_nm": [[round(a, 2), round(b, 2)] for a, b in cov.uncovered_ranges],
    }


def format_description(d: dict) -> str:
    """The description as aligned ``key: value`` lines for a terminal."""
    s = d["shape"]
    cover = ("fully covered" if not d["grid_uncovered_nm"] else
             "NOT covered at " + ", ".join(f"{a:g}-{b:g} nm" for a, b in d["grid_uncovered_nm"]))
    rows = [
        ("file", d["path"]), ("data set", d["source"]), ("format", d["format"]),
        ("shape", f"{s['bands']} bands × {s['height']} × {s['width']} pixels"),
        ("dtype", f"{d['dtype']} (reflectance = stored value × {d['scale']:g})"),
        ("wavelengths", f"{d['wavelength_nm'][0]:.1f}-{d['wavelength_nm'][1]:.1f} nm ({d['wavelength_source']})"),
        ("fwhm", "unknown (band spacing used)" if d["fwhm_nm"] is None else
         f"{d['fwhm_nm'][0]:.2f}-{d['fwhm_nm'][1]:.2f} nm"),
        ("bad bands", f"{len(d['bad_bands'])} {d['bad_bands'] if d['bad_bands'] else ''}".strip()),
        ("all-NaN bands", f"{len(d['all_nan_bands'])} {d['all_nan_bands'] if d['all_nan_bands'] else ''}".strip()),
        ("NaN pixels", f"{100 * d['nan_pixel_share']:.2f} %"),
        ("value range", "no finite value" if d["value_range"] is None else
         f"{d['value_range'][0]:.4g} to {d['value_range'][1]:.4g}"),
        ("target grid", f"{d['grid']}: {d['grid_covered_bands']} covered, {cover}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@dataclass(frozen=True)
class NotReflectance:
    """A cube whose values are clearly not reflectance (raw digital numbers, percent, radiance).

    ``value`` is the ``percentile``-th percentile of its finite values in good bands, ``limit`` the largest value
    a reflectance cube may have (``validation.reflectance_max``), ``scale`` the factor the cube was read with and
    ``suggested_scale`` a power of ten that, in place of ``scale``, brings ``value`` to at most ``limit``
    (1e-4 for reflectance × 10000, the usual DN convention).
    """

    percentile: float
    value: float
    limit: float
    scale: float
    suggested_scale: float

    def describe(self) -> str:
        return (f"values are not reflectance: their {self.percentile:g}th percentile is {self.value:.4g} (read with "
                f"scale {self.scale:g}), far above validation.reflectance_max {self.limit:g} (raw digital numbers?)")


def not_reflectance(cube: xr.DataArray, reflectance_max: float, *, percentile: float = 99.0,
                    margin: float = 10.0, max_values: int = 1_000_000) -> NotReflectance | None:
    """A :class:`NotReflectance` when the cube's ``percentile``-th percentile exceeds ``margin × reflectance_max``.

    cube : (wavelength, y, x) values as read (raw × scale); bands flagged in a ``bad_band`` coordinate and
    non-finite values are left out; at most ``max_values`` evenly spaced values are looked at (a cheap check).
    Reflectance may exceed ``reflectance_max`` in a few specular pixels, never in a hundredth of the cube by a factor
    of ``margin``; digital numbers (hundreds to tens of thousands) and percent reflectance do.
    """
    values = np.asarray(cube.values if isinstance(cube, xr.DataArray) else cube)
    if isinstance(cube, xr.DataArray) and "bad_band" in cube.coords and (~cube["bad_band"].values).any():
        values = values[~cube["bad_band"].values.astype(bool)]
    flat = values.reshape(-1)
    if flat.size > max_values:
        flat = flat[:: math.ceil(flat.size / max_values)]
    flat = flat[np.isfinite(flat)]
    if not flat.size:
        return None
    value = float(np.percentile(flat, percentile))
    limit = float(reflectance_max)
    if value <= margin * limit:
        return None
    scale = float(cube.attrs.get("scale", 1.0)) if isinstance(cube, xr.DataArray) else 1.0
    factor = 10.0 ** -math.ceil(math.log10(value / limit))
    return NotReflectance(percentile=percentile, value=value, limit=limit, scale=scale,
                          suggested_scale=float(f"{scale * factor:.3g}"))
