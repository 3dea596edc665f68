"""Realism metrics that can fail: a set of synthetic maps judged against a set of real maps.

Every metric here compares two unpaired sets of **maps**, float arrays ``(n, c, H, W)``: abundance maps
(c = k endmembers, values on the simplex: ≥ 0 and summing to one over axis 1, unitless fractions) or, for the
classifier two-sample test, HSI cubes (c = C bands, reflectance). Each metric is built so that known-bad
generators score clearly worse than a second real set of the same size (the real-vs-real floor, see DESIGN.md):

* :func:`c2st` — classifier two-sample test. A small CNN is trained to tell real from synthetic on half of each set
  and tested on the other half, and vice versa (2-fold, so every sample is tested once). Accuracy 0.5 means the
  classifier cannot tell them apart; pixel-wise generators (no spatial structure), blurred and shuffled maps are
  told apart almost always.
* :func:`radial_power_spectrum` / :func:`power_spectrum_distance` — spatial frequency content. Blurring removes high
  frequencies; shuffling pixels makes the spectrum white. Both move the log spectrum away from the real one.
* :func:`gradient_magnitude_distance` — 1-D Wasserstein distance between the pooled per-pixel gradient magnitudes
  (edge sharpness and smoothness at once).
* :func:`purity_histogram_distance` — total variation between histograms of pixel purity (max abundance per pixel):
  blurring mixes pure pixels away.
* :func:`memorisation` — nearest-training-map distance of synthetic maps relative to that of held-out real maps:
  a generator that copies its training data scores a ratio ≈ 0.
* :func:`class_fidelity` (with :class:`MapClassifier`, :func:`fit_map_classifier`,
  :func:`classification_accuracy`) — a classifier trained on labelled real maps applied to labelled synthetic maps
  (classification accuracy score, CAS), next to the same classifier on held-out real maps (the value a perfect
  generator reaches) and the train-on-synthetic, test-on-real accuracy (TSTR; key ``"tstr"``).
* :func:`realism_report` — all of the above that apply, in one flat dictionary.

Checks. Every two-set function checks that both sets are 4-D, have the same c and the same H and W (the error names
what differs), hold only finite values, and have at least the metric's minimum number of maps per set; bad input
raises :class:`~ubf_core.errors.UBFInputError` with a one-line message naming the metric and the problem (for too
few maps, the minimum).

Determinism. Random choices (subsets, fold split, subsampling, shuffling, augmentation, weight initialisation) come
from ``numpy.random.default_rng(seed)`` and ``torch.Generator().manual_seed(seed)``; networks are initialised in a
forked torch RNG (the caller's global RNG is left as it was) and trained with deterministic kernels requested
(:func:`ubf_core.generators.seeding.deterministic_torch`): the same inputs and seed give the same result on the CPU.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ubf_core.devices import adam
from ubf_core.errors import UBFInputError
from ubf_core.generators.seeding import deterministic_torch
from ubf_core.generators.training import dihedral

__all__ = ["c2st", "radial_power_spectrum", "power_spectrum_distance", "gradient_magnitude_distance",
           "purity_histogram_distance", "memorisation", "MapClassifier", "fit_map_classifier",
           "classification_accuracy", "class_fidelity", "negative_controls", "realism_report"]

_LOG_EPS = 1e-20          # added to powers before log10
_ABUNDANCE_TOL = 1e-3     # slack on [0, 1] for abundance values
_SUM_TOL = 1e-2           # slack on the sum-to-one test of realism_report
_MIN_MAPS = 2             # fewest maps per set for the distribution distances
_MIN_SIDE = 4             # fewest pixels per side of a map for the CNNs (two 2×2 poolings)


# ----------------------------------------------------------------------------------------------------------------
# input checks
def _maps(x, metric: str, name: str, min_n: int, min_side: int = 1) -> np.ndarray:
    """Check one set of maps: 4-D (n, c, H, W), n ≥ min_n, c ≥ 1, H, W ≥ min_side, finite → float32 array."""
    a = np.asarray(x)
    if a.ndim != 4:
        raise UBFInputError(metric, f"{name} must be maps (n, c, H, W), got shape {a.shape}")
    n, c, h, w = a.shape
    if n < min_n:
        raise UBFInputError(metric, f"needs at least {min_n} maps per set, {name} has {n}")
    if c < 1 or h < min_side or w < min_side:
        raise UBFInputError(metric, f"{name} maps need c ≥ 1 channels and H, W ≥ {min_side} pixels, "
                                    f"got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise UBFInputError(metric, f"{name} must hold real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise UBFInputError(metric, f"{name} holds NaN or infinite values")
    return a


def _same_layout(a: np.ndarray, b: np.ndarray, metric: str, name_a: str, name_b: str,
                 channel: str = "c") -> None:
    """Same channel count and the same H, W; the error names which differs."""
    if a.shape[1] != b.shape[1]:
        raise UBFInputError(metric, f"{name_a} have {channel} = {a.shape[1]}, {name_b} {channel} = {b.shape[1]}")
    if a.shape[2:] != b.shape[2:]:
        raise UBFInputError(metric, f"{name_a} are {a.shape[2]}×{a.shape[3]} pixels, {name_b} "
                                    f"{b.shape[2]}×{b.shape[3]}")


def _pair(real, synthetic, metric: str, min_n: int, min_side: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Check a (real, synthetic) pair of map sets; returns float32 arrays."""
    r = _maps(real, metric, "real maps", min_n, min_side)
    s = _maps(synthetic, metric, "synthetic maps", min_n, min_side)
    _same_layout(s, r, metric, "synthetic maps", "real maps")
    return r, s


def _positive_int(value, metric: str, name: str, minimum: int = 1) -> int:
    if int(value) < minimum:
        raise UBFInputError(metric, f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _looks_like_abundances(x: np.ndarray) -> bool:
    """min ≥ −1e-3 and |Σ over axis 1 − 1| ≤ 1e-2 everywhere."""
    return bool(x.min() >= -_ABUNDANCE_TOL and np.abs(x.sum(axis=1, dtype=np.float64) - 1.0).max() <= _SUM_TOL)


# ----------------------------------------------------------------------------------------------------------------
# small CNNs shared by the two-sample test and the class-fidelity classifier
class _MapCNN(nn.Module):
    """Per-channel standardisation → Conv3×3(c→w) ReLU → Conv3×3(w→w) ReLU → AvgPool2 → Conv3×3(w→2w) ReLU →
    AvgPool2 → Conv3×3(2w→2w) ReLU → global average pool → Linear(2w→out). Input (n, c, H, W), H, W ≥ 4;
    output (n, out) logits. The standardisation statistics are buffers set from the training maps."""

    def __init__(self, channels: int, out: int, width: int):
        super().__init__()
        w = int(width)
        self.register_buffer("channel_mean", torch.zeros(channels))
        self.register_buffer("channel_std", torch.ones(channels))
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, out),
        )

    def set_standardisation(self, x: torch.Tensor) -> None:
        """Per-channel mean and std (floored at 1e-6) of the maps x (n, c, H, W)."""
        self.channel_mean.copy_(x.mean(dim=(0, 2, 3)))
        self.channel_std.copy_(x.std(dim=(0, 2, 3)).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.channel_mean[:, None, None]) / self.channel_std[:, None, None]
        return self.body(x)


def _train(net: _MapCNN, x: torch.Tensor, y: torch.Tensor, loss_fn, *, seed: int, epochs: int,
           batch_size: int, lr: float, device: str) -> _MapCNN:
    """Adam on mini-batches shuffled and augmented (:func:`~ubf_core.generators.training.dihedral`) by a generator seeded with ``seed``;
    returns the network in eval mode on the CPU."""
    gen = torch.Generator().manual_seed(int(seed))
    net.set_standardisation(x)
    net.to(device).train()
    opt = adam(net.parameters(), lr=float(lr))
    with deterministic_torch():
        for _ in range(int(epochs)):
            for idx in torch.randperm(len(x), generator=gen).split(int(batch_size)):
                xb = dihedral(x[idx], gen).to(device)
                loss = loss_fn(net(xb), y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.to("cpu").eval()


@torch.no_grad()
def _logits(net: nn.Module, x: torch.Tensor, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    net = net.to(device).eval()
    out = torch.cat([net(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    net.to("cpu")
    return out


def _new_net(channels: int, out: int, width: int, seed: int) -> _MapCNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _MapCNN(channels, out, width)


# ----------------------------------------------------------------------------------------------------------------
# classifier two-sample test
def c2st(real, synthetic, *, seed: int = 0, epochs: int = 30, batch_size: int = 32, lr: float = 2e-3,
         width: int = 16, min_per_side: int = 20, device: str = "cpu") -> dict:
    """Classifier two-sample test: can a small CNN tell synthetic maps from real ones?

    real, synthetic: maps (n, c, H, W) with the same c (abundances: k endmembers; or HSI cubes: C bands of
    reflectance) and the same H, W ≥ 4; at least ``min_per_side`` maps each.

    n = min(len(real), len(synthetic)) maps of each set are used (a random subset of the larger set, by ``seed``),
    labelled real 0 / synthetic 1. Each side is split at random into two halves, fold A and fold B (balanced: both
    folds hold as many real as synthetic maps). A CNN (:class:`_MapCNN` with one logit; per-channel standardisation
    from its training fold, both classes) is trained on fold A and tested on fold B, and a fresh one the other way
    round, so each of the 2n maps is tested exactly once. Training: Adam (``lr``), binary cross-entropy on logits,
    ``epochs`` passes in mini-batches of ``batch_size``, each batch randomly flipped / rotated by 90°.

    Returns ``{"accuracy": share of the 2n tested maps classified correctly (logit > 0 → synthetic),
    "stderr": sqrt(acc (1 − acc) / (2n)), "n_per_side": n}``. 0.5 means indistinguishable (the real-vs-real
    value, up to ±3 stderr); 1.0 means every synthetic map is recognised. Cost: 2×64 maps of 5×32×32 for 30 epochs
    take a few seconds on one CPU thread.
    """
    metric = "C2ST"
    min_per_side = _positive_int(min_per_side, metric, "min_per_side", 2)
    r, s = _pair(real, synthetic, metric, min_per_side, _MIN_SIDE)
    epochs = _positive_int(epochs, metric, "epochs")
    batch_size = _positive_int(batch_size, metric, "batch_size")
    width = _positive_int(width, metric, "width")
    rng = np.random.default_rng(seed)
    n = min(len(r), len(s))
    r = r[np.sort(rng.choice(len(r), n, replace=False))]
    s = s[np.sort(rng.choice(len(s), n, replace=False))]
    perm_r, perm_s = rng.permutation(n), rng.permutation(n)
    half = n // 2
    folds = [(perm_r[:half], perm_s[:half]), (perm_r[half:], perm_s[half:])]
    fold_x = [torch.from_numpy(np.concatenate([r[ir], s[is_]])) for ir, is_ in folds]
    fold_y = [torch.cat([torch.zeros(len(ir)), torch.ones(len(is_))]) for ir, is_ in folds]
    correct = 0
    for train, test in ((0, 1), (1, 0)):
        net = _new_net(r.shape[1], 1, width, seed * 2 + train)
        net = _train(net, fold_x[train], fold_y[train][:, None], nn.BCEWithLogitsLoss(),
                     seed=seed * 2 + train, epochs=epochs, batch_size=batch_size, lr=lr, device=device)
        pred = (_logits(net, fold_x[test], device=device)[:, 0] > 0).float()
        correct += int((pred == fold_y[test]).sum())
    acc = correct / (2 * n)
    return {"accuracy": float(acc), "stderr": float(math.sqrt(acc * (1.0 - acc) / (2 * n))), "n_per_side": int(n)}


# ----------------------------------------------------------------------------------------------------------------
# spatial statistics
def _radial_power(x: np.ndarray) -> np.ndarray:
    """Mean radial power spectrum of checked maps x (n, c, H, W) float32 → float64 (min(H, W) // 2,)."""
    n, c, h, w = x.shape
    a = x.astype(np.float64)
    a = a - a.mean(axis=(2, 3), keepdims=True)
    power = np.abs(np.fft.fft2(a, axes=(2, 3))) ** 2 / (h * w)        # (n, c, H, W)
    power = power.mean(axis=(0, 1))                                   # (H, W)
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)                     # cycles per pixel
    radius = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) * min(h, w)
    bins = np.rint(radius).astype(np.int64)
    n_bins = min(h, w) // 2
    keep = (bins >= 1) & (bins <= n_bins)
    sums = np.bincount(bins[keep], weights=power[keep], minlength=n_bins + 1)[1:]
    counts = np.bincount(bins[keep], minlength=n_bins + 1)[1:]
    return sums / np.maximum(counts, 1)


def radial_power_spectrum(maps) -> np.ndarray:
    """Mean radially averaged spatial power spectrum of a set of maps.

    maps: (n, c, H, W), H, W ≥ 2, at least 1 map. For each map and channel the channel mean is subtracted and the
    2-D FFT power |F|² / (H·W) is taken (units: squared map units; by Parseval it sums to H·W times the variance).
    The frequency radius of each FFT cell is ``sqrt(fy² + fx²)·min(H, W)`` with fy, fx in cycles per pixel, rounded
    to an integer bin; bins 1 … min(H, W) // 2 are kept (DC, bin 0, and the corners beyond the Nyquist circle are
    dropped). The power is averaged over the cells of each bin, then over channels and maps.

    Returns float64 ``(min(H, W) // 2,)``: entry i is the mean power at radius i + 1 (not normalised, so both the
    shape and the energy of the spectrum can be compared; see :func:`power_spectrum_distance`).
    """
    x = _maps(maps, "radial power spectrum", "maps", 1, 2)
    return _radial_power(x)


def power_spectrum_distance(real, synthetic) -> float:
    """Mean absolute difference of the log10 radial power spectra of two sets of maps.

    ``d = mean_r |log10(P_real(r) + ε) − log10(P_syn(r) + ε)|`` over the radius bins r of
    :func:`radial_power_spectrum` (ε = 1e-20). Unitless (decades); 0 for identical spectra, 1 means the spectra
    differ by a factor of 10 on average. Blurred maps lose the high frequencies and shuffled pixels give a flat
    (white) spectrum: both score clearly above two real sets.

    real, synthetic: maps (n, c, H, W), same c and H, W ≥ 2; at least 2 maps each.
    """
    r, s = _pair(real, synthetic, "power spectrum distance", _MIN_MAPS, 2)
    p_r, p_s = _radial_power(r), _radial_power(s)
    return float(np.mean(np.abs(np.log10(p_r + _LOG_EPS) - np.log10(p_s + _LOG_EPS))))


def _gradient_magnitudes(x: np.ndarray) -> np.ndarray:
    """Per-pixel gradient magnitude of maps (n, c, H, W) → flat float64 (n·(H−1)·(W−1),)."""
    a = x.astype(np.float64)
    base = a[:, :, :-1, :-1]
    dy = a[:, :, 1:, :-1] - base
    dx = a[:, :, :-1, 1:] - base
    return np.sqrt((dy ** 2 + dx ** 2).sum(axis=1)).ravel()


def gradient_magnitude_distance(real, synthetic, max_values: int = 200_000, seed: int = 0) -> float:
    """1-D Wasserstein distance between the pooled per-pixel gradient magnitudes of two sets of maps.

    Per pixel, ``g = sqrt(Σ_c (∂y A_c)² + (∂x A_c)²)`` with forward differences (the last row and column, which have
    no forward neighbour, are dropped, so every map gives (H−1)·(W−1) values); all maps of a set are pooled, each
    pool subsampled without replacement to ``max_values`` values by ``numpy.random.default_rng(seed)``, and
    ``scipy.stats.wasserstein_distance`` of the two pools is returned. Units: map units per pixel; 0 for identical
    distributions. Shuffled pixels make gradients large everywhere, blurring makes them small and removes edges.

    real, synthetic: maps (n, c, H, W), same c and H, W ≥ 2; at least 2 maps each.
    """
    from scipy.stats import wasserstein_distance

    metric = "gradient magnitude distance"
    r, s = _pair(real, synthetic, metric, _MIN_MAPS, 2)
    max_values = _positive_int(max_values, metric, "max_values")
    rng = np.random.default_rng(seed)
    pools = []
    for x in (r, s):
        g = _gradient_magnitudes(x)
        if len(g) > max_values:
            g = g[rng.choice(len(g), max_values, replace=False)]
        pools.append(g)
    return float(wasserstein_distance(pools[0], pools[1]))


def purity_histogram_distance(real, synthetic, bins: int = 20) -> float:
    """Total-variation distance between the histograms of pixel purity of two sets of abundance maps.

    Purity of a pixel = max over the k abundances (1 for a pure pixel, 1/k for an even mixture). Each set's purities
    are binned into ``bins`` equal bins on [0, 1] (values within 1e-3 outside are clipped in) and normalised to a
    probability vector; the result is ``½ Σ_b |p_b − q_b|``, unitless in [0, 1] (0: same histogram, 1: disjoint).

    real, synthetic: abundance maps (n, k, H, W), same k, H, W; values in [0, 1] (±1e-3); at least 2 maps each.
    """
    metric = "purity histogram distance"
    r, s = _pair(real, synthetic, metric, _MIN_MAPS)
    bins = _positive_int(bins, metric, "bins")
    hists = []
    for name, x in (("real maps", r), ("synthetic maps", s)):
        if x.min() < -_ABUNDANCE_TOL or x.max() > 1.0 + _ABUNDANCE_TOL:
            raise UBFInputError(metric, f"{name} are not abundances: values span [{x.min():.4g}, {x.max():.4g}], "
                                        f"expected [0, 1]")
        purity = np.clip(x.max(axis=1), 0.0, 1.0).ravel()
        h, _ = np.histogram(purity, bins=bins, range=(0.0, 1.0))
        hists.append(h / h.sum())
    return float(0.5 * np.abs(hists[0] - hists[1]).sum())


# ----------------------------------------------------------------------------------------------------------------
# memorisation
def _nearest_distances(queries: np.ndarray, pool: np.ndarray, chunk: int) -> np.ndarray:
    """L2 distance of each flattened query map to its nearest pool map, ``chunk`` rows of each at a time."""
    q_all = torch.from_numpy(queries.reshape(len(queries), -1)).double()
    p_all = torch.from_numpy(pool.reshape(len(pool), -1)).double()
    out = np.empty(len(q_all))
    for i in range(0, len(q_all), chunk):
        q = q_all[i:i + chunk]
        best = torch.full((len(q),), float("inf"), dtype=torch.float64)
        for j in range(0, len(p_all), chunk):
            best = torch.minimum(best, torch.cdist(q, p_all[j:j + chunk]).amin(dim=1))
        out[i:i + chunk] = best.numpy()
    return out


def memorisation(training, synthetic, reference, chunk: int = 512) -> dict:
    """Does the generator copy its training maps? Nearest-training-map distances, synthetic vs held-out real.

    training: the maps the generator was trained on; synthetic: its samples; reference: held-out REAL maps,
    disjoint from training (they show how close an independent real map comes to the training set). All (n, c, H, W)
    with the same c, H, W; at least 1 training map, 1 synthetic map and 2 reference maps.

    d_syn(i) = min_j ‖vec synthetic_i − vec training_j‖₂ and d_ref likewise for reference maps (Euclidean over all
    c·H·W values, in map units; chunked ``torch.cdist`` in float64, ``chunk`` maps of each side at a time, so the
    full distance matrix is never held). Returns ``{"nn_ratio": median d_syn / median d_ref (≈ 1 for a generator
    as novel as new real data, ≈ 0 for copies), "copy_share": share of synthetic maps with
    d_syn < 0.5 · (5th percentile of d_ref) (≈ 0 for novel maps, ≈ 1 for copies), "d_syn_median",
    "d_ref_median"}``.
    """
    metric = "memorisation"
    t = _maps(training, metric, "training maps", 1)
    s = _maps(synthetic, metric, "synthetic maps", 1)
    ref = _maps(reference, metric, "reference maps", 2)
    _same_layout(s, t, metric, "synthetic maps", "training maps")
    _same_layout(ref, t, metric, "reference maps", "training maps")
    chunk = _positive_int(chunk, metric, "chunk")
    d_syn = _nearest_distances(s, t, chunk)
    d_ref = _nearest_distances(ref, t, chunk)
    med_syn, med_ref = float(np.median(d_syn)), float(np.median(d_ref))
    if med_ref <= 0.0:
        raise UBFInputError(metric, "reference maps are copies of training maps (median nearest distance 0): "
                                    "the reference must be held-out real maps")
    threshold = 0.5 * float(np.percentile(d_ref, 5))
    return {"nn_ratio": med_syn / med_ref, "copy_share": float(np.mean(d_syn < threshold)),
            "d_syn_median": med_syn, "d_ref_median": med_ref}


# ----------------------------------------------------------------------------------------------------------------
# class fidelity
class MapClassifier(nn.Module):
    """Small CNN that assigns maps (n, c, H, W), H, W ≥ 4, to one of the named ``classes`` (strings).

    Same body as the two-sample test's network (per-channel standardisation set from the training maps,
    four 3×3 convolutions, two 2×2 average pools, global average pool) with a linear head of ``len(classes)``
    logits; ``forward`` returns the logits (n, len(classes)) (softmax gives class probabilities) and
    :meth:`predict` the class names. Build and train it with :func:`fit_map_classifier`.
    """

    def __init__(self, channels: int, classes: Sequence[str], width: int = 32):
        super().__init__()
        classes = [str(c) for c in classes]
        if channels < 1 or len(classes) < 2 or len(set(classes)) != len(classes) or width < 1:
            raise UBFInputError("map classifier", f"needs channels ≥ 1, at least 2 distinct classes and width ≥ 1; "
                                                  f"got {channels}, {classes}, {width}")
        self.channels = int(channels)
        self.classes = classes
        self.net = _MapCNN(int(channels), len(classes), int(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, c, H, W) maps → (n, len(classes)) logits."""
        return self.net(x)

    def predict(self, maps) -> list[str]:
        """Class name of each map (n, c, H, W) → list of n strings (the class with the largest logit)."""
        x = _maps(maps, "map classifier", "maps", 1, _MIN_SIDE)
        if x.shape[1] != self.channels:
            raise UBFInputError("map classifier", f"maps have c = {x.shape[1]}, the classifier takes "
                                                  f"c = {self.channels}")
        idx = _logits(self, torch.from_numpy(x)).argmax(dim=1).numpy()
        return [self.classes[i] for i in idx]


def _label_indices(labels, n: int, classes: Sequence[str], where: str, name: str) -> np.ndarray:
    """String labels (n,) → int64 indices into ``classes``; unknown label or wrong length → UBFInputError."""
    lab = [str(v) for v in np.asarray(labels, dtype=object).ravel()]
    if np.ndim(labels) != 1 or len(lab) != n:
        raise UBFInputError(where, f"{name} must be {n} labels (one per map), got shape {np.shape(labels)}")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in lab if v not in index})
    if unknown:
        raise UBFInputError(where, f"{name} hold unknown label {unknown[0]!r}"
                                   f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}; "
                                   f"known classes: {list(classes)}")
    return np.array([index[v] for v in lab], dtype=np.int64)


def fit_map_classifier(maps, labels, classes: Sequence[str], *, seed: int = 0, epochs: int = 30,
                       batch_size: int = 32, lr: float = 2e-3, width: int = 32, device: str = "cpu"
                       ) -> MapClassifier:
    """Train a :class:`MapClassifier` on labelled maps; returns it in eval mode on the CPU.

    maps: (n, c, H, W), n ≥ 2, H, W ≥ 4; labels: n strings, each one of ``classes`` (≥ 2 distinct names; a class
    may be absent from the labels). Cross-entropy, Adam (``lr``), ``epochs`` passes in mini-batches of
    ``batch_size`` shuffled and randomly flipped / rotated by 90° from a generator seeded with ``seed``; weights
    initialised from ``seed`` in a forked RNG; deterministic on the CPU.
    """
    where = "map classifier"
    x = _maps(maps, where, "training maps", 2, _MIN_SIDE)
    classes = [str(c) for c in classes]
    clf_seed = int(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(clf_seed)
        clf = MapClassifier(x.shape[1], classes, width=_positive_int(width, where, "width"))
    y = _label_indices(labels, len(x), classes, where, "training labels")
    _train(clf.net, torch.from_numpy(x), torch.from_numpy(y), nn.CrossEntropyLoss(), seed=clf_seed,
           epochs=_positive_int(epochs, where, "epochs"), batch_size=_positive_int(batch_size, where, "batch_size"),
           lr=lr, device=device)
    return clf.eval()


def classification_accuracy(clf: MapClassifier, maps, labels) -> dict:
    """Accuracy of ``clf`` on labelled maps.

    maps: (n, c, H, W) with the classifier's c, n ≥ 1; labels: n strings, each one of ``clf.classes`` (an unknown
    label is a UBFInputError naming it and the known classes). Returns ``{"accuracy": share of maps whose predicted
    class equals the label, "per_class": {class: accuracy over the maps of that class} (only classes present in
    labels), "n": n}``.
    """
    where = "classification accuracy"
    x = _maps(maps, where, "maps", 1, _MIN_SIDE)
    if x.shape[1] != clf.channels:
        raise UBFInputError(where, f"maps have c = {x.shape[1]}, the classifier takes c = {clf.channels}")
    y = _label_indices(labels, len(x), clf.classes, where, "labels")
    pred = _logits(clf, torch.from_numpy(x)).argmax(dim=1).numpy()
    hit = pred == y
    per_class = {c: float(hit[y == i].mean()) for i, c in enumerate(clf.classes) if (y == i).any()}
    return {"accuracy": float(hit.mean()), "per_class": per_class, "n": int(len(x))}


def class_fidelity(real_train, real_train_labels, real_test, real_test_labels, synthetic, synthetic_labels, *,
                   seed: int = 0, epochs: int = 30, batch_size: int = 32, lr: float = 2e-3, width: int = 32,
                   device: str = "cpu", real_classifier: "MapClassifier | None" = None) -> dict:
    """Do synthetic maps of a class look like real maps of that class? (class-conditional generators)

    real_train, real_test, synthetic: maps (n, c, H, W) with the same c and H, W ≥ 4; *_labels: one string per map.
    The classes are the distinct labels of real_train (at least 2); every test and synthetic label must be one of
    them. Two classifiers (:func:`fit_map_classifier`, same settings and seed):

    * trained on real_train, applied to synthetic → ``"cas"`` (classification accuracy score) and
      ``"cas_per_class"``; applied to real_test → ``"real_floor"`` / ``"real_floor_per_class"``: the value a
      perfect generator would reach (the bar that ``cas`` is read against);
    * trained on synthetic, applied to real_test → ``"tstr"`` / ``"tstr_per_class"`` (train on synthetic, test
      on real: does the synthetic set carry what separates the real classes?).

    Also ``"chance"`` = 1 / number of classes and ``"classes"``. Accuracies are shares in [0, 1].
    ``real_classifier``: one already fitted on real_train (e.g. shared by several generators); it must know the
    same classes.
    """
    where = "class fidelity"
    tr = _maps(real_train, where, "real training maps", 2, _MIN_SIDE)
    te = _maps(real_test, where, "real test maps", 1, _MIN_SIDE)
    sy = _maps(synthetic, where, "synthetic maps", 2, _MIN_SIDE)
    _same_layout(te, tr, where, "real test maps", "real training maps")
    _same_layout(sy, tr, where, "synthetic maps", "real training maps")
    classes = sorted({str(v) for v in np.asarray(real_train_labels, dtype=object).ravel()})
    if len(classes) < 2:
        raise UBFInputError(where, f"real training labels need at least 2 distinct classes, got {classes}")
    _label_indices(real_test_labels, len(te), classes, where, "real test labels")
    _label_indices(synthetic_labels, len(sy), classes, where, "synthetic labels")
    kw = dict(seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, width=width, device=device)
    if real_classifier is not None and list(real_classifier.classes) != classes:
        raise UBFInputError(where, f"the given real classifier knows {list(real_classifier.classes)}, the real "
                                   f"training labels {classes}")
    on_real = real_classifier or fit_map_classifier(tr, real_train_labels, classes, **kw)
    cas = classification_accuracy(on_real, sy, synthetic_labels)
    floor = classification_accuracy(on_real, te, real_test_labels)
    on_syn = fit_map_classifier(sy, synthetic_labels, classes, **kw)
    tstr = classification_accuracy(on_syn, te, real_test_labels)
    return {"cas": cas["accuracy"], "cas_per_class": cas["per_class"],
            "real_floor": floor["accuracy"], "real_floor_per_class": floor["per_class"],
            "tstr": tstr["accuracy"], "tstr_per_class": tstr["per_class"],
            "chance": 1.0 / len(classes), "classes": classes}


# ----------------------------------------------------------------------------------------------------------------
# cases every metric must flag
def negative_controls(maps, seed: int = 0, blur_sigma: float = 1.5) -> dict[str, np.ndarray]:
    """Known-bad versions of real maps (n, c, H, W), each of the same shape, for showing on the run's own data
    that the metrics can fail: ``"pixels shuffled"`` (each map's pixels permuted, one permutation for all
    channels: same values, no spatial structure), ``"blurred"`` (Gaussian, ``blur_sigma`` pixels, per channel:
    renormalised over c when the maps are abundances, so they stay on the simplex) and ``"copies"`` (the maps
    themselves: pass them as the training set too, and memorisation must flag them)."""
    from scipy.ndimage import gaussian_filter

    x = _maps(maps, "negative controls", "maps", 1, 2)
    rng = np.random.default_rng(seed)
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    shuffled = np.stack([m[:, rng.permutation(h * w)] for m in flat]).reshape(x.shape)
    blurred = gaussian_filter(x.astype(np.float64), sigma=(0, 0, blur_sigma, blur_sigma), mode="reflect")
    if _looks_like_abundances(x):
        blurred = np.clip(blurred, 0.0, None)
        blurred /= blurred.sum(axis=1, keepdims=True)
    return {"pixels shuffled": shuffled.astype(np.float32), "blurred": blurred.astype(np.float32),
            "copies": x.copy()}


# ----------------------------------------------------------------------------------------------------------------
# everything at once
def realism_report(real, synthetic, *, training=None, seed: int = 0, c2st_epochs: int = 30,
                   device: str = "cpu") -> dict:
    """All realism metrics that apply, as one flat dictionary of floats.

    real: real maps (n, c, H, W) not used to train the generator; synthetic: generated maps of the same c, H, W
    (H, W ≥ 4; at least 20 maps each, the C2ST minimum); training (optional): the generator's training maps.

    Keys: ``"c2st"``, ``"c2st_stderr"`` (:func:`c2st`, ``c2st_epochs`` epochs), ``"psd_distance"``
    (:func:`power_spectrum_distance`), ``"gradient_distance"`` (:func:`gradient_magnitude_distance`),
    ``"purity_distance"`` (:func:`purity_histogram_distance`; only when both sets look like abundances:
    min ≥ −1e-3 and channel sums within 1e-2 of 1), ``"nn_ratio"`` and ``"copy_share"`` (:func:`memorisation` with
    ``real`` as the held-out reference; only when ``training`` is given).
    """
    metric = "realism report"
    r, s = _pair(real, synthetic, metric, 20, _MIN_SIDE)
    test = c2st(r, s, seed=seed, epochs=c2st_epochs, device=device)
    out = {"c2st": test["accuracy"], "c2st_stderr": test["stderr"],
           "psd_distance": power_spectrum_distance(r, s),
           "gradient_distance": gradient_magnitude_distance(r, s, seed=seed)}
    if _looks_like_abundances(r) and _looks_like_abundances(s):
        out["purity_distance"] = purity_histogram_distance(r, s)
    if training is not None:
        mem = memorisation(training, s, r)
        out["nn_ratio"] = mem["nn_ratio"]
        out["copy_share"] = mem["copy_share"]
    return out
