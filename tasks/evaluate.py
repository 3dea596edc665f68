"""Prefect tasks of the evaluate stage, one step each: load and check the inputs, build the candidates (baselines
trained here), judge them, draw the figures, record the results (JSON, MLflow, the generator version's tags)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.generator import generator_training_data, heldout_rgb_maps, load_endmembers
from tasks.params import dataset_path, relative, resolve, write_json
from tasks.registry import configure_tracking, resolve_model_version, tag_evaluation, track_stage
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.devices import pick_device
from ubf_core.errors import UBFInputError
from ubf_core.evaluation.suite import check_grid


def real_split(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The HSI store's patches split by scene: (train cubes (n, C, H, W), their source names, held-out cubes,
    wavelength (C,) nm). Held out: the scenes in ``heldout_sources`` (no generator saw them)."""
    path = dataset_path(params, "hsi")
    ds = open_store(path)
    heldout = [str(s) for s in params.get("heldout_sources") or []]
    sources = np.array([str(v) for v in ds["source"].values])
    unknown = sorted(set(heldout) - set(sources))
    if unknown:
        raise UBFInputError("params.yaml", f"heldout_sources {unknown} are not scenes of {path} "
                                           f"(it holds {sorted(set(sources))})")
    out = np.isin(sources, heldout)
    if out.all() or not out.any():
        raise UBFInputError("params.yaml", "heldout_sources must name some, not all, scenes of the HSI store")
    cubes = ds["reflectance"].values.astype(np.float32)
    return cubes[~out], sources[~out], cubes[out], ds["wavelength"].values


def baseline_samples(params: dict, name: str, maps: np.ndarray, labels: list, classes: list[str] | None,
                     want: list, endmembers: np.ndarray, options: dict, train: dict,
                     brightness: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train generator ``name`` here on the generator's training maps (and their brightness s (N, H, W), when the
    registered generator learned it: the baseline then generates s too and its cubes are mixed with it) and draw
    ``len(want)`` samples with the synthetic store's labels: (cubes (n, C, H, W), abundances (n, k, H, W))."""
    from ubf_core.generators import TrainSettings, make_generator
    from ubf_core.synthesis.mixing import mix

    seed = int(params["seed"])
    gen = make_generator(name, maps.shape[1], tuple(maps.shape[2:]), classes,
                         **{**options, "brightness": brightness is not None})
    gen.to(pick_device(train.get("device", "auto"), f"evaluation.generators.{name}.train.device"))
    gen.fit(maps, labels if classes else None, TrainSettings.from_params(train), brightness=brightness, seed=seed)
    sampler = {}
    if name == "ddpm":
        from ubf_core.generators.ddpm import FAST_SAMPLER, FAST_SAMPLER_DEFAULT_STEPS

        sampler = {"sampler": FAST_SAMPLER, "steps": FAST_SAMPLER_DEFAULT_STEPS}
    a, s = gen.sample_with_brightness(len(want), seed=seed, labels=want if classes else None,
                                      micro_batch=int(section(params, "synthesis")["micro_batch"]), **sampler)
    return mix(a, endmembers, brightness=s), a


def realism(params: dict, candidates: dict, train_maps: np.ndarray, train_labels: list, heldout_cubes: np.ndarray,
            train_cubes: np.ndarray, want: list) -> tuple[dict, np.ndarray]:
    """:func:`ubf_core.evaluation.realism_suite.realism_table` with the held-out RGB maps and the settings of
    params (``heldout_rgb_per_class``, ``evaluation.realism``, ``seed``)."""
    from ubf_core.evaluation.realism_suite import realism_table

    r = section(params, "evaluation")["realism"]
    held_maps, held_labels = heldout_rgb_maps(params)
    if len(held_maps) == 0:
        raise UBFInputError("heldout_rgb_per_class", "no held-out RGB images: the realism metrics need some (≥ 1)")
    return realism_table(candidates, held_maps=held_maps, held_labels=held_labels, train_maps=train_maps,
                         train_labels=train_labels, heldout_cubes=heldout_cubes, train_cubes=train_cubes, want=want,
                         seed=int(params["seed"]), c2st_epochs=int(r["c2st_epochs"]),
                         classifier_epochs=int(r["classifier_epochs"]))


def heldout_scene_names(params: dict) -> list[str]:
    """The source scene of every held-out HSI patch, in the order of :func:`real_split`'s held-out cubes."""
    ds = open_store(dataset_path(params, "hsi"))
    sources = [str(v) for v in ds["source"].values]
    heldout = {str(s) for s in params.get("heldout_sources") or []}
    return [s for s in sources if s in heldout]


def realism_figures(folder: Path, wl: np.ndarray, endmembers: np.ndarray, heldout: np.ndarray,
                    heldout_sources: list[str], real_maps: np.ndarray, want: list, candidates: dict) -> None:
    """realism_samples.png (HSIs rendered with one colour stretch: held-out real scenes, held-out RGB images'
    maps mixed through the endmembers, each generator; one column per class) and realism_abundances.png (the
    abundance maps, real and generated, in false colour)."""
    from ubf_core.evaluation.figures import abundance_rows, labelled_rows
    from ubf_core.evaluation.realism_suite import one_per_class
    from ubf_core.synthesis.mixing import mix

    scenes = one_per_class(heldout_sources)
    cols = one_per_class([str(w) for w in want])
    captions = [str(want[j]) for j in cols]
    cube_rows = {"real HSI, held-out scenes": (heldout[scenes], [heldout_sources[j] for j in scenes]),
                 "real RGB → Ê·A": (mix(real_maps[cols], endmembers), captions)}
    map_rows = {"real RGB (held out)": (real_maps[cols], captions)}
    for name, cand in candidates.items():
        tiles = captions if name != "gmm" else ["no class"] * len(cols)   # the pixel GMM knows no classes
        cube_rows[name] = (cand.cubes[cols], tiles)
        if cand.abundances is not None:
            map_rows[name] = (cand.abundances[cols], tiles)
    labelled_rows(cube_rows, wl, folder / "realism_samples.png", n=len(cols))
    abundance_rows(map_rows, folder / "realism_abundances.png", n=len(cols))


def judged_generator(params: dict, attrs: dict) -> tuple[str, int, str]:
    """(registered model name, version, how it was found) of the generator behind the synthetic store, checked in
    the registry (tracking configured): the store's provenance ``generator_model`` / ``generator_version``, which
    synthesize writes from the version it downloaded. A store without them (written before they were recorded)
    falls back to the version ``generator.model_uri`` (the alias synthesize uses) points to now, which may have
    moved since; the third item says which. A version missing from the registry is a UBFInputError naming it."""
    name, version = attrs.get("generator_model"), attrs.get("generator_version")
    if name and version not in (None, ""):
        found = resolve_model_version(f"models:/{name}/{int(version)}")
        return found.name, int(found.version), "the synthetic store's provenance"
    uri = str(section(params, "generator")["model_uri"])
    found = resolve_model_version(uri)
    return found.name, int(found.version), f"{uri} now (the synthetic store does not record its generator)"


@dataclass
class EvaluationInputs:
    """What the evaluate stage judges and against what, read once (:func:`load_evaluation_inputs`).

    Cubes are reflectance (n, C, H, W) on ``wavelength`` (C,) nm; maps are abundances (n, k, H, W)."""
    train_real: np.ndarray            # real training patches (cubes)
    train_sources: np.ndarray         # (n,) their scene names
    heldout: np.ndarray               # held-out real patches (cubes)
    heldout_sources: list[str]        # their scene names, in order
    wavelength: np.ndarray            # (C,) nm
    synthetic: np.ndarray             # the synthetic store's cubes
    synthetic_maps: np.ndarray        # and their abundance maps
    want: list                        # the synthetic samples' class labels (None: unconditional)
    store_attrs: dict                 # the synthetic store's attrs (provenance)
    judged: tuple[str, int, str]      # the registered generator behind the store (:func:`judged_generator`)
    endmembers: np.ndarray            # (C, k) reflectance, the unmixing model's
    maps: np.ndarray                  # the generator's training maps
    labels: list                      # their labels
    classes: list[str] | None         # the class names (None: unconditional)
    brightness: np.ndarray | None     # the training maps' brightness s (N, H, W) when the generator learned it
    synthetic_brightness: np.ndarray | None   # the synthetic store's generated s (n, H, W), when it has one


@task(name="load-evaluation-inputs", cache_policy=NO_CACHE)
def load_evaluation_inputs(params: dict) -> EvaluationInputs:
    """Read and check everything evaluate needs, before any work: the HSI store split by scene, the synthetic store
    (non-empty, complete, on the HSI grid), its generator in the registry, the endmembers (same grid) and the
    generator's training maps. Every problem is a one-line UBFInputError naming the store or model."""
    train_real, train_sources, heldout, wl = real_split(params)
    syn_path = dataset_path(params, "synthetic")
    syn = open_store(syn_path)
    if syn.sizes.get("sample", 0) == 0:
        raise UBFInputError(syn_path, "the synthetic store holds no samples")
    if not bool(syn.attrs.get("complete", False)):
        raise UBFInputError(syn_path, "the synthetic store is incomplete: rerun synthesize to finish it")
    check_grid(str(syn_path), syn["wavelength"].values, wl)
    configure_tracking(resolve(params, "."))
    judged = judged_generator(params, dict(syn.attrs))      # checked before any work: its tags get the figures
    E, e_wl, _ = load_endmembers(params)
    check_grid(str(dataset_path(params, "endmembers")), e_wl, wl)
    data = generator_training_data(params)
    return EvaluationInputs(train_real, train_sources, heldout, heldout_scene_names(params), wl,
                            syn["reflectance"].values.astype(np.float32), syn["abundance"].values.astype(np.float32),
                            [str(v) or None for v in syn["label"].values], dict(syn.attrs), judged, E, data.maps,
                            data.labels, data.classes, data.brightness,
                            syn["brightness"].values.astype(np.float32) if "brightness" in syn else None)


@task(name="evaluation-candidates", cache_policy=NO_CACHE)
def evaluation_candidates(params: dict, inputs: EvaluationInputs) -> tuple[dict, dict]:
    """The sets judged beside the synthetic store, each as many as it holds: a sample of the real training patches
    (reference), every other generator of ``evaluation.generators`` trained here on the same maps and labels, and
    the pixel GMM. Returns ({name: Candidate}, {name: role})."""
    from ubf_core.evaluation.suite import Candidate
    from ubf_core.generators.pixel_gmm import PixelGMM
    from ubf_core.unmixing.baseline import fcls_maps

    log = get_run_logger()
    ev, seed = section(params, "evaluation"), int(params["seed"])
    registered = str(section(params, "generator")["name"])
    n = len(inputs.synthetic)
    rng = np.random.default_rng(seed)
    reference = inputs.train_real[np.sort(rng.choice(len(inputs.train_real), min(len(inputs.train_real), n),
                                                     replace=False))]
    candidates = {"real_train": Candidate(reference), registered: Candidate(inputs.synthetic, inputs.synthetic_maps)}
    attrs = inputs.store_attrs
    roles = {"real_train": "reference: the real training patches themselves",
             registered: f"the synthetic store ({attrs.get('generator_model')} v{attrs.get('generator_version')}, "
                         f"registered)"}
    for name, opts in ev["generators"].items():
        if name == registered:
            continue
        opts = dict(opts or {})
        train = dict(opts.pop("train", {}) or {})
        log.info("evaluate: training the %s baseline on %d maps (%s steps)", name, len(inputs.maps), train.get("steps"))
        cubes, a = baseline_samples(params, name, inputs.maps, inputs.labels, inputs.classes, inputs.want,
                                    inputs.endmembers, opts, train, inputs.brightness)
        candidates[name] = Candidate(cubes, a)
        roles[name] = f"baseline: {name} trained in this stage on the same maps, same labels"
    gm = ev["gmm"]
    gmm = PixelGMM(int(gm["n_components"]), str(gm["covariance"]), int(gm["max_pixels"]), seed).fit(inputs.train_real)
    gmm_cubes = gmm.sample(n, int(inputs.synthetic.shape[-1]), seed=seed)
    candidates["gmm"] = Candidate(gmm_cubes, fcls_maps(gmm_cubes, inputs.endmembers))
    roles["gmm"] = "baseline: pixel-wise Gaussian mixture of real training spectra (no spatial structure)"
    return candidates, roles


@task(name="judge-candidates", cache_policy=NO_CACHE)
def judge_candidates(params: dict, inputs: EvaluationInputs, candidates: dict):
    """Every candidate against the held-out real patches: the generation metrics (F_p, D_b, Fréchet, KID,
    precision/recall, through a feature net trained here to tell the training scenes apart) and the realism
    metrics (C2ST, spatial statistics, class fidelity, memorisation). Returns (generation table, realism table,
    the held-out real maps, the feature net)."""
    from ubf_core.evaluation.suite import SuiteSettings, evaluate_candidates
    from ubf_core.metrics.features import train_feature_net

    log = get_run_logger()
    ev, seed = section(params, "evaluation"), int(params["seed"])
    f = ev["features"]
    scene_ids = {s: i for i, s in enumerate(sorted(set(inputs.train_sources)))}
    net = train_feature_net(inputs.train_real, np.array([scene_ids[s] for s in inputs.train_sources]),
                            epochs=int(f["epochs"]), batch_size=int(f["batch_size"]),
                            lr=float(f["lr"]), seed=seed, dim=int(f["dim"]),
                            device=pick_device(f.get("device", "auto"), "evaluation.features.device"))
    settings = SuiteSettings(block=int(ev["block"]), pr_k=int(ev["pr_k"]), kid_subsets=int(ev["kid_subsets"]),
                             kid_subset_size=int(ev["kid_subset_size"]), max_pixels=int(ev["max_pixels"]),
                             seed=seed)
    table = evaluate_candidates(candidates, inputs.heldout, net, inputs.maps, settings)
    log.info("evaluate: realism metrics (C2ST, spatial statistics, class fidelity, memorisation)")
    realism_table, real_maps = realism(params, {n: c for n, c in candidates.items() if n != "real_train"},
                                       inputs.maps, inputs.labels, inputs.heldout, inputs.train_real, inputs.want)
    return table, realism_table, real_maps, net


@task(name="draw-evaluation-figures", cache_policy=NO_CACHE)
def draw_evaluation_figures(params: dict, inputs: EvaluationInputs, candidates: dict, table: dict,
                            real_maps: np.ndarray) -> Path:
    """The figures of the stage into catalogue folder ``evaluation_figures``: real and synthetic side by side,
    spectral profiles, metric bars, the endmembers, synthetic abundance maps and the realism rows. Returns it."""
    from ubf_core.evaluation.figures import plot_metric_bars, plot_spectral_profiles, side_by_side
    from ubf_core.unmixing.figures import abundance_mosaic, plot_endmembers

    wl, seed = inputs.wavelength, int(params["seed"])
    figures = dataset_path(params, "evaluation_figures")
    figures.mkdir(parents=True, exist_ok=True)
    generated = {n: c.cubes for n, c in candidates.items()}
    side_by_side({"real held-out": inputs.heldout, **generated}, wl, figures / "real_vs_synthetic.png")
    plot_spectral_profiles({"real held-out": inputs.heldout, **{n: c for n, c in generated.items()
                                                                 if n != "real_train"}},
                           wl, figures / "spectral_profiles.png", seed=seed)
    plot_metric_bars(table, ["F_p", "D_b", "frechet", "precision", "recall"], figures / "metrics.png")
    plot_endmembers(wl, {"endmembers (unmixing model)": inputs.endmembers}, figures / "endmembers.png")
    abundance_mosaic(inputs.synthetic_maps[:6], figures / "synthetic_abundances.png")
    realism_figures(figures, wl, inputs.endmembers, inputs.heldout, inputs.heldout_sources, real_maps, inputs.want,
                    {n: c for n, c in candidates.items() if n != "real_train"})
    return figures


@task(name="record-evaluation", cache_policy=NO_CACHE)
def record_evaluation(params: dict, inputs: EvaluationInputs, roles: dict, table: dict, realism_table: dict,
                      net, figures: Path) -> dict:
    """Write catalogue ``evaluation_metrics`` (a DVC metric), log the stage's MLflow run (params, every finite
    figure, the figures folder, the feature net) and tag the registered generator version it judged with its
    headline realism figures (``eval.c2st``, ``eval.psd_ratio``, ``eval.cas``, …; see
    :func:`ubf_core.evaluation.realism_suite.headline_figures`). Returns what it wrote."""
    from ubf_core.evaluation.realism_suite import headline_figures
    from ubf_core.metrics.features import save_feature_net

    log = get_run_logger()
    ev, seed = section(params, "evaluation"), int(params["seed"])
    attrs = inputs.store_attrs
    unmixing_report = dataset_path(params, "unmixing_metrics")
    reconstruction = json.loads(unmixing_report.read_text()).get("network", {}) if unmixing_report.exists() else {}
    result = {"heldout_sources": [str(s) for s in params.get("heldout_sources") or []],
              "n_heldout": int(len(inputs.heldout)), "n_real_train": int(len(inputs.train_real)),
              "synthetic_store": relative(params, dataset_path(params, "synthetic")),
              "provenance": {k: attrs.get(k) for k in ("generator_model", "generator_version", "unmixing_model",
                                                       "unmixing_version", "config_hash")},
              "params_hash": params_hash(ev, params.get("heldout_sources"), params.get("seed")),
              "reconstruction": {k.removeprefix("val_"): v for k, v in reconstruction.items()},
              "roles": roles, "generation": table, "realism": realism_table}
    if inputs.synthetic_brightness is not None and inputs.brightness is not None:   # generated s against training s
        from ubf_core.metrics.distribution import brightness_log_distance

        result["brightness_log_w1"] = brightness_log_distance(inputs.synthetic_brightness, inputs.brightness,
                                                              seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        save_feature_net(net, Path(tmp) / "feature_net")
        result["run_id"] = track_stage(
            "evaluate", resolve(params, "."), result["params_hash"],
            params={"heldout_sources": ",".join(result["heldout_sources"]), "n_heldout": len(inputs.heldout),
                    "block": ev["block"], "pr_k": ev["pr_k"], "seed": seed,
                    "generator_version": attrs.get("generator_version"),
                    "unmixing_version": attrs.get("unmixing_version")},
            metrics={"brightness_log_w1": result.get("brightness_log_w1"),
                     **{f"{n}.{m}": v for n, row in table.items() for m, v in row.items()},
                     **{f"realism.{kind}.{n}.{m}": v for kind in ("abundance", "hsi")
                        for n, row in realism_table[kind].items() for m, v in row.items()}},
            folders={"figures": figures, "feature_net": Path(tmp) / "feature_net"})
    write_json(dataset_path(params, "evaluation_metrics"), result)
    name, version, found = inputs.judged
    tags = tag_evaluation(name, version, headline_figures(realism_table, str(section(params, "generator")["name"])),
                          result["run_id"])
    log.info("evaluate: %s version %d (found from %s) tagged %s", name, version, found,
             ", ".join(f"{k} {v}" for k, v in tags.items()))
    for cand, row in table.items():
        log.info("%-26s F_p %.4f  D_b %.4f  D_b/F_p %.3f  FD %.3g  P %.2f  R %.2f", cand, row["F_p"], row["D_b"],
                 row["D_b/F_p"], row["frechet"], row["precision"], row["recall"])
    return result
