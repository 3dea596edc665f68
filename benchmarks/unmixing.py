"""Unmixing benchmarks on the prepared stores (run `make repro` first, or point --params at another project).

  speed     training seconds per epoch (with the per-epoch validation) and abundance inference throughput
            (RGB patches per second) of the params' network, with 1 and 2 torch threads
  ablation  the input-space choice (linear / display × band selection / CIE rendering) and k ∈ {3, 5, 8}:
            validation PSNR, SSIM, SAD°, RMSE of the network and of VCA+FCLS, and the histogram distance between
            the abundances of the RGB store and those of the training HSIs, and the SAD° of every validation scene;
            writes one histogram figure per setting to benchmarks/out/
  crossdata leave one data set out: for each data set of the HSI store (the ABU scenes abu-* are one data set,
            every other scene is its own), train on all the others and validate on it; the network's and VCA+FCLS's
            PSNR, SSIM, SAD°, RMSE on it, pooled, and the SAD° of each of its scenes; --k 3,5,8 repeats every
            split for each k (default: params' k), --hold salton-sea,samson only those held-out data sets
  baselines no network: VCA+FCLS, least squares from the 3 input bands (order 1: 3 bands + offset; order 2) and the
            mean training spectrum, pooled over the validation scenes and per scene, with and without the input
            bands (the network's row is read from reports/unmixing.json's "baselines" when it is there); ablation
            and crossdata print the same comparison under every setting, with the network
  decoders  the decoder options of unmixing.decoder, each trained on the same split from the same seed: linear
            (learned endmembers, today's model), +brightness, +atmosphere (a factor t per radiance sensor),
            +brightness+atmosphere (and library, library+atmosphere once ubf_core/spectral/library.py exists):
            PSNR, SSIM, SAD°, RMSE pooled on the validation scenes and on Samson alone, next to least squares and
            VCA+FCLS, with the seconds per epoch of each; then the learned t of the ABU sensor at a few wavelengths.
            --stores DIR reads hsi.zarr and rgb.zarr from DIR (read-only) instead of the catalogue's paths
  bound     for every validation scene, the lowest SAD° any encoder could reach with the registered decoder
            (unmixing.model_uri): FCLS abundances on all bands for its Ê (+ bias b), next to the network's SAD°
            (reports/unmixing.json) and to the scene's own VCA+FCLS (endmembers fitted to that scene itself)

Every run trains from the same seed; speed, ablation and bound validate on params unmixing.validation_sources.

Usage: python benchmarks/unmixing.py speed [--epochs 3] | ablation [--only input|k] [--epochs N]
       | crossdata [--epochs N] [--k 3,5,8] [--hold NAME,...] | baselines | bound
       | decoders [--epochs N] [--stores DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ubf_core.catalog import CATALOG_FILE, Catalog
from ubf_core.config import load_params
from ubf_core.data.stores import open_store
from ubf_core.metrics.distribution import abundance_histogram_distance
from ubf_core.spectral import load_cie1931
from ubf_core.unmixing import UnmixingLoss, UnmixingNet
from ubf_core.unmixing.experiment import (BASELINE_NAMES, COMPARED, UnmixingSettings, fit_references,
                                          fit_unmixing, validation_figures)
from ubf_core.unmixing.decoder import DecoderSettings, patch_units
from ubf_core.unmixing.figures import plot_abundance_histograms
from ubf_core.unmixing.inference import encode
from ubf_core.unmixing.inputs import InputSpace, three_band
from ubf_core.unmixing.training import TrainConfig, train_unmixing

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def dataset(params_path: Path, name: str) -> Path:
    """Catalogue dataset ``name`` of the project whose params file is ``params_path`` (catalog.yaml beside it, else
    the repository's; paths relative to the params file's folder, as the stages resolve them)."""
    root = params_path.resolve().parent
    own = root / CATALOG_FILE
    return Catalog.load(own if own.is_file() else REPO / CATALOG_FILE, root=root).path(name)


def load(params_path: Path):
    """(params, HSI reflectance (N, C, H, W), wavelengths, is-validation mask, RGB patches (M, 3, h, w))."""
    params = load_params(params_path)
    hsi = open_store(dataset(params_path, "hsi"))
    rgb = open_store(dataset(params_path, "rgb"))
    sources = np.array([str(s) for s in hsi["source"].values])
    is_val = np.isin(sources, params["unmixing"]["validation_sources"])
    return params, hsi["reflectance"].values, hsi["wavelength"].values, is_val, rgb["rgb"].values, sources


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def speed(args) -> None:
    params, y, wl, is_val, rgb, _ = load(args.params)
    s = UnmixingSettings.from_params(params["unmixing"], int(params.get("seed", 0)))
    x = three_band(y, wl, s.three_band, s.band_wavelengths_nm)
    space = InputSpace.fit(s.input_space, x[~is_val], rgb[:512])
    x = space.from_hsi(x)
    print(f"# unmixing speed — {machine()}")
    print(f"# {int((~is_val).sum())} training / {int(is_val.sum())} validation patches of {y.shape[1]}×{y.shape[2]}×"
          f"{y.shape[3]}; {len(rgb)} RGB patches of {rgb.shape[2]}×{rgb.shape[3]}; widths {list(s.widths)}, "
          f"stem {s.stem}, k {s.k}, batch {s.train.batch_size}")
    print("threads  s/epoch(train+val)  RGB patches/s (batch 64)")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = UnmixingNet(s.k, len(wl), stem=s.stem, widths=s.widths)
        cfg = TrainConfig(**{**s.train.__dict__, "epochs": args.epochs, "patience": args.epochs + 1,
                             "progress": False})
        t0 = time.perf_counter()
        train_unmixing(model, x[~is_val], y[~is_val], x[is_val], y[is_val], cfg, UnmixingLoss(s.alpha, s.beta))
        per_epoch = (time.perf_counter() - t0) / args.epochs
        x_rgb = space.from_rgb(rgb)
        encode(model, x_rgb[:64], 64, progress=False)  # warm-up
        t0 = time.perf_counter()
        encode(model, x_rgb, 64, progress=False)
        rate = len(x_rgb) / (time.perf_counter() - t0)
        print(f"{threads:>7}  {per_epoch:>18.2f}  {rate:>24.1f}")


def figures(fitted) -> str:
    """The validation PSNR, SSIM, SAD°, RMSE of the network (kept epoch) | of VCA+FCLS, as one table cell run."""
    b, v = fitted.best, fitted.baseline
    return (f"{b['val_psnr']:7.2f}  {b['val_ssim']:.3f}  {b['val_sad_deg']:5.2f}  {b['val_rmse']:.4f}  | "
            f"{v['vca_fcls_psnr']:13.2f}  {v['vca_fcls_ssim']:.3f}  {v['vca_fcls_sad_deg']:5.2f}  "
            f"{v['vca_fcls_rmse']:.4f}")


def comparison_lines(compared: dict, indent: str = "    ") -> list[str]:
    """The compared models' pooled validation figures (PSNR, SSIM, SAD°, RMSE), all bands | without the input
    bands, one line each: the rows the baselines add to the network's and VCA+FCLS's."""
    bands = compared.get("input_bands") or {}
    what = (f"without bands {','.join(map(str, bands.get('indices', [])))}" if bands.get("excluded")
            else "rendered inputs: no band left out")
    lines = [f"{indent}pooled: model                            PSNR dB  SSIM   SAD°   RMSE    | "
             f"{what}: PSNR dB  SAD°"]
    for who in COMPARED:
        if who in compared:
            p, q = compared[who]["pooled"], compared[who]["pooled_without_inputs"]
            lines.append(f"{indent}        {BASELINE_NAMES.get(who, who):<32} {p['psnr']:7.2f}  {p['ssim']:.3f}  "
                         f"{p['sad_deg']:5.2f}  {p['rmse']:.4f}  | {q['psnr']:7.2f}  {q['sad_deg']:5.2f}")
    return lines


def scene_sads(fitted, y: np.ndarray, is_val: np.ndarray, sources: np.ndarray) -> str:
    """'network / VCA+FCLS / LS1 / LS2 / mean: <scene> <SAD°> / …, …' for every validation scene, then the pooled
    comparison of all of them (:func:`comparison_lines`)."""
    by_source, compared = validation_figures(fitted, y, is_val, sources)
    who = [w for w in COMPARED if w in compared]
    short = {"network": "network", "vca_fcls": "VCA+FCLS", "least_squares_1": "LS1", "least_squares_2": "LS2",
             "mean_spectrum": "mean"}
    return (" / ".join(short[w] for w in who) + ": " + ", ".join(
        f"{src} " + " / ".join(f"{f[w]['sad_deg']:.2f}" for w in who) for src, f in sorted(by_source.items()))
            + "\n" + "\n".join(comparison_lines(compared)))


def baselines(args) -> None:
    """The references without the network (no training): VCA+FCLS, least squares, the mean spectrum."""
    params, y, wl, is_val, rgb, sources = load(args.params)
    s = UnmixingSettings.from_params(params["unmixing"], int(params.get("seed", 0)))
    response = (load_cie1931(args.params.resolve().parent / "data/spectra/ciexyz31_1.csv")
                if s.three_band == "render" else None)
    t0 = time.perf_counter()
    fitted = fit_references(y, wl, is_val, rgb[:512], s, seed=int(params.get("seed", 0)), response=response)
    by_source, compared = validation_figures(fitted, y, is_val, sources, wavelengths_nm=wl)
    took = time.perf_counter() - t0
    report = dataset(args.params, "unmixing_metrics")
    network = (json.loads(report.read_text()).get("baselines") or {}).get("network") if report.exists() else None
    if network:
        compared = {"network": network, **compared}
    print(f"# unmixing baselines — {s.input_space}/{s.three_band} {list(s.band_wavelengths_nm)} nm, k {s.k}, "
          f"{machine()}, {took:.0f} s")
    print(f"# train: {sorted({str(v) for v in sources[~is_val]})} ({int((~is_val).sum())} patches); "
          f"validate: {sorted({str(v) for v in sources[is_val]})} ({int(is_val.sum())} patches)"
          + ("" if network else "; no network row (reports/unmixing.json has no baselines entry)"))
    print("\n".join(comparison_lines(compared, indent="")))
    print("per scene: PSNR dB / SAD° (all bands | without the input bands)")
    for src in sorted(by_source):
        print(f"  {src:<15} " + "  ".join(
            f"{w}: {compared[w]['per_scene'][src]['psnr']:.2f}/{compared[w]['per_scene'][src]['sad_deg']:.2f} | "
            f"{compared[w]['per_scene_without_inputs'][src]['psnr']:.2f}/"
            f"{compared[w]['per_scene_without_inputs'][src]['sad_deg']:.2f}"
            for w in COMPARED if w in compared and src in compared[w].get("per_scene", {})))


def ablation(args) -> None:
    params, y, wl, is_val, rgb, sources = load(args.params)
    u0 = params["unmixing"]
    seed = int(params.get("seed", 0))
    cie = load_cie1931(args.params.resolve().parent / "data/spectra/ciexyz31_1.csv")
    settings = []
    if args.only in (None, "input"):
        for space in ("linear", "display"):
            for method in ("select", "render"):
                settings.append((f"{space}/{method}", {"input_space": space, "three_band": method}))
    if args.only in (None, "k"):
        for k in (3, 5, 8):
            if args.only is None and k == u0.get("k", 5):
                continue  # the same run as the input-space row of params' own setting
            settings.append((f"k={k}", {"k": k}))
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# unmixing ablation — {machine()}")
    print(f"# train: {sorted({str(s) for s in sources[~is_val]})} ({int((~is_val).sum())} patches); "
          f"validate: {sorted({str(s) for s in sources[is_val]})} ({int(is_val.sum())} patches); "
          f"RGB store {len(rgb)} patches")
    print("setting          k  PSNR dB  SSIM   SAD°   RMSE    | VCA+FCLS PSNR  SSIM   SAD°   RMSE   | hist RGB↔HSI  "
          "epochs  s")
    for name, change in settings:
        u = copy.deepcopy(u0)
        u.update(change)
        if args.epochs:
            u.setdefault("train", {})["epochs"] = args.epochs
        s = UnmixingSettings.from_params(u, seed)
        s.train.progress = False
        t0 = time.perf_counter()
        fitted = fit_unmixing(y, wl, is_val, rgb[:512], s, seed=seed,
                              response=cie if s.three_band == "render" else None)
        took = time.perf_counter() - t0
        a_rgb = encode(fitted.model, fitted.space.from_rgb(rgb), 64, progress=False)
        a_hsi = encode(fitted.model, fitted.x[~is_val], 64, progress=False)
        dist = abundance_histogram_distance(a_rgb, a_hsi)
        plot_abundance_histograms({"RGB store": a_rgb, "training HSIs": a_hsi},
                                  OUT / f"abundance_histograms_{name.replace('/', '_').replace('=', '')}.png")
        print(f"{name:<15} {s.k:>2}  {figures(fitted)} | {dist:12.3f}  "
              f"{fitted.result.best_epoch:>2}/{len(fitted.result.history):<3} {took:4.0f}", flush=True)
        print("    SAD° per validation scene, " + scene_sads(fitted, y, is_val, sources), flush=True)


def data_set(source: str) -> str:
    """The data set a scene belongs to: the ABU scenes (abu-*) are one, every other scene is its own."""
    return "abu" if source.startswith("abu-") else source


def crossdata(args) -> None:
    params, y, wl, _, rgb, sources = load(args.params)
    u0 = copy.deepcopy(params["unmixing"])
    if args.epochs:
        u0.setdefault("train", {})["epochs"] = args.epochs
    seed = int(params.get("seed", 0))
    cie = load_cie1931(args.params.resolve().parent / "data/spectra/ciexyz31_1.csv")
    groups = np.array([data_set(str(src)) for src in sources])
    held_out = sorted(set(groups))
    if args.hold:
        unknown = sorted(set(args.hold) - set(held_out))
        if unknown:
            raise SystemExit(f"crossdata: --hold {','.join(unknown)}: not a data set of the HSI store "
                             f"(data sets: {', '.join(held_out)})")
        held_out = [g for g in held_out if g in args.hold]
    ks = args.k or [int(u0.get("k", 5))]
    print(f"# unmixing, leave one data set out — k {', '.join(map(str, ks))}, {u0.get('input_space', 'linear')}/"
          f"{u0.get('three_band', 'select')}, {machine()}")
    print("validate on      k  patches  PSNR dB  SSIM   SAD°   RMSE    | VCA+FCLS PSNR  SSIM   SAD°   RMSE   | epochs  s")
    for held in held_out:
        is_val = groups == held
        for k in ks:
            s = UnmixingSettings.from_params({**u0, "k": k}, seed)
            s.train.progress = False
            t0 = time.perf_counter()
            fitted = fit_unmixing(y, wl, is_val, rgb[:512], s, seed=seed,
                                  response=cie if s.three_band == "render" else None)
            took = time.perf_counter() - t0
            print(f"{held:<15} {k:>2} {int(is_val.sum()):>8}  {figures(fitted)} | "
                  f"{fitted.result.best_epoch:>2}/{len(fitted.result.history):<3} {took:4.0f}", flush=True)
            print("    SAD° per scene, " + scene_sads(fitted, y, is_val, sources), flush=True)


def bound(args) -> None:
    """Is a validation scene's SAD limited by the encoder (3 bands in) or by the decoder (endmembers learned from
    the training scenes)? The registered decoder with the best simplex abundances per pixel (FCLS on all bands)
    is a floor no encoder can go below."""
    from tasks.registry import configure_tracking, load_registered_unmixing_model
    from ubf_core.metrics.reconstruction import sad_degrees
    from ubf_core.unmixing.baseline import fcls, vca

    params, y, wl, _, _, sources = load(args.params)
    root = args.params.resolve().parent
    configure_tracking(root)
    uri = params["unmixing"]["model_uri"]
    model = load_registered_unmixing_model(uri)  # on the CPU
    E = model.endmembers().detach().double().numpy()  # (C, k) reflectance
    bias = model.decoder.bias
    b = np.zeros(len(E)) if bias is None else bias.detach().double().numpy()
    report = dataset(args.params, "unmixing_metrics")
    by_source = json.loads(report.read_text()).get("validation_by_source", {}) if report.exists() else {}
    print(f"# decoder bound — {uri}, k {E.shape[1]}, {machine()}")
    print("scene             pixels  network  FCLS(Ê)+b  FCLS(Ê)  own VCA+FCLS   (SAD°)")
    for src in params["unmixing"]["validation_sources"]:
        Y = y[sources == src].astype(np.float64).transpose(1, 0, 2, 3).reshape(len(wl), -1)  # (C, pixels)

        def sad(Y_hat: np.ndarray) -> float:
            return sad_degrees(Y_hat[:, :, None], Y[:, :, None])

        own, _ = vca(Y, E.shape[1], seed=int(params.get("seed", 0)))
        net = by_source.get(src, {}).get("network", {}).get("sad_deg", float("nan"))
        print(f"{src:16s} {Y.shape[1]:7d}  {net:7.2f}  {sad(E @ fcls(Y - b[:, None], E) + b[:, None]):9.2f}  "
              f"{sad(E @ fcls(Y, E)):7.2f}  {sad(own @ fcls(Y, own)):12.2f}", flush=True)


DECODER_VARIANTS = {   # name -> unmixing.decoder (the rest of params' unmixing section unchanged)
    "linear (learned E)": {"brightness": False, "atmosphere": "never"},
    "+brightness": {"brightness": True, "atmosphere": "never"},
    "+atmosphere": {"brightness": False, "atmosphere": "always"},
    "+brightness+atmosphere": {"brightness": True, "atmosphere": "always"},
}
T_WAVELENGTHS_NM = (400, 450, 500, 550, 600, 650, 687, 698)


def store_units(params: dict, hsi, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(units (N,), sensor (N,), where they came from): the store's coordinates, or for a store written before
    they existed, each patch's data set entry in params (hsi.datasets.<source>.units / sensor)."""
    if "units" in hsi.coords and "sensor" in hsi.coords:
        units, sensors = patch_units(hsi, "hsi store")
        return units, sensors, "the store's coordinates"
    ds = params["hsi"]["datasets"]
    return (np.array([ds[s]["units"] for s in sources]), np.array([ds[s].get("sensor", "") for s in sources]),
            "params hsi.datasets (the store predates the units coordinate)")


def decoders(args) -> None:
    """Every decoder option on the same split, one table (see the module docstring)."""
    params = load_params(args.params)
    stores = {name: (args.stores / f"{name}.zarr" if args.stores else dataset(args.params, name))
              for name in ("hsi", "rgb")}
    hsi, rgb_ds = open_store(stores["hsi"]), open_store(stores["rgb"])
    sources = np.array([str(s) for s in hsi["source"].values])
    is_val = np.isin(sources, params["unmixing"]["validation_sources"])
    y, wl = hsi["reflectance"].values, hsi["wavelength"].values
    seed = int(params.get("seed", 0))
    rgb = rgb_ds["rgb"].isel(patch=np.sort(np.random.default_rng(seed).choice(
        rgb_ds.sizes["patch"], min(512, rgb_ds.sizes["patch"]), replace=False))).values
    units, sensors, units_from = store_units(params, hsi, sources)
    u = copy.deepcopy(params["unmixing"])
    if args.epochs:
        u["train"]["epochs"] = args.epochs
    variants = dict(DECODER_VARIANTS)
    library_note = ("library, library+atmosphere: skipped (ubf_core/spectral/library.py is not in this tree)"
                    if not (REPO / "ubf_core" / "spectral" / "library.py").exists() else
                    "library, library+atmosphere: not wired here yet (library_endmembers exists: add its call)")
    rows, t_abu, compared0 = [], None, None
    for name, dec in variants.items():
        u["decoder"] = {**DecoderSettings().to_dict(), **(u.get("decoder") or {}), **dec}
        s = UnmixingSettings.from_params(u, seed)
        stamps = []
        t0 = time.perf_counter()
        fitted = fit_unmixing(y, wl, is_val, rgb, s, seed=seed, units=units, sensors=sensors, sources=sources,
                              on_epoch=lambda ep, rec: stamps.append(time.perf_counter()))
        took = time.perf_counter() - t0
        per_epoch = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
        by_source, compared = validation_figures(fitted, y, is_val, sources, wavelengths_nm=wl)
        compared0 = compared0 or compared
        rows.append((name, compared["network"]["pooled"], by_source.get("samson", {}).get("network"),
                     per_epoch, fitted.result.best_epoch, len(fitted.result.history)))
        if fitted.model.transmission() is not None and t_abu is None:
            t_abu = (fitted.model.atmosphere, fitted.model.transmission().detach().numpy(), name)
        print(f"# {name}: {took:.0f} s, best epoch {fitted.result.best_epoch} of {len(fitted.result.history)}",
              flush=True)
    print(f"\n# unmixing decoders — {machine()}; epochs {u['train']['epochs']} (patience {u['train']['patience']}), "
          f"seed {seed}; units from {units_from}")
    print(f"# train: {sorted({str(v) for v in sources[~is_val]})} ({int((~is_val).sum())} patches); validate: "
          f"{sorted({str(v) for v in sources[is_val]})} ({int(is_val.sum())} patches); radiance: "
          f"{sorted({str(v) for v in sources[units == 'radiance']})}")
    print(f"{'model':<34} {'pooled validation: PSNR dB  SSIM   SAD°   RMSE':<47} | Samson: PSNR dB  SSIM   SAD°   RMSE "
          f"| s/epoch  best/run")

    def cells(p: dict | None) -> str:
        return "   —" if p is None else f"{p['psnr']:7.2f}  {p['ssim']:.3f}  {p['sad_deg']:5.2f}  {p['rmse']:.4f}"

    for name, pooled, samson, per_epoch, best, run in rows:
        print(f"{name:<34} {cells(pooled):<47} | {cells(samson):<38} | {per_epoch:7.2f}  {best}/{run}")
    for who in ("least_squares_1", "least_squares_2", "vca_fcls", "mean_spectrum"):
        if who in compared0:
            samson = compared0[who]["per_scene"].get("samson")
            print(f"{BASELINE_NAMES[who]:<34} {cells(compared0[who]['pooled']):<47} | {cells(samson):<38} |")
    print(f"# {library_note}")
    if t_abu is not None:
        names, t, who = t_abu
        for g, sensor in enumerate(names):
            at = [int(np.argmin(np.abs(wl - v))) for v in T_WAVELENGTHS_NM]
            print(f"# learned t, sensor {sensor} ({who}): " + ", ".join(
                f"{wl[i]:.0f} nm {t[g, i]:.3f}" for i in at))


def k_list(text: str) -> list[int]:
    """'3,5,8' -> [3, 5, 8]; anything else is an argparse error naming the value."""
    try:
        ks = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers, e.g. 3,5,8") from None
    if any(k < 2 for k in ks):
        raise argparse.ArgumentTypeError(f"'{text}': every k must be at least 2")
    return ks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "ablation", "crossdata", "baselines", "bound", "decoders"])
    ap.add_argument("--stores", type=Path, default=None,
                    help="decoders: a folder with hsi.zarr and rgb.zarr to read (default: the catalogue's paths)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--epochs", type=int, default=None, help="speed: epochs timed (default 3); ablation, crossdata: override")
    ap.add_argument("--only", choices=["input", "k"], help="ablation: only the input-space rows or the k rows")
    ap.add_argument("--k", type=k_list, default=None,
                    help="crossdata: endmember counts to train for every split, e.g. 3,5,8 (default: params' k)")
    ap.add_argument("--hold", type=lambda v: [x.strip() for x in v.split(",") if x.strip()], default=None,
                    help="crossdata: only these held-out data sets, e.g. salton-sea,samson (default: every one)")
    args = ap.parse_args()
    if args.what == "speed":
        args.epochs = args.epochs or 3
        speed(args)
    elif args.what == "bound":
        bound(args)
    elif args.what == "baselines":
        baselines(args)
    elif args.what == "crossdata":
        crossdata(args)
    elif args.what == "decoders":
        decoders(args)
    else:
        ablation(args)


if __name__ == "__main__":
    main()
