"""Prefect tasks of the classify stage: the papers' downstream experiment — do class-conditional synthetic HSIs
help a classifier trained on scarce, imbalanced real patches, tested on whole held-out scenes?"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.params import dataset_path, relative, resolve, write_json
from tasks.registry import track_stage
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.devices import pick_device
from ubf_core.errors import UBFInputError


def real_sets(params: dict):
    """(train, test) LabelledPatches from the HSI store: the scenes named in ``classification.scene_classes`` (or,
    when null, every scene whose id follows <data set>-<class>-<number>), split by whole scene
    (``classification.test_scenes``, or one per class by seed); the training side cut to
    ``classification.real_per_class`` patches per class (scarce and imbalanced, drawn by seed)."""
    from ubf_core.classification import labelled_from_scenes, pick_test_scenes, scene_class, split_by_scene

    c = section(params, "classification")
    seed = int(params["seed"])
    path = dataset_path(params, "hsi")
    ds = open_store(path)
    sources = np.array([str(s) for s in ds["source"].values])
    mapping = c.get("scene_classes")
    if mapping:
        labelled = np.isin(sources, list(mapping))
    else:
        def follows_rule(scene: str) -> bool:
            try:
                scene_class(scene)
                return True
            except UBFInputError:
                return False
        labelled = np.array([follows_rule(s) for s in sources])
    if not labelled.any():
        raise UBFInputError(path, "no scene with a class: name them in classification.scene_classes")
    idx = np.flatnonzero(labelled)
    sources = sources[idx]
    x = ds["reflectance"].isel(patch=idx).values.astype(np.float32)
    data = labelled_from_scenes(x, sources, mapping, wavelength=ds["wavelength"].values)
    test_scenes = c.get("test_scenes") or pick_test_scenes(sources, seed, mapping)
    train_idx, test_idx = split_by_scene(sources, test_scenes)
    train, test = data.subset(train_idx), data.subset(test_idx)
    limits = dict(c.get("real_per_class") or {})
    unknown = sorted(set(limits) - set(data.class_names))
    if unknown:
        raise UBFInputError("params.yaml", f"classification.real_per_class names {unknown}; the classes are "
                                           f"{data.class_names}")
    rng = np.random.default_rng(seed)
    keep = []
    for k, name in enumerate(data.class_names):
        pool = np.flatnonzero(train.y == k)
        n = min(int(limits.get(name, len(pool))), len(pool))
        keep.append(np.sort(rng.choice(pool, n, replace=False)))
    train = train.subset(np.sort(np.concatenate(keep)))
    return train, test, sorted(map(str, test_scenes))


@task(name="labelled-real-sets", cache_policy=NO_CACHE)
def labelled_real_sets(params: dict):
    """:func:`real_sets` as the stage's first step: (train, test, test scene names)."""
    return real_sets(params)


def synthesis_plan(params: dict, train) -> dict:
    """How many class-conditional samples of each RGB class the synthetic arm needs: every HSI class of the real
    training set ``train`` (LabelledPatches) topped up to ``classification.n_per_class`` (or N each,
    ``synthetic_mode: fixed``), split over the RGB classes mapped to it in ``classification.rgb_to_hsi``.
    Returns {"rgb_counts", "feeds", "hsi_counts"}."""
    from ubf_core.classification import class_balanced_counts, map_rgb_classes, rgb_sample_counts

    c = section(params, "classification")
    rgb = open_store(dataset_path(params, "abundance_rgb"))
    rgb_classes = [str(v) for v in rgb.attrs.get("classes", [])]
    feeds = map_rgb_classes(dict(c.get("rgb_to_hsi") or {}), rgb_classes, train.class_names)
    hsi_counts = class_balanced_counts(train.class_counts(), int(c["n_per_class"]), str(c["synthetic_mode"]))
    return {"rgb_counts": rgb_sample_counts(hsi_counts, feeds), "feeds": feeds, "hsi_counts": hsi_counts}


# where the flow's synthesize task writes the classification's pool and its report (catalogue names)
SYNTHESIS_DATASETS = {"dataset": "synthetic_classify", "report_dataset": "classification_synthesis_report"}


def synthesis_params(params: dict, plan: dict) -> dict:
    """params for the synthesize task that write the classification's synthetic pool: N per RGB class from the
    plan, no file export. The flow writes it into catalogue dataset ``synthetic_classify`` with its own report
    (``classification_synthesis_report``): :data:`SYNTHESIS_DATASETS`."""
    out = copy.deepcopy(params)
    counts = {k: v for k, v in plan["rgb_counts"].items() if v > 0}
    s = out["synthesis"]
    s.update({"n": max(1, sum(counts.values())), "class_mix": counts or None, "replace": True,
              "export": {"n": 0}})
    return out


@task(name="synthetic-pool", cache_policy=NO_CACHE)
def synthetic_pool(params: dict, plan: dict, train):
    """The synthetic arm's patches: catalogue ``synthetic_classify`` (on ``train``'s wavelength grid, else a
    UBFInputError naming it), labelled with the HSI classes their RGB classes feed (``plan["feeds"]``); samples of
    RGB classes that feed none are left out. Returns (LabelledPatches, the store's attrs)."""
    from ubf_core.classification import LabelledPatches, hsi_labels

    store = dataset_path(params, "synthetic_classify")
    syn = open_store(store)
    if not np.allclose(syn["wavelength"].values, train.wavelength, atol=0.01):
        raise UBFInputError(store, "wavelength grid differs from the HSI store's")
    y, keep = hsi_labels([str(v) for v in syn["label"].values], plan["feeds"], train.class_names)
    patches = LabelledPatches(syn["reflectance"].values[keep].astype(np.float32), y, train.class_names,
                              np.array([f"synthetic:{v}" for v in syn["label"].values[keep]]), train.wavelength)
    return patches, dict(syn.attrs)


@task(name="classification-experiment", cache_policy=NO_CACHE)
def classification_experiment(params: dict, train, test, synthetic):
    """Run the experiment: arms real / augment / synthetic × models × seeds of ``classification``, trained on
    ``train`` (+ ``synthetic``), tested on ``test`` (all LabelledPatches). Returns the ExperimentResult."""
    from ubf_core.classification import ExperimentSettings, run_experiment

    log = get_run_logger()
    c = section(params, "classification")
    train_options = dict(c["train"])
    train_options["device"] = pick_device(train_options["device"], "classification.train.device")
    settings = ExperimentSettings.from_params({**train_options, "n_per_class": int(c["n_per_class"]),
                                               "synthetic_mode": str(c["synthetic_mode"])})
    log.info("classify: %d real training patches %s, %d test patches, %d synthetic",
             len(train), train.class_counts(), len(test), len(synthetic))
    return run_experiment(train, test, synthetic, arms=c["arms"], models=c["models"],
                          seeds=c["seeds"], settings=settings, progress=True)


@task(name="record-classification", cache_policy=NO_CACHE)
def record_classification(params: dict, result, train, test, test_scenes: list[str], synthetic,
                          synthetic_attrs: dict) -> dict:
    """Write the table (catalogue ``classification_table``, markdown) and the DVC metric JSON
    (``classification_metrics``), and log the stage's MLflow run. Returns what the JSON holds."""
    from ubf_core.classification import results_metrics, results_table_markdown

    log = get_run_logger()
    c = section(params, "classification")
    store = dataset_path(params, "synthetic_classify")
    table = results_table_markdown(result)
    metrics = results_metrics(result)
    header = (f"# Downstream classification\n\nReal training patches per class: {train.class_counts()} (scenes "
              f"{', '.join(sorted(set(map(str, train.sources))))}); test: {test.class_counts()} from the held-out "
              f"scenes {', '.join(test_scenes)}; synthetic pool {len(synthetic)} samples from {relative(params, store)}"
              f" (generator v{synthetic_attrs.get('generator_version')}, "
              f"unmixing v{synthetic_attrs.get('unmixing_version')}).\n\n")
    table_path = dataset_path(params, "classification_table")
    table_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = table_path.with_name(f".{table_path.name}.tmp")
    tmp.write_text(header + table + "\n")
    tmp.replace(table_path)
    p_hash = params_hash(c, params.get("seed"))
    with tempfile.TemporaryDirectory() as tmp_dir:
        records = Path(tmp_dir) / "runs.json"
        write_json(records, {"runs": result.records()})
        run_id = track_stage("classify", resolve(params, "."), p_hash,
                             params={"test_scenes": ",".join(test_scenes), "n_per_class": c["n_per_class"],
                                     "synthetic_mode": c["synthetic_mode"], "epochs": c["train"]["epochs"],
                                     "params_hash": p_hash},
                             metrics={k.replace("/", "."): v for k, v in metrics.items() if v is not None},
                             files=[table_path, records])
    report = {"test_scenes": test_scenes, "real_train_counts": train.class_counts(),
              "test_counts": test.class_counts(), "n_synthetic": len(synthetic), "run_id": run_id,
              "summary": metrics}
    write_json(dataset_path(params, "classification_metrics"), report)
    log.info("classification table → %s", table_path)
    return report
