"""The cone of the three-band inputs in which least squares stays physical: its vertices, and each pixel's
coordinates in it.

Least squares (:mod:`ubf_core.unmixing.regression`) maps an input x (3 bands) to the spectrum f(x) = o + x·W, an
affine function. The encoder inputs of real scenes are nearly one-dimensional (brightness) with a little colour, so
a cone from the black point holds them: k vertices, the black point 0 and k − 1 bright points S·c_j, with S a band
sum above the training pixels' and c_j chromaticities (band sums 1). The bright points are chosen where f is a
reflectance: f(S·c) ≥ 0 in every band is a convex polygon F of chromaticities (an intersection of half-planes,
:func:`physical_chromaticities`), and the c_j are the corners of the largest (k − 1)-gon with corners among F's.
Every input inside the cone is a mixture of the vertices with weights on the simplex, known in closed form
(:func:`cone_coordinates`), and since f is affine, mixing the spectra f(v_j) with those weights gives f(x) exactly:
``unmixing.init_endmembers: least_squares`` starts the network there, with endmembers f(v_j) ≥ 0 (up to the offset
o = f(0), which may dip slightly below 0 and is raised to the decoder's minimum).

With ``unmixing.exact_input_bands`` the network keeps least squares' exactness on the three input bands: the decoder's
rows at those bands are the vertices themselves (Ê_I = Vᵀ, no offset), and the encoder picks each pixel's
abundances among those that give its input back, V ᵀa = x (:func:`fiber_abundances`). Those are the black weight
1 − Σx/S and, for the bright points, a mixture of the barycentric coordinates of the pixel's chromaticity in the
triangles of corners that contain it (the vertices of that set); the encoder scores the triangles.

Shapes: inputs (N, 3) pixel rows (numpy) or (N, 3, H, W) images (torch); vertices (k, 3), row 0 the black point,
then the bright points in order round the polygon.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import torch
from scipy.spatial import HalfspaceIntersection

from ubf_core.errors import UBFInputError

__all__ = ["MIN_VERTICES", "physical_chromaticities", "cone_vertices", "cone_coordinates", "corner_triangles",
           "fiber_abundances"]

MIN_VERTICES = 4        # the black point and three colours (a triangle of chromaticities)
_WHERE = "input cone"
_MAX_SUBSETS = 200_000  # corner subsets tried for the largest polygon; beyond, F's corners are thinned first


def _plane_basis(chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean chromaticity (3,), orthonormal axes (2, 3) of the plane Σc = 1 along the chromaticities' spread)."""
    mean = chroma.mean(axis=0)
    _, _, vt = np.linalg.svd(chroma - mean, full_matrices=False)
    return mean, vt[:2]


def physical_chromaticities(offset: np.ndarray, per_band: np.ndarray, scale: float, mean: np.ndarray,
                            axes: np.ndarray) -> np.ndarray:
    """Corners (m, 2), in order round it, of the polygon F of plane coordinates p (chromaticity mean + p·axes)
    where the affine spectrum ``offset`` (C,) + (scale·c) @ ``per_band`` (3, C) is ≥ 0 in every band.

    ``mean`` must lie inside F (its spectrum > 0 everywhere); an F that is not bounded is cut by the box ±1 (the
    plane's chromaticities with components in [−1, 2])."""
    b0 = offset + scale * (mean @ per_band)                         # (C,) the spectrum at p = 0
    if np.any(b0 <= 0):
        raise UBFInputError(_WHERE, "the least-squares spectrum at the inputs' mean chromaticity is not positive "
                                    "in every band: no physical cone around the inputs")
    a = scale * (axes @ per_band)                                   # (2, C): the spectrum's change per unit p
    box = np.array([[1.0, 0.0, -1.0], [-1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, -1.0, -1.0]])
    halfspaces = np.concatenate([np.concatenate([-a.T, -b0[:, None]], axis=1), box])   # A p + b ≤ 0
    corners = HalfspaceIntersection(halfspaces, np.zeros(2)).intersections
    centre = corners.mean(axis=0)
    order = np.argsort(np.arctan2(corners[:, 1] - centre[1], corners[:, 0] - centre[0]))
    corners = corners[order]
    keep = np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1) > 1e-12   # duplicates (degenerate corners)
    return corners[keep]


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _largest_polygon(corners: np.ndarray, m: int) -> np.ndarray:
    """The m-gon (m, 2) of largest area whose corners are among ``corners`` (n, 2, in order round a convex
    polygon), in the same order; with n < m, F's longest edges are split at their midpoints until there are m."""
    poly = np.asarray(corners, dtype=np.float64)
    while len(poly) < m:
        edges = np.linalg.norm(np.roll(poly, -1, axis=0) - poly, axis=1)
        i = int(np.argmax(edges))
        poly = np.insert(poly, i + 1, (poly[i] + poly[(i + 1) % len(poly)]) / 2, axis=0)
    while len(poly) > m and comb(len(poly), m) > _MAX_SUBSETS:   # drop the corner that loses least area
        loss = [_area(poly) - _area(np.delete(poly, i, axis=0)) for i in range(len(poly))]
        poly = np.delete(poly, int(np.argmin(loss)), axis=0)
    best = max(itertools.combinations(range(len(poly)), m), key=lambda idx: _area(poly[list(idx)]))
    return poly[list(best)]


def cone_vertices(inputs, offset: np.ndarray, per_band: np.ndarray, k: int, pad: float = 0.1,
                  bright_share: float = 0.9) -> np.ndarray:
    """k vertices (k, 3) float64 of the physical cone of the pixel inputs (N, 3) for the affine spectra
    ``offset`` (C,) + x @ ``per_band`` (3, C) (least squares' rows 0 and 1..3): row 0 the black point 0, then k − 1
    bright points S·c_j in order round the largest (k − 1)-gon inside the polygon F where the spectrum at S·c is
    ≥ 0 (:func:`physical_chromaticities`). ``S`` is the largest band sum of the inputs, padded by ``pad``. The plane
    of chromaticities is spanned along the spread of the chromaticities of the brightest ``bright_share`` of the
    pixels (a dark pixel's chromaticity is mostly noise).
    """
    b = np.asarray(inputs, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 3:
        raise UBFInputError(_WHERE, f"the cone vertices need 3 input bands (pixels, 3), got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise UBFInputError(_WHERE, "the inputs contain NaN or infinite values")
    if k < MIN_VERTICES:
        raise UBFInputError(_WHERE, f"k = {k}: a cone holding 3-band inputs needs at least {MIN_VERTICES} vertices")
    offset, per_band = np.asarray(offset, dtype=np.float64), np.asarray(per_band, dtype=np.float64)
    if per_band.shape != (3, len(offset)):
        raise UBFInputError(_WHERE, f"per_band must be (3, C) with C = {len(offset)}, got {per_band.shape}")
    total = b.sum(axis=1)
    bright = (total > 1e-6) & (total >= np.quantile(total, 1 - bright_share))
    if bright.sum() < 3:
        raise UBFInputError(_WHERE, "the cone vertices need at least 3 inputs with a positive band sum")
    mean, axes = _plane_basis(b[bright] / total[bright, None])
    scale = float(total.max()) * (1 + pad)
    polygon = _largest_polygon(physical_chromaticities(offset, per_band, scale, mean, axes), k - 1)
    return np.concatenate([np.zeros((1, 3)), scale * (mean + polygon @ axes)])


def cone_coordinates(x: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Weights (N, k, H, W) on the simplex of the inputs (N, 3, H, W) in the cone of ``vertices`` (k, 3) made by
    :func:`cone_vertices`: x = Σ_j w_j·v_j for every input inside the cone; one outside is taken to the cone's
    surface along its ray from the polygon's centre and from black.

    The black point takes 1 − Σx/S (S the bright points' band sum); the bright points share Σx/S by the pixel's
    chromaticity c: in the fan of triangles (g, c_j, c_{j+1}) round the corners' mean g, c = g + α(c_j − g) +
    β(c_{j+1} − g) with α, β ≥ 0 in exactly one of them; c_j gets α, c_{j+1} β, and every corner (1 − α − β)/m
    (g's share). These weights reproduce affine functions exactly, so mixing f(v_j) with them gives f(x).
    """
    k = vertices.shape[0]
    v = vertices.to(x.dtype)
    scale = v[1].sum()
    total = x.sum(dim=1, keepdim=True)                                          # (N, 1, H, W)
    t = (total / scale).clamp(0.0, 1.0)
    chroma = x / total.clamp_min(1e-12)                                         # (N, 3, H, W)
    corners = v[1:] / scale                                                     # (m, 3) chromaticities
    m = k - 1
    g = corners.mean(dim=0)
    e1, e2 = corners - g, torch.roll(corners, -1, dims=0) - g                   # sector j: (g, c_j, c_{j+1})
    # 2-D coordinates in the plane: project on an orthonormal basis of it
    u1 = e1[0] / e1[0].norm()
    u2 = e1[1] - (e1[1] @ u1) * u1
    u2 = u2 / u2.norm()
    basis = torch.stack([u1, u2])                                               # (2, 3)
    q = torch.einsum("ij,njhw->nihw", basis, chroma - g.view(1, 3, 1, 1))       # (N, 2, H, W)
    a2, b2 = e1 @ basis.T, e2 @ basis.T                                         # (m, 2) each
    det = a2[:, 0] * b2[:, 1] - a2[:, 1] * b2[:, 0]                             # (m,)
    alpha = (q[:, None, 0] * b2[None, :, 1, None, None] - q[:, None, 1] * b2[None, :, 0, None, None]) \
        / det.view(1, m, 1, 1)
    beta = (a2[None, :, 0, None, None] * q[:, None, 1] - a2[None, :, 1, None, None] * q[:, None, 0]) \
        / det.view(1, m, 1, 1)                                                  # (N, m, H, W)
    sector = torch.minimum(alpha, beta).argmax(dim=1, keepdim=True)             # the one with α, β ≥ 0
    alpha = alpha.gather(1, sector).clamp_min(0.0)
    beta = beta.gather(1, sector).clamp_min(0.0)
    reach = (alpha + beta).clamp_min(1.0)                                       # outside: onto the edge
    alpha, beta = alpha / reach, beta / reach
    w = ((1 - alpha - beta).clamp_min(0.0) / m).expand(-1, m, -1, -1).clone()
    w.scatter_add_(1, sector, alpha)
    w.scatter_add_(1, (sector + 1) % m, beta)
    return torch.cat([1 - t, t * w], dim=1)


def corner_triangles(k: int) -> list[tuple[int, int, int]]:
    """Every triangle (i, j, l), i < j < l, of the k − 1 bright corners (indices 0..k−2 into the bright points):
    the scores :func:`fiber_abundances` takes, in this order (C(k − 1, 3) of them: 4 for k = 5)."""
    return list(itertools.combinations(range(k - 1), 3))


def fiber_abundances(x: torch.Tensor, vertices: torch.Tensor, scores: torch.Tensor,
                     tolerance: float = 1e-6) -> torch.Tensor:
    """Abundances (N, k, H, W) on the simplex with Σ_j a_j·v_j = x for every input x (N, 3, H, W) inside the
    cone of ``vertices`` (k, 3) (:func:`cone_vertices`); ``scores`` (N, T, H, W) weigh the T triangles of
    :func:`corner_triangles`.

    The black point takes 1 − Σx/S, the bright points Σx/S·λ with λ = Σ_T π_T·λ_T: λ_T the barycentric
    coordinates of the pixel's chromaticity in triangle T, π = softmax of the scores over the triangles that
    contain it (a chromaticity outside the polygon is first taken to its edge, as :func:`cone_coordinates` does,
    so at least one does). Any such λ gives the chromaticity back, so V ᵀa = x whatever the scores: they only
    choose among the abundances that reproduce the input.
    """
    k = vertices.shape[0]
    v = vertices.to(x.dtype)
    corners = v[1:] / v[1].sum()                                                # (m, 3) chromaticities
    w = cone_coordinates(x, vertices)                                           # (N, k, H, W)
    t = 1 - w[:, :1]                                                            # Σx/S, clamped to [0, 1]
    bright = w[:, 1:] / w[:, 1:].sum(dim=1, keepdim=True).clamp_min(1e-12)      # fan coordinates (N, m, H, W)
    chroma = torch.einsum("nmhw,mc->nchw", bright, corners)                     # projected chromaticity
    tri = torch.tensor(corner_triangles(k), device=x.device)                    # (T, 3)
    inverse = torch.linalg.inv(corners.double()[tri].transpose(1, 2)).to(x.dtype)   # (T, 3, 3): columns corners
    lam = torch.einsum("tac,nchw->ntahw", inverse, chroma)                      # (N, T, 3, H, W)
    low = lam.amin(dim=2)                                                       # (N, T, H, W)
    inside = low >= low.amax(dim=1, keepdim=True).clamp_max(0.0) - tolerance
    if scores.shape != low.shape:
        raise UBFInputError(_WHERE, f"fiber scores must be (N, T, H, W) = {tuple(low.shape)}, got "
                                    f"{tuple(scores.shape)}")
    pi = torch.softmax(scores.to(x.dtype).masked_fill(~inside, float("-inf")), dim=1)
    incidence = torch.nn.functional.one_hot(tri, k - 1).to(x.dtype)             # (T, 3, m)
    lam_bright = torch.einsum("nthw,ntahw,tam->nmhw", pi, lam.clamp_min(0.0), incidence)
    lam_bright = lam_bright / lam_bright.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.cat([1 - t, t * lam_bright], dim=1)
