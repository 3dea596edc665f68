"""Reconstruction metrics for hyperspectral cubes: numpy arrays in, Python floats out.

Every function takes a reconstruction ``x_hat`` and a reference ``x`` of the same shape, either one cube
``(C, H, W)`` or a batch of patches ``(N, C, H, W)``; the band (channel) axis is always axis ``-3``. Values are
reflectance (float32/float64); computations are done in float64.

Definitions (b = band, p = pixel, C = number of bands):

* ``rmse``  = sqrt(mean over all elements of (x_hat - x)^2)
* ``psnr``  = mean_b 10·log10(data_range² / MSE_b), each band term capped at ``max_db``
* ``ssim``  = mean over bands (and patches) of the SSIM of Wang et al. (2004) on each 2-D band image
* ``sad_degrees`` = mean_p arccos(<x_hat_p, x_p> / (|x_hat_p| |x_p|)) in degrees
* ``ergas`` = 100·ratio·sqrt(mean_b (RMSE_b / mean(x_b))²) (Wald 2000)
"""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError

__all__ = ["rmse", "psnr", "ssim", "sad_degrees", "ergas", "reconstruction_report"]

_WHERE = "metrics"


def _pair(x_hat, x) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 arrays of the same shape, with a band axis at -3 ((C,H,W) or (N,C,H,W))."""
    a = np.asarray(x_hat, dtype=np.float64)
    b = np.asarray(x, dtype=np.float64)
    if a.shape != b.shape:
        raise UBFInputError(_WHERE, f"shapes {a.shape} and {b.shape} differ")
    if a.ndim not in (3, 4):
        raise UBFInputError(
            _WHERE, f"expected a cube (C, H, W) or patches (N, C, H, W), got an array of shape {a.shape}"
        )
    if a.size == 0:
        raise UBFInputError(_WHERE, f"empty arrays of shape {a.shape}")
    return a, b


def _band_axes(ndim: int) -> tuple[int, ...]:
    """Axes that are averaged over for one band: (H, W) for a cube, (N, H, W) for patches."""
    return (-2, -1) if ndim == 3 else (0, 2, 3)


def rmse(x_hat, x) -> float:
    """Root-mean-square error over all elements.

    ``rmse = sqrt(mean((x_hat - x)**2))``, the mean taken over every band, pixel and patch. Units: those of the data
    (reflectance). 0 for identical inputs.
    """
    a, b = _pair(x_hat, x)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def psnr(x_hat, x, data_range: float = 1.0, max_db: float = 100.0) -> float:
    """Peak signal-to-noise ratio in dB, averaged over bands.

    ``psnr = mean_b 10·log10(data_range² / MSE_b)`` where ``MSE_b`` is the mean squared error of band ``b`` (axis
    ``-3``) over its pixels (H, W) and, for patches ``(N, C, H, W)``, over all N patches as well.

    ``data_range`` is the peak value of the signal: 1.0 for reflectance in [0, 1] (the default); state it explicitly
    for other scalings (e.g. 10000 for reflectance stored as integers ×10⁴). A band with zero error (identical inputs)
    would give +inf; each band's term is capped at ``max_db`` (100 dB by default), so identical inputs return exactly
    ``max_db``.
    """
    a, b = _pair(x_hat, x)
    if not data_range > 0:
        raise UBFInputError(_WHERE, f"data_range must be positive, got {data_range}")
    mse_b = np.mean((a - b) ** 2, axis=_band_axes(a.ndim))
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(float(data_range) ** 2 / mse_b)
    db = np.minimum(db, float(max_db))
    return float(np.mean(db))


def _ssim_win_size(h: int, w: int) -> int:
    """Odd window size: 7, or the largest odd number not above the smallest image side."""
    side = min(h, w, 7)
    return side if side % 2 == 1 else side - 1


_SSIM_CHUNK = 256  # band images filtered together


def ssim(x_hat, x, data_range: float = 1.0) -> float:
    """Mean structural similarity over bands (and patches).

    The SSIM of Wang et al. (2004) on each 2-D band image, with their settings: Gaussian weights (σ = 1.5, the kernel
    cut at 3.5 σ, edges mirrored), population covariances, K1 = 0.01, K2 = 0.03 and the given ``data_range`` (1.0 for
    reflectance). Per image, the SSIM map is averaged after dropping a border of ``(win - 1) // 2`` pixels, where the
    window side ``win`` is ``min(7, largest odd number ≤ the smallest image side)`` so small patches (e.g. 4×4 → 3)
    work; images with a side below 3 are rejected. These are the settings of
    ``skimage.metrics.structural_similarity(..., win_size=win, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``, which the tests check this against; here the filter is applied to every band image
    of every patch at once, as matrix products. The result is the mean of the per-band (per-patch) SSIM values; 1 for
    identical inputs.
    """
    from scipy.ndimage import gaussian_filter1d

    a, b = _pair(x_hat, x)
    if not data_range > 0:
        raise UBFInputError(_WHERE, f"data_range must be positive, got {data_range}")
    h, w = a.shape[-2:]
    win = _ssim_win_size(h, w)
    if win < 3:
        raise UBFInputError(_WHERE, f"SSIM needs images of at least 3×3 pixels, got {h}×{w}")
    a = a.reshape(-1, h, w)
    b = b.reshape(-1, h, w)

    # The mirrored-edge Gaussian filter is linear: as matrices (column j = the filtered unit impulse at j) it blurs
    # all images at once by two small matrix products.
    g_h, g_w = (gaussian_filter1d(np.eye(n), 1.5, axis=0, truncate=3.5, mode="reflect") for n in (h, w))

    def blur(v: np.ndarray) -> np.ndarray:  # (n, h, w) → (n, h, w), as two 2-D products (one BLAS call each)
        n = len(v)
        v = (v.reshape(n * h, w) @ g_w.T).reshape(n, h, w).transpose(0, 2, 1)
        return (v.reshape(n * w, h) @ g_h.T).reshape(n, w, h).transpose(0, 2, 1)

    c1, c2 = (0.01 * float(data_range)) ** 2, (0.03 * float(data_range)) ** 2
    pad = (win - 1) // 2
    total = 0.0
    for i in range(0, len(a), _SSIM_CHUNK):  # in chunks of images: bounded temporaries
        x1, x2 = a[i:i + _SSIM_CHUNK], b[i:i + _SSIM_CHUNK]
        u1, u2 = blur(x1), blur(x2)
        v1, v2, cov = blur(x1 * x1) - u1 * u1, blur(x2 * x2) - u2 * u2, blur(x1 * x2) - u1 * u2
        s = ((2 * u1 * u2 + c1) * (2 * cov + c2)) / ((u1 * u1 + u2 * u2 + c1) * (v1 + v2 + c2))
        total += float(np.sum(s[:, pad:h - pad, pad:w - pad]))
    return total / (len(a) * (h - 2 * pad) * (w - 2 * pad))


def sad_degrees(x_hat, x, eps: float = 1e-12) -> float:
    """Mean spectral angle (SAD/SAM) in degrees over pixels.

    For each pixel p, the angle between the spectra along the band axis (axis ``-3``):
    ``θ_p = arccos(clip(<x_hat_p, x_p> / max(|x_hat_p|·|x_p|, eps), -1, 1))``; the result is ``mean_p θ_p`` in
    degrees. The angle ignores scale (x and 2·x give 0°). If either spectrum is zero, its dot product is 0 and the
    angle is 90° by this definition (never NaN); the cosine is clipped so rounding can never take arccos out of range.
    """
    a, b = _pair(x_hat, x)
    dot = np.sum(a * b, axis=-3)
    norms = np.sqrt(np.sum(a * a, axis=-3)) * np.sqrt(np.sum(b * b, axis=-3))
    cos = np.clip(dot / np.maximum(norms, eps), -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def ergas(x_hat, x, ratio: float = 1.0) -> float:
    """Relative dimensionless global error in synthesis (ERGAS, Wald 2000).

    ``ergas = 100·ratio·sqrt(mean_b (RMSE_b / mu_b)²)``, where ``RMSE_b`` is the root-mean-square error of band ``b``
    and ``mu_b`` the mean of the reference band ``x_b`` (both over H, W and, for patches, N). ``ratio`` is the ratio of
    the high to the low spatial resolution (pixel-size ratio, e.g. 1/4 for 4× super-resolution in Wald's convention);
    use 1.0 for a same-resolution reconstruction. 0 for identical inputs. A band whose reference mean is 0 is guarded
    by a tiny floor (1e-12) so the value stays finite.
    """
    a, b = _pair(x_hat, x)
    axes = _band_axes(a.ndim)
    rmse_b = np.sqrt(np.mean((a - b) ** 2, axis=axes))
    mu_b = np.mean(b, axis=axes)
    mu_b = np.where(np.abs(mu_b) < 1e-12, 1e-12, mu_b)
    return float(100.0 * float(ratio) * np.sqrt(np.mean((rmse_b / mu_b) ** 2)))


def reconstruction_report(x_hat, x, data_range: float = 1.0) -> dict[str, float]:
    """All reconstruction metrics at once: ``{"rmse", "psnr", "ssim", "sad_deg", "ergas"}`` (floats).

    PSNR and SSIM use ``data_range``; ERGAS uses ratio 1 (same resolution). See each function for its definition.
    """
    a, b = _pair(x_hat, x)  # float64 once; each metric's own conversion is then a no-op
    return {
        "rmse": rmse(a, b),
        "psnr": psnr(a, b, data_range=data_range),
        "ssim": ssim(a, b, data_range=data_range),
        "sad_deg": sad_degrees(a, b),
        "ergas": ergas(a, b),
    }
