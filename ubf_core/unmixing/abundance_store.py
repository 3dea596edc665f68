"""Abundance stores and the endmember matrix as xarray Datasets (written to Zarr by the caller).

Abundance store: ``abundance`` (patch, endmember, y, x) float32, non-negative and summing to one over
``endmember``; the patch coordinates of the input store (source, label, label_id, origin_y, origin_x) carried over.
With a model of the brightness term also ``brightness`` (patch, y, x) float32, the per-pixel scale s ≥ 0
(dimensionless) of Ŷ = s·Ê·Â + b. Endmembers: ``endmembers`` (wavelength, endmember) float32 reflectance with the
``wavelength`` coordinate (nm); with the atmosphere term also ``transmission`` (sensor, wavelength) float32, the
solar–atmosphere factor t (dimensionless, > 0) of each sensor group (radiance ≈ t ⊙ reflectance); attrs
``endmember_names`` for library endmembers.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

CARRIED = ("source", "label", "label_id", "origin_y", "origin_x")


BRIGHTNESS_ATTRS = {"long_name": "brightness scale s of y = s * E a + b", "units": "1"}


def abundance_dataset(abundances: np.ndarray, like: xr.Dataset, attrs: dict,
                      brightness: np.ndarray | None = None) -> xr.Dataset:
    """Wrap abundances (N, k, H, W) (and the brightness s (N, H, W), when the model has it) with the patch
    coordinates of the store they were inferred from."""
    coords = {name: ("patch", like[name].values) for name in CARRIED if name in like.coords}
    coords["endmember"] = ("endmember", np.arange(abundances.shape[1]))
    ds = xr.Dataset({"abundance": (("patch", "endmember", "y", "x"), abundances.astype(np.float32),
                                   {"long_name": "abundance", "units": "1"})}, coords=coords, attrs=dict(attrs))
    if brightness is not None:
        ds["brightness"] = (("patch", "y", "x"), brightness.astype(np.float32), dict(BRIGHTNESS_ATTRS))
    for key in ("classes",):
        if key in like.attrs:
            ds.attrs[key] = like.attrs[key]
    return ds


def endmember_dataset(endmembers: np.ndarray, wavelengths_nm: np.ndarray, attrs: dict,
                      transmission: np.ndarray | None = None, sensors: list[str] | None = None) -> xr.Dataset:
    """The endmember matrix Ê (C, k) with its wavelength grid, as the decoder holds it (never renormalised), and
    the atmosphere factor t (G, C) of the sensor groups ``sensors`` when the model has one."""
    ds = xr.Dataset(
        {"endmembers": (("wavelength", "endmember"), endmembers.astype(np.float32),
                        {"long_name": "endmember reflectance", "units": "1"})},
        coords={"wavelength": ("wavelength", np.asarray(wavelengths_nm, dtype=float), {"units": "nm"}),
                "endmember": ("endmember", np.arange(endmembers.shape[1]))},
        attrs=dict(attrs))
    if transmission is not None:
        ds = ds.assign_coords(sensor=("sensor", np.asarray(sensors, dtype=object)))
        ds["transmission"] = (("sensor", "wavelength"), np.asarray(transmission, dtype=np.float32),
                              {"long_name": "solar-atmosphere factor t (radiance = t * reflectance)", "units": "1"})
    return ds


def unmix_dataset(abundances: np.ndarray, endmembers: np.ndarray, wavelengths_nm: np.ndarray,
                  attrs: dict, brightness: np.ndarray | None = None) -> xr.Dataset:
    """One unmixed image: ``abundance`` (endmember, y, x) (and ``brightness`` (y, x) for a model with the
    brightness term) beside the endmembers (wavelength, endmember) that reconstruct it (Y = s·E·A + b), so the
    result can be checked and re-mixed on its own."""
    ds = endmember_dataset(endmembers, wavelengths_nm, attrs)
    ds["abundance"] = (("endmember", "y", "x"), abundances.astype(np.float32),
                       {"long_name": "abundance", "units": "1"})
    if brightness is not None:
        ds["brightness"] = (("y", "x"), brightness.astype(np.float32), dict(BRIGHTNESS_ATTRS))
    return ds
