"""Per-patch and per-band summaries of a store: the tables the data-quality checks run on."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ubf_core.errors import UBFInputError


def patch_table(ds: xr.Dataset, var: str) -> pd.DataFrame:
    """One row per patch: ``patch`` (index in the store), ``source``, ``label`` (RGB stores), ``min``/``max`` of
    the finite values, ``n_nan``, ``n_inf``, ``n_channels``, ``height``, ``width``.

    Computed chunk by chunk with Dask (one patch per chunk), so the store never has to fit in memory.
    """
    if var not in ds:
        raise UBFInputError(ds.encoding.get("source", "store"), f"variable '{var}' missing; has {list(ds.data_vars)}")
    x = ds[var].data
    if not isinstance(x, da.Array):
        x = da.from_array(x, chunks=(1,) + x.shape[1:])
    axes = tuple(range(1, x.ndim))
    finite = da.isfinite(x)
    stats = da.compute(
        da.where(finite, x, np.inf).min(axis=axes),
        da.where(finite, x, -np.inf).max(axis=axes),
        da.isnan(x).sum(axis=axes),
        da.isinf(x).sum(axis=axes),
    )
    n = x.shape[0]
    table = pd.DataFrame({
        "patch": np.arange(n),
        "source": ds["source"].values.astype(object) if "source" in ds.coords else [""] * n,
        "min": stats[0].astype(float),
        "max": stats[1].astype(float),
        "n_nan": stats[2].astype(int),
        "n_inf": stats[3].astype(int),
        "n_channels": x.shape[1],
        "height": x.shape[2],
        "width": x.shape[3],
    })
    if "label" in ds.coords:
        table["label"] = [None if (v is None or str(v) == "") else str(v) for v in ds["label"].values]
    # an all-NaN patch has no finite value: report its min/max as NaN, not ±inf
    table.loc[~np.isfinite(table["min"]), "min"] = np.nan
    table.loc[~np.isfinite(table["max"]), "max"] = np.nan
    return table


def band_table(ds: xr.Dataset, expected_nm: np.ndarray) -> pd.DataFrame:
    """One row per expected band: ``expected_nm``, ``wavelength_nm`` (the store's, NaN where it has fewer bands)
    and ``abs_diff_nm``. A store with more bands than expected gets extra rows with NaN ``expected_nm``."""
    have = ds["wavelength"].values.astype(float) if "wavelength" in ds.coords else np.array([])
    n = max(len(have), len(expected_nm))
    exp = np.full(n, np.nan)
    exp[: len(expected_nm)] = expected_nm
    got = np.full(n, np.nan)
    got[: len(have)] = have
    return pd.DataFrame({"band": np.arange(n), "expected_nm": exp, "wavelength_nm": got,
                         "abs_diff_nm": np.abs(got - exp)})
