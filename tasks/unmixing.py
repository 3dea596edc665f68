"""Prefect tasks of the unmixing stages: train the network (with VCA+FCLS, least squares from its 3 input bands and
the mean training spectrum beside it) and log and register it in MLflow; infer abundances of the RGB and HSI stores
with a registered model."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.params import dataset_path, relative, resolve, write_json
from tasks.registry import (configure_tracking, describe_version, load_registered_unmixing_model, log_to_run,
                            log_unmixing_model, register, resume_run, start_stage_run, version_description,
                            write_registration)
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.devices import resolve_autocast
from ubf_core.errors import UBFInputError
from ubf_core.metrics.distribution import abundance_histogram_distance
from ubf_core.spectral import load_camera_response, load_cie1931
from ubf_core.unmixing.decoder import check_decoder, patch_units
from ubf_core.unmixing.experiment import (COMPARED, UnmixingSettings, fit_unmixing, library_for_training,
                                          validation_figures)
from ubf_core.unmixing.figures import (abundance_mosaic, plot_abundance_histograms, plot_endmembers,
                                       plot_transmission, rgb_pairs)
from ubf_core.unmixing.inference import check_store, encode, encode_with_brightness, hsi_inputs, rgb_inputs
from ubf_core.unmixing.inputs import three_band
from ubf_core.unmixing.saved import SAVED_FORMAT


def _cie1931(params: dict, u: dict):
    """The CIE 1931 observer (data/spectra, or ``unmixing.cie_path`` where a profile sets it)."""
    return load_cie1931(resolve(params, u.get("cie_path", "data/spectra/ciexyz31_1.csv")))


def _response(params: dict, u: dict):
    """The spectral response for rendered 3-band inputs (None for band selection)."""
    if u["three_band"] != "render":
        return None
    what = str(u["render_response"])
    if what == "cie1931":
        return _cie1931(params, u)
    return load_camera_response(resolve(params, u.get("camspec_path", "data/spectra/camspec_database.txt")),
                                what.removeprefix("camera:"))


def model_response(params: dict, model):
    """The spectral response a trained model renders its 3-band inputs with (None for band selection)."""
    return _response(params, {"three_band": model.meta["three_band"],
                              "render_response": model.meta["render_response"]})


def hsi_split(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reflectance (N, C, H, W), wavelengths (C,), is-validation mask (N,), scene name of each patch (N,)) of
    the hsi store (radiance for the patches whose ``units`` coordinate says so); the validation scenes are
    unmixing.validation_sources."""
    u = section(params, "unmixing")
    store_path = dataset_path(params, "hsi")
    ds = open_store(store_path)
    if ds.sizes.get("patch", 0) == 0:
        raise UBFInputError(store_path, "the HSI store is empty")
    sources = np.array([str(s) for s in ds["source"].values])
    val_sources = list(u.get("validation_sources") or [])
    missing = sorted(set(val_sources) - set(sources))
    if missing:
        raise UBFInputError(store_path, f"validation sources {missing} not in the store (has {sorted(set(sources))})")
    is_val = np.isin(sources, val_sources)
    if not is_val.any() or is_val.all():
        raise UBFInputError("params.yaml", "unmixing.validation_sources must name some but not all HSI scenes")
    return ds["reflectance"].values, ds["wavelength"].values, is_val, sources


UNMIXING_MODEL_DESCRIPTION = (
    "UBF unmixing network: a convolutional encoder maps a 3-band image (N, 3, H, W) to k abundance maps (softmax: "
    "non-negative, summing to 1 per pixel) and a linear-mixing decoder with k endmember spectra (reflectance) "
    "rebuilds the hyperspectral cube (N, C, H, W). Trained on real HSI patches (3-band inputs rendered or selected "
    "from them); infer_abundance encodes the RGB and HSI stores with it. Load with "
    "tasks.registry.load_registered_unmixing_model (safetensors, nothing unpickled).")


def unmixing_trained_on(params: dict, is_val: np.ndarray, sources: np.ndarray, n_rgb: int,
                        hsi_attrs: dict) -> dict:
    """What a train_unmixing run learned from, for the registered version's description: the HSI store (path,
    patches for training and validation, the scenes of each, its params hash) and the RGB sample."""
    stores = {kind: relative(params, dataset_path(params, kind)) for kind in ("hsi", "rgb")}
    return {"HSI store": f"{stores['hsi']} ({int((~is_val).sum())} training patches from "
                         f"{', '.join(sorted(set(sources[~is_val])))}; {int(is_val.sum())} validation patches from "
                         f"{', '.join(sorted(set(sources[is_val])))}; store params hash "
                         f"{hsi_attrs.get('params_hash', '?')})",
            "RGB store": f"{stores['rgb']} ({n_rgb} patches sampled for the input space)"}


def _rgb_sample(params: dict, n: int, seed: int) -> np.ndarray:
    ds = open_store(dataset_path(params, "rgb"))
    idx = np.sort(np.random.default_rng(seed).choice(ds.sizes["patch"], min(n, ds.sizes["patch"]), replace=False))
    return ds["rgb"].isel(patch=idx).values


@dataclass
class UnmixingInputs:
    """What train_unmixing reads before fitting: the settings, the HSI patches (N, C, H, W) with their wavelengths
    (C,) nm, validation mask, scene, units and sensor per patch (N,), the RGB sample (M, 3, h, w), the HSI store's
    attrs, the params hash and, for ``decoder.endmembers: library``, the selected library spectra."""

    settings: UnmixingSettings
    y: np.ndarray
    wl: np.ndarray
    is_val: np.ndarray
    sources: np.ndarray
    units: np.ndarray
    sensors: np.ndarray
    rgb: np.ndarray
    hsi_attrs: dict
    p_hash: str
    library: object = None        # ubf_core.spectral.library.SpectralLibrary or None


@task(name="unmixing-inputs", cache_policy=NO_CACHE)
def unmixing_inputs(params: dict) -> UnmixingInputs:
    """Load the HSI store (split by unmixing.validation_sources), its units, the RGB sample and, for library
    endmembers, select the library spectra on the training patches; every bad input is refused here."""
    u, seed = section(params, "unmixing"), int(params["seed"])
    settings = UnmixingSettings.from_params(u, seed)
    y, wl, is_val, sources = hsi_split(params)
    hsi_store = open_store(dataset_path(params, "hsi"))
    units, sensors = patch_units(hsi_store, dataset_path(params, "hsi"))
    library = (library_for_training(params, resolve(params, "."), wl, y[~is_val])
               if settings.decoder.endmembers == "library" else None)
    return UnmixingInputs(settings, y, wl, is_val, sources, units, sensors, _rgb_sample(params, 512, seed),
                          dict(hsi_store.attrs), params_hash(u, params.get("seed")), library)


@task(name="fit-unmixing", tags=["cuda"], cache_policy=NO_CACHE)
def fit_unmixing_network(params: dict, inputs: UnmixingInputs):
    """Open the stage's MLflow run, log the settings, train the network (per-epoch metrics into the run) beside
    its baselines; returns (FittedUnmixing, run id)."""
    u, seed, s = section(params, "unmixing"), int(params["seed"]), inputs.settings
    lib = inputs.library
    with start_stage_run("train_unmixing", resolve(params, "."), inputs.p_hash) as run:
        log_to_run(params={"k": s.network_k, "three_band": s.three_band, "input_space": s.input_space,
                           "validation_sources": ",".join(sorted(set(inputs.sources[inputs.is_val]))),
                           "alpha": s.alpha, "beta": s.beta, "stem": s.stem, "widths": str(list(s.widths)),
                           "init_endmembers": s.init_endmembers, "seed": seed,
                           **({"loss.band_l1": s.band_l1, "loss.hsv": s.hsv} if s.band_l1 or s.hsv else {}),
                           **{f"decoder.{a}": b for a, b in s.decoder.to_dict().items()},
                           **({f"init_normalized.{a}": b for a, b in s.init_normalized.__dict__.items()}
                              if s.init_endmembers == "vca_normalized" else {}),
                           **({k_: v for k_, v in lib.record().items() if k_ != "library_names"}
                              if lib is not None else {}),
                           **{f"train.{a}": b for a, b in u["train"].items()}},
                   tags={"autocast": resolve_autocast(s.train.device, s.train.autocast),
                         "hsi_store_params_hash": inputs.hsi_attrs.get("params_hash", ""),
                         "hsi_store_sources": json.dumps(inputs.hsi_attrs.get("source_checksums", {})),
                         **({"endmember_names": json.dumps(list(lib.names))} if lib is not None else {})})
        fitted = fit_unmixing(inputs.y, inputs.wl, inputs.is_val, inputs.rgb, s, seed=seed,
                              response=_response(params, u),
                              on_epoch=lambda ep, rec: log_to_run(
                                  metrics={k_: v for k_, v in rec.items() if k_ != "epoch"}, step=ep),
                              units=inputs.units, sensors=inputs.sensors, sources=inputs.sources,
                              fixed_endmembers=None if lib is None else lib.reflectance,
                              endmember_names=None if lib is None else list(lib.names),
                              colour_response=_cie1931(params, u) if s.hsv > 0 else None)
        if lib is not None:
            fitted.model.meta["library"] = {k_: v for k_, v in lib.record().items() if k_ != "library_names"}
        if fitted.atmosphere.warning:
            get_run_logger().warning(fitted.atmosphere.warning)
        log_to_run(params={"decoder.atmosphere_groups": ",".join(fitted.atmosphere.names) or "none",
                           "rgb_to_hsi_scale": fitted.space.rgb_to_hsi_scale})
        return fitted, run.info.run_id


def dominant_endmembers(model, abundances: np.ndarray, top: int = 5) -> list[dict]:
    """The ``top`` endmembers with the largest mean abundance over ``abundances`` (N, k, H, W): index, share and,
    for library endmembers, the library name."""
    names = model.meta.get("endmember_names")
    share = abundances.mean(axis=(0, 2, 3))
    return [{"endmember": int(j), "share": float(share[j]), **({"name": names[j]} if names else {})}
            for j in np.argsort(share)[::-1][:top]]


@task(name="judge-unmixing", cache_policy=NO_CACHE)
def judge_unmixing(params: dict, inputs: UnmixingInputs, fitted, run_id: str) -> dict:
    """Score the network and its baselines on the validation scenes (pooled and per scene), compare the RGB and
    HSI abundances, draw the figures (endmembers, abundances, reconstructions, histograms, t) and log all of it
    into the run ``run_id``; returns the report's parts."""
    s, y, wl, is_val = inputs.settings, inputs.y, inputs.wl, inputs.is_val
    model, final, baseline = fitted.model, fitted.best, fitted.baseline
    by_source, compared = validation_figures(fitted, y, is_val, inputs.sources, wavelengths_nm=wl)
    # what the input space does: abundances of RGB images vs those of the training HSIs
    a_rgb = encode(model, fitted.space.from_rgb(inputs.rgb), 64, progress=False)
    a_hsi = encode(model, fitted.x[~is_val], 64, progress=False)
    hist_distance = abundance_histogram_distance(a_rgb, a_hsi)
    dominant = {"training HSIs": dominant_endmembers(model, a_hsi), "RGB images": dominant_endmembers(model, a_rgb)}
    transmission = model.transmission()
    with resume_run(run_id), tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        log_to_run(metrics={**baseline, **{f"best_{k_}": v for k_, v in final.items()},
                            "rgb_vs_hsi_abundance_hist_distance": hist_distance,
                            **{f"{who}_{src}_{name}": v for src, rec in by_source.items()
                               for who in COMPARED if who in rec for name, v in rec[who].items()},
                            **{f"{who}_{src}_without_inputs_{name}": v for who in COMPARED if who in compared
                               for src, rec in compared[who]["per_scene_without_inputs"].items()
                               for name, v in rec.items()},
                            **{f"pooled_{who}{part}_{name}": v for who in COMPARED if who in compared
                               for part, key in (("", "pooled"), ("_without_inputs", "pooled_without_inputs"))
                               for name, v in compared[who][key].items()}},
                   tags={"dominant_endmembers": json.dumps(dominant)})
        if transmission is not None:   # t per sensor group and wavelength, as metrics (step = band index)
            for g, name in enumerate(model.atmosphere):
                for band, value in enumerate(transmission[g].detach().numpy()):
                    log_to_run(metrics={f"transmission_{name}": float(value)}, step=band)
        model.eval()
        groups = fitted.atmosphere.index
        a_val, y_hat = model(torch.as_tensor(fitted.x[is_val][:6]),
                             **({} if groups is None else {"groups": torch.as_tensor(groups[is_val][:6])}))
        sel = three_band(y[is_val][:6], wl, "select")
        rec = three_band(y_hat.numpy(), wl, "select")
        shown = {"network": model.endmembers().numpy()}
        if model.k == fitted.vca_endmembers.shape[1]:
            shown["VCA"] = fitted.vca_endmembers
        starts = {"vca_normalized": "start (normalised VCA)", "least_squares": "start (least squares at the cone)"}
        if s.init_endmembers in starts and fitted.init_endmembers is not None:
            shown[starts[s.init_endmembers]] = fitted.init_endmembers
        files = [plot_endmembers(wl, shown, Path(tmp) / "endmembers.png"),
                 abundance_mosaic(a_val.numpy(), Path(tmp) / "abundances_validation.png"),
                 rgb_pairs(sel, rec, Path(tmp) / "reconstruction_validation.png"),
                 plot_abundance_histograms({"RGB images": a_rgb, "training HSIs": a_hsi},
                                           Path(tmp) / "abundance_histograms_rgb_vs_hsi.png")]
        if transmission is not None:
            files.append(plot_transmission(wl, transmission.numpy(), model.atmosphere, Path(tmp) / "transmission.png"))
        if fitted.cone is not None:   # the input-cone vertices (k, 3) the encoder's coordinates refer to
            log_to_run(tags={"cone_vertices": json.dumps(np.round(fitted.cone, 6).tolist())})
        log_to_run(files=files)
    return {"by_source": by_source, "compared": compared, "hist_distance": hist_distance, "dominant": dominant}


@task(name="register-unmixing", cache_policy=NO_CACHE)
def register_unmixing(params: dict, inputs: UnmixingInputs, fitted, judged: dict, run_id: str) -> dict:
    """Log the model into the run, register it as ``unmixing.model_name`` with the champion rule, write
    reports/unmixing.json and the registration; returns the stage's metrics."""
    log = get_run_logger()
    u = section(params, "unmixing")
    model, final, baseline, result = fitted.model, fitted.best, fitted.baseline, fitted.result
    metric, model_name = str(u["champion_metric"]), str(u["model_name"])
    val_sources = sorted(set(inputs.sources[inputs.is_val]))
    with resume_run(run_id):
        info = log_unmixing_model(model)
        reg = register(info.model_uri, model_name, metric, float(final[metric]),
                       bool(u["champion_higher_is_better"]),
                       tags={"run_id": run_id, "params_hash": inputs.p_hash},
                       # a champion of another saved format (the old pickled versions: none) gives way
                       measured_on={"validation_sources": ",".join(val_sources), "model_format": SAVED_FORMAT})
    describe_version(model_name, reg["version"], version_description(
        unmixing_trained_on(params, inputs.is_val, inputs.sources, len(inputs.rgb), inputs.hsi_attrs), inputs.p_hash,
        {metric: final[metric], **final, **baseline}, run_id), UNMIXING_MODEL_DESCRIPTION)
    by_source, compared = judged["by_source"], judged["compared"]
    log.info("unmixing: best epoch %d of %d, %s = %.3f (VCA+FCLS %.3f); version %d, champion %d (%s)",
             result.best_epoch, len(result.history), metric, final[metric], baseline.get(f"vca_fcls_{metric[4:]}",
             float("nan")), reg["version"], reg["champion_version"], reg["reason"])
    for src, rec in by_source.items():
        log.info("validation scene %s (%d patches): network PSNR %.2f dB, SAD %.2f°; VCA+FCLS PSNR %.2f dB, "
                 "SAD %.2f°", src, rec["patches"], rec["network"]["psnr"], rec["network"]["sad_deg"],
                 rec["vca_fcls"]["psnr"], rec["vca_fcls"]["sad_deg"])
    for who in COMPARED:
        if who in compared:
            p, q = compared[who]["pooled"], compared[who]["pooled_without_inputs"]
            log.info("validation pooled, %s: PSNR %.2f dB, SAD %.2f° (without the input bands %.2f dB, %.2f°)", who,
                     p["psnr"], p["sad_deg"], q["psnr"], q["sad_deg"])
    metrics = {"network": final, "vca_fcls": baseline, "validation_by_source": by_source,
               "baselines": compared,
               "best_epoch": result.best_epoch,
               "epochs_run": len(result.history), "rgb_vs_hsi_abundance_hist_distance": judged["hist_distance"],
               "model_version": reg["version"], "champion_version": reg["champion_version"],
               "run_id": run_id}
    metrics["decoder"] = inputs.settings.decoder.to_dict()
    metrics["dominant_endmembers"] = judged["dominant"]
    write_json(dataset_path(params, "unmixing_metrics"), metrics)
    write_registration(dataset_path(params, "unmixing_model"), model_name, reg, run_id)
    return metrics


@task(name="infer-abundance")
def infer_abundance_task(params: dict) -> dict:
    """Load the unmixing model named in params (registry URI), check both stores against it before any work,
    encode them in batches and write the abundance stores and the endmember matrix."""
    from ubf_core.data.stores import write_store
    from ubf_core.unmixing.abundance_store import abundance_dataset, endmember_dataset

    from tasks.registry import resolve_model_version

    log = get_run_logger()
    u = section(params, "unmixing")
    configure_tracking(resolve(params, "."))
    uri = str(u["model_uri"])
    version = resolve_model_version(uri)
    model = load_registered_unmixing_model(uri)
    settings = UnmixingSettings.from_params(u)
    k = settings.network_k          # k, or unmixing.library.n for library endmembers
    paths = {kind: dataset_path(params, kind) for kind in ("hsi", "rgb")}
    data = {kind: open_store(p) for kind, p in paths.items()}
    check_store(model, paths["hsi"], data["hsi"], "reflectance", k, uri)
    check_store(model, paths["rgb"], data["rgb"], "rgb", k, uri)
    units, _ = patch_units(data["hsi"], paths["hsi"])
    check_decoder(model, settings.decoder, uri, bool((units == "radiance").any()))

    meta = model.meta
    batch = int(u["infer_batch_size"])
    provenance = {"model_uri": uri, "model_name": version.name, "model_version": int(version.version),
                  "model_run_id": version.run_id or "", "input_space": json.dumps(meta["input_space"]),
                  "params_hash": params_hash(u, params.get("seed"))}
    hsi = data["hsi"]
    a_hsi, s_hsi = encode_with_brightness(model, hsi_inputs(model, hsi["reflectance"].values,
                                                            model_response(params, model)), batch)
    a_rgb, s_rgb = encode_with_brightness(model, rgb_inputs(model, data["rgb"]["rgb"].values), batch)
    write_store(abundance_dataset(a_hsi, hsi, {**provenance, "input_store": relative(params, paths["hsi"])}, s_hsi),
                dataset_path(params, "abundance_hsi"))
    write_store(abundance_dataset(a_rgb, data["rgb"], {**provenance, "input_store": relative(params, paths["rgb"])},
                                  s_rgb), dataset_path(params, "abundance_rgb"))
    E = model.endmembers().detach().cpu().numpy()
    t = model.transmission()
    names = {"endmember_names": json.dumps(meta["endmember_names"])} if "endmember_names" in meta else {}
    if "library" in meta:           # what was kept and dropped of the library, how the spectra were selected
        names["library"] = json.dumps(meta["library"])
    write_store(endmember_dataset(E, np.asarray(meta["wavelength_nm"]), {**provenance, **names},
                                  None if t is None else t.detach().cpu().numpy(), model.atmosphere),
                dataset_path(params, "endmembers"), dim="endmember")
    log.info("abundances from %s (version %s): %d HSI patches, %d RGB patches, k = %d", uri, version.version,
             len(a_hsi), len(a_rgb), k)
    return {"model_version": int(version.version), "n_hsi": len(a_hsi), "n_rgb": len(a_rgb)}
