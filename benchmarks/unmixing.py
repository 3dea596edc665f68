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
            +brightness+atmosphere, library, library+atmosphere, +neural<order>; +exact / +free: with / without
            unmixing.exact_input_bands (otherwise params' choice where the decoder allows it); +lsinit: the
            least_squares start. PSNR, SSIM, SAD°, RMSE pooled on the validation scenes (--split validation) or on
            each held-out data set in turn (--split lodo), and on Samson alone, next to least squares and VCA+FCLS,
            with the seconds per epoch of each; then the learned t of the ABU sensor at a few wavelengths and its
            figure (benchmarks/out/transmission_<split>_<variant>.png).
            --stores DIR reads hsi.zarr and rgb.zarr from DIR (read-only) instead of the catalogue's paths
  bound     for every validation scene, the lowest SAD° any encoder could reach with the registered decoder
            (unmixing.model_uri): FCLS abundances on all bands for its Ê (+ bias b), next to the network's SAD°
            (reports/unmixing.json) and to the scene's own VCA+FCLS (endmembers fitted to that scene itself)

Every run trains from the same seed; speed, ablation and bound validate on params unmixing.validation_sources.

Usage: python benchmarks/unmixing.py speed [--epochs 3] | ablation [--only input|k] [--epochs N]
       | crossdata [--epochs N] [--k 3,5,8] [--hold NAME,...] | baselines | bound
       | decoders [--epochs N] [--split validation|lodo] [--variants V,...] [--stores DIR]
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

from ubf_core.catalog import project_catalog
from ubf_core.config import load_params
from ubf_core.data.stores import open_store
from ubf_core.metrics.distribution import abundance_histogram_distance
from ubf_core.spectral import load_cie1931
from ubf_core.unmixing import UnmixingLoss, UnmixingNet
from ubf_core.unmixing.experiment import (BASELINE_NAMES, COMPARED, UnmixingSettings, fit_references, fit_regressions,
                                          fit_unmixing, library_for_training, validation_figures)
from ubf_core.unmixing.cone import MIN_VERTICES, cone_vertices
from ubf_core.unmixing.decoder import DecoderSettings, patch_units
from ubf_core.unmixing.figures import plot_abundance_histograms, plot_transmission
from ubf_core.unmixing.inference import encode
from ubf_core.unmixing.inputs import InputSpace, three_band
from ubf_core.unmixing.regression import pixels
from ubf_core.unmixing.training import TrainConfig, train_unmixing

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def dataset(params_path: Path, name: str) -> Path:
    """Catalogue dataset ``name`` of the project whose params file is ``params_path`` (catalog.yaml beside it, else
    the repository's; paths relative to the params file's folder, as the stages resolve them)."""
    return project_catalog(params_path.resolve().parent).path(name)


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
    cone = None
    if s.k >= MIN_VERTICES:   # the encoder of init_endmembers: least_squares (the default) corrects cone coordinates
        ls = fit_regressions(x[~is_val], y[~is_val])["least_squares_1"]
        cone = cone_vertices(pixels(x[~is_val]), ls.coef[0], ls.coef[1:], s.k)
    print("encoder  threads  s/epoch(train+val)  RGB patches/s (batch 64)")
    for encoder, threads in [(e, t) for e in (["plain", "cone"] if cone is not None else ["plain"]) for t in (1, 2)]:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = UnmixingNet(s.k, len(wl), stem=s.stem, widths=s.widths, cone=encoder == "cone",
                            cone_vertices=cone if encoder == "cone" else None)
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
        print(f"{encoder:<7}  {threads:>7}  {per_epoch:>18.2f}  {rate:>24.1f}")


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
    bias = model.decoder.offset()
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


#: the variants of `decoders`, in table order: a base (linear: learned endmembers; library: fixed library spectra)
#: and options joined by "+": brightness, atmosphere (a factor t per radiance sensor), neural<order> (NeuralMixing)
DECODER_VARIANTS = ("linear", "linear+brightness", "linear+atmosphere", "linear+brightness+atmosphere", "library",
                    "library+atmosphere", "library+brightness+atmosphere", "linear+neural1", "linear+neural2",
                    "linear+neural3")
T_WAVELENGTHS_NM = (400, 450, 500, 550, 600, 650, 687, 698)


def variant_decoder(name: str, base: dict) -> dict:
    """unmixing.decoder for a variant name such as ``library+brightness+atmosphere+neural2`` (on top of ``base``,
    params' decoder section); an unknown part is a SystemExit naming it."""
    parts = name.split("+")
    if parts[0] not in ("linear", "library"):
        raise SystemExit(f"decoders: variant {name!r} must start with linear or library")
    dec = {**base, "endmembers": "learned" if parts[0] == "linear" else "library", "brightness": False,
           "atmosphere": "never", "mixing": "linear"}
    for part in parts[1:]:
        if part == "brightness":
            dec["brightness"] = True
        elif part == "atmosphere":
            dec["atmosphere"] = "auto"
        elif part.startswith("neural") and part[6:].isdigit():
            dec["mixing"], dec["order"] = "neural", int(part[6:])
        elif part in ("lsinit", "exact", "free"):
            continue                                   # the start and the input bands (_fit_variant), not the decoder
        else:
            raise SystemExit(f"decoders: variant {name!r}: unknown option {part!r} (brightness, atmosphere, "
                             f"neural<order>, lsinit, exact, free)")
    return dec


def store_units(params: dict, hsi, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(units (N,), sensor (N,), where they came from): the store's coordinates, or for a store written before
    they existed, each patch's data set entry in params (hsi.datasets.<source>.units / sensor)."""
    if "units" in hsi.coords and "sensor" in hsi.coords:
        units, sensors = patch_units(hsi, "hsi store")
        return units, sensors, "the store's coordinates"
    ds = params["hsi"]["datasets"]
    return (np.array([ds[s]["units"] for s in sources]), np.array([ds[s].get("sensor", "") for s in sources]),
            "params hsi.datasets (the store predates the units coordinate)")


def _fit_variant(params: dict, u: dict, name: str, y, wl, is_val, rgb, units, sensors, sources, seed: int,
                 root: Path) -> tuple:
    """Train one variant on one split: (fitted, seconds per epoch, the library record or None)."""
    uu = copy.deepcopy(u)
    uu["decoder"] = variant_decoder(name, {**DecoderSettings().to_dict(), **(u.get("decoder") or {})})
    parts = name.split("+")
    if "lsinit" in parts:
        uu["init_endmembers"] = "least_squares"
    plain = uu["decoder"]["endmembers"] == "learned" and not uu["decoder"]["brightness"] and \
        uu["decoder"]["atmosphere"] == "never" and uu["decoder"]["mixing"] == "linear"
    # exact input bands: "exact" / "free" say so; otherwise params' choice where the decoder allows it
    uu["exact_input_bands"] = "exact" in parts or ("free" not in parts and plain and
                                                   bool(uu.get("exact_input_bands", False)))
    s = UnmixingSettings.from_params(uu, seed)
    s.train.progress = False
    fixed = names = record = None
    if s.decoder.endmembers == "library":
        lib = library_for_training({**params, "unmixing": uu}, root, wl, y[~is_val])
        fixed, names, record = lib.reflectance, list(lib.names), lib.record()
    stamps = []
    fitted = fit_unmixing(y, wl, is_val, rgb, s, seed=seed, units=units, sensors=sensors, sources=sources,
                          fixed_endmembers=fixed, endmember_names=names,
                          on_epoch=lambda ep, rec: stamps.append(time.perf_counter()))
    per_epoch = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    return fitted, per_epoch, record


def _reconstruct_split(fitted, y, is_val) -> dict:
    """Every compared model's reconstruction of the split's validation patches (float32), in patch order."""
    from ubf_core.unmixing.experiment import _reconstructions
    groups = None if fitted.atmosphere.index is None else fitted.atmosphere.index[is_val]
    return _reconstructions(fitted, y[is_val], fitted.x[is_val], 64, groups)


def decoders(args) -> None:
    """Every decoder variant on the same split(s), one table (see the module docstring); results are kept in
    benchmarks/out/decoders_<split>_<epochs>.json per variant, so a run can stop and resume, or run a few
    variants at a time (--variants), and the table is printed from all the variants done."""
    from ubf_core.metrics.reconstruction import reconstruction_report

    params = load_params(args.params)
    root = args.params.resolve().parent
    stores = {name: (args.stores / f"{name}.zarr" if args.stores else dataset(args.params, name))
              for name in ("hsi", "rgb")}
    hsi, rgb_ds = open_store(stores["hsi"]), open_store(stores["rgb"])
    sources = np.array([str(s) for s in hsi["source"].values])
    y, wl = hsi["reflectance"].values, hsi["wavelength"].values
    seed = int(params.get("seed", 0))
    rgb = rgb_ds["rgb"].isel(patch=np.sort(np.random.default_rng(seed).choice(
        rgb_ds.sizes["patch"], min(512, rgb_ds.sizes["patch"]), replace=False))).values
    units, sensors, units_from = store_units(params, hsi, sources)
    u = copy.deepcopy(params["unmixing"])
    if args.epochs:
        u["train"]["epochs"] = args.epochs
    epochs = int(u["train"]["epochs"])
    if args.split == "validation":
        splits = {"validation": np.isin(sources, u["validation_sources"])}
    else:
        groups = np.array([data_set(str(src)) for src in sources])
        splits = {g: groups == g for g in sorted(set(groups))}
    wanted = args.variants or list(DECODER_VARIANTS)
    for name in wanted:
        variant_decoder(name, {})                                      # unknown names refused before any work
    OUT.mkdir(parents=True, exist_ok=True)
    out_file = OUT / f"decoders_{args.split}_{epochs}.json"
    done = json.loads(out_file.read_text()) if out_file.is_file() else {}

    def save() -> None:
        tmp = out_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=1))
        os.replace(tmp, out_file)

    refs = np.concatenate([y[m] for m in splits.values()])
    val_sources = np.concatenate([sources[m] for m in splits.values()]).astype(str)
    for name in ["baselines", *wanted]:
        if name in done:
            continue
        recs, per_epoch, best, record, t_info = {}, [], [], None, None
        for split, is_val in splits.items():
            if name == "baselines":
                fitted = fit_references(y, wl, is_val, rgb, UnmixingSettings.from_params(u, seed), seed=seed)
            else:
                fitted, pe, record = _fit_variant(params, u, name, y, wl, is_val, rgb, units, sensors, sources,
                                                  seed, root)
                per_epoch.append(pe)
                best.append(f"{fitted.result.best_epoch}/{len(fitted.result.history)}")
                t = fitted.model.transmission()
                if t is not None and t_info is None:
                    t_info = {"sensors": fitted.model.atmosphere, "t": t.detach().numpy().tolist()}
            for who, rec in _reconstruct_split(fitted, y, is_val).items():
                recs.setdefault(who, []).append(rec)
            print(f"# {name} ({split}) done", flush=True)
        entry = {}
        for who, parts in recs.items():
            y_hat = np.concatenate(parts)
            samson = val_sources == "samson"
            entry[who] = {"pooled": reconstruction_report(y_hat, refs),
                          "samson": reconstruction_report(y_hat[samson], refs[samson]) if samson.any() else None}
        if name != "baselines":
            entry = {"network": entry["network"], "s_per_epoch": float(np.mean(per_epoch)), "best": best,
                     "transmission": t_info,
                     "library": None if record is None else {k: v for k, v in record.items()}}
        done[name] = entry
        save()
    print(f"\n# unmixing decoders — {machine()}; split {args.split} ({', '.join(splits)}), epochs {epochs} "
          f"(patience {u['train']['patience']}), seed {seed}; units from {units_from}")
    print(f"# validation patches: {len(refs)} from {sorted({str(v) for v in val_sources})}; radiance: "
          f"{sorted({str(v) for v in sources[units == 'radiance']})}")
    print(f"{'model':<34} {'pooled: PSNR dB  SSIM   SAD°   RMSE':<38} | {'Samson: PSNR dB  SSIM   SAD°   RMSE':<38} "
          f"| s/epoch  best/run")

    def cells(p: dict | None) -> str:
        return "   —" if p is None else f"{p['psnr']:7.2f}  {p['ssim']:.3f}  {p['sad_deg']:5.2f}  {p['rmse']:.4f}"

    base = done.get("baselines", {})
    for who in ("least_squares_1", "least_squares_2", "vca_fcls", "mean_spectrum"):
        if who in base:
            print(f"{BASELINE_NAMES[who]:<34} {cells(base[who]['pooled']):<38} | {cells(base[who]['samson']):<38} |")
    for name in [n for n in done if n != "baselines"]:
        e = done[name]
        print(f"{name:<34} {cells(e['network']['pooled']):<38} | {cells(e['network']['samson']):<38} | "
              f"{e['s_per_epoch']:7.2f}  {','.join(e['best'])}")
    for name in [n for n in done if n != "baselines"]:
        t_info = done[name].get("transmission")
        if t_info:
            t = np.asarray(t_info["t"])
            at = [int(np.argmin(np.abs(wl - v))) for v in T_WAVELENGTHS_NM]
            for g, sensor in enumerate(t_info["sensors"]):
                print(f"# learned t, sensor {sensor} ({name}): " + ", ".join(f"{wl[i]:.0f} nm {t[g, i]:.3f}"
                                                                            for i in at))
            figure = plot_transmission(wl, t, list(t_info["sensors"]),
                                       OUT / f"transmission_{args.split}_{name.replace('+', '_')}.png")
            print(f"# learned t ({name}): figure {figure.relative_to(REPO)}")
        lib = done[name].get("library")
        if lib:
            print(f"# {name}: library {lib['library_spectra']} of {lib.get('library_in_file')} spectra (dropped "
                  f"duplicates {lib.get('library_dropped_duplicates')}), selection explains "
                  f"{lib.get('library_selection_explained', float('nan')):.4f} of the training energy")


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
    ap.add_argument("--variants", type=lambda v: [x.strip() for x in v.split(",") if x.strip()], default=None,
                    help="decoders: only these variants, e.g. linear,library+atmosphere,linear+neural3 (default: "
                         "all of DECODER_VARIANTS); done ones are read back from benchmarks/out")
    ap.add_argument("--split", choices=["validation", "lodo"], default="validation",
                    help="decoders: params' validation scenes, or leave one data set out (each held out in turn, "
                         "pooled over all)")
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
