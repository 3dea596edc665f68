"""Spectral angle of each spectrum to its nearest library spectrum: numpy in, numpy (and floats) out.

What it measures: for every spectrum ``s`` (one pixel, C bands) the smallest spectral angle to any column ``e`` of a
spectral library, ``min_e arccos(<s, e> / (|s| |e|))`` in degrees, and which column that is. A spectrum whose shape
a real material has gives a small angle; a spectrum no material resembles gives a large one. It answers "are the
synthetic spectra shaped like known materials?", one number per pixel, summarised by :func:`angle_summary`.

Limits, to keep in mind when reading the numbers:

* The angle ignores brightness: ``s`` and ``3·s`` have the same angle, so a spectrum of the right shape at an
  impossible reflectance (> 1, or far too dark) is not caught.
* It is only as wide as the library. The pipeline's library (``unmixing.library``) is the USGS library resampled to
  the AVIRIS channels: minerals, vegetation and some man-made materials measured pure. A scene pixel is most often a
  mixture of several materials (and of shade), so a real pixel, too, sits some degrees from every entry; judge a
  synthetic set against real pixels on the same grid, not against 0°.
* Units matter: radiance pixels (the solar spectrum times the reflectance) sit further from a reflectance library
  than the reflectance of the same scene; compare like with like.
* On a few smooth bands (59 bands, 398-698 nm) many library spectra are close to one another and to any smooth
  positive curve; the nearest name says which entry is closest, not which material the pixel is made of.

Definitions (N spectra, C bands, M library spectra):

* ``angle_p = min_m arccos(<s_p, e_m> / (|s_p| |e_m|))`` in degrees, in [0, 180], computed as ``2·arcsin(|u - v|/2)``
  for the unit vectors ``u, v`` of the best pair (accurate near 0°); the best ``m`` is the one of largest cosine.
* A spectrum with zero norm or a non-finite value has no direction: its angle is NaN and its index −1.
"""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError

__all__ = ["nearest_library_angles", "angle_summary", "DEFAULT_CHUNK", "THRESHOLDS_DEG"]

DEFAULT_CHUNK = 8192            # spectra per block: a (chunk, M) float64 cosine block, 20 MB for M = 300
THRESHOLDS_DEG = (5.0, 10.0)    # the shares angle_summary reports by default


def nearest_library_angles(spectra, library, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The spectral angle of every spectrum to its nearest library spectrum, and that spectrum's column.

    Parameters
    ----------
    spectra : array (N, C)
        One spectrum per row (any units; only the direction counts), float32 or float64.
    library : array (C, M)
        One library spectrum per column on the same C bands (e.g. :attr:`SpectralLibrary.reflectance`); every
        column must be finite with a non-zero norm.
    chunk : int
        Spectra handled at once: memory is about ``chunk × (M + C) × 8`` bytes whatever N is.

    Returns
    -------
    angles_deg : np.ndarray (N,) float64, degrees in [0, 180]; NaN for a zero-norm or non-finite spectrum
    index : np.ndarray (N,) int64, the library column of the largest cosine; −1 where the angle is NaN
    """
    s = np.asarray(spectra)
    e = np.asarray(library, dtype=np.float64)
    if s.ndim != 2:
        raise UBFInputError("spectra", f"expected an array (N, C), got shape {s.shape}")
    if e.ndim != 2 or e.shape[1] == 0:
        raise UBFInputError("library", f"expected an array (C, M) with M ≥ 1, got shape {e.shape}")
    if s.shape[1] != e.shape[0]:
        raise UBFInputError("library", f"has {e.shape[0]} bands (rows), the spectra {s.shape[1]} (columns)")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise UBFInputError("chunk", f"{chunk!r}: must be a positive integer")
    norms = np.linalg.norm(e, axis=0)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        raise UBFInputError("library", f"column {int(bad[0])} is non-finite or all zero ({bad.size} such columns)")
    unit = e / norms                                                     # (C, M)
    n = s.shape[0]
    angles = np.full(n, np.nan)
    index = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, int(chunk)):
        block = np.asarray(s[start:start + chunk], dtype=np.float64)    # (n_b, C)
        with np.errstate(invalid="ignore"):
            norm = np.linalg.norm(block, axis=1)
        ok = np.isfinite(norm) & (norm > 0)
        if not ok.any():
            continue
        u = block[ok] / norm[ok, None]                                   # (n_ok, C) unit spectra
        best = np.argmax(u @ unit, axis=1)                               # (n_ok,) largest cosine
        chord = np.linalg.norm(u - unit[:, best].T, axis=1)
        rows = np.flatnonzero(ok) + start
        angles[rows] = np.degrees(2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0)))
        index[rows] = best
    return angles, index


def angle_summary(angles_deg, thresholds_deg=THRESHOLDS_DEG) -> dict:
    """Median, quartiles and shares under thresholds of angles (degrees), over the finite ones.

    Parameters
    ----------
    angles_deg : array (N,), degrees (NaN entries are counted in ``n_nan`` and left out of everything else)
    thresholds_deg : thresholds t (degrees)

    Returns
    -------
    dict with ``n`` (finite angles), ``n_nan``, ``median``, ``q25``, ``q75`` (degrees; NaN when ``n`` is 0) and
    ``share_below_<t>`` (share of finite angles < t, in [0, 1]; ``<t>`` written with ``:g``, e.g. ``share_below_5``).
    """
    a = np.asarray(angles_deg, dtype=np.float64)
    if a.ndim != 1:
        raise UBFInputError("angles_deg", f"expected an array (N,), got shape {a.shape}")
    finite = a[np.isfinite(a)]
    out = {"n": int(finite.size), "n_nan": int(a.size - finite.size)}
    if finite.size:
        q25, med, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
        out.update(median=float(med), q25=float(q25), q75=float(q75))
    else:
        out.update(median=float("nan"), q25=float("nan"), q75=float("nan"))
    for t in thresholds_deg:
        out[f"share_below_{float(t):g}"] = float(np.mean(finite < t)) if finite.size else float("nan")
    return out
