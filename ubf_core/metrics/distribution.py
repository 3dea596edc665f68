"""Metrics that judge a *set* of generated hyperspectral images against a set of real ones.

Unlike :mod:`ubf_core.metrics.reconstruction` (a reconstruction against its own reference), these compare two
unpaired samples. Inputs are numpy arrays; results are Python floats (or tuples/dicts of floats).

* Image metrics (HUD, Shen et al. 2025, "Hyperspectral Image Generation with Unmixing Guided Diffusion Model"):
  images are ``(n, C, H, W)`` float reflectance; :func:`point_fidelity` also takes pixel matrices ``(N, C)``.

  - ``point_fidelity``  F_p = mean over generated pixels g of max over real pixels r of cos(g, r)
  - ``block_diversity`` D_b = mean over generated blocks G of max over real blocks R of cos(vec G, vec R), where a
    block is a b×b spatial tile and ``vec`` flattens its (C, b, b) values into one vector of length C·b².
    D_b rewards generated images whose *spatial arrangement* of spectra matches some real arrangement; HUD reports
    D_b and D_b / F_p (block similarity relative to pixel similarity). These are the definitions implemented here
    (best cosine match per generated pixel / block, averaged); the paper's full metric section could not be
    consulted when this was written, and the block size (4 by default) is a parameter.

* Feature metrics on embeddings ``(n, d)`` (e.g. from :mod:`ubf_core.metrics.features`): :func:`frechet_distance`,
  :func:`kernel_inception_distance`, :func:`precision_recall`.
* :func:`sum_to_one_residual` checks abundances ``(n, k, H, W)`` against the simplex.
* :func:`abundance_histogram_distance` compares two sets of abundance maps ``(n, k, H, W)`` by their per-endmember
  histograms (:func:`abundance_histograms`).
* :func:`brightness_log_distance` compares two sets of brightness maps s ``(n, H, W)`` (the per-pixel scale of
  extended linear mixing) by the 1-D Wasserstein distance of their ln s.

Nearest-neighbour searches are done in chunks on both sides (``chunk`` rows of each set at a time), so the full
N×M similarity or distance matrix is never held: memory is the two input matrices plus one ``chunk × chunk`` block
(4096² float32 = 64 MiB by default). Each metric states the fewest samples it accepts and raises
:class:`~ubf_core.errors.UBFInputError` naming the metric and that minimum when given fewer.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ubf_core.errors import UBFInputError

__all__ = ["point_fidelity", "block_diversity", "frechet_distance", "kernel_inception_distance",
           "precision_recall", "sum_to_one_residual", "abundance_histograms", "abundance_histogram_distance",
           "brightness_log_distance"]

_EPS = 1e-12


# ----------------------------------------------------------------------------------------------------------------
# input checks
def _finite(x: np.ndarray, metric: str, name: str) -> None:
    if not np.isfinite(x).all():
        raise UBFInputError(metric, f"{name} holds NaN or infinite values")


def _check_chunk(chunk: int, metric: str) -> int:
    if int(chunk) < 1:
        raise UBFInputError(metric, f"chunk must be at least 1, got {chunk}")
    return int(chunk)


def _pixel_matrix(x, metric: str, name: str) -> np.ndarray:
    """Images (n, C, H, W) or pixels (N, C) → float32 pixel matrix (N, C), one spectrum per row."""
    a = np.asarray(x)
    if a.ndim == 4:
        a = np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])
    elif a.ndim != 2:
        raise UBFInputError(metric, f"{name} must be images (n, C, H, W) or pixels (N, C), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise UBFInputError(metric, f"{name} needs at least 1 pixel with at least 1 band, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    _finite(a, metric, name)
    return a


def _block_matrix(x, block: int, metric: str, name: str) -> np.ndarray:
    """Images (n, C, H, W) → float32 block matrix (n·⌊H/b⌋·⌊W/b⌋, C·b·b); trailing rows/columns that do not fill
    a whole block are dropped."""
    a = np.asarray(x)
    if a.ndim != 4:
        raise UBFInputError(metric, f"{name} must be images (n, C, H, W), got shape {a.shape}")
    n, c, h, w = a.shape
    if n < 1 or c < 1 or h < block or w < block:
        raise UBFInputError(metric, f"{name} needs at least 1 image of at least {block}×{block} pixels "
                                    f"(one {block}×{block} block), got shape {a.shape}")
    by, bx = h // block, w // block
    a = a[:, :, : by * block, : bx * block].reshape(n, c, by, block, bx, block)
    a = a.transpose(0, 2, 4, 1, 3, 5).reshape(n * by * bx, c * block * block)
    a = np.ascontiguousarray(a, dtype=np.float32)
    _finite(a, metric, name)
    return a


def _feature_pair(feat_a, feat_b, metric: str, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 feature matrices (n_a, d), (n_b, d) with the same d and at least ``min_n`` rows each."""
    a = np.asarray(feat_a, dtype=np.float64)
    b = np.asarray(feat_b, dtype=np.float64)
    for name, x in (("first feature set", a), ("second feature set", b)):
        if x.ndim != 2 or x.shape[1] < 1:
            raise UBFInputError(metric, f"{name} must be features (n, d), got shape {x.shape}")
        if x.shape[0] < min_n:
            raise UBFInputError(metric, f"needs at least {min_n} samples per set, {name} has {x.shape[0]}")
        _finite(x, metric, name)
    if a.shape[1] != b.shape[1]:
        raise UBFInputError(metric, f"feature sets have different dimensions d = {a.shape[1]} and {b.shape[1]}")
    return a, b


# ----------------------------------------------------------------------------------------------------------------
# HUD image metrics
def _unit_rows(x: np.ndarray, device: str) -> torch.Tensor:
    """Rows scaled to unit length (a zero row stays zero, so its cosine with anything is 0)."""
    t = torch.from_numpy(x).to(device)
    return t / t.norm(dim=1, keepdim=True).clamp_min(_EPS)


def _mean_best_cosine(gen: np.ndarray, real: np.ndarray, chunk: int, device: str) -> float:
    """mean_i max_j cos(gen_i, real_j), computed ``chunk × chunk`` at a time; cosines clipped to [-1, 1]."""
    g_all, r_all = _unit_rows(gen, device), _unit_rows(real, device)
    total = 0.0
    for i in range(0, len(g_all), chunk):
        g = g_all[i:i + chunk]
        best = torch.full((len(g),), -1.0, dtype=g.dtype, device=g.device)
        for j in range(0, len(r_all), chunk):
            best = torch.maximum(best, (g @ r_all[j:j + chunk].T).amax(dim=1))
        total += float(best.clamp(-1.0, 1.0).double().sum())
    return total / len(g_all)


def point_fidelity(generated, real, chunk: int = 4096, device: str = "cpu") -> float:
    """Point fidelity F_p (HUD): how closely each generated spectrum matches some real spectrum.

    ``F_p = (1/N) Σ_i max_j <g_i, r_j> / (|g_i| |r_j|)`` over the N generated pixel spectra g_i and the M real
    pixel spectra r_j. Unitless, in [-1, 1] (in [0, 1] for non-negative reflectance); 1 when every generated
    spectrum is a (scaled) copy of a real one, e.g. generated == real. A zero spectrum has cosine 0 with everything.

    generated, real: images (n, C, H, W) or pixel matrices (N, C), any float reflectance, same C; at least 1 pixel
    each. Computed in float32 on ``device``, ``chunk`` pixels of each side at a time (never the N×M matrix).
    The same nearest-real search expressed as a mean angle is
    :func:`ubf_core.generators.quality.nearest_real_angle_deg` (mean of arccos, not arccos of the mean).
    """
    metric = "point fidelity"
    g = _pixel_matrix(generated, metric, "generated")
    r = _pixel_matrix(real, metric, "real")
    if g.shape[1] != r.shape[1]:
        raise UBFInputError(metric, f"generated has {g.shape[1]} bands but real has {r.shape[1]}")
    return _mean_best_cosine(g, r, _check_chunk(chunk, metric), device)


def block_diversity(generated, real, block: int = 4, chunk: int = 4096, device: str = "cpu") -> float:
    """Block diversity D_b (HUD): how closely each generated spatial block matches some real block.

    Each image (C, H, W) is cut into non-overlapping ``block × block`` tiles (rows/columns beyond the last whole
    tile are dropped); a tile's values (C, b, b) are flattened into one vector of length C·b². Then
    ``D_b = (1/N_b) Σ_i max_j cos(G_i, R_j)`` over the N_b generated tiles G_i and all real tiles R_j. Unitless, in
    [-1, 1]; 1 for generated == real. Because the vector keeps each spectrum's position in the tile, D_b falls
    when pixels are rearranged inside tiles even though F_p (pixel-wise) does not; D_b / F_p is HUD's ratio.

    generated, real: images (n, C, H, W) with the same C and H, W ≥ ``block`` (at least one tile each). Chunked
    like :func:`point_fidelity`.
    """
    metric = "block diversity"
    if int(block) < 1:
        raise UBFInputError(metric, f"block must be at least 1 pixel, got {block}")
    block = int(block)
    g = _block_matrix(generated, block, metric, "generated")
    r = _block_matrix(real, block, metric, "real")
    if g.shape[1] != r.shape[1]:
        raise UBFInputError(metric, f"generated has {g.shape[1] // block**2} bands but real has "
                                    f"{r.shape[1] // block**2}")
    return _mean_best_cosine(g, r, _check_chunk(chunk, metric), device)


# ----------------------------------------------------------------------------------------------------------------
# feature-space metrics
def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula on any features).

    ``FD = |mu_a − mu_b|² + Tr(S_a + S_b − 2 (S_a S_b)^{1/2})`` with sample means mu and sample covariances S
    (ddof = 1); the matrix square root is ``scipy.linalg.sqrtm`` with imaginary parts (rounding) dropped; if it is
    not finite (singular product), 1e-6·I is added to both covariances and it is retried. Units: squared feature
    units; ≈ 0 (up to rounding, may be a tiny negative) for a set with itself. For 1-D features it equals
    ``(mu_a − mu_b)² + (sigma_a − sigma_b)²``.

    feat_a, feat_b: (n_a, d), (n_b, d). Minimum: 2 samples per set (a covariance needs 2); with fewer than d + 1
    samples the covariance is singular and the value biased, which is warned about (RuntimeWarning).
    """
    from scipy.linalg import sqrtm

    metric = "Fréchet distance"
    a, b = _feature_pair(feat_a, feat_b, metric, min_n=2)
    d = a.shape[1]
    if min(len(a), len(b)) < d + 1:
        warnings.warn(f"{metric}: {min(len(a), len(b))} samples for d = {d} features (fewer than d + 1 = {d + 1}):"
                      " the covariance is singular and the distance biased", RuntimeWarning, stacklevel=2)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    covmean = sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():
        offset = 1e-6 * np.eye(d)
        covmean = sqrtm((s_a + offset) @ (s_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³ for all row pairs."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(feat_a, feat_b, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Kernel (Inception) distance, KID (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel.

    With ``k(x, y) = (xᵀy / d + 1)³`` and subsets X, Y of m samples each (drawn without replacement),
    ``MMD² = Σ_{i≠j} k(x_i,x_j) / (m(m−1)) + Σ_{i≠j} k(y_i,y_j) / (m(m−1)) − 2 Σ_{i,j} k(x_i,y_j) / m²``.
    Returns ``(mean, std)`` of MMD² over ``subsets`` random subset pairs, drawn with
    ``numpy.random.default_rng(seed)`` (same seed, same value). Unbiased, so ≈ 0 and possibly slightly negative
    for two samples of one distribution. Units: kernel units (unitless for unit-scale features).

    feat_a, feat_b: (n_a, d), (n_b, d). m = min(subset_size, n_a, n_b). Minimum: 2 samples per set.
    """
    metric = "kernel inception distance"
    a, b = _feature_pair(feat_a, feat_b, metric, min_n=2)
    if int(subsets) < 1 or int(subset_size) < 2:
        raise UBFInputError(metric, f"needs subsets ≥ 1 and subset_size ≥ 2, got {subsets} and {subset_size}")
    m = min(int(subset_size), len(a), len(b))
    rng = np.random.default_rng(seed)
    values = np.empty(int(subsets))
    for s in range(int(subsets)):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        values[s] = ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
                     - 2.0 * k_xy.mean())
    return float(values.mean()), float(values.std())


def _sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between all rows of x and y, clipped at 0."""
    return ((x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2.0 * x @ y.T).clamp_min(0.0)


def _knn_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Squared distance from each row to its k-th nearest other row (the point itself counts as the 0-th)."""
    radii = torch.empty(len(x), dtype=x.dtype)
    for i in range(0, len(x), chunk):
        q = x[i:i + chunk]
        best = torch.full((len(q), k + 1), float("inf"), dtype=x.dtype)
        for j in range(0, len(x), chunk):
            cand = torch.cat([best, _sq_dists(q, x[j:j + chunk])], dim=1)
            best = torch.topk(cand, k + 1, dim=1, largest=False).values
        radii[i:i + chunk] = best[:, k]
    return radii


def _coverage(queries: torch.Tensor, refs: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Fraction of queries within the k-NN ball of at least one reference point."""
    inside = 0
    for i in range(0, len(queries), chunk):
        q = queries[i:i + chunk]
        hit = torch.zeros(len(q), dtype=torch.bool)
        for j in range(0, len(refs), chunk):
            hit |= (_sq_dists(q, refs[j:j + chunk]) <= radii[j:j + chunk]).any(dim=1)
        inside += int(hit.sum())
    return inside / len(queries)


def precision_recall(real_feat, gen_feat, k: int = 3, chunk: int = 2048) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour manifolds.

    The manifold of a set Φ is the union of balls B(φ, r_k(φ)) around its points, r_k(φ) being the distance from φ
    to its k-th nearest neighbour in Φ (φ itself excluded). ``precision = (1/|G|) Σ_g [g inside manifold(R)]``
    (how many generated samples look real) and ``recall = (1/|R|) Σ_r [r inside manifold(G)]`` (how much of the
    real distribution is covered). Returns ``(precision, recall)``, each in [0, 1]; (1, 1) for identical sets.

    real_feat, gen_feat: (n_r, d), (n_g, d) features; Euclidean distances in float64, ``chunk`` rows of each side
    at a time. Minimum: k + 1 samples per set (each point needs k neighbours).
    """
    metric = "precision/recall"
    if int(k) < 1:
        raise UBFInputError(metric, f"k must be at least 1, got {k}")
    k = int(k)
    r, g = _feature_pair(real_feat, gen_feat, metric, min_n=k + 1)
    chunk = _check_chunk(chunk, metric)
    r_t, g_t = torch.from_numpy(r), torch.from_numpy(g)
    precision = _coverage(g_t, r_t, _knn_radii(r_t, k, chunk), chunk)
    recall = _coverage(r_t, g_t, _knn_radii(g_t, k, chunk), chunk)
    return precision, recall


# ----------------------------------------------------------------------------------------------------------------
# physical validity
def sum_to_one_residual(abundances) -> dict[str, float]:
    """How far abundance maps are from the simplex.

    For each pixel p, ``res_p = |Σ_k a_{k,p} − 1|``. Returns ``{"max_abs_residual": max_p res_p,
    "mean_abs_residual": mean_p res_p, "min_value": min over all a}`` (a negative ``min_value`` means negative
    abundances). All 0 / 0 / ≥ 0 for valid abundances. Unitless (abundance fractions).

    abundances: (n, k, H, W) or (k, H, W), endmember axis at -3; at least 1 pixel.
    """
    metric = "sum-to-one residual"
    a = np.asarray(abundances, dtype=np.float64)
    if a.ndim not in (3, 4) or a.size == 0:
        raise UBFInputError(metric, f"expected abundances (n, k, H, W) or (k, H, W) with at least 1 pixel, "
                                    f"got shape {a.shape}")
    _finite(a, metric, "abundances")
    res = np.abs(a.sum(axis=-3) - 1.0)
    return {"max_abs_residual": float(res.max()), "mean_abs_residual": float(res.mean()),
            "min_value": float(a.min())}


# ----------------------------------------------------------------------------------------------------------------
# abundance distributions
_HIST_WHERE = "metrics"


def abundance_histograms(abundances, bins: int = 20) -> np.ndarray:
    """Per-endmember histograms of abundance values: (N, k, H, W) or (k, H, W) → (k, bins), each row summing to 1.

    The bins split [0, 1] evenly (abundances live on the simplex, so every value falls in a bin).
    """
    a = np.asarray(abundances, dtype=np.float64)
    if a.ndim not in (3, 4) or a.size == 0:
        raise UBFInputError(_HIST_WHERE, f"expected abundances (N, k, H, W) or (k, H, W), got shape {a.shape}")
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
        raise UBFInputError(_HIST_WHERE, f"abundances with k = {pa.shape[0]} and k = {pb.shape[0]} cannot be "
                                         f"compared")
    return float(np.mean(0.5 * np.abs(pa - pb).sum(axis=1)))


_BRIGHTNESS_WHERE = "brightness_log_distance"
_LOG_FLOOR = 1e-6      # s below it counts as it in the logarithm (s = 0 would be −∞)


def brightness_log_distance(a, b, max_pixels: int = 65536, seed: int = 0, quantiles: int = 1001) -> float:
    """1-D Wasserstein distance W1 between the distributions of ln s over the pixels of two sets of brightness maps
    ``a`` and ``b`` (n, H, W), s ≥ 0 dimensionless (floored at 1e-6 before the logarithm): the mean absolute gap
    between their ``quantiles`` quantiles, each set first subsampled to at most ``max_pixels`` pixels (seeded).

    In units of ln s: 0 for identical distributions, ln 2 ≈ 0.69 when every pixel of one set is twice as bright.
    """
    out = []
    rng = np.random.default_rng(seed)
    for name, x in (("a", a), ("b", b)):
        v = np.asarray(x, dtype=np.float64).ravel()
        if v.size == 0:
            raise UBFInputError(_BRIGHTNESS_WHERE, f"{name} holds no pixels")
        _finite(v, _BRIGHTNESS_WHERE, name)
        if v.min() < 0:
            raise UBFInputError(_BRIGHTNESS_WHERE, f"{name} holds negative brightness (min {v.min():.4g})")
        if v.size > max_pixels:
            v = v[rng.choice(v.size, max_pixels, replace=False)]
        out.append(np.quantile(np.log(np.maximum(v, _LOG_FLOOR)), np.linspace(0.0, 1.0, quantiles)))
    return float(np.mean(np.abs(out[0] - out[1])))
