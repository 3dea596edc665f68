"""Prefect tasks of the unmixing stages: train the network (with the VCA+FCLS baseline beside it) and log and
register it in MLflow; infer abundances of the RGB and HSI stores with a registered model."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from prefect import get_run_logger, task

from tasks.params import resolve
from tasks.registry import configure_tracking, experiment, load_torch_model, log_torch_model, register
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.errors import UBFInputError
from ubf_core.metrics import reconstruction_report
from ubf_core.spectral import load_camera_response, load_cie1931
from ubf_core.unmixing import UnmixingLoss, UnmixingNet
from ubf_core.unmixing.figures import abundance_mosaic, plot_endmembers, rgb_pairs
from ubf_core.unmixing.inputs import InputSpace, three_band
from ubf_core.unmixing.training import TrainConfig, train_unmixing
from ubf_core.unmixing_baseline import fcls, vca_fcls


def _response(params: dict, u: dict):
    """The spectral response for rendered 3-band inputs (None for band selection)."""
    if u.get("three_band", "select") != "render":
        return None
    what = str(u.get("render_response", "cie1931"))
    if what == "cie1931":
        return load_cie1931(resolve(params, u.get("cie_path", "data/spectra/ciexyz31_1.csv")))
    return load_camera_response(resolve(params, u.get("camspec_path", "data/spectra/camspec_database.txt")),
                                what.removeprefix("camera:"))


def hsi_split(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(reflectance (N, C, H, W), wavelengths (C,), is-validation mask (N,), validation sources) of stores.hsi."""
    u = section(params, "unmixing")
    store_path = resolve(params, section(params, "stores")["hsi"])
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
    return ds["reflectance"].values, ds["wavelength"].values, is_val, val_sources


def _rgb_sample(params: dict, n: int, seed: int) -> np.ndarray:
    ds = open_store(resolve(params, section(params, "stores")["rgb"]))
    idx = np.sort(np.random.default_rng(seed).choice(ds.sizes["patch"], min(n, ds.sizes["patch"]), replace=False))
    return ds["rgb"].isel(patch=idx).values


@task(name="train-unmixing")
def train_unmixing_task(params: dict) -> dict:
    """Train the unmixing network on stores.hsi (validated on other scenes), log everything to MLflow, register
    the model as ``unmixing.model_name`` with the champion rule, and return the stage's metrics."""
    log = get_run_logger()
    u, seed = section(params, "unmixing"), int(params.get("seed", 0))
    root = resolve(params, ".")
    y, wl, is_val, val_sources = hsi_split(params)
    k = int(u.get("k", 5))
    response = _response(params, u)
    targets = tuple(u.get("band_wavelengths_nm", (650.0, 550.0, 450.0)))
    x_lin = three_band(y, wl, str(u.get("three_band", "select")), targets, response)
    space = InputSpace.fit(str(u.get("input_space", "linear")), x_lin[~is_val], _rgb_sample(params, 512, seed))
    x = space.from_hsi(x_lin)

    # classical baseline: VCA endmembers on the training scenes, FCLS abundances (it sees all bands)
    E_vca, _ = vca_fcls(y[~is_val], k, seed=seed)
    n_val, c, h, w = y[is_val].shape
    pixels = y[is_val].transpose(1, 0, 2, 3).reshape(c, -1)
    a_val = fcls(pixels, E_vca)
    y_vca = (E_vca @ a_val).reshape(c, n_val, h, w).transpose(1, 0, 2, 3)
    baseline = {f"vca_fcls_{k_}": v for k_, v in reconstruction_report(y_vca, y[is_val]).items()}

    torch.manual_seed(seed)
    init = torch.as_tensor(E_vca, dtype=torch.float32) if u.get("init_endmembers", "vca") == "vca" else None
    model = UnmixingNet(k, len(wl), stem=int(u.get("stem", 32)), widths=tuple(u.get("widths", (64, 128, 96, 48))),
                        nonnegative_endmembers=bool(u.get("nonnegative_endmembers", True)), init_endmembers=init)
    t = u.get("train", {}) or {}
    cfg = TrainConfig(epochs=int(t.get("epochs", 30)), batch_size=int(t.get("batch_size", 16)),
                      lr=float(t.get("lr", 1e-3)), patience=int(t.get("patience", 5)),
                      min_delta=float(t.get("min_delta", 0.0)), seed=seed)
    loss = UnmixingLoss(alpha=float(u.get("loss", {}).get("alpha", 0.1)),
                        beta=float(u.get("loss", {}).get("beta", 1e-3)))

    import mlflow

    configure_tracking(root)
    exp_id = experiment("ubf-train_unmixing", root)
    hsi_store = open_store(resolve(params, section(params, "stores")["hsi"]))
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_params({"k": k, "three_band": u.get("three_band", "select"), "input_space": space.space,
                           "rgb_to_hsi_scale": space.rgb_to_hsi_scale, "validation_sources": ",".join(val_sources),
                           "alpha": loss.alpha, "beta": loss.beta, **{f"train.{a}": b for a, b in t.items()},
                           "widths": str(list(model.config["widths"])), "seed": seed})
        mlflow.set_tags({"params_hash": params_hash(u, params.get("seed")),
                         "hsi_store_params_hash": hsi_store.attrs.get("params_hash", ""),
                         "hsi_store_sources": json.dumps(hsi_store.attrs.get("source_checksums", {}))})
        mlflow.log_metrics(baseline)
        result = train_unmixing(model, x[~is_val], y[~is_val], x[is_val], y[is_val], cfg, loss,
                                on_epoch=lambda ep, rec: mlflow.log_metrics(
                                    {k_: v for k_, v in rec.items() if k_ != "epoch"}, step=ep))
        best = result.history[result.best_epoch - 1]
        final = {k_: v for k_, v in best.items() if k_.startswith("val_")}
        mlflow.log_metrics({f"best_{k_}": v for k_, v in final.items()})
        model.meta = {"wavelength_nm": [float(v) for v in wl], "input_space": space.to_dict(),
                      "three_band": str(u.get("three_band", "select")), "band_wavelengths_nm": list(targets),
                      "render_response": str(u.get("render_response", "cie1931"))}
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            model.eval()
            a_hat, y_hat = model(torch.as_tensor(x[is_val][:6]))
            E = model.endmembers().cpu().numpy()
            sel = three_band(y[is_val][:6], wl, "select")
            rec = three_band(y_hat.numpy(), wl, "select")
            for f in (plot_endmembers(wl, {"network": E, "VCA": E_vca}, Path(tmp) / "endmembers.png"),
                      abundance_mosaic(a_hat.numpy(), Path(tmp) / "abundances_validation.png"),
                      rgb_pairs(sel, rec, Path(tmp) / "reconstruction_validation.png")):
                mlflow.log_artifact(str(f))
        info = log_torch_model(model.cpu())
        metric = str(u.get("champion_metric", "val_psnr"))
        reg = register(info.model_uri, str(u.get("model_name", "ubf-unmixing")), metric, float(final[metric]),
                       bool(u.get("champion_higher_is_better", True)),
                       tags={"run_id": run.info.run_id, "params_hash": params_hash(u, params.get("seed"))})
    log.info("unmixing: best epoch %d of %d, %s = %.3f (VCA+FCLS %.3f); version %d, champion %d",
             result.best_epoch, len(result.history), metric, final[metric], baseline.get(f"vca_fcls_{metric[4:]}",
             float("nan")), reg["version"], reg["champion_version"])
    metrics = {"network": final, "vca_fcls": baseline, "best_epoch": result.best_epoch,
               "epochs_run": len(result.history), "model_version": reg["version"],
               "champion_version": reg["champion_version"], "run_id": run.info.run_id}
    out = resolve(params, u.get("metrics", "reports/unmixing.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name("." + out.name + ".tmp")
    tmp_out.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp_out, out)
    return metrics


MIN_PATCH = 4  # smallest patch side the encoder is run on (its 3×3 convolutions need spatial context)


def check_compatible(model, store_path: Path, ds, var: str, k: int, uri: str) -> None:
    """Refuse a store the model cannot take: empty, wrong channel count or patch size, another wavelength grid
    (HSI store) than the model's endmembers, or another k than params asks for."""
    if ds.sizes.get("patch", 0) == 0:
        raise UBFInputError(store_path, "the store is empty: nothing to unmix")
    if model.config["k"] != k:
        raise UBFInputError("params.yaml", f"unmixing.k = {k} but {uri} has k = {model.config['k']}")
    if var == "reflectance":
        grid = np.asarray(model.meta["wavelength_nm"])
        have = ds["wavelength"].values
        if len(have) != len(grid) or not np.allclose(have, grid, atol=1e-6):
            raise UBFInputError(store_path, f"wavelength grid {have[0]:g}–{have[-1]:g} nm × {len(have)} differs from "
                                            f"the model's endmember grid {grid[0]:g}–{grid[-1]:g} nm × {len(grid)}")
    elif ds.sizes["channel"] != 3:
        raise UBFInputError(store_path, f"{ds.sizes['channel']} channels; the encoder takes 3")
    if min(ds.sizes["y"], ds.sizes["x"]) < MIN_PATCH:
        raise UBFInputError(store_path, f"patches of {ds.sizes['y']}×{ds.sizes['x']} pixels are smaller than the "
                                        f"{MIN_PATCH}×{MIN_PATCH} the encoder needs")


@torch.no_grad()
def encode(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Run the encoder over inputs (N, 3, H, W) in batches → abundances (N, k, H, W) float32."""
    from tqdm.auto import tqdm

    model.eval()
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc="infer_abundance", unit="batch"):
        a, _ = model(torch.as_tensor(x[i:i + batch_size]))
        out.append(a.numpy())
    return np.concatenate(out).astype(np.float32)


@task(name="infer-abundance")
def infer_abundance_task(params: dict) -> dict:
    """Load the unmixing model named in params (registry URI), check both stores against it before any work,
    encode them in batches and write the abundance stores and the endmember matrix."""
    from ubf_core.data.stores import write_store
    from ubf_core.unmixing.abundance_store import abundance_dataset, endmember_dataset

    from tasks.registry import resolve_model_version

    log = get_run_logger()
    u, stores = section(params, "unmixing"), section(params, "stores")
    configure_tracking(resolve(params, "."))
    uri = str(u.get("model_uri", "models:/ubf-unmixing@champion"))
    version = resolve_model_version(uri)
    model = load_torch_model(uri)
    k = int(u.get("k", 5))
    paths = {kind: resolve(params, stores[kind]) for kind in ("hsi", "rgb")}
    data = {kind: open_store(p) for kind, p in paths.items()}
    check_compatible(model, paths["hsi"], data["hsi"], "reflectance", k, uri)
    check_compatible(model, paths["rgb"], data["rgb"], "rgb", k, uri)

    meta = model.meta
    space = InputSpace(**meta["input_space"])
    batch = int(u.get("infer_batch_size", 64))
    provenance = {"model_uri": uri, "model_name": version.name, "model_version": int(version.version),
                  "model_run_id": version.run_id or "", "input_space": json.dumps(meta["input_space"]),
                  "params_hash": params_hash(u, params.get("seed"))}
    hsi = data["hsi"]
    x_hsi = space.from_hsi(three_band(hsi["reflectance"].values, hsi["wavelength"].values, meta["three_band"],
                                      tuple(meta["band_wavelengths_nm"]),
                                      _response(params, {**u, "three_band": meta["three_band"],
                                                         "render_response": meta["render_response"]})))
    a_hsi = encode(model, x_hsi, batch)
    a_rgb = encode(model, space.from_rgb(data["rgb"]["rgb"].values), batch)
    write_store(abundance_dataset(a_hsi, hsi, {**provenance, "input_store": stores["hsi"]}),
                resolve(params, stores["abundance_hsi"]))
    write_store(abundance_dataset(a_rgb, data["rgb"], {**provenance, "input_store": stores["rgb"]}),
                resolve(params, stores["abundance_rgb"]))
    E = model.endmembers().detach().cpu().numpy()
    write_store(endmember_dataset(E, np.asarray(meta["wavelength_nm"]), provenance),
                resolve(params, stores["endmembers"]), dim="endmember")
    log.info("abundances from %s (version %s): %d HSI patches, %d RGB patches, k = %d", uri, version.version,
             len(a_hsi), len(a_rgb), k)
    return {"model_version": int(version.version), "n_hsi": len(a_hsi), "n_rgb": len(a_rgb)}
