"""The spectral axis: target grids, Gaussian band resampling, coverage checks, three-band inputs and RGB rendering.

A hyperspectral cube is an ``xarray.DataArray`` with dims ``("wavelength", "y", "x")``, float32 reflectance, a
``wavelength`` coordinate (band centres, nm, float64, non-decreasing; near-duplicates allowed, e.g. AVIRIS's
overlapping spectrometers), optionally ``fwhm`` (nm) and a boolean ``bad_band`` (True = do not use) along
``wavelength``, and ``attrs["source"]`` (the data-set name).

Resampling (:func:`resample_to_grid`; :func:`resample_rows` for a block of a scene's rows) is one matrix product
``R @ cube`` with ``R`` from :func:`response_matrix`: each target band is a Gaussian response of its own FWHM; because the source bands are already blurred by their own
responses, the kernel applied to the source samples has the *remaining* width
``sigma_w**2 = max(sigma_dst**2 - sigma_src**2, (0.5 * source spacing around the target)**2)``. The floor keeps the
kernel wide enough to interpolate smoothly between source samples; where the source is coarser (or blurrier) than
the target, the output is that much blurrier than the ideal target band (for a 10-nm source of 10-nm FWHM and the
5.2-nm remote_sensing grid, about (sigma_src**2 + spacing**2/4 - sigma_dst**2) / 2 times the spectrum's curvature;
no positive-weight kernel does better) -- information the source does not hold is never invented. Target bands
outside the source's good bands are an error, never extrapolated.
"""


from ubf_core.spectral.grid import NATURAL, PRESETS, REMOTE_SENSING, SpectralGrid
from ubf_core.spectral.rendering import (XYZ_TO_LINEAR_SRGB, linear_rgb_matrix, list_cameras, load_camera_response,
                                         load_cie1931, render_rgb, select_bands, srgb_encode)
from ubf_core.spectral.resample import BlockStats, SceneRejected, check_scene, resample_rows, resample_to_grid
from ubf_core.spectral.response import FWHM_TO_SIGMA, Coverage, coverage, response_matrix

__all__ = [
    "SpectralGrid", "REMOTE_SENSING", "NATURAL", "PRESETS", "response_matrix", "Coverage", "coverage",
    "SceneRejected", "resample_to_grid", "resample_rows", "BlockStats", "check_scene", "select_bands", "load_cie1931",
    "load_camera_response", "list_cameras",
    "render_rgb", "linear_rgb_matrix", "XYZ_TO_LINEAR_SRGB", "srgb_encode", "FWHM_TO_SIGMA",
]
