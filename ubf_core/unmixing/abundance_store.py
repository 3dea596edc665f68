"""Abundance stores and the endmember matrix as xarray Datasets (written to Zarr by the caller).

Abundance store: ``abundance`` (patch, endmember, y, x) float32, non-negative and summing to one over
``endmember``; the patch coordinates of the input store (source, label, label_id, origin_y, origin_x) carried over.
Endmembers: ``endmembers`` (wavelength, endmember) float32 reflectance with the ``wavelength`` coordinate (nm).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

CARRIED = ("source", "label", "label_id", "origin_y", "origin_x")


def abundance_dataset(abundances: np.ndarray, like: xr.Dataset, attrs: dict) -> xr.Dataset:
    """Wrap abundances (N, k, H, W) with the patch coordinates of the store they were inferred from."""
    coords = {name: ("patch", like[name].values) for name in CARRIED if name in like.coords}
    coords["endmember"] = ("endmember", np.arange(abundances.shape[1]))
    ds = xr.Dataset({"abundance": (("patch", "endmember", "y", "x"), abundances.astype(np.float32),
                                   {"long_name": "abundance", "units": "1"})}, coords=coords, attrs=dict(attrs))
    for key in ("classes",):
        if key in like.attrs:
            ds.attrs[key] = like.attrs[key]
    return ds


def endmember_dataset(endmembers: np.ndarray, wavelengths_nm: np.ndarray, attrs: dict) -> xr.Dataset:
    """The endmember matrix Ê (C, k) with its wavelength grid, as the decoder holds it (never renormalised)."""
    return xr.Dataset(
        {"endmembers": (("wavelength", "endmember"), endmembers.astype(np.float32),
                        {"long_name": "endmember reflectance", "units": "1"})},
        coords={"wavelength": ("wavelength", np.asarray(wavelengths_nm, dtype=float), {"units": "nm"}),
                "endmember": ("endmember", np.arange(endmembers.shape[1]))},
        attrs=dict(attrs))


def unmix_dataset(abundances: np.ndarray, endmembers: np.ndarray, wavelengths_nm: np.ndarray,
                  attrs: dict) -> xr.Dataset:
    """One unmixed image: ``abundance`` (endmember, y, x) beside the endmembers (wavelength, endmember) that
    reconstruct it (Y = E·A + b), so the result can be checked and re-mixed on its own."""
    ds = endmember_dataset(endmembers, wavelengths_nm, attrs)
    ds["abundance"] = (("endmember", "y", "x"), abundances.astype(np.float32),
                       {"long_name": "abundance", "units": "1"})
    return ds
