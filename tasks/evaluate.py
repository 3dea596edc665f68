"""Prefect task of the evaluate stage: the synthetic store and its baselines judged against held-out real HSIs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task

from tasks.generator import generator_training_data, heldout_rgb_maps, load_endmembers
from tasks.params import dataset_path, relative, resolve, write_json
from tasks.registry import configure_tracking, resolve_model_version, start_stage_run, tag_evaluation
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.devices import pick_device
from ubf_core.errors import UBFInputError


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


@task(name="evaluate")
def evaluate_task(params: dict) -> dict:
    """Judge the synthetic store against held-out real patches, with baselines computed in the same run: the real
    training patches themselves (reference), each other generator trained here, and the pixel GMM. Writes
    catalogue ``evaluation_metrics`` (a DVC metric), figures under ``evaluation_figures`` and an MLflow run, and tags
    the registered generator version it judged (:func:`judged_generator`) with its headline realism figures
    (``eval.c2st``, ``eval.psd_ratio``, ``eval.cas``, …; see
    :func:`ubf_core.evaluation.realism_suite.headline_figures`)."""
    import mlflow

    from ubf_core.generators.pixel_gmm import PixelGMM
    from ubf_core.unmixing.baseline import fcls_maps
    from ubf_core.evaluation.figures import plot_metric_bars, plot_spectral_profiles, side_by_side
    from ubf_core.evaluation.realism_suite import headline_figures
    from ubf_core.evaluation.suite import Candidate, SuiteSettings, check_grid, evaluate_candidates
    from ubf_core.metrics.features import save_feature_net, train_feature_net
    from ubf_core.unmixing.figures import abundance_mosaic, plot_endmembers

    log = get_run_logger()
    ev, g = section(params, "evaluation"), section(params, "generator")
    seed = int(params["seed"])
    train_real, train_sources, heldout, wl = real_split(params)
    heldout_sources = heldout_scene_names(params)

    syn_path = dataset_path(params, "synthetic")
    syn = open_store(syn_path)
    if syn.sizes.get("sample", 0) == 0:
        raise UBFInputError(syn_path, "the synthetic store holds no samples")
    if not bool(syn.attrs.get("complete", False)):
        raise UBFInputError(syn_path, "the synthetic store is incomplete: rerun synthesize to finish it")
    check_grid(str(syn_path), syn["wavelength"].values, wl)
    syn_cubes = syn["reflectance"].values.astype(np.float32)
    syn_maps = syn["abundance"].values.astype(np.float32)
    want = [str(v) or None for v in syn["label"].values]
    configure_tracking(resolve(params, "."))
    judged = judged_generator(params, dict(syn.attrs))      # checked before any work: its tags get the figures

    E, e_wl, _ = load_endmembers(params)
    check_grid(str(dataset_path(params, "endmembers")), e_wl, wl)
    data = generator_training_data(params)
    maps, labels, classes = data.maps, data.labels, data.classes
    registered = str(g["name"])
    rng = np.random.default_rng(seed)
    reference = train_real[np.sort(rng.choice(len(train_real), min(len(train_real), len(syn_cubes)), replace=False))]
    candidates = {"real_train": Candidate(reference), registered: Candidate(syn_cubes, syn_maps)}
    roles = {"real_train": "reference: the real training patches themselves",
             registered: f"the synthetic store ({syn.attrs.get('generator_model')} "
                         f"v{syn.attrs.get('generator_version')}, registered)"}
    for name, opts in ev["generators"].items():
        if name == registered:
            continue
        opts = dict(opts or {})
        train = dict(opts.pop("train", {}) or {})
        log.info("evaluate: training the %s baseline on %d maps (%s steps)", name, len(maps), train.get("steps"))
        cubes, a = baseline_samples(params, name, maps, labels, classes, want, E, opts, train, data.brightness)
        candidates[name] = Candidate(cubes, a)
        roles[name] = f"baseline: {name} trained in this stage on the same maps, same labels"
    gm = ev["gmm"]
    gmm = PixelGMM(int(gm["n_components"]), str(gm["covariance"]), int(gm["max_pixels"]), seed).fit(train_real)
    gmm_cubes = gmm.sample(len(syn_cubes), int(syn_cubes.shape[-1]), seed=seed)
    candidates["gmm"] = Candidate(gmm_cubes, fcls_maps(gmm_cubes, E))
    roles["gmm"] = "baseline: pixel-wise Gaussian mixture of real training spectra (no spatial structure)"

    f = ev["features"]
    scene_ids = {s: i for i, s in enumerate(sorted(set(train_sources)))}
    net = train_feature_net(train_real, np.array([scene_ids[s] for s in train_sources]),
                            epochs=int(f["epochs"]), batch_size=int(f["batch_size"]),
                            lr=float(f["lr"]), seed=seed, dim=int(f["dim"]),
                            device=pick_device(f.get("device", "auto"), "evaluation.features.device"))
    settings = SuiteSettings(block=int(ev["block"]), pr_k=int(ev["pr_k"]), kid_subsets=int(ev["kid_subsets"]),
                             kid_subset_size=int(ev["kid_subset_size"]), max_pixels=int(ev["max_pixels"]),
                             seed=seed)
    table = evaluate_candidates(candidates, heldout, net, maps, settings)
    log.info("evaluate: realism metrics (C2ST, spatial statistics, class fidelity, memorisation)")
    realism_table, real_maps = realism(params, {n: c for n, c in candidates.items() if n != "real_train"}, maps,
                                       labels, heldout, train_real, want)

    figures = dataset_path(params, "evaluation_figures")
    figures.mkdir(parents=True, exist_ok=True)
    sets = {"real held-out": heldout, **{n: c.cubes for n, c in candidates.items()}}
    side_by_side(sets, wl, figures / "real_vs_synthetic.png")
    plot_spectral_profiles({"real held-out": heldout, **{n: c.cubes for n, c in candidates.items()
                                                          if n != "real_train"}},
                           wl, figures / "spectral_profiles.png", seed=seed)
    plot_metric_bars(table, ["F_p", "D_b", "frechet", "precision", "recall"], figures / "metrics.png")
    plot_endmembers(wl, {"endmembers (unmixing model)": E}, figures / "endmembers.png")
    abundance_mosaic(syn_maps[:6], figures / "synthetic_abundances.png")
    realism_figures(figures, wl, E, heldout, heldout_sources, real_maps, want,
                    {n: c for n, c in candidates.items() if n != "real_train"})

    unmixing_report = dataset_path(params, "unmixing_metrics")
    reconstruction = json.loads(unmixing_report.read_text()).get("network", {}) if unmixing_report.exists() else {}
    result = {"heldout_sources": [str(s) for s in params.get("heldout_sources") or []],
              "n_heldout": int(len(heldout)), "n_real_train": int(len(train_real)),
              "synthetic_store": relative(params, syn_path),
              "provenance": {k: syn.attrs.get(k) for k in ("generator_model", "generator_version", "unmixing_model",
                                                          "unmixing_version", "config_hash")},
              "params_hash": params_hash(ev, params.get("heldout_sources"), params.get("seed")),
              "reconstruction": {k.removeprefix("val_"): v for k, v in reconstruction.items()},
              "roles": roles, "generation": table, "realism": realism_table}
    if "brightness" in syn and data.brightness is not None:   # generated s against the training maps' s
        from ubf_core.metrics.distribution import brightness_log_distance

        result["brightness_log_w1"] = brightness_log_distance(syn["brightness"].values, data.brightness, seed=seed)
    with start_stage_run("evaluate", resolve(params, "."), result["params_hash"]) as run:
        mlflow.log_params({"heldout_sources": ",".join(result["heldout_sources"]), "n_heldout": len(heldout),
                           "block": settings.block, "pr_k": settings.pr_k, "seed": seed,
                           "generator_version": syn.attrs.get("generator_version"),
                           "unmixing_version": syn.attrs.get("unmixing_version")})
        mlflow.log_metrics({f"{n}.{m.replace('/', '_per_')}": v for n, row in table.items()
                            for m, v in row.items() if np.isfinite(v)})
        mlflow.log_metrics({f"realism.{kind}.{n}.{m}": v for kind in ("abundance", "hsi")
                            for n, row in realism_table[kind].items() for m, v in row.items()
                            if isinstance(v, float) and np.isfinite(v)})
        if "brightness_log_w1" in result:
            mlflow.log_metric("brightness_log_w1", result["brightness_log_w1"])
        mlflow.log_artifacts(str(figures), "figures")
        with tempfile.TemporaryDirectory() as tmp:
            save_feature_net(net, Path(tmp) / "feature_net")
            mlflow.log_artifacts(str(Path(tmp) / "feature_net"), "feature_net")
        result["run_id"] = run.info.run_id
    write_json(dataset_path(params, "evaluation_metrics"), result)
    tags = tag_evaluation(judged[0], judged[1], headline_figures(realism_table, registered), run.info.run_id)
    log.info("evaluate: %s version %d (found from %s) tagged %s", judged[0], judged[1], judged[2],
             ", ".join(f"{k} {v}" for k, v in tags.items()))
    for name, row in table.items():
        log.info("%-26s F_p %.4f  D_b %.4f  D_b/F_p %.3f  FD %.3g  P %.2f  R %.2f", name, row["F_p"], row["D_b"],
                 row["D_b/F_p"], row["frechet"], row["precision"], row["recall"])
    return result
