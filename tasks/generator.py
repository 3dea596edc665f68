"""Prefect tasks of the generation stages: train the abundance generator (MLflow, registry) and synthesise HSIs."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.params import dataset_path, relative, resolve, write_json
from tasks.registry import (configure_tracking, describe_version, download_generator, load_registered_unmixing_model,
                            log_generator, log_to_run, register, resolve_model_version, resume_run, start_stage_run,
                            version_description, write_registration)
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.devices import pick_device, resolve_autocast
from ubf_core.errors import UBFInputError
from ubf_core.metrics.distribution import abundance_histogram_distance, brightness_log_distance


def load_endmembers(params: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Endmembers (C, k) and their wavelengths (C,) nm, from the endmember store written by infer_abundance, with
    its provenance (the unmixing model version)."""
    ds = open_store(dataset_path(params, "endmembers"))
    return ds["endmembers"].values.astype(np.float32), ds["wavelength"].values, dict(ds.attrs)


def render_samples(abundances: np.ndarray, endmembers: np.ndarray, wavelengths: np.ndarray, captions: list[str],
                   path: Path, brightness: np.ndarray | None = None) -> Path:
    """Generated maps (n, k, H, W) mixed through the endmembers (C, k) (times their brightness s (n, H, W) when
    given) and shown as RGB (650/550/450 nm)."""
    import xarray as xr

    from ubf_core.reporting.preview import hsi_patches_to_rgb, mosaic
    from ubf_core.synthesis.mixing import mix

    cube = xr.DataArray(mix(abundances, endmembers, brightness=brightness), dims=("patch", "wavelength", "y", "x"),
                        coords={"wavelength": wavelengths})
    mosaic(hsi_patches_to_rgb(cube), captions, columns=min(8, len(captions)), scale=3).save(path)
    return path


def _rgb_split(params: dict):
    """The RGB abundance store, split into (training patches, held-out patches): ``heldout_rgb_per_class`` whole
    images per class (drawn with the seed) are held out for evaluation."""
    from ubf_core.generators.training_data import heldout_images

    ds = open_store(dataset_path(params, "abundance_rgb"))
    out = heldout_images(ds["source"].values, ds["label"].values, int(params["heldout_rgb_per_class"]),
                         int(params["seed"]))
    return ds.isel(patch=np.flatnonzero(~out)), ds.isel(patch=np.flatnonzero(out))


def heldout_rgb_maps(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Abundance maps (n, k, H, W) and class labels (n,) of the held-out RGB images (no generator saw them)."""
    ds = _rgb_split(params)[1]
    return ds["abundance"].values.astype(np.float32), np.array([str(v) for v in ds["label"].values])


@dataclass(frozen=True)
class GeneratorTrainingSet:
    """The generator's training set: maps (N, k, H, W) on the simplex, their labels (class name, or None for an
    HSI map), the class list (None when unconditional) and the maps' brightness s (N, H, W) ≥ 0, dimensionless
    (None when the generator does not learn it: ``generator.brightness``)."""

    maps: np.ndarray
    labels: list
    classes: list[str] | None
    brightness: np.ndarray | None = None


def generator_training_set(params: dict) -> tuple[np.ndarray, list, list[str] | None]:
    """The generator's training maps (N, k, H, W), their labels (class or None) and the class list (None when
    ``generator.conditional`` is off): :func:`generator_training_data` without the brightness."""
    data = generator_training_data(params)
    return data.maps, data.labels, data.classes


def generator_training_data(params: dict) -> GeneratorTrainingSet:
    """The generator's training set from the abundance stores named in params, with their ``brightness`` when
    ``generator.brightness`` turns it on (auto: when the stores read hold it). HSI maps of the scenes in
    ``heldout_sources`` and RGB maps of the ``heldout_rgb_per_class`` held-out images are left out: evaluation and
    classification compare against them."""
    from ubf_core.generators.training_data import training_set_with_brightness, use_brightness

    g = section(params, "generator")
    source = str(g["source"])
    rgb = _rgb_split(params)[0] if source in ("rgb", "both") else None
    hsi = open_store(dataset_path(params, "abundance_hsi")) if source in ("hsi", "both") else None
    if hsi is not None:
        keep = ~np.isin([str(v) for v in hsi["source"].values], [str(s) for s in params.get("heldout_sources") or []])
        hsi = hsi.isel(patch=np.flatnonzero(keep))
    stores = {relative(params, dataset_path(params, name)): "brightness" in ds
              for name, ds in (("abundance_rgb", rgb), ("abundance_hsi", hsi)) if ds is not None}
    on = use_brightness(str(g["brightness"]), stores)
    maps, labels, brightness = training_set_with_brightness(
        source, None if rgb is None else rgb["abundance"].values, None if rgb is None else rgb["label"].values,
        None if hsi is None else hsi["abundance"].values, float(g["hsi_share"]), int(params["seed"]),
        rgb_brightness=rgb["brightness"].values if on and rgb is not None else None,
        hsi_brightness=hsi["brightness"].values if on and hsi is not None else None, brightness=on)
    classes = None
    if bool(g["conditional"]):
        if rgb is None:
            raise UBFInputError("params.yaml", "generator.conditional needs class labels: use source rgb or both")
        classes = [str(c) for c in rgb.attrs.get("classes", sorted({lab for lab in labels if lab}))]
    return GeneratorTrainingSet(maps, labels, classes, brightness)


GENERATOR_MODEL_DESCRIPTION = (
    "UBF abundance generator: samples k abundance maps (k, H, W; non-negative, summing to 1 per pixel), optionally "
    "of a given scene class; synthesize mixes them through the endmembers (C, k) of the unmixing model version in "
    "the version's tag unmixing_model_version into hyperspectral reflectance cubes (C, H, W); a generator with the "
    "option brightness also generates each pixel's brightness s (H, W) > 0, and the cubes are s * E a. The "
    "generator kind (ddpm, vae, gan) is in the training run's params. Load with tasks.registry.download_generator and "
    "ubf_core.generators.load_generator.")


def generator_trained_on(params: dict, labels: list, classes: list[str] | None, unmixing_version,
                         brightness: bool = False) -> dict:
    """What a train_generator run learned from, for the registered version's description: the abundance stores
    its maps came from (``labels``: one per map, None for an HSI map) with their counts, the classes it is
    conditioned on and the unmixing model version whose abundances they are."""
    g = section(params, "generator")
    n_hsi = sum(1 for lab in labels if lab is None)
    held = ", ".join(map(str, params.get("heldout_sources") or [])) or "none"
    stores = {name: relative(params, dataset_path(params, name)) for name in ("abundance_rgb", "abundance_hsi")}
    out = {"source": str(g["source"])}
    if n_hsi < len(labels):
        out["RGB abundances"] = (f"{stores['abundance_rgb']} ({len(labels) - n_hsi} maps; "
                                 f"{int(params['heldout_rgb_per_class'])} images per class held out)")
    if n_hsi:
        out["HSI abundances"] = f"{stores['abundance_hsi']} ({n_hsi} maps; held-out scenes left out: {held})"
    out["classes"] = f"{len(classes)} ({', '.join(classes)})" if classes else "none (unconditional)"
    if brightness:
        out["brightness"] = "generated: the per-pixel brightness s of the stores' brightness variable"
    out["unmixing model version"] = str(unmixing_version or "?")
    return out


def initial_generator(params: dict, name: str, maps: np.ndarray, classes: list[str] | None, endmembers: np.ndarray,
                      wavelengths: np.ndarray, pretrain: bool, brightness: bool = False):
    """The generator a training run starts from: the checkpoint ``generator.checkpoint`` when
    ``generator.init_from_checkpoint`` is on (checked against this run's model, its ``brightness`` and endmembers),
    else a new one (with the brightness channel when ``brightness``). Returns (generator, the checkpoint's
    provenance or None)."""
    from ubf_core.generators import make_generator
    from ubf_core.generators.checkpoint import load_checkpoint

    g = section(params, "generator")
    options = dict(g["options"])
    for key in ("brightness", "brightness_log_stats"):
        if key in options:
            raise UBFInputError(f"generator.options.{key}", "is not an option to set here: generator.brightness "
                                                            "(auto | always | never) decides it")
    options["brightness"] = bool(brightness)
    if pretrain and bool(g["init_from_checkpoint"]):
        raise UBFInputError("generator.init_from_checkpoint", "is on: pretrain_generator trains the checkpoint from "
                                                              "scratch; run it with the long profile "
                                                              "(--params params.long.yaml)")
    if pretrain or not bool(g["init_from_checkpoint"]):
        return make_generator(name, maps.shape[1], tuple(maps.shape[2:]), classes, **options), None
    path = resolve(params, g["checkpoint"])
    if not path.exists():
        raise UBFInputError(path, "generator.init_from_checkpoint is on but the checkpoint is missing (train it: "
                                  "python -m flows.pretrain_generator --params params.long.yaml)")
    max_angle = g.get("checkpoint_max_angle_deg")
    if not isinstance(max_angle, (int, float)) or isinstance(max_angle, bool) or not 0 <= max_angle < 90:
        raise UBFInputError("generator.checkpoint_max_angle_deg", f"must be a number of degrees in [0, 90), got "
                                                                  f"{max_angle!r}")
    return load_checkpoint(path, name=name, k=maps.shape[1], size=tuple(maps.shape[2:]), classes=classes,
                           options=options, endmembers=endmembers, wavelengths_nm=wavelengths,
                           max_angle_deg=float(max_angle))


@dataclass
class GeneratorInputs:
    """What a generator trains on (:func:`generator_inputs`): maps (N, k, H, W) with their labels (class or None)
    and class list (None: unconditional), and the endmembers (C, k) reflectance on ``wavelength`` (C,) nm that
    turn them into HSIs, with the endmember store's attrs (the unmixing model version)."""
    maps: np.ndarray
    labels: list
    classes: list[str] | None
    endmembers: np.ndarray
    wavelength: np.ndarray
    endmember_attrs: dict
    brightness: np.ndarray | None = None   # the maps' brightness s (N, H, W) when the generator learns it

    def unmixing_version(self) -> str:
        return str(self.endmember_attrs.get("model_version", ""))


@task(name="generator-inputs", cache_policy=NO_CACHE)
def generator_inputs(params: dict) -> GeneratorInputs:
    """The generator's training set (:func:`generator_training_data`, with the brightness s when
    ``generator.brightness`` turns it on) and the endmembers, checked to agree on k."""
    data = generator_training_data(params)
    maps, labels, classes = data.maps, data.labels, data.classes
    E, wl, e_attrs = load_endmembers(params)
    if E.shape[1] != maps.shape[1]:
        raise UBFInputError(dataset_path(params, "endmembers"),
                            f"k = {E.shape[1]} but the abundance stores have k = {maps.shape[1]}")
    return GeneratorInputs(maps, labels, classes, E, wl, e_attrs, data.brightness)


def _stage(pretrain: bool) -> str:
    return "pretrain_generator" if pretrain else "train_generator"


@task(name="fit-generator", tags=["cuda"], cache_policy=NO_CACHE)
def fit_generator(params: dict, inputs: GeneratorInputs, pretrain: bool = False):
    """Fit the generator named in params on ``inputs`` in the stage's MLflow run (its params, tags and the losses
    step by step). With ``generator.init_from_checkpoint`` the fit starts from the checkpoint the long profile
    trained (``generator.checkpoint``) and trains ``generator.train.steps`` more steps (0: uses it as it is);
    ``pretrain``: the long profile's own run, from scratch. Returns (generator, loss history, the checkpoint's
    provenance or None, the run id: the next steps log into the same run)."""
    from ubf_core.generators import TrainSettings

    g = section(params, "generator")
    seed = int(params["seed"])
    maps, classes = inputs.maps, inputs.classes
    gen, started_from = initial_generator(params, str(g["name"]), maps, classes, inputs.endmembers,
                                          inputs.wavelength, pretrain, brightness=inputs.brightness is not None)
    t = dict(g["train"])
    settings = TrainSettings.from_params(t)
    if settings.steps == 0 and started_from is None:
        raise UBFInputError("generator.train.steps", "0 steps trains nothing: give steps ≥ 1, or start from a "
                                                     "checkpoint (generator.init_from_checkpoint)")
    device = pick_device(t["device"], "generator.train.device")
    autocast = resolve_autocast(device, settings.autocast, "generator.train.autocast")   # refused before any work
    with start_stage_run(_stage(pretrain), resolve(params, "."), params_hash(g, params.get("seed"))) as run:
        log_to_run(params={"name": gen.name, "source": g["source"], "hsi_share": g.get("hsi_share"),
                           "heldout_sources": ",".join(map(str, params.get("heldout_sources") or [])),
                           "conditional": classes is not None, "n_maps": len(maps), "k": gen.k,
                           "size": "x".join(map(str, gen.size)), "seed": seed,
                           **{f"train.{a}": b for a, b in t.items()},
                           **{f"option.{a}": b for a, b in gen.config.items()}},
                   tags={"unmixing_model_version": inputs.unmixing_version(),
                         "wavelength_nm": json.dumps([float(v) for v in inputs.wavelength]),
                         "started_from": json.dumps(started_from) if started_from else "scratch",
                         "device": device, "autocast": autocast})
        gen.to(device)
        history = gen.fit(maps, inputs.labels if classes else None, settings, brightness=inputs.brightness,
                          seed=seed, on_log=lambda step, rec: log_to_run(
                              metrics={k: v for k, v in rec.items() if k != "step"}, step=step))
        if gen.brightness:   # [mean, std] of ln s the brightness channel is standardised with (set by the fit)
            log_to_run(tags={"brightness_log_stats": json.dumps(gen.brightness_log_stats)})
        return gen, history, started_from, run.info.run_id


@task(name="judge-generator", cache_policy=NO_CACHE)
def judge_generator(params: dict, gen, inputs: GeneratorInputs, history: list[dict], run_id: str) -> dict:
    """Sample the fitted generator (``generator.preview``: n per class, the sampler) and log to run ``run_id`` the
    quality figures (abundance-histogram distance and nearest-real spectral angle of unconditional samples, final
    loss; with brightness, the distance of the generated ln s to the training maps') and two grids rendered through
    the endmembers (times s): samples_rgb.png and training_rgb.png. Returns the figures."""
    from ubf_core.generators.quality import nearest_real_angle_deg
    from ubf_core.synthesis.mixing import mix

    g, seed = section(params, "generator"), int(params["seed"])
    pv = dict(g["preview"])
    E, maps, classes = inputs.endmembers, inputs.maps, inputs.classes
    per = int(pv["n_per_class"])
    want = [c for c in (classes or []) for _ in range(per)] or None
    n = len(want) if want else max(8, per)
    options = {"micro_batch": int(section(params, "synthesis")["micro_batch"])}
    if gen.name == "ddpm":
        options |= {"sampler": pv["sampler"], "steps": int(pv["steps"])}
    brightness = inputs.brightness
    samples, samples_s = gen.sample_with_brightness(n, seed=seed, labels=want, **options)
    uncond, uncond_s = gen.sample_with_brightness(n, seed=seed + 1, **options)
    few = min(len(maps), 64)
    real = mix(maps[:few], E, brightness=None if brightness is None else brightness[:few])
    real = real.transpose(0, 2, 3, 1).reshape(-1, E.shape[0])
    fake = mix(uncond, E, brightness=uncond_s).transpose(0, 2, 3, 1).reshape(-1, E.shape[0])
    quality = {"hist_distance": abundance_histogram_distance(uncond, maps),
               "nearest_real_angle_deg": nearest_real_angle_deg(fake, real, max_generated=4096,
                                                                max_real=16384, seed=seed),
               "final_loss": float(history[-1]["loss"]) if history else float("nan")}
    if brightness is not None:
        quality["brightness_log_w1"] = brightness_log_distance(uncond_s, brightness, seed=seed)
    with tempfile.TemporaryDirectory() as tmp, resume_run(run_id):
        tmp = Path(tmp)
        wl = inputs.wavelength
        render_samples(samples, E, wl, list(want) if want else ["sample"] * n, tmp / "samples_rgb.png", samples_s)
        render_samples(maps[:16], E, wl, [lab or "HSI" for lab in inputs.labels[:16]], tmp / "training_rgb.png",
                       None if brightness is None else brightness[:16])
        log_to_run(metrics=quality, files=[tmp / "samples_rgb.png", tmp / "training_rgb.png"])
    return quality


@task(name="write-generator-checkpoint", cache_policy=NO_CACHE)
def write_checkpoint(params: dict, gen, inputs: GeneratorInputs, history: list[dict], quality: dict,
                     run_id: str) -> dict:
    """The long profile's output: the fitted generator as the checkpoint ``generator.checkpoint`` (weights, config,
    the endmembers it learned on, the run's provenance). Returns the stage's figures."""
    from ubf_core.generators.checkpoint import save_checkpoint

    g = section(params, "generator")
    steps = int(g["train"]["steps"])
    out = save_checkpoint(gen, resolve(params, g["checkpoint"]), inputs.endmembers, inputs.wavelength, {
        "command": "python -m flows.pretrain_generator --params params.long.yaml",
        "mlflow_run_id": run_id, "params_hash": params_hash(g, params.get("seed")),
        "steps": steps, "n_maps": int(len(inputs.maps)), "unmixing_model_version": inputs.unmixing_version()})
    get_run_logger().info("pretrain: checkpoint %s (%d steps, loss %.4f → %.4f)", out, steps, history[0]["loss"],
                          history[-1]["loss"])
    return {**quality, "steps": steps, "checkpoint": relative(params, out), "run_id": run_id}


@task(name="register-generator", cache_policy=NO_CACHE)
def register_generator(params: dict, gen, inputs: GeneratorInputs, quality: dict, started_from: dict | None,
                       run_id: str) -> dict:
    """Log the fitted generator to run ``run_id`` and register it as ``generator.model_name`` (the alias champion
    moves only to a better version on ``generator.champion_metric``), described (data, params hash, figures);
    write catalogue ``generator_metrics`` (a DVC metric) and ``generator_model`` (the registered version)."""
    g = section(params, "generator")
    p_hash = params_hash(g, params.get("seed"))
    with tempfile.TemporaryDirectory() as tmp, resume_run(run_id):
        info = log_generator(gen.save(Path(tmp) / "generator"))
    metric, model_name = str(g["champion_metric"]), str(g["model_name"])
    reg = register(info.model_uri, model_name, metric, float(quality[metric]), bool(g["champion_higher_is_better"]),
                   tags={"run_id": run_id, "params_hash": p_hash, "unmixing_model_version": inputs.unmixing_version(),
                         "k": str(gen.k), "wavelength_nm": json.dumps([float(v) for v in inputs.wavelength])})
    describe_version(model_name, reg["version"], version_description(
        generator_trained_on(params, inputs.labels, inputs.classes, inputs.unmixing_version(),
                             inputs.brightness is not None), p_hash,
        {metric: quality[metric], **quality}, run_id), GENERATOR_MODEL_DESCRIPTION)
    steps = int(g["train"]["steps"])
    get_run_logger().info("generator %s on %d maps (%s, %d steps): %s = %.4f; version %d, champion %d", gen.name,
                          len(inputs.maps), "from the checkpoint" if started_from else "from scratch", steps, metric,
                          quality[metric], reg["version"], reg["champion_version"])
    metrics = {**quality, "steps": steps, "n_maps": len(inputs.maps), "started_from": started_from or "scratch",
               "model_version": reg["version"], "champion_version": reg["champion_version"], "run_id": run_id}
    write_json(dataset_path(params, "generator_metrics"), metrics)
    write_registration(dataset_path(params, "generator_model"), model_name, reg, run_id)
    return metrics


@dataclass(frozen=True)
class SynthesisModels:
    """The registry entries a synthesis run uses, resolved once before any work: the generator version behind the
    asked URI (alias or version) and the unmixing model version whose abundances it learned, with its endmembers
    (C, k) in reflectance and their wavelengths (C,) in nm."""

    generator_uri: str
    generator_name: str
    generator_version: int
    generator_run_id: str
    unmixing_uri: str
    unmixing_name: str
    unmixing_version: int
    endmembers: np.ndarray
    wavelengths_nm: np.ndarray
    transmission: np.ndarray | None = None     # (G, C): the unmixing model's factor t per sensor group, or None
    sensors: tuple[str, ...] = ()              # the G sensor groups
    brightness: bool = False                   # the unmixing model has a brightness term
    mixing: dict | None = None                 # mixing neural: its NeuralMixing (config + weights); None: linear

    @property
    def generator_version_uri(self) -> str:
        """``models:/NAME/VERSION`` of the resolved generator (what is downloaded: an alias may move meanwhile)."""
        return f"models:/{self.generator_name}/{self.generator_version}"

    def provenance(self) -> dict:
        """Store attributes naming the models."""
        return {"generator_model": self.generator_name, "generator_version": self.generator_version,
                "generator_run_id": self.generator_run_id, "unmixing_model": self.unmixing_name,
                "unmixing_version": self.unmixing_version}


def resolve_synthesis_models(params: dict, generator_uri: str | None = None) -> SynthesisModels:
    """Resolve ``generator_uri`` (default ``generator.model_uri``) and the unmixing model it was trained with (its
    tag ``unmixing_model_version``; else ``unmixing.model_uri``) in the registry, load the endmembers and check
    that their wavelength grid is the generator's. A URI that points nowhere is a UBFInputError naming it."""
    g, u = section(params, "generator"), section(params, "unmixing")
    uri = str(generator_uri or g["model_uri"])
    version = resolve_model_version(uri)
    # the endmembers are those of the unmixing model whose abundances the generator learned (recorded at training)
    trained_with = version.tags.get("unmixing_model_version")
    unmixing_uri = f"models:/{u['model_name']}/{trained_with}" if trained_with else str(u["model_uri"])
    unmixing_version = resolve_model_version(unmixing_uri)
    model = load_registered_unmixing_model(unmixing_uri)
    E = model.endmembers().detach().cpu().numpy().astype(np.float32)
    wl = np.asarray(model.meta["wavelength_nm"], dtype=float)
    trained_wl = version.tags.get("wavelength_nm")
    if trained_wl and (len(json.loads(trained_wl)) != len(wl)
                       or not np.allclose(json.loads(trained_wl), wl, atol=1e-6)):
        raise UBFInputError(unmixing_uri, f"endmember grid {wl[0]:g}–{wl[-1]:g} nm × {len(wl)} differs from the "
                                          f"grid {uri} was trained with")
    from ubf_core.synthesis.mixing import mixing_record

    t = model.transmission()
    return SynthesisModels(uri, version.name, int(version.version), version.run_id or "", unmixing_uri,
                           unmixing_version.name, int(unmixing_version.version), E, wl,
                           None if t is None else t.detach().cpu().numpy().astype(np.float32),
                           tuple(model.atmosphere), model.has_brightness,
                           None if model.nonlinear is None else mixing_record(model.nonlinear))


BRIGHTNESS_WARNING = ("{uri} has a brightness term but the generator does not generate brightness (trained without "
                      "it, generator.brightness): synthesis mixes every pixel with s = 1 (store attrs 'brightness')")


def synthesis_transmission(models: SynthesisModels, units: str) -> np.ndarray | None:
    """The factor t (C,) a radiance synthesis multiplies by: the unmixing model's, which must have exactly one
    sensor group (None for reflectance)."""
    if units != "radiance":
        return None
    if models.transmission is None or len(models.sensors) != 1:
        have = "no atmosphere term" if models.transmission is None else f"sensor groups {list(models.sensors)}"
        raise UBFInputError("synthesis.units", f"radiance needs an unmixing model with one solar-atmosphere factor "
                                               f"t; {models.unmixing_uri} has {have}")
    return models.transmission[0]


def synthesis_job(params: dict, models: SynthesisModels, gen, *, n: int, class_mix: dict | None,
                  seed: int | None = None, sampler: str | None = None, steps: int | None = None,
                  guidance_scale: float | None = None, device: str | None = None, micro_batch: int | None = None):
    """The SynthesisJob of ``n`` samples of ``gen`` (the loaded generator of ``models``) with ``class_mix`` (None:
    unconditional); seed, sampler, steps, guidance_scale, device and micro_batch default to params (``seed``,
    ``synthesis.*``).
    ``device`` auto/cpu/cuda goes through :func:`ubf_core.devices.pick_device`."""
    from ubf_core.synthesis.job import SynthesisJob, plan_labels

    s = section(params, "synthesis")
    E = models.endmembers
    units = str(s["units"])
    if units not in ("reflectance", "radiance"):
        raise UBFInputError("synthesis.units", f"{units!r} unknown; use reflectance or radiance")
    if gen.k != E.shape[1]:
        raise UBFInputError(models.unmixing_uri, f"k = {E.shape[1]} endmembers but {models.generator_uri} "
                                                 f"generates k = {gen.k} maps")
    if gen.brightness and not models.brightness:
        raise UBFInputError(models.unmixing_uri, f"has no brightness term but {models.generator_uri} generates "
                                                 f"brightness: not the unmixing model the generator learned from")
    labels = plan_labels(n, class_mix, gen.classes)
    options = {"micro_batch": s["micro_batch"] if micro_batch is None else micro_batch}
    if gen.name == "ddpm":
        options |= {"sampler": str(s["sampler"] if sampler is None else sampler),
                    "steps": int(s["steps"] if steps is None else steps),
                    "guidance_scale": float(s["guidance_scale"] if guidance_scale is None else guidance_scale)}
        if not class_mix:
            options.pop("guidance_scale")
    return SynthesisJob(labels=labels, seed=int(params["seed"] if seed is None else seed),
                        size=tuple(gen.size), endmembers=E, wavelengths_nm=models.wavelengths_nm,
                        snr_db=s.get("noise_snr_db"), sampler=options,
                        device=pick_device(s["device"] if device is None else device, "synthesis.device"),
                        config={"generator": f"{models.generator_name}/{models.generator_version}",
                                "unmixing": f"{models.unmixing_name}/{models.unmixing_version}"},
                        units=units, transmission=synthesis_transmission(models, units),
                        brightness=models.brightness, mixing=models.mixing,
                        generated_brightness=gen.brightness)


@task(name="synthesize", tags=["cuda"])
def synthesize_task(params: dict, n: int | None = None, class_name: str | None = None, out: str | None = None,
                    replace: bool | None = None, dataset: str = "synthetic",
                    report_dataset: str = "synthesis_report") -> dict:
    """Sample N abundance maps with the registered generator, mix them with the unmixing model's endmembers and
    write (or resume) the synthesis store; export the first samples as files. Arguments override params; the
    store is catalogue dataset ``dataset`` (``out``: another path), its report ``report_dataset``."""
    from tqdm.auto import tqdm

    from ubf_core.generators import load_generator
    from ubf_core.parallel import dask_client

    log = get_run_logger()
    g, s = section(params, "generator"), section(params, "synthesis")
    configure_tracking(resolve(params, "."))
    models = resolve_synthesis_models(params, str(g["model_uri"]))
    n = int(s["n"]) if n is None else n
    class_mix = {class_name: 1} if class_name else (s["class_mix"] or None)
    out_path = resolve(params, out) if out else dataset_path(params, dataset)
    replace = bool(s["replace"]) if replace is None else replace

    with tempfile.TemporaryDirectory(dir=out_path.parent if out_path.parent.exists() else None) as tmp:
        folder = download_generator(models.generator_version_uri, tmp)
        gen = load_generator(folder)
        job = synthesis_job(params, models, gen, n=n, class_mix=class_mix)
        if job.unit_brightness:
            log.warning(BRIGHTNESS_WARNING.format(uri=models.unmixing_uri))
        labels = job.labels
        attrs = {**models.provenance(), "params_hash": params_hash(s, params.get("seed"))}
        d = section(params, "dask")
        bar = tqdm(total=None, desc="synthesize", unit="block")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        with dask_client(d["scheduler_address"], int(d["n_workers"]), int(d["threads_per_worker"]),
                         bool(d["processes"])) as client:
            from ubf_core.synthesis.blocks import synthesize

            summary = synthesize(job, folder, out_path, client=client, block_size=int(s["block_size"]),
                                 threads=int(s["torch_threads"]), replace=replace, attrs=attrs,
                                 progress=progress)
        bar.close()
    exported = export_samples(params, out_path)
    log.info("synthesis: %d samples (%s) → %s with endmembers of %s; %d blocks computed, %s already done; "
             "%d files exported", n,
             ", ".join(f"{c or 'unconditional'}: {int((labels == c).sum())}" for c in dict.fromkeys(labels)),
             out_path, models.unmixing_uri,
             len(summary["computed_blocks"]), summary["skipped_blocks"], len(exported))
    report = {"n": n, "out": relative(params, out_path), "generator_version": models.generator_version,
              "unmixing_version": models.unmixing_version, "computed_blocks": len(summary["computed_blocks"]),
              "config_hash": summary["config_hash"], "exported": [relative(params, p) for p in exported]}
    write_json(dataset_path(params, report_dataset), report)
    return report


def export_samples(params: dict, store: Path) -> list[Path]:
    """Write the first ``synthesis.export.n`` samples of the store as GeoTIFF or ENVI files with wavelengths."""
    from ubf_core.io import write_envi, write_geotiff

    ex = section(params, "synthesis")["export"]
    n = int(ex["n"])
    if n <= 0:
        return []       # the classification's synthetic pool sets export {n: 0} alone
    fmt = str(ex["format"])
    if fmt not in ("geotiff", "envi"):
        raise UBFInputError("synthesis.export.format", f"'{fmt}' unknown; use geotiff or envi")
    folder = dataset_path(params, "synthetic_examples")
    folder.mkdir(parents=True, exist_ok=True)
    ds = open_store(store)
    paths = []
    for i in range(min(n, ds.sizes["sample"])):
        cube = ds["reflectance"].isel(sample=i).load()
        cube.attrs["source"] = f"{store.name} sample {i} ({ds['label'].values[i] or 'unconditional'})"
        name = f"sample_{i:05d}" + (".tif" if fmt == "geotiff" else ".hdr")
        paths.append((write_geotiff if fmt == "geotiff" else write_envi)(cube.drop_vars(
            [c for c in cube.coords if c not in ("wavelength",)]), folder / name))
    return paths
