"""The downstream classification experiment: does adding synthetic HSIs help when real labelled patches are scarce?

Arms (:data:`ARMS`), each trained for every model and every seed and scored on the same held-out test scenes:

- ``real``: real training patches only;
- ``augment``: real patches with classic augmentation of every batch (flips, 90° rotations, small affine warps;
  :mod:`ubf_core.classification.augment`);
- ``synthetic``: real patches plus class-conditional synthetic HSIs, balanced per class (:func:`class_balanced_counts`).

The seed fixes the initial weights, the batch order, the augmentation and the choice of synthetic patches; for one
seed every arm starts from the same weights, so arms are compared pairwise. Accuracies are fractions (0–1) in the
result and in :func:`results_metrics`, percentages in :func:`results_table_markdown`. Mean ± std are over seeds; std
is the sample standard deviation (ddof=1; 0 for a single seed).
"""

from __future__ import annotations

import difflib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ubf_core.classification.labelled import LabelledPatches
from ubf_core.classification.models import CLASSIFIERS, make_classifier
from ubf_core.classification.training import BALANCE_MODES, evaluate, train_classifier
from ubf_core.errors import UBFInputError

__all__ = ["ARMS", "ARM_LABELS", "ExperimentResult", "ExperimentSettings", "PAPER_REFERENCE", "class_balanced_counts",
           "hsi_labels", "map_rgb_classes", "rgb_sample_counts", "results_metrics", "results_table_markdown",
           "run_experiment", "select_synthetic"]

ARMS = ("real", "augment", "synthetic")
ARM_LABELS = {"real": "real patches only", "augment": "real + classic augmentation (flip, rot90, affine)",
              "synthetic": "real + class-balanced synthetic HSIs"}
PAPER_REFERENCE = ("UBF (CVPR 2024), AlexNet on HSRS-SC: real only 89.5 %; with synthetic HSIs 92.7 % / 94.3 %")


# ------------------------------------------------------------------------------------------------ class bookkeeping

def class_balanced_counts(real_counts: Mapping[str, int] | Sequence[int], n_per_class: int,
                          mode: str = "top_up") -> dict[str, int] | list[int]:
    """How many synthetic patches to generate per class.

    real_counts: real training patches per class ({class: count} or a sequence indexed by class); n_per_class: N.
    mode ``"top_up"`` (default): N − real count, at least 0, so every class reaches N patches in all (a class that
    already has ≥ N real patches gets none); mode ``"fixed"``: N synthetic patches for every class. Returns the same
    kind of container as ``real_counts``.
    """
    if mode not in ("top_up", "fixed"):
        raise ValueError(f"mode must be 'top_up' or 'fixed', got {mode!r}")
    n = int(n_per_class)
    if n < 0:
        raise ValueError(f"n_per_class must be ≥ 0, got {n_per_class}")
    need = (lambda c: max(n - int(c), 0)) if mode == "top_up" else (lambda c: n)
    if isinstance(real_counts, Mapping):
        return {k: need(c) for k, c in real_counts.items()}
    return [need(c) for c in real_counts]


def _unknown(side: str, name: str, known: Sequence[str]) -> UBFInputError:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UBFInputError("RGB → HSI class mapping", f"{side} class {name!r} does not exist{hint}; known {side} "
                                                    f"classes: {', '.join(map(str, known))}")


def map_rgb_classes(mapping: Mapping[str, str], rgb_classes: Sequence[str],
                    hsi_classes: Sequence[str]) -> dict[str, list[str]]:
    """Check an RGB → HSI class mapping and invert it: for each HSI class, the RGB classes that feed it.

    mapping: {RGB class: HSI class}, e.g. {"Airport": "airport", "DenseResidential": "urban", "Industrial": "urban"};
    rgb_classes / hsi_classes: the class names that exist on each side. A name missing on its side is a
    ``UBFInputError`` naming it and listing the known ones. Returns {HSI class: [RGB classes]} for every HSI class
    in ``hsi_classes`` order ([] when no RGB class feeds it); RGB classes not in ``mapping`` are unused.
    """
    rgb_classes, hsi_classes = [str(c) for c in rgb_classes], [str(c) for c in hsi_classes]
    out: dict[str, list[str]] = {h: [] for h in hsi_classes}
    for rgb, hsi in mapping.items():
        if str(rgb) not in rgb_classes:
            raise _unknown("RGB", rgb, rgb_classes)
        if str(hsi) not in out:
            raise _unknown("HSI", hsi, hsi_classes)
        out[str(hsi)].append(str(rgb))
    return out


def rgb_sample_counts(hsi_counts: Mapping[str, int], feeds: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """How many samples to draw per RGB class (the generator's condition) to get ``hsi_counts`` per HSI class.

    hsi_counts: {HSI class: synthetic patches wanted} (e.g. from :func:`class_balanced_counts`); feeds: the output
    of :func:`map_rgb_classes`. Each HSI class's count is split as evenly as possible over the RGB classes feeding
    it, earlier ones getting the remainder (10 over 4 → 3, 3, 2, 2). An HSI class that needs samples but has no RGB
    class is a ``UBFInputError``.
    """
    out: dict[str, int] = {}
    for hsi, n in hsi_counts.items():
        rgbs = list(feeds.get(hsi, []))
        if int(n) > 0 and not rgbs:
            raise UBFInputError("RGB → HSI class mapping", f"HSI class {hsi!r} needs {n} synthetic patches but "
                                                           f"no RGB class is mapped to it")
        base, extra = divmod(int(n), max(len(rgbs), 1))
        for i, rgb in enumerate(rgbs):
            out[rgb] = out.get(rgb, 0) + base + (1 if i < extra else 0)
    return out


def hsi_labels(rgb_labels: Sequence[str], feeds: Mapping[str, Sequence[str]],
               hsi_classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """HSI class indices for synthetic samples labelled with RGB classes (their generator condition).

    rgb_labels: (n,) RGB class names; feeds: the output of :func:`map_rgb_classes`; hsi_classes: the K HSI class
    names (index order). Returns (y (m,) int64 indices into ``hsi_classes`` for the kept samples, keep (n,) bool):
    samples whose RGB class feeds no HSI class are dropped.
    """
    lookup = {str(r): hsi_classes.index(h) for h, rgbs in feeds.items() for r in rgbs}
    labels = [str(v) for v in np.asarray(rgb_labels, dtype=object).reshape(-1)]
    keep = np.array([lab in lookup for lab in labels], dtype=bool)
    y = np.array([lookup[lab] for lab in labels if lab in lookup], dtype=np.int64)
    return y, keep


def select_synthetic(y_synthetic: np.ndarray, counts: Sequence[int], seed: int,
                     class_names: Sequence[str] | None = None) -> np.ndarray:
    """Indices (int64, sorted) of ``counts[k]`` synthetic patches of each class k, drawn without replacement by seed.

    y_synthetic: (m,) class indices of the synthetic pool. Too few patches of a class is a ``UBFInputError``.
    """
    y_synthetic = np.asarray(y_synthetic, dtype=np.int64)
    rng = np.random.default_rng(int(seed))
    chosen = []
    for k, need in enumerate(counts):
        pool = np.flatnonzero(y_synthetic == k)
        if need > len(pool):
            name = class_names[k] if class_names is not None else k
            raise UBFInputError("synthetic set", f"class {name!r} needs {need} synthetic patches, the set holds "
                                                 f"{len(pool)}")
        chosen.append(rng.choice(pool, size=int(need), replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


# ------------------------------------------------------------------------------------------------------ settings

@dataclass
class ExperimentSettings:
    """Training settings shared by every arm (params.yaml ``classification``, say).

    epochs, batch_size, lr, weight_decay, balance: see :func:`~ubf_core.classification.training.train_classifier`;
    n_per_class: the synthetic arm's N (None: use the whole synthetic set given); synthetic_mode: ``top_up`` or
    ``fixed`` (:func:`class_balanced_counts`); model_options: {model name: architecture options};
    augment_options: :class:`~ubf_core.classification.augment.AugmentOptions` fields; device: torch device.
    """

    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: str = "loss"
    n_per_class: int | None = None
    synthetic_mode: str = "top_up"
    model_options: dict = field(default_factory=dict)
    augment_options: dict = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self) -> None:
        where = "classification settings"
        if int(self.epochs) < 1 or int(self.batch_size) < 1 or float(self.lr) <= 0:
            raise UBFInputError(where, f"need epochs ≥ 1, batch_size ≥ 1 and lr > 0, got {self.epochs}, "
                                       f"{self.batch_size}, {self.lr}")
        if self.balance not in BALANCE_MODES:
            raise UBFInputError(where, f"balance must be one of {', '.join(BALANCE_MODES)}, got {self.balance!r}")
        if self.synthetic_mode not in ("top_up", "fixed"):
            raise UBFInputError(where, f"synthetic_mode must be top_up or fixed, got {self.synthetic_mode!r}")
        if self.n_per_class is not None and int(self.n_per_class) < 0:
            raise UBFInputError(where, f"n_per_class must be ≥ 0, got {self.n_per_class}")
        unknown = sorted(set(self.model_options) - set(CLASSIFIERS))
        if unknown:
            raise UBFInputError(where, f"model_options for unknown model {', '.join(map(repr, unknown))}; "
                                       f"known: {', '.join(CLASSIFIERS)}")

    @classmethod
    def from_params(cls, d: Mapping | None) -> "ExperimentSettings":
        """Build from a mapping of the field names; an unknown key is a ``UBFInputError`` listing the allowed ones."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise UBFInputError("classification settings", f"unknown key {', '.join(map(repr, unknown))}; allowed: "
                                                           f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**d)


# ------------------------------------------------------------------------------------------------------- results

def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    runs: one record per (arm, model, seed): ``arm``, ``model``, ``seed``, ``overall`` (OA, 0–1), ``per_class``
    (list of K accuracies, NaN where the test set has no patch of the class), ``average`` (AA), ``n_train``,
    ``train_counts`` (training patches per class, synthetic included), ``seconds``. summary: {(arm, model):
    ``oa_mean``, ``oa_std``, ``aa_mean``, ``aa_std``, ``per_class_mean``, ``per_class_std`` (lists of K),
    ``n_seeds``}. test_counts: test patches per class.
    """

    class_names: list[str]
    arms: list[str]
    models: list[str]
    seeds: list[int]
    runs: list[dict] = field(default_factory=list)
    summary: dict[tuple[str, str], dict] = field(default_factory=dict)
    test_counts: list[int] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def summarise(self) -> None:
        """(Re)compute :attr:`summary` from :attr:`runs`."""
        self.summary = {}
        k = len(self.class_names)
        for arm in self.arms:
            for model in self.models:
                runs = [r for r in self.runs if r["arm"] == arm and r["model"] == model]
                if not runs:
                    continue
                oa, oa_sd = _mean_std([r["overall"] for r in runs])
                aa, aa_sd = _mean_std([r["average"] for r in runs])
                pcs = [_mean_std([r["per_class"][c] for r in runs]) for c in range(k)]
                self.summary[(arm, model)] = {"oa_mean": oa, "oa_std": oa_sd, "aa_mean": aa, "aa_std": aa_sd,
                                              "per_class_mean": [m for m, _ in pcs],
                                              "per_class_std": [s for _, s in pcs], "n_seeds": len(runs)}

    def records(self) -> list[dict]:
        """Tidy rows, one per (arm, model, seed, class) plus class ``"overall"`` and ``"average"``: ``arm``,
        ``model``, ``seed``, ``class``, ``accuracy`` (0–1)."""
        rows = []
        for r in self.runs:
            base = {"arm": r["arm"], "model": r["model"], "seed": r["seed"]}
            rows.append({**base, "class": "overall", "accuracy": r["overall"]})
            rows.append({**base, "class": "average", "accuracy": r["average"]})
            rows.extend({**base, "class": c, "accuracy": a} for c, a in zip(self.class_names, r["per_class"]))
        return rows


def _as_labelled(data, what: str, class_names: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(x float32 (n, C, H, W), y int64 (n,), class names or None) from LabelledPatches or an (x, y) pair."""
    if isinstance(data, LabelledPatches):
        return data.x, data.y, list(data.class_names)
    try:
        x, y = data
    except (TypeError, ValueError):
        raise UBFInputError(what, "expected LabelledPatches or an (x, y) pair") from None
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    if x.ndim != 4 or y.shape != (len(x),):
        raise UBFInputError(what, f"expected x (n, C, H, W) and y (n,), got shapes {x.shape} and {y.shape}")
    return x, y, class_names


def _align_classes(y: np.ndarray, names: list[str] | None, target: list[str], what: str) -> np.ndarray:
    if names is None or names == target:
        return y
    lookup = {c: i for i, c in enumerate(target)}
    missing = [c for c in names if c not in lookup]
    if missing:
        raise UBFInputError(what, f"class {missing[0]!r} is not a class of the real training set "
                                  f"({', '.join(target)})")
    return np.array([lookup[c] for c in names], dtype=np.int64)[y] if len(y) else y


def run_experiment(real_train: LabelledPatches | tuple, real_test: LabelledPatches | tuple,
                   synthetic: LabelledPatches | tuple | None = None, arms: Sequence[str] = ARMS,
                   models: Sequence[str] = ("cnn", "spectral_resnet"), seeds: Sequence[int] = (0, 1, 2, 3, 4),
                   settings: ExperimentSettings | Mapping | None = None, class_names: Sequence[str] | None = None,
                   progress: bool | Callable[[dict], None] | None = None) -> ExperimentResult:
    """Train every model under every arm for every seed and score it on the test set.

    real_train, real_test: :class:`LabelledPatches` or (x (n, C, H, W) float32 reflectance, y (n,) int class) pairs
    on the same wavelength grid; synthetic: the same for class-conditional synthetic HSIs (needed by the
    ``synthetic`` arm; classes matched by name when both sides are LabelledPatches). arms: subset of :data:`ARMS`;
    models: classifier names (:data:`~ubf_core.classification.models.CLASSIFIERS`); seeds: e.g. [0, 1, 2, 3, 4];
    settings: :class:`ExperimentSettings` or its mapping; class_names: the K class names for (x, y) inputs (default:
    from real_train when it is LabelledPatches, else ``class_0…``). progress: None/False silent, True a progress bar over runs, or ``progress(record)`` after each
    run. Returns an :class:`ExperimentResult` (summary filled in).
    """
    settings = settings if isinstance(settings, ExperimentSettings) else ExperimentSettings.from_params(settings)
    arms, models, seeds = [str(a) for a in arms], [str(m).strip().lower() for m in models], [int(s) for s in seeds]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise UBFInputError("classification arms", f"unknown arm {bad[0]!r}; known: {', '.join(ARMS)}" if bad
                            else "no arm given")
    bad = [m for m in models if m not in CLASSIFIERS]
    if bad or not models:
        raise UBFInputError("classification models", f"unknown model {bad[0]!r}; known: {', '.join(CLASSIFIERS)}"
                            if bad else "no model given")
    if not seeds or len(set(seeds)) != len(seeds):
        raise UBFInputError("classification seeds", f"need a non-empty list of distinct seeds, got {seeds}")

    x_tr, y_tr, names = _as_labelled(real_train, "real training set", None)
    x_te, y_te, te_names = _as_labelled(real_test, "real test set", None)
    if class_names is not None and names is not None and list(map(str, class_names)) != names:
        raise UBFInputError("class names", f"given {', '.join(map(str, class_names))} but the real training set has "
                                           f"{', '.join(names)}; pass display names to results_table_markdown")
    names = [str(c) for c in class_names] if class_names is not None else names
    if names is None:
        names = [f"class_{k}" for k in range(int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1)]
    n_classes = len(names)
    y_te = _align_classes(y_te, te_names, names, "real test set")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise UBFInputError("real test set", f"patches of shape {x_te.shape[1:]} but training patches are "
                                             f"{x_tr.shape[1:]} (C, H, W)")
    for what, y in (("real training set", y_tr), ("real test set", y_te)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise UBFInputError(what, f"labels outside [0, {n_classes}) for classes {', '.join(names)}")
    if len(x_tr) == 0 or len(x_te) == 0:
        raise UBFInputError("classification data", f"{len(x_tr)} training and {len(x_te)} test patches; need both")
    real_counts = np.bincount(y_tr, minlength=n_classes)

    x_syn = y_syn = None
    if "synthetic" in arms:
        if synthetic is None:
            raise UBFInputError("synthetic set", "the synthetic arm needs a synthetic set (or leave out that arm)")
        x_syn, y_syn, syn_names = _as_labelled(synthetic, "synthetic set", None)
        y_syn = _align_classes(y_syn, syn_names, names, "synthetic set")
        if x_syn.shape[1:] != x_tr.shape[1:]:
            raise UBFInputError("synthetic set", f"patches of shape {x_syn.shape[1:]} but real patches are "
                                                 f"{x_tr.shape[1:]} (C, H, W)")
        if len(y_syn) and (y_syn.min() < 0 or y_syn.max() >= n_classes):
            raise UBFInputError("synthetic set", f"labels outside [0, {n_classes})")

    result = ExperimentResult(class_names=names, arms=arms, models=models, seeds=seeds,
                              test_counts=np.bincount(y_te, minlength=n_classes).tolist(), settings=asdict(settings))
    total = len(arms) * len(models) * len(seeds)
    bar = tqdm(total=total, desc="classification runs", unit="run", disable=progress is not True)
    for seed in seeds:
        for arm in arms:
            x, y = x_tr, y_tr
            if arm == "synthetic":
                if settings.n_per_class is None:
                    idx = np.arange(len(y_syn))
                else:
                    counts = class_balanced_counts(real_counts.tolist(), settings.n_per_class, settings.synthetic_mode)
                    idx = select_synthetic(y_syn, counts, seed, names)
                x, y = np.concatenate([x_tr, x_syn[idx]]), np.concatenate([y_tr, y_syn[idx]])
            for name in models:
                t0 = time.perf_counter()
                model = make_classifier(name, x.shape[1], n_classes, seed=seed,
                                        **settings.model_options.get(name, {}))
                train_classifier(model, x, y, epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                 seed=seed, augment=(settings.augment_options or True) if arm == "augment" else False,
                                 device=settings.device, balance=settings.balance,
                                 weight_decay=settings.weight_decay, n_classes=n_classes)
                scores = evaluate(model, x_te, y_te, n_classes, device=settings.device)
                record = {"arm": arm, "model": name, "seed": seed, "overall": scores["overall"],
                          "per_class": scores["per_class"], "average": scores["average"], "n_train": int(len(y)),
                          "train_counts": np.bincount(y, minlength=n_classes).tolist(),
                          "seconds": time.perf_counter() - t0}
                result.runs.append(record)
                bar.update(1)
                if callable(progress):
                    progress(record)
    bar.close()
    result.summarise()
    return result


# ------------------------------------------------------------------------------------------------------ reporting

def _pct(mean: float, std: float, digits: int) -> str:
    if mean is None or math.isnan(mean):
        return "–"
    return f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}"


def results_table_markdown(result: ExperimentResult, class_names: Sequence[str] | None = None,
                           paper_reference: str | None = PAPER_REFERENCE, digits: int = 1) -> str:
    """A markdown table ``arm | model | OA mean ± std | AA mean ± std | <class> …`` (percent, over seeds).

    class_names: column titles for the K classes (default: the result's). Under the table: the arm legend, the
    seeds and test-set sizes, and — unless ``paper_reference`` is None — a note quoting the papers' figures,
    marked as obtained on another data set.
    """
    names = list(class_names) if class_names is not None else result.class_names
    if len(names) != len(result.class_names):
        raise ValueError(f"{len(names)} class names for {len(result.class_names)} classes")
    head = ["arm", "model", "OA mean ± std (%)", "AA mean ± std (%)", *[f"{c} (%)" for c in names]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for arm in result.arms:
        for model in result.models:
            s = result.summary.get((arm, model))
            if s is None:
                continue
            cells = [arm, model, _pct(s["oa_mean"], s["oa_std"], digits), _pct(s["aa_mean"], s["aa_std"], digits),
                     *[_pct(m, sd, digits) for m, sd in zip(s["per_class_mean"], s["per_class_std"])]]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Arms: " + "; ".join(f"`{a}` = {ARM_LABELS[a]}" for a in result.arms) + ".")
    tests = ", ".join(f"{c} {n}" for c, n in zip(names, result.test_counts))
    plural = "s" if len(result.seeds) != 1 else ""
    lines.append(f"Mean ± sample std over {len(result.seeds)} seed{plural} ({', '.join(map(str, result.seeds))}); "
                 f"OA = overall accuracy, AA = mean per-class accuracy; held-out test patches: {tests}.")
    if paper_reference:
        lines.append("")
        lines.append(f"> **Paper's figures, on another data set (for context only, not comparable):** "
                     f"{paper_reference}.")
    return "\n".join(lines) + "\n"


def results_metrics(result: ExperimentResult) -> dict[str, float | None]:
    """A flat {name: value} dict for a DVC metrics JSON; accuracies as fractions 0–1, NaN → None.

    Keys: ``<model>/<arm>/oa_mean``, ``…/oa_std``, ``…/aa_mean``, ``…/aa_std`` and
    ``<model>/<arm>/per_class/<class>_mean`` / ``_std``.
    """
    def clean(v: float) -> float | None:
        return None if v is None or math.isnan(v) else round(float(v), 6)

    out: dict[str, float | None] = {}
    for (arm, model), s in result.summary.items():
        key = f"{model}/{arm}"
        for stat in ("oa_mean", "oa_std", "aa_mean", "aa_std"):
            out[f"{key}/{stat}"] = clean(s[stat])
        for c, m, sd in zip(result.class_names, s["per_class_mean"], s["per_class_std"]):
            out[f"{key}/per_class/{c}_mean"] = clean(m)
            out[f"{key}/per_class/{c}_std"] = clean(sd)
    return out
