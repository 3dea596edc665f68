"""Gaussian spectral response matrices between band sets, and how a source covers a target grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_TRUNCATE_SIGMAS = 8.0           # Gaussian weights beyond 8 sigma (< 1.3e-14 of the peak) are exactly zero

def local_spacing(centres: np.ndarray) -> np.ndarray:
    """Width (nm) each sample stands for: half the distance between its neighbours; the neighbour gap at the ends.

    ``centres`` shape (n,), non-decreasing. Zero widths (repeated centres) are replaced by the median positive gap.
    """
    c = np.asarray(centres, dtype=np.float64)
    n = c.size
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.ones(1)
    gaps = np.diff(c)
    d = np.empty(n)
    d[0], d[-1] = gaps[0], gaps[-1]
    if n > 2:
        d[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    positive = gaps[gaps > 0]
    fallback = float(np.median(positive)) if positive.size else 1.0
    return np.where(d > 0, d, fallback)


def _gap_around(sorted_centres: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Local sampling step (nm) at each target: the largest of the gap holding it and the two gaps beside it.

    ``sorted_centres`` shape (n,), non-decreasing; ``targets`` shape (m,); returns shape (m,), > 0.
    """
    c = np.asarray(sorted_centres, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if c.size < 2:
        return np.ones(t.size)
    gaps = np.diff(c)
    k = np.clip(np.searchsorted(c, t) - 1, 0, gaps.size - 1)
    h = np.maximum.reduce([gaps[k], gaps[np.maximum(k - 1, 0)], gaps[np.minimum(k + 1, gaps.size - 1)]])
    positive = gaps[gaps > 0]
    return np.where(h > 0, h, float(np.median(positive)) if positive.size else 1.0)


def _as_width(value, n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{what} has shape {arr.shape}, expected ({n},)")
    return arr


def response_matrix(src_centres, src_fwhm, dst_centres, dst_fwhm, good=None) -> np.ndarray:
    """Gaussian resampling matrix from source bands to target bands.

    Row ``i`` holds the weights of target band ``i`` over the source bands:
    ``w_ij ∝ exp(-(λ_j - λ_i)**2 / (2 σ_w**2)) * Δλ_j`` with
    ``σ_w**2 = max(σ_dst,i**2 - σ_src,j**2, (0.5 h_i)**2)`` (the source already carries its own band blur),
    ``σ = fwhm / (2 sqrt(2 ln 2))``, ``Δλ_j`` the local spacing of the good source bands (half the distance between
    the neighbours: near-duplicate centres share their width) and ``h_i`` the local source spacing around the
    target centre (the largest of the good-source gap holding ``λ_i`` and the gaps either side of it). The floor is
    one width per row so that the kernel stays a symmetric Gaussian on uneven grids (a per-column floor makes it
    lopsided at AVIRIS's overlapping spectrometers). Weights beyond 8 σ_w are exactly 0.

    Parameters
    ----------
    src_centres : array (n_src,)
        Source band centres (nm), non-decreasing.
    src_fwhm : array (n_src,), scalar or None
        Source FWHM (nm); None means the local source spacing.
    dst_centres : array (n_dst,)
        Target band centres (nm).
    dst_fwhm : array (n_dst,) or scalar
        Target FWHM (nm).
    good : bool array (n_src,) or None
        False for bands that must get zero weight (bad bands). None: all good.

    Returns
    -------
    np.ndarray, float64, shape (n_dst, n_src)
        Each row sums to 1 over the good source bands (a row is all zero only when no band is good).
    """
    src = np.asarray(src_centres, dtype=np.float64).ravel()
    dst = np.asarray(dst_centres, dtype=np.float64).ravel()
    n_src, n_dst = src.size, dst.size
    good_mask = np.ones(n_src, bool) if good is None else np.asarray(good, dtype=bool).ravel()
    if good_mask.shape != (n_src,):
        raise ValueError(f"good has shape {good_mask.shape}, expected ({n_src},)")
    W = np.zeros((n_dst, n_src))
    idx = np.flatnonzero(good_mask & np.isfinite(src))
    if idx.size == 0 or n_dst == 0:
        return W
    s = src[idx]
    order = np.argsort(s, kind="stable")      # spacing needs sorted centres; tolerate unsorted input
    s_sorted = s[order]
    spacing = np.empty(idx.size)
    spacing[order] = local_spacing(s_sorted)
    floor = _gap_around(s_sorted, dst)                           # (n_dst,)
    if src_fwhm is None:
        s_fwhm = spacing
    else:
        s_fwhm = _as_width(src_fwhm, n_src, "src_fwhm")[idx]
        s_fwhm = np.where(np.isfinite(s_fwhm) & (s_fwhm > 0), s_fwhm, spacing)
    d_fwhm = _as_width(dst_fwhm, n_dst, "dst_fwhm")
    sig_src2 = (s_fwhm * FWHM_TO_SIGMA) ** 2                     # (n_good,)
    sig_dst2 = (d_fwhm * FWHM_TO_SIGMA) ** 2                     # (n_dst,)
    sig_w2 = np.maximum(sig_dst2[:, None] - sig_src2[None, :], (0.5 * floor[:, None]) ** 2)
    z2 = (s[None, :] - dst[:, None]) ** 2 / sig_w2
    w = np.where(z2 <= _TRUNCATE_SIGMAS ** 2, np.exp(-0.5 * z2), 0.0) * spacing[None, :]
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        # A target band farther than 8 sigma from every good band: fall back to its nearest good band(s) so the
        # row still sums to 1 (coverage() is what decides whether such a band is acceptable).
        for i in np.flatnonzero(total[:, 0] <= 0):
            dist = np.abs(s - dst[i])
            w[i] = (dist == dist.min()).astype(np.float64)
        total = w.sum(axis=1, keepdims=True)
    W[:, idx] = w / total
    return W


@dataclass
class Coverage:
    """Which target bands the good source bands cover.

    Attributes
    ----------
    covered : bool array (n_target,)
        True where the target band centre is covered.
    uncovered_ranges : list of (start_nm, stop_nm)
        Runs of consecutive uncovered target band centres (nm).
    src_range : (float, float)
        First and last good source centre (nm); (nan, nan) when no band is good.
    """

    covered: np.ndarray
    uncovered_ranges: list[tuple[float, float]]
    src_range: tuple[float, float]

    @property
    def complete(self) -> bool:
        """True when every target band is covered."""
        return bool(np.all(self.covered))


def coverage(src_centres, grid_centres, good=None, tolerance_nm: float = 5.0) -> Coverage:
    """Check that the good source bands cover every target band centre.

    A target centre is covered when it lies in ``[first good - tolerance, last good + tolerance]`` and its nearest
    good source centre is at most ``tolerance + median good spacing`` away (catches interior gaps such as dropped
    water-absorption bands).

    Parameters
    ----------
    src_centres : array (n_src,)
        Source band centres (nm).
    grid_centres : array (n_target,)
        Target band centres (nm).
    good : bool array (n_src,) or None
        False for bad bands. None: all good.
    tolerance_nm : float
        How far (nm) a target centre may lie beyond the good source range.

    Returns
    -------
    Coverage
    """
    src = np.asarray(src_centres, dtype=np.float64).ravel()
    tgt = np.asarray(grid_centres, dtype=np.float64).ravel()
    good_mask = np.ones(src.size, bool) if good is None else np.asarray(good, dtype=bool).ravel()
    s = np.sort(src[good_mask & np.isfinite(src)])
    if s.size == 0:
        covered = np.zeros(tgt.size, bool)
        src_range = (math.nan, math.nan)
    else:
        tol = float(tolerance_nm)
        spacing = float(np.median(np.diff(s))) if s.size > 1 else 0.0
        pos = np.clip(np.searchsorted(s, tgt), 1, max(s.size - 1, 1))
        nearest = np.minimum(np.abs(tgt - s[pos - 1]), np.abs(tgt - s[np.minimum(pos, s.size - 1)]))
        covered = (tgt >= s[0] - tol) & (tgt <= s[-1] + tol) & (nearest <= tol + spacing)
        src_range = (float(s[0]), float(s[-1]))
    ranges: list[tuple[float, float]] = []
    i = 0
    while i < tgt.size:
        if covered[i]:
            i += 1
            continue
        j = i
        while j + 1 < tgt.size and not covered[j + 1]:
            j += 1
        ranges.append((float(tgt[i]), float(tgt[j])))
        i = j + 1
    return Coverage(covered=covered, uncovered_ranges=ranges, src_range=src_range)
