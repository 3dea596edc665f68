"""The one input space of the unmixing encoder: 3-band versions of HSI patches and real RGB images.

A 3-band cut of an HSI is linear reflectance; an RGB photograph is display-encoded (8-bit, sRGB transfer curve,
unknown exposure). :class:`InputSpace` brings both into one space:

- ``space="linear"``: RGB images are linearised (inverse sRGB curve) and scaled by one global factor so that
  their mean matches the mean of the HSI 3-band inputs; HSI inputs stay linear reflectance.
- ``space="display"``: HSI 3-band inputs are scaled by the inverse factor (to the RGB images' exposure) and
  sRGB-encoded; RGB images stay as stored.

The factor is fitted on the training stores and saved with the model, so inference uses the same space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.spectral.rendering import render_rgb, srgb_encode

SPACES = ("linear", "display")


def srgb_decode(display: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function (IEC 61966-2-1): display values in [0, 1] → linear values in [0, 1]."""
    v = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def band_indices(wavelengths_nm: np.ndarray, targets_nm=(650.0, 550.0, 450.0)) -> np.ndarray:
    """Index of the band nearest to each target wavelength (the papers' band selection)."""
    wl = np.asarray(wavelengths_nm, dtype=float)
    return np.array([int(np.argmin(np.abs(wl - t))) for t in targets_nm])


def three_band(reflectance: np.ndarray, wavelengths_nm: np.ndarray, method: str = "select",
               targets_nm=(650.0, 550.0, 450.0), response: xr.DataArray | None = None) -> np.ndarray:
    """Linear 3-band input from HSI patches (N, C, H, W) → (N, 3, H, W) float32.

    ``method="select"``: nearest bands to ``targets_nm`` (R, G, B), the papers' way. ``method="render"``: through
    ``response`` (CIE 1931 colour-matching functions or a camera's sensitivities, from
    :func:`ubf_core.spectral.load_cie1931` / :func:`~ubf_core.spectral.load_camera_response`), white-balanced
    and linear (see :func:`ubf_core.spectral.render_rgb`).
    """
    x = np.asarray(reflectance, dtype=np.float32)
    if method == "select":
        return np.ascontiguousarray(x[:, band_indices(wavelengths_nm, targets_nm)])
    if method == "render":
        if response is None:
            raise UBFInputError("unmixing.three_band", "render needs a spectral response (CIE 1931 or a camera)")
        n, c, h, w = x.shape
        cube = xr.DataArray(x.transpose(1, 0, 2, 3).reshape(c, n * h, w), dims=("wavelength", "y", "x"),
                            coords={"wavelength": np.asarray(wavelengths_nm, dtype=float)})
        rgb = render_rgb(cube, response, encoding="linear").values  # (3, n*h, w)
        return np.ascontiguousarray(rgb.reshape(3, n, h, w).transpose(1, 0, 2, 3)).astype(np.float32)
    raise UBFInputError("unmixing.three_band", f"method '{method}' unknown; use select or render")


@dataclass
class InputSpace:
    """How HSI 3-band inputs and RGB images meet (see the module docstring). ``rgb_to_hsi_scale`` multiplies
    linearised RGB values to match the HSI inputs' brightness."""

    space: str = "linear"
    rgb_to_hsi_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise UBFInputError("unmixing.input_space", f"'{self.space}' unknown; use one of {SPACES}")

    @classmethod
    def fit(cls, space: str, hsi_linear: np.ndarray, rgb_display: np.ndarray) -> "InputSpace":
        """Fit the brightness factor: mean of the HSI 3-band inputs / mean of the linearised RGB images."""
        rgb_mean = float(srgb_decode(rgb_display).mean())
        hsi_mean = float(np.asarray(hsi_linear, dtype=np.float64).mean())
        if rgb_mean <= 0 or hsi_mean <= 0:
            raise UBFInputError("input space", f"cannot fit brightness: means {hsi_mean:g} (HSI), {rgb_mean:g} (RGB)")
        return cls(space, hsi_mean / rgb_mean)

    def from_hsi(self, hsi_linear: np.ndarray) -> np.ndarray:
        """HSI 3-band linear reflectance (N, 3, H, W) → encoder input."""
        x = np.asarray(hsi_linear, dtype=np.float32)
        if self.space == "linear":
            return x
        return srgb_encode(np.clip(x / self.rgb_to_hsi_scale, 0.0, 1.0)).astype(np.float32)

    def from_rgb(self, rgb_display: np.ndarray) -> np.ndarray:
        """RGB images as stored (display sRGB in [0, 1], (N, 3, H, W)) → encoder input."""
        x = np.asarray(rgb_display, dtype=np.float32)
        if self.space == "display":
            return x
        return srgb_decode(x) * np.float32(self.rgb_to_hsi_scale)

    def to_dict(self) -> dict:
        return asdict(self)
