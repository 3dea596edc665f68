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

__all__ = ["rmse", "psnr", "ssim", "sad_degrees", "ergas", "reconstruction_report", "abundance_histograms",
           "abundance_histogram_distance"]

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


def ssim(x_hat, x, data_range: float = 1.0) -> float:
    """Mean structural similarity over bands (and patches).

    Each 2-D band image is compared with ``skimage.metrics.structural_similarity`` using the settings of Wang et al.
    (2004): a Gaussian window (``gaussian_weights=True``, ``sigma=1.5``), population covariances
    (``use_sample_covariance=False``), K1 = 0.01, K2 = 0.03 and the given ``data_range`` (1.0 for reflectance). The
    window side is ``min(7, largest odd number ≤ the smallest image side)`` so small patches (e.g. 4×4 → 3) work;
    images with a side below 3 are rejected. The result is the mean of the per-band (per-patch) SSIM values; 1 for
    identical inputs.
    """
    from skimage.metrics import structural_similarity

    a, b = _pair(x_hat, x)
    if not data_range > 0:
        raise UBFInputError(_WHERE, f"data_range must be positive, got {data_range}")
    h, w = a.shape[-2:]
    win = _ssim_win_size(h, w)
    if win < 3:
        raise UBFInputError(_WHERE, f"SSIM needs images of at least 3×3 pixels, got {h}×{w}")
    a2 = a.reshape(-1, h, w)
    b2 = b.reshape(-1, h, w)
    values = [
        structural_similarity(
            a2[i],
            b2[i],
            win_size=win,
            data_range=float(data_range),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(a2.shape[0])
    ]
    return float(np.mean(values))


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
    _pair(x_hat, x)
    return {
        "rmse": rmse(x_hat, x),
        "psnr": psnr(x_hat, x, data_range=data_range),
        "ssim": ssim(x_hat, x, data_range=data_range),
        "sad_deg": sad_degrees(x_hat, x),
        "ergas": ergas(x_hat, x),
    }


def abundance_histograms(abundances, bins: int = 20) -> np.ndarray:
    """Per-endmember histograms of abundance values: (N, k, H, W) or (k, H, W) → (k, bins), each row summing to 1.

    The bins split [0, 1] evenly (abundances live on the simplex, so every value falls in a bin).
    """
    a = np.asarray(abundances, dtype=np.float64)
    if a.ndim not in (3, 4) or a.size == 0:
        raise UBFInputError(_WHERE, f"expected abundances (N, k, H, W) or (k, H, W), got shape {a.shape}")
    k = a.shape[-3]
    per = np.moveaxis(a, -3, 0).reshape(k, -1)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    hist = np.stack([np.histogram(np.clip(row, 0.0, 1.0), bins=edges)[0] for row in per]).astype(np.float64)
    return hist / hist.sum(axis=1, keepdims=True)


def abundance_histogram_distance(a, b, bins: int = 20) -> float:
    """How differently two sets of abundance maps are distributed: mean over endmembers of the total-variation
    distance ½·Σ|p − q| between their per-endmember histograms (:func:`abundance_histograms`).

    0 for identical distributions, 1 for disjoint ones. ``a`` and ``b`` may hold different numbers of patches and
    patch sizes but must have the same k (axis -3).
    """
    pa, pb = abundance_histograms(a, bins), abundance_histograms(b, bins)
    if pa.shape != pb.shape:
        raise UBFInputError(_WHERE, f"abundances with k = {pa.shape[0]} and k = {pb.shape[0]} cannot be compared")
    return float(np.mean(0.5 * np.abs(pa - pb).sum(axis=1)))
