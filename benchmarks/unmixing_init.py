"""Endmember initialisation: plain VCA against vca_normalized and least_squares (unmixing.init_endmembers), on the
pipeline's stores and on CAVE natural scenes (black backgrounds).

For each rule: the starting endmembers' brightness (band sums; the training pixels' 99th percentile beside them),
their smallest pairwise spectral angle, FCLS on them (all bands, the validation patches: PSNR, SAD°), and, with
--epochs N > 0, the network trained from them (params' architecture and loss, N epochs, same seed) scored on the
validation patches (PSNR, SSIM, SAD°, RMSE of the kept epoch) and its final endmembers' brightness.

  pipeline  the stores of the params' catalogue (stores/hsi.zarr, stores/rgb.zarr; `make repro` writes them),
            validated on unmixing.validation_sources
  cave      the CAVE scenes in --cave (folders <scene>_ms), resampled to the natural grid (400-700 nm x 31) with the
            pipeline's reader and resampling, block-averaged by --downsample, cut into the params' patches;
            validated on --val scenes (default: the last two names). The RGB patches for the input space come from
            the params' RGB store.

Usage: python benchmarks/unmixing_init.py pipeline [--epochs N] [--stores DIR]
       python benchmarks/unmixing_init.py cave --cave ../shared/data/natural/cave [--epochs N] [--downsample 4]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ubf_core.catalog import project_catalog
from ubf_core.config import load_params
from ubf_core.data.patches import PatchSpec, extract_patches, patch_origins
from ubf_core.data.stores import open_store
from ubf_core.io import HSISource, read_hsi
from ubf_core.metrics.reconstruction import reconstruction_report
from ubf_core.spectral import NATURAL, resample_to_grid
from ubf_core.unmixing.baseline import fcls, vca_fcls
from ubf_core.unmixing.experiment import (BASELINE_NAMES, UnmixingSettings, fit_references, fit_unmixing,
                                         initial_endmembers, predict_patches, reconstruct)

REPO = Path(__file__).resolve().parents[1]


def store_paths(params_path: Path, stores: Path | None) -> tuple[Path, Path]:
    if stores is not None:
        return stores / "hsi.zarr", stores / "rgb.zarr"
    cat = project_catalog(params_path.resolve().parent)
    return cat.path("hsi"), cat.path("rgb")


def pipeline_data(params: dict, args):
    hsi_path, rgb_path = store_paths(args.params, args.stores)
    hsi, rgb = open_store(hsi_path), open_store(rgb_path)
    sources = np.array([str(s) for s in hsi["source"].values])
    is_val = np.isin(sources, params["unmixing"]["validation_sources"])
    return hsi["reflectance"].values, hsi["wavelength"].values, is_val, rgb["rgb"].values[:512], sources


def cave_data(params: dict, args):
    folders = sorted(p for p in Path(args.cave).iterdir() if p.is_dir() and p.name.endswith("_ms"))
    if not folders:
        raise SystemExit(f"{args.cave}: no <scene>_ms folders")
    spec = PatchSpec.from_params(params["patch"])
    ys, srcs = [], []
    for folder in folders:
        cube = read_hsi(HSISource.from_params(folder.name, {"path": str(folder), "format": "cave"}, Path.cwd()))
        aligned = resample_to_grid(cube, NATURAL, tolerance_nm=float(params["grid"]["coverage_tolerance_nm"]),
                                   name=folder.name)
        f = int(args.downsample)
        if f > 1:
            aligned = aligned.coarsen(y=f, x=f, boundary="trim").mean()
            aligned = aligned.assign_coords(fwhm=("wavelength", NATURAL.fwhm))
        cube = aligned.values
        patches = extract_patches(cube, patch_origins(cube.shape[1], cube.shape[2], spec, where=folder.name),
                                  spec.size)
        patches = patches[~np.isnan(patches).any(axis=(1, 2, 3))]
        ys.append(patches)
        srcs += [folder.name] * len(patches)
    y = np.concatenate(ys).astype(np.float32)
    sources = np.array(srcs)
    val = args.val or [f.name for f in folders[-2:]]
    is_val = np.isin(sources, val)
    _, rgb_path = store_paths(args.params, args.stores)
    return y, NATURAL.centres, is_val, open_store(rgb_path)["rgb"].values[:512], sources


def min_angle(E: np.ndarray) -> float:
    U = E / np.linalg.norm(E, axis=0, keepdims=True)
    a = np.degrees(np.arccos(np.clip(U.T @ U, -1, 1)))
    np.fill_diagonal(a, 180.0)
    return float(a.min())


def fcls_figures(E: np.ndarray, y_val: np.ndarray) -> dict:
    n, c, h, w = y_val.shape
    a = fcls(np.moveaxis(y_val, 1, 0).reshape(c, -1).astype(np.float64), E)
    y_hat = np.moveaxis((E @ a).reshape(c, n, h, w), 0, 1)
    return reconstruction_report(y_hat, y_val)


def run(args) -> None:
    params = load_params(args.params)
    seed = int(params["seed"])
    y, wl, is_val, rgb, sources = (pipeline_data if args.what == "pipeline" else cave_data)(params, args)
    y_tr = y[~is_val]
    b = np.moveaxis(y_tr, 1, 0).reshape(y.shape[1], -1).sum(axis=0)
    print(f"# {args.what}: train {sorted(set(map(str, sources[~is_val])))} ({int((~is_val).sum())} patches), validate "
          f"{sorted(set(map(str, sources[is_val])))} ({int(is_val.sum())} patches), {len(wl)} bands "
          f"{wl[0]:.0f}-{wl[-1]:.0f} nm; training pixels' band sum: median {np.median(b):.2f}, 99th percentile "
          f"{np.quantile(b, 0.99):.2f}, share below 0.1 x p99 {np.mean(b < 0.1 * np.quantile(b, 0.99)):.2f}")
    t0 = time.perf_counter()
    E_vca, _ = vca_fcls(y_tr, int(params["unmixing"]["k"]), seed=seed)
    t_vca = time.perf_counter() - t0
    for rule in args.rules:
        u = dict(params["unmixing"], init_endmembers=rule)
        if args.epochs is not None:
            u["train"] = dict(u["train"], epochs=args.epochs)
        s = UnmixingSettings.from_params(u, seed)
        s.train = replace(s.train, progress=False)
        t0 = time.perf_counter()
        E0 = (fit_references(y, wl, is_val, rgb, s, seed=seed).init_endmembers if rule == "least_squares"
              else initial_endmembers(y_tr, s, seed, E_vca))
        took = t_vca if rule == "vca" else time.perf_counter() - t0
        print(f"\n## init_endmembers: {rule} ({took:.1f} s)")
        print("  start band sums: " + ", ".join(f"{v:.2f}" for v in E0.sum(axis=0))
              + f"; smallest pairwise angle {min_angle(E0):.1f}°")
        f = fcls_figures(E0, y[is_val])
        print(f"  FCLS on them, validation: PSNR {f['psnr']:.2f} dB, SAD {f['sad_deg']:.2f}°, RMSE {f['rmse']:.4f}")
        if s.train.epochs > 0:
            t0 = time.perf_counter()
            fitted = fit_unmixing(y, wl, is_val, rgb, s, seed=seed)
            best = fitted.best
            E = fitted.model.endmembers().detach().numpy()
            print(f"  network ({s.train.epochs} epochs max, kept epoch {fitted.result.best_epoch}, "
                  f"{time.perf_counter() - t0:.0f} s): PSNR {best['val_psnr']:.2f} dB, SSIM {best['val_ssim']:.3f}, "
                  f"SAD {best['val_sad_deg']:.2f}°, RMSE {best['val_rmse']:.4f}")
            print("  trained band sums: " + ", ".join(f"{v:.2f}" for v in E.sum(axis=0))
                  + f"; smallest pairwise angle {min_angle(E):.1f}°")
            if fitted.input_bands is not None:   # least squares reproduces the input bands exactly: compare without
                keep = np.setdiff1d(np.arange(len(wl)), fitted.input_bands)
                net = reconstruction_report(reconstruct(fitted.model, fitted.x[is_val])[:, keep], y[is_val][:, keep])
                ls = reconstruction_report(predict_patches(fitted.regressions["least_squares_1"],
                                                           fitted.x[is_val])[:, keep], y[is_val][:, keep])
                print(f"  without the {len(fitted.input_bands)} input bands: network PSNR {net['psnr']:.2f} dB, SAD "
                      f"{net['sad_deg']:.2f}°, RMSE {net['rmse']:.4f}; least squares PSNR {ls['psnr']:.2f} dB, SAD "
                      f"{ls['sad_deg']:.2f}°, RMSE {ls['rmse']:.4f}")
            if rule == args.rules[0]:
                for name in ("least_squares_1", "mean_spectrum"):
                    ref = reconstruction_report(predict_patches(fitted.regressions[name], fitted.x[is_val]), y[is_val])
                    print(f"  ({BASELINE_NAMES[name]}: PSNR {ref['psnr']:.2f} dB, SAD {ref['sad_deg']:.2f}°)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["pipeline", "cave"])
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--stores", type=Path, default=None, help="folder with hsi.zarr and rgb.zarr (default: catalogue)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (0: endmembers and FCLS only; "
                                                             "default: params)")
    ap.add_argument("--rules", type=lambda v: v.split(","), default=["vca", "vca_normalized", "least_squares"])
    ap.add_argument("--cave", type=Path, default=REPO.parent / "shared" / "data" / "natural" / "cave")
    ap.add_argument("--val", type=lambda v: v.split(","), default=None, help="cave: validation scenes")
    ap.add_argument("--downsample", type=int, default=4, help="cave: block-average factor (512 px -> 128 px)")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
