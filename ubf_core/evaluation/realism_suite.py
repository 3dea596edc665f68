"""The realism table of an evaluation run: every candidate set judged with :mod:`ubf_core.evaluation.realism`
against held-out real data, next to the real-vs-real floor and the negative controls, as one dictionary (the
``realism`` key of reports/metrics.json).

* ``abundance``: each candidate's abundance maps (n, k, H, W) against maps of held-out real RGB images of the same
  classes, one for one with the candidates' labels (:func:`matching_draw`): C2ST, spatial statistics and
  memorisation against the generator's training maps. ``real_vs_real``: as many training maps of the same classes
  against the same held-out maps (the floor). ``control: …``: known-bad sets made from that floor set
  (:func:`~ubf_core.evaluation.realism.negative_controls`), which every metric must flag on the run's data.
* ``hsi``: each candidate's cubes (n, C, H, W) against held-out real HSI patches (C2ST, spatial statistics); floor:
  real training patches.
* ``class_fidelity`` (class-conditional candidates): CAS per class and TSTR
  (:func:`~ubf_core.evaluation.realism.class_fidelity`), with the real classifier's accuracy on held-out maps.
* ``directions``: how to read each metric.
"""

from __future__ import annotations

import numpy as np

from ubf_core.errors import UBFInputError
from ubf_core.evaluation.realism import class_fidelity, fit_map_classifier, negative_controls, realism_report
from ubf_core.evaluation.suite import Candidate

__all__ = ["realism_table", "matching_draw", "one_per_class", "headline_figures", "DIRECTIONS"]

DIRECTIONS = {"c2st": "0.5 is ideal: a classifier cannot tell (closer to 0.5 is better)",
              "psd_distance": "lower is better", "gradient_distance": "lower is better",
              "purity_distance": "lower is better",
              "nn_ratio": "about 1 is ideal; near 0 = copies of the training set",
              "copy_share": "lower is better", "cas": "higher is better", "tstr": "higher is better"}


def matching_draw(labels, want: list, rng: np.random.Generator, where: str) -> np.ndarray:
    """Indices into ``labels`` (n,) drawn without replacement so that their classes match ``want`` (m,) one for one
    (a None in ``want`` takes any map). Too few maps of a class is a UBFInputError naming the class and minimum."""
    labels = np.array([str(v) for v in labels])
    picked = np.empty(len(want), dtype=int)
    pool = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in sorted(set(labels))}
    anything = list(rng.permutation(len(labels)))
    used: set[int] = set()
    for j, c in enumerate(want):
        source = pool.get(str(c), []) if c is not None else anything
        while source and source[0] in used:
            source.pop(0)
        if not source:
            need = sum(1 for w in want if w == c)
            raise UBFInputError(where, f"too few real maps of class {c!r}: the comparison needs {need} "
                                       f"(as many as the synthetic store holds)")
        picked[j] = source.pop(0)
        used.add(int(picked[j]))
    return picked


def one_per_class(labels: list, columns: int = 8) -> list[int]:
    """Up to ``columns`` indices taking the classes in turn (first map of each class, then the second, …)."""
    order: dict = {}
    for j, c in enumerate(labels):
        order.setdefault(c, []).append(j)
    picked = []
    for rank in range(max(len(v) for v in order.values())):
        picked += [v[rank] for v in order.values() if rank < len(v)]
    return picked[:columns]


def realism_table(candidates: dict[str, Candidate], *, held_maps: np.ndarray, held_labels, train_maps: np.ndarray,
                  train_labels: list, heldout_cubes: np.ndarray, train_cubes: np.ndarray, want: list, seed: int = 0,
                  c2st_epochs: int = 30, classifier_epochs: int = 30) -> tuple[dict, np.ndarray]:
    """The realism table (see the module docstring) and the held-out real maps (n, k, H, W) the abundance metrics
    compared with (the classes of ``want``, in its order).

    candidates: name → Candidate (cubes (n, C, H, W) reflectance, abundances (n, k, H, W) or None), n = len(want);
    held_maps, held_labels: maps (m, k, H, W) and classes (m,) of held-out real RGB images; train_maps,
    train_labels: the generator's training maps and their classes (None for a map of no class); heldout_cubes,
    train_cubes: real HSI patches not seen / seen by any model; want: the candidates' class labels (None: none).
    """
    rng = np.random.default_rng(seed)
    n = len(want)
    labelled = [j for j, lab in enumerate(train_labels) if lab is not None]
    real_labels = [train_labels[j] for j in labelled]
    real_target = held_maps[matching_draw(held_labels, want, rng, "held-out RGB maps")]
    floor_maps = train_maps[labelled][matching_draw(real_labels, want, rng, "generator training maps")]

    def report(real, maps, training=None):
        return realism_report(real, maps, training=training, seed=seed, c2st_epochs=c2st_epochs)

    abundance = {"real_vs_real": report(real_target, floor_maps)}
    for name, cand in candidates.items():
        if cand.abundances is not None:
            abundance[name] = report(real_target, cand.abundances, train_maps)
    for name, bad in negative_controls(floor_maps, seed).items():
        abundance[f"control: {name}"] = report(real_target, bad, train_maps)
    m = min(n, len(heldout_cubes), len(train_cubes))
    pick = (lambda x: x[np.sort(rng.choice(len(x), m, replace=False))])
    hsi_target = pick(heldout_cubes)
    hsi = {"real_vs_real": report(hsi_target, pick(train_cubes))}
    for name, cand in candidates.items():
        hsi[name] = report(hsi_target, pick(cand.cubes))
    result = {"abundance": abundance, "hsi": hsi}
    classes = sorted({str(c) for c in real_labels})
    if all(w is not None for w in want) and len(classes) >= 2:
        fidelity: dict = {"chance": 1.0 / len(classes), "classes": classes}
        on_real = fit_map_classifier(train_maps[labelled], real_labels, classes, seed=seed, epochs=classifier_epochs)
        for name, cand in candidates.items():
            if cand.abundances is None:
                continue
            cf = class_fidelity(train_maps[labelled], real_labels, held_maps, held_labels, cand.abundances, want,
                                seed=seed, epochs=classifier_epochs, real_classifier=on_real)
            fidelity["real_floor"] = {"accuracy": cf["real_floor"], "per_class": cf["real_floor_per_class"]}
            fidelity[name] = {"cas": cf["cas"], "cas_per_class": cf["cas_per_class"], "tstr": cf["tstr"]}
        result["class_fidelity"] = fidelity
    result["directions"] = DIRECTIONS
    return result, real_target


def headline_figures(table: dict, candidate: str) -> dict[str, float]:
    """The few figures that sum up ``candidate`` in a realism table (:func:`realism_table`'s, or the ``realism`` key
    of reports/metrics.json), by name:

    * ``c2st``, ``c2st_stderr``: classifier two-sample test accuracy on abundance maps (0.5 ideal) and its standard
      error;
    * ``psd_ratio``: the abundance maps' power-spectrum distance over the real-vs-real floor's (about 1 ideal);
    * ``hsi_c2st``, ``hsi_psd_ratio``: the same on HSI cubes;
    * ``cas``, ``tstr``: class fidelity accuracies (0–1, higher is better; class-conditional runs only).

    Figures the table lacks, and non-finite ones (a zero floor), are left out. A candidate with no row in the
    table is a UBFInputError."""
    names = sorted(set(table.get("abundance") or {}) | set(table.get("hsi") or {}))
    if candidate not in names:
        raise UBFInputError("realism table", f"no row for {candidate!r} (rows: {names})")
    out: dict[str, float] = {}
    for kind, prefix in (("abundance", ""), ("hsi", "hsi_")):
        rows = table.get(kind) or {}
        row, floor = rows.get(candidate) or {}, rows.get("real_vs_real") or {}
        for key in ("c2st", "c2st_stderr") if kind == "abundance" else ("c2st",):
            if key in row:
                out[prefix + key] = float(row[key])
        if "psd_distance" in row and floor.get("psd_distance"):
            out[prefix + "psd_ratio"] = float(row["psd_distance"]) / float(floor["psd_distance"])
    fidelity = (table.get("class_fidelity") or {}).get(candidate) or {}
    out |= {key: float(fidelity[key]) for key in ("cas", "tstr") if isinstance(fidelity.get(key), (int, float))}
    return {k: v for k, v in out.items() if np.isfinite(v)}
