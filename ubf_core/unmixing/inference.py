"""Running a trained unmixing network: check what it is given, bring inputs into its input space, encode.

A model carries ``model.meta`` (set at training): ``wavelength_nm`` (its endmember grid), ``input_space``
(an :class:`~ubf_core.unmixing.inputs.InputSpace` as a dict), ``three_band``, ``band_wavelengths_nm`` and
``render_response``. Everything here reads the model's settings from there, never from today's params.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.unmixing.inputs import InputSpace, three_band

MIN_PATCH = 4  # smallest image side the encoder is run on (its 3×3 convolutions need spatial context)


def model_grid(model) -> np.ndarray:
    """The model's endmember wavelength grid (C,) in nm."""
    return np.asarray(model.meta["wavelength_nm"], dtype=float)


def check_store(model, store_path: str | Path, ds: xr.Dataset, var: str, k: int, uri: str) -> None:
    """Refuse a store the model cannot take: empty, wrong channel count or patch size, another wavelength grid
    (HSI store, ``var="reflectance"``) than the model's endmembers, or another k than params asks for."""
    if ds.sizes.get("patch", 0) == 0:
        raise UBFInputError(store_path, "the store is empty: nothing to unmix")
    if model.config["k"] != k:
        raise UBFInputError("params.yaml", f"unmixing.k = {k} but {uri} has k = {model.config['k']}")
    if var == "reflectance":
        check_grid(model, ds["wavelength"].values, store_path)
    elif ds.sizes["channel"] != 3:
        raise UBFInputError(store_path, f"{ds.sizes['channel']} channels; the encoder takes 3")
    check_size(ds.sizes["y"], ds.sizes["x"], store_path)


def check_grid(model, wavelengths_nm: np.ndarray, where: str | Path) -> None:
    """Error unless ``wavelengths_nm`` is the model's endmember grid."""
    grid, have = model_grid(model), np.asarray(wavelengths_nm, dtype=float)
    if len(have) != len(grid) or not np.allclose(have, grid, atol=1e-6):
        raise UBFInputError(where, f"wavelength grid {have[0]:g}–{have[-1]:g} nm × {len(have)} differs from the "
                                   f"model's endmember grid {grid[0]:g}–{grid[-1]:g} nm × {len(grid)}")


def check_size(h: int, w: int, where: str | Path) -> None:
    """Error for images smaller than the encoder can take."""
    if min(h, w) < MIN_PATCH:
        raise UBFInputError(where, f"{h}×{w} pixels is smaller than the {MIN_PATCH}×{MIN_PATCH} the encoder needs")


def hsi_inputs(model, reflectance: np.ndarray, response: xr.DataArray | None = None) -> np.ndarray:
    """HSI patches (N, C, H, W) on the model's grid → encoder inputs (N, 3, H, W), made the way the model was
    trained (band selection or rendering, then its input space)."""
    meta = model.meta
    x = three_band(reflectance, model_grid(model), meta["three_band"], tuple(meta["band_wavelengths_nm"]), response)
    return InputSpace(**meta["input_space"]).from_hsi(x)


def rgb_inputs(model, rgb_display: np.ndarray) -> np.ndarray:
    """RGB patches (N, 3, H, W), display sRGB in [0, 1] → encoder inputs in the model's input space."""
    return InputSpace(**model.meta["input_space"]).from_rgb(rgb_display)


@torch.no_grad()
def encode(model, x: np.ndarray, batch_size: int = 64, progress: bool = True,
           desc: str = "infer_abundance") -> np.ndarray:
    """Run the encoder over inputs (N, 3, H, W) in batches → abundances (N, k, H, W) float32 on the simplex."""
    return encode_with_brightness(model, x, batch_size, progress, desc)[0]


@torch.no_grad()
def encode_with_brightness(model, x: np.ndarray, batch_size: int = 64, progress: bool = True,
                           desc: str = "infer_abundance") -> tuple[np.ndarray, np.ndarray | None]:
    """Run the encoder over inputs (N, 3, H, W) in batches → (abundances (N, k, H, W) float32 on the simplex,
    brightness s (N, H, W) float32 ≥ 0, dimensionless, or None for a model without the brightness term)."""
    from tqdm.auto import tqdm

    model.eval()
    out, scale = [], []
    for i in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", disable=not progress):
        a, s = model.encode(torch.as_tensor(np.ascontiguousarray(x[i:i + batch_size])))
        out.append(a.numpy())
        if s is not None:
            scale.append(s[:, 0].numpy())
    brightness = np.concatenate(scale).astype(np.float32) if scale else None
    return np.concatenate(out).astype(np.float32), brightness


def unmix_hsi_cube(model, cube: xr.DataArray, response: xr.DataArray | None = None,
                   with_brightness: bool = False):
    """One aligned HSI cube (wavelength, y, x) on the model's grid → abundance maps (k, H, W) float32 (with
    ``with_brightness``: and the brightness s (H, W), None for a model without it).

    NaN pixels (masked by the resampling) get NaN abundances (and brightness); the rest lie on the simplex.
    """
    check_grid(model, cube["wavelength"].values, cube.attrs.get("source", "cube"))
    check_size(cube.sizes["y"], cube.sizes["x"], cube.attrs.get("source", "cube"))
    y = cube.values.astype(np.float32)
    nan = ~np.isfinite(y).all(axis=0)
    x = hsi_inputs(model, np.nan_to_num(y, nan=0.0)[None], response)
    a, s = encode_with_brightness(model, x, 1, progress=False)
    a = a[0]
    a[:, nan] = np.nan
    if s is not None:
        s = s[0]
        s[nan] = np.nan
    return (a, s) if with_brightness else a


def unmix_rgb_image(model, image: np.ndarray, where: str | Path = "image", with_brightness: bool = False):
    """One RGB image (H, W, 3) uint8, display sRGB → abundance maps (k, H, W) float32 on the simplex (with
    ``with_brightness``: and the brightness s (H, W), None for a model without it)."""
    check_size(image.shape[0], image.shape[1], where)
    x = rgb_inputs(model, (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    a, s = encode_with_brightness(model, x, 1, progress=False)
    if not with_brightness:
        return a[0]
    return a[0], None if s is None else s[0]
