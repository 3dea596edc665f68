"""Classical linear unmixing baseline: VCA endmember extraction + fully constrained least squares (FCLS).

Linear mixing model: each pixel spectrum y (C bands) ≈ E·a with endmembers E (C × k) and abundances a (k) on the
probability simplex (a ≥ 0, Σ a = 1). This module is the non-learned reference the networks are compared against.

* :func:`vca` — Vertex Component Analysis (Nascimento & Bioucas-Dias, IEEE TGRS 2005): picks k pixels that are
  vertices of the data simplex; the endmembers are real pixels.
* :func:`vca_normalized` — VCA on the brightness-normalised spectra of the bright pixels with a distinctness rule,
  each endmember the mean of the brightest pixels of its shape: it cannot pick dark or duplicate pixels (scenes
  with a black background).
* :func:`fcls` — abundances for every pixel, solved vectorised over pixels by accelerated projected gradient (FISTA)
  with a Euclidean projection onto the simplex (:func:`project_to_simplex`).
* :func:`vca_fcls` — both, on a cube (C, H, W) or a batch of patches (N, C, H, W).

Arrays: pixels are columns, ``Y`` is (C, P); endmembers ``E`` are (C, k); abundances ``A`` are (k, P), or
(k, H, W) / (N, k, H, W) when they come from a cube / patches. Reflectance units are kept as given (no normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubf_core.errors import UBFInputError, describe_error

__all__ = ["vca", "vca_normalized", "NormalizedVCA", "fcls", "fcls_maps", "project_to_simplex", "vca_fcls"]


def _as_matrix(name: str, where: str, M, ndim: int = 2) -> np.ndarray:
    arr = np.asarray(M, dtype=np.float64)
    if arr.ndim != ndim:
        raise UBFInputError(where, f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise UBFInputError(where, f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise UBFInputError(where, f"{name} contains NaN or infinite values")
    return arr


# ----------------------------------------------------------------------------------------------------------------
# Simplex projection
# ----------------------------------------------------------------------------------------------------------------
def project_to_simplex(V, axis: int = 0) -> np.ndarray:
    """Euclidean projection of every vector along ``axis`` onto the probability simplex {a ≥ 0, Σ a = 1}.

    Sort-based algorithm (Held et al. 1974; Duchi et al. 2008), vectorised over all other axes: for a vector v sorted
    decreasingly as u, ρ = max{j : u_j − (Σ_{i≤j} u_i − 1)/j > 0}, θ = (Σ_{i≤ρ} u_i − 1)/ρ and the projection is
    max(v − θ, 0). Returns float64 (float32 input stays float32) with the same shape as ``V``.
    """
    arr = np.asarray(V)
    out_dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    v = np.moveaxis(np.asarray(arr, dtype=np.float64), axis, 0)
    n = v.shape[0]
    if n == 0:
        raise UBFInputError("project_to_simplex", "cannot project vectors of length 0")
    u = -np.sort(-v, axis=0)  # decreasing along axis 0
    css = np.cumsum(u, axis=0) - 1.0
    j = np.arange(1, n + 1, dtype=np.float64).reshape((n,) + (1,) * (v.ndim - 1))
    cond = u - css / j > 0
    # cond is True for a prefix 0..rho-1; rho = number of True entries (at least 1 always holds: u_1 - (u_1-1) = 1 > 0)
    rho = np.maximum(np.sum(cond, axis=0), 1)
    theta = np.take_along_axis(css, (rho - 1)[None, ...], axis=0) / rho[None, ...]
    w = np.maximum(v - theta, 0.0)
    return np.moveaxis(w, 0, axis).astype(out_dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# VCA
# ----------------------------------------------------------------------------------------------------------------
def _top_eigvecs(M: np.ndarray, d: int) -> np.ndarray:
    """The d leading eigenvectors (columns) of the symmetric matrix M, largest eigenvalue first."""
    w, U = np.linalg.eigh(M)
    order = np.argsort(w)[::-1][:d]
    return U[:, order]


def vca(Y, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vertex Component Analysis: k endmembers chosen among the pixels of ``Y``.

    Parameters
    ----------
    Y : (C, P) array, pixels as columns (reflectance).
    k : number of endmembers, 1 ≤ k ≤ min(C, P).
    seed : seed of the ``numpy.random.default_rng`` Generator that draws the random search directions; the result
        is deterministic for a given seed.

    Returns
    -------
    E : (C, k) float64, the selected pixels ``Y[:, indices]`` (real spectra, original units).
    indices : (k,) int64, their column indices in ``Y``.

    Method (Nascimento & Bioucas-Dias 2005):

    1. SNR estimate: with the mean-removed data projected onto its k leading principal directions,
       P_y = E||y||², P_x = E||x_proj||² + ||ȳ||², SNR = 10·log10((P_x − k/C·P_y) / (P_y − P_x)).
    2. If SNR > 15 + 10·log10(k) dB: project onto the k-dimensional SVD subspace of the raw data and apply the
       projective projection x ↦ x / ⟨x, u⟩ (u = mean of the projected data), which puts the data on a hyperplane.
       Otherwise: project onto the (k−1)-dimensional PCA subspace of the mean-removed data and append a constant
       coordinate c = max‖x‖.
    3. Vertex search: start from a matrix A (k × k) with a single 1 in the last row; for i = 1..k draw a Gaussian
       vector w, take f = (I − A A⁺) w (orthogonal to the vertices found so far), and pick the pixel with the largest
       |fᵀ y|; it becomes column i of A.

    For k = 1 the single endmember is the pixel closest to the mean spectrum (the vertex search is undefined there).
    """
    where = "vca"
    Y = _as_matrix("Y", where, Y)
    C, P = Y.shape
    k = int(k)
    if k < 1:
        raise UBFInputError(where, f"number of endmembers k must be at least 1, got {k}")
    if k > P:
        raise UBFInputError(where, f"number of endmembers k={k} exceeds the number of pixels {P}")
    if k > C:
        raise UBFInputError(where, f"number of endmembers k={k} exceeds the number of bands {C}")
    rng = np.random.default_rng(seed)

    if k == 1:
        idx = int(np.argmin(np.sum((Y - Y.mean(axis=1, keepdims=True)) ** 2, axis=0)))
        return Y[:, [idx]].copy(), np.array([idx], dtype=np.int64)
    indices = _vertex_search(_vca_projection(Y, k), k, rng)
    return Y[:, indices].copy(), indices


def _vca_projection(Y: np.ndarray, k: int) -> np.ndarray:
    """VCA steps 1-2 (see :func:`vca`): the data ``Y`` (C, P) projected to (k, P) for the vertex search."""
    C, P = Y.shape
    # --- SNR estimate ------------------------------------------------------------------------------------------
    y_mean = Y.mean(axis=1, keepdims=True)
    Y0 = Y - y_mean
    U0 = _top_eigvecs(Y0 @ Y0.T / P, k)  # (C, k)
    x_p = U0.T @ Y0  # (k, P)
    p_y = float(np.sum(Y**2) / P)
    p_x = float(np.sum(x_p**2) / P + np.sum(y_mean**2))
    signal = p_x - k / C * p_y
    noise = p_y - p_x
    if noise <= 1e-12 * max(p_y, 1e-300):
        snr = np.inf  # (numerically) noise-free data: the k-dim subspace holds all the energy
    elif signal <= 0:
        snr = -np.inf
    else:
        snr = 10.0 * np.log10(signal / noise)
    snr_th = 15.0 + 10.0 * np.log10(k)

    # --- projection ----------------------------------------------------------------------------------------------
    if snr < snr_th:
        d = k - 1
        x = x_p[:d, :]  # (k-1, P), PCA coordinates of the mean-removed data
        c = float(np.sqrt(np.max(np.sum(x**2, axis=0))))
        y = np.vstack([x, np.full((1, P), c)])  # (k, P)
    else:
        Ud = _top_eigvecs(Y @ Y.T / P, k)  # (C, k), SVD subspace of the raw data
        x = Ud.T @ Y  # (k, P)
        u = x.mean(axis=1, keepdims=True)  # (k, 1)
        denom = (u.T @ x).ravel()  # (P,)
        # projective projection; pixels (almost) orthogonal to u, e.g. dark noisy pixels, must not explode
        floor = 1e-3 * float(np.mean(np.abs(denom))) + 1e-300
        denom = np.where(np.abs(denom) < floor, np.where(denom < 0, -floor, floor), denom)
        y = x / denom[None, :]
    return y


def _vertex_search(y: np.ndarray, k: int, rng: np.random.Generator, blocked=None) -> np.ndarray:
    """VCA step 3 (see :func:`vca`) on the projected data ``y`` (k, P): the k chosen column indices (k,) int64.

    ``blocked(indices_so_far) -> bool (P,)``, optional: pixels that may not be chosen next (the distinctness rule of
    :func:`vca_normalized`); a step where every pixel is blocked returns the indices found so far (fewer than k).
    """
    A = np.zeros((k, k))
    A[k - 1, 0] = 1.0
    indices = np.zeros(k, dtype=np.int64)
    for i in range(k):
        w = rng.standard_normal(k)
        f = w - A @ (np.linalg.pinv(A) @ w)
        nf = np.linalg.norm(f)
        f = f / nf if nf > 0 else w / np.linalg.norm(w)
        v = np.abs(f @ y)
        if blocked is not None and i > 0:
            mask = blocked(indices[:i])
            if mask.all():
                return indices[:i]
            v = np.where(mask, -np.inf, v)
        idx = int(np.argmax(v))
        indices[i] = idx
        A[:, i] = y[:, idx]
    return indices


@dataclass(frozen=True)
class NormalizedVCA:
    """params.yaml ``unmixing.init_normalized`` (:func:`vca_normalized`'s rule).

    ``min_brightness``: a pixel is a candidate when its band sum is at least this share of the bright reference
    (the 99th percentile of the band sums); ``min_angle_deg``: chosen endmembers are at least this spectral angle
    apart; ``bright_fraction``: each endmember is the mean of this brightest share of the candidates within
    ``min_angle_deg / 2`` of its direction.
    """

    min_brightness: float
    min_angle_deg: float
    bright_fraction: float

    def __post_init__(self):
        where = "params.yaml"
        for key, lo, hi in (("min_brightness", 0.0, 1.0), ("min_angle_deg", 0.0, 90.0), ("bright_fraction", 0.0, 1.0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
                    or (key != "min_brightness" and value <= 0):
                raise UBFInputError(where, f"unmixing.init_normalized.{key} = {value!r}: must be in "
                                           f"{'(' if key != 'min_brightness' else '['}{lo:g}, {hi:g}]")

    @classmethod
    def from_params(cls, d: dict) -> "NormalizedVCA":
        try:
            return cls(min_brightness=float(d["min_brightness"]), min_angle_deg=float(d["min_angle_deg"]),
                       bright_fraction=float(d["bright_fraction"]))
        except (KeyError, TypeError) as err:
            raise UBFInputError("params.yaml", f"unmixing.init_normalized needs min_brightness, min_angle_deg and "
                                               f"bright_fraction ({describe_error(err)})") from None


def _unit_columns(X: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(X, axis=0, keepdims=True)
    return X / np.where(n > 0, n, 1.0)


def vca_normalized(Y, k: int, rule: NormalizedVCA, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """VCA on the spectral shapes of the bright pixels, with distinct endmembers: an initialisation that cannot
    collapse onto dark or duplicate pixels.

    Plain VCA's projective step divides each pixel by its projection on the mean; on a scene with a black
    background the (noisy) near-black pixels get extreme coordinates and are picked as vertices, several times
    (CAVE: four of five endmembers near-black). Here:

    1. brightness b = band sum of each pixel; candidates are the pixels with b ≥ ``rule.min_brightness`` × the
       99th percentile of b (a dark pixel has no reliable spectral shape);
    2. the candidates are brightness-normalised (z = y / b: each pixel's shape; a shaded pixel of a material and
       its sunlit one coincide) and VCA (:func:`vca`, same seed use) searches the vertices of the shapes, where a
       candidate within ``rule.min_angle_deg`` of a shape already chosen may not be chosen (distinctness);
    3. each endmember is the mean spectrum (original units, never normalised) of the brightest
       ``rule.bright_fraction`` of the candidates within ``rule.min_angle_deg / 2`` of its chosen shape: the
       material at full brightness, averaged over pixels rather than one noisy pixel.

    Parameters
    ----------
    Y : (C, P) array, pixels as columns (reflectance ≥ 0)
    k : number of endmembers
    rule : NormalizedVCA
    seed : seed of the vertex search's random directions

    Returns
    -------
    E : (C, k) float64 endmembers (reflectance, original units)
    indices : (k,) int64, the column of ``Y`` whose shape each endmember was grown from

    Raises :class:`UBFInputError` when fewer than k candidates are bright enough, or fewer than k shapes are at
    least ``min_angle_deg`` apart (lower ``unmixing.k`` or ``min_angle_deg``).
    """
    where = "vca_normalized"
    Y = _as_matrix("Y", where, Y)
    C, P = Y.shape
    k = int(k)
    if k < 1 or k > C:
        raise UBFInputError(where, f"number of endmembers k={k} must be in 1..{C} (the number of bands)")
    b = Y.sum(axis=0)                                              # (P,) brightness
    ref = float(np.quantile(b, 0.99))
    if not ref > 0:
        raise UBFInputError(where, "the pixels have no positive brightness (band sum): nothing to unmix")
    cand = np.flatnonzero(b >= max(rule.min_brightness * ref, 1e-12 * ref))
    if cand.size < k:
        raise UBFInputError(where, f"only {cand.size} pixels are at least {rule.min_brightness:g} x the bright "
                                   f"reference; {k} endmembers need more (lower unmixing.init_normalized."
                                   f"min_brightness)")
    Z = Y[:, cand] / b[cand][None, :]                              # (C, Pc) shapes, unit band sum
    U = _unit_columns(Z)
    cos_min = np.cos(np.radians(rule.min_angle_deg))

    def blocked(chosen: np.ndarray) -> np.ndarray:
        return np.max(U[:, chosen].T @ U, axis=0) >= cos_min      # within min_angle of a chosen shape

    rng = np.random.default_rng(seed)
    if k == 1:
        picked = np.array([int(np.argmin(np.sum((Z - Z.mean(axis=1, keepdims=True)) ** 2, axis=0)))])
    else:
        picked = _vertex_search(_vca_projection(Z, k), k, rng, blocked)
    if picked.size < k:
        raise UBFInputError(where, f"only {picked.size} spectral shapes of the bright pixels are at least "
                                   f"{rule.min_angle_deg:g} degrees apart; {k} endmembers need more (lower "
                                   f"unmixing.k or unmixing.init_normalized.min_angle_deg)")
    cos_cone = np.cos(np.radians(rule.min_angle_deg / 2.0))
    E = np.empty((C, k))
    for i, j in enumerate(picked):
        members = np.flatnonzero(U[:, j] @ U >= cos_cone)          # includes j itself
        n_top = max(1, int(np.ceil(rule.bright_fraction * members.size)))
        top = members[np.argsort(-b[cand][members], kind="stable")[:n_top]]
        E[:, i] = Y[:, cand[top]].mean(axis=1)
    return E, cand[picked].astype(np.int64)


# ----------------------------------------------------------------------------------------------------------------
# FCLS
# ----------------------------------------------------------------------------------------------------------------
def fcls(Y, E, max_iter: int = 2000, tol: float = 1e-7) -> np.ndarray:
    """Fully constrained least squares abundances for every pixel.

    For each pixel y (column of ``Y``, (C, P)) solves  min_a ½‖y − E a‖²  s.t.  a ≥ 0, Σ a = 1,  with ``E`` (C, k).

    Solver: accelerated projected gradient (FISTA, Beck & Teboulle 2009) vectorised over all pixels, step 1/L with
    L = largest eigenvalue of EᵀE, projection onto the simplex after every step (:func:`project_to_simplex`) and an
    adaptive restart of the momentum when the objective direction turns (O'Donoghue & Candès 2015). It starts from
    the sum-to-one least-squares solution projected onto the simplex; a pixel stops when the largest change of its
    abundances between two iterations is below ``tol`` (it is then left out of further iterations), and all stop
    after ``max_iter`` iterations. Finally each pixel is polished on the support FISTA found: the equality-constrained
    least squares on that support is solved exactly and kept where it satisfies the KKT conditions of the full
    problem (so it is the exact optimum); elsewhere the FISTA iterate is kept.

    Returns A (k, P) float64, exactly on the simplex (≥ 0, columns sum to 1 within 1e-6).
    """
    where = "fcls"
    Y = _as_matrix("Y", where, Y)
    E = _as_matrix("E", where, E)
    C, P = Y.shape
    if E.shape[0] != C:
        raise UBFInputError(where, f"endmembers have {E.shape[0]} bands but the pixels have {C}")
    k = E.shape[1]
    if max_iter < 0:
        raise UBFInputError(where, f"max_iter must be non-negative, got {max_iter}")
    if k == 1:
        return np.ones((1, P))

    G = E.T @ E  # (k, k)
    B = E.T @ Y  # (k, P)
    L = float(np.linalg.eigvalsh(G)[-1])
    if not L > 0:
        raise UBFInputError(where, "endmembers are all zero")
    step = 1.0 / L

    # start: least squares with the sum-to-one constraint (KKT system), projected onto the simplex
    ones = np.ones((k, 1))
    kkt = np.block([[G, ones], [ones.T, np.zeros((1, 1))]])
    rhs = np.vstack([B, np.ones((1, P))])
    try:
        a = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]
    except np.linalg.LinAlgError:
        a = np.full((k, P), 1.0 / k)
    a = project_to_simplex(a, axis=0)

    # FISTA on the pixels that have not converged yet; a pixel whose largest abundance change drops below tol is
    # frozen (the problems are independent per pixel, so this only saves work)
    out = a
    act = np.arange(P)  # indices of the pixels still iterating
    a = out.copy()
    z = a.copy()
    Bw = B
    t = np.ones(P)  # FISTA momentum parameter, one per pixel so that restarts are per pixel
    for _ in range(int(max_iter)):
        grad = G @ z - Bw
        a_new = project_to_simplex(z - step * grad, axis=0)
        diff = a_new - a
        change = np.max(np.abs(diff), axis=0)
        # adaptive restart: where the projected-gradient step goes against the momentum, restart the momentum
        restart = np.sum((z - a_new) * diff, axis=0) > 0
        t = np.where(restart, 1.0, t)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        z = a_new + ((t - 1.0) / t_new) * diff
        a, t = a_new, t_new
        done = change < tol
        if np.any(done):
            out[:, act[done]] = a[:, done]
            keep = ~done
            act, a, z, t, Bw = act[keep], a[:, keep], z[:, keep], t[keep], Bw[:, keep]
            if act.size == 0:
                break
    if act.size:
        out[:, act] = a
    a = _polish_on_support(G, B, out)
    # final clean-up so the output is exactly on the simplex
    a = np.maximum(a, 0.0)
    a /= np.sum(a, axis=0, keepdims=True)
    return a


def _polish_on_support(G: np.ndarray, B: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Exact FCLS solutions on the supports of ``A`` (k, P) where the KKT conditions certify them; else ``A``.

    For a support S the stationarity conditions are G_SS a_S + ν·1 = b_S, 1ᵀ a_S = 1; the candidate is optimal for the
    full problem when a_S ≥ 0 and the multipliers μ_j = (G a − b)_j + ν are ≥ 0 for every j outside S.
    """
    k, P = A.shape
    support = A > 1e-12
    codes = support.astype(np.int64).T @ (np.int64(1) << np.arange(k, dtype=np.int64))
    out = A.copy()
    scale = float(np.max(np.abs(G))) + 1e-300
    for code in np.unique(codes):
        S = ((int(code) >> np.arange(k)) & 1).astype(bool)
        if not S.any():
            continue
        cols = np.nonzero(codes == code)[0]
        m = int(S.sum())
        kkt = np.zeros((m + 1, m + 1))
        kkt[:m, :m] = G[np.ix_(S, S)]
        kkt[:m, m] = 1.0
        kkt[m, :m] = 1.0
        rhs = np.vstack([B[np.ix_(S, cols)], np.ones((1, cols.size))])
        try:
            sol = np.linalg.solve(kkt, rhs)
        except np.linalg.LinAlgError:
            continue
        a_full = np.zeros((k, cols.size))
        a_full[S] = sol[:m]
        nu = sol[m]
        ok = np.all(sol[:m] >= -1e-12, axis=0)
        if not S.all():
            mu = (G[~S] @ a_full - B[np.ix_(~S, cols)]) + nu[None, :]
            ok &= np.all(mu >= -1e-10 * scale, axis=0)
        ok &= np.all(np.isfinite(sol), axis=0)
        if np.any(ok):
            out[:, cols[ok]] = np.maximum(a_full[:, ok], 0.0)
    return out


# ----------------------------------------------------------------------------------------------------------------
# cube / patches front end
# ----------------------------------------------------------------------------------------------------------------
def vca_fcls(cube, k: int, seed: int = 0, max_pixels: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """VCA endmembers and FCLS abundances of a cube (C, H, W) or a batch of patches (N, C, H, W).

    VCA runs on a random subsample of at most ``max_pixels`` pixels (drawn without replacement with
    ``numpy.random.default_rng(seed)``; all pixels when there are fewer), FCLS on every pixel.

    Returns
    -------
    E : (C, k) float64 endmembers (real pixels of the input, original units).
    A : abundances, (k, H, W) for a cube or (N, k, H, W) for patches, float64, on the simplex per pixel.
    """
    where = "vca_fcls"
    X = np.asarray(cube, dtype=np.float64)
    if X.ndim == 3:
        C, H, W = X.shape
        Y = X.reshape(C, H * W)
    elif X.ndim == 4:
        N, C, H, W = X.shape
        Y = np.moveaxis(X, 1, 0).reshape(C, N * H * W)
    else:
        raise UBFInputError(where, f"expected a cube (C, H, W) or patches (N, C, H, W), got shape {X.shape}")
    if not np.all(np.isfinite(Y)):
        raise UBFInputError(where, "the cube contains NaN or infinite values")
    if int(max_pixels) < 1:
        raise UBFInputError(where, f"max_pixels must be at least 1, got {max_pixels}")
    P = Y.shape[1]
    rng = np.random.default_rng(seed)
    if P > max_pixels:
        sub = np.sort(rng.choice(P, size=int(max_pixels), replace=False))
        Ysub = Y[:, sub]
    else:
        Ysub = Y
    E, _ = vca(Ysub, k, seed=seed)
    A = fcls(Y, E)
    if X.ndim == 3:
        return E, A.reshape(k, H, W)
    return E, np.moveaxis(A.reshape(k, N, H, W), 0, 1)


def fcls_maps(cubes, E) -> np.ndarray:
    """Cubes (n, C, H, W) → their FCLS abundance maps (n, k, H, W) float32 with endmembers ``E`` (C, k): the
    abundance maps of a baseline that makes spectra, not maps (the pixel GMM)."""
    cubes = np.asarray(cubes)
    n, c, h, w = cubes.shape
    a = fcls(np.moveaxis(cubes, 1, 0).reshape(c, -1).astype(np.float64), np.asarray(E, dtype=np.float64))
    return np.moveaxis(a.reshape(-1, n, h, w), 0, 1).astype(np.float32)
