"""How far are the synthetic spectra from every library spectrum? The spectral angle of each pixel to its nearest
spectrum of the spectral library (ubf_core/metrics/library_angle.py), on the stores that `make repro` wrote.

The library is the pipeline's (params unmixing.library: path, missing_below, missing_rule, duplicate_angle_deg;
grid.coverage_tolerance_nm), every usable spectrum on the stores' grid, not only the N the decoder selects.

Rows (each up to --pixels pixels, drawn with params seed):
  synthetic           the generated HSIs (catalogue `synthetic`), pooled, then per class (`label`) and per generator
                      when the store has such a coordinate
  real held-out       HSI store patches whose source is in unmixing.validation_sources, all and per units
  real training       the other HSI store patches, all and per units (radiance sits further from a reflectance
                      library than reflectance: compare like with like)
  control: shuffled   the synthetic pixels with their bands permuted (one permutation, from the seed)
  control: smooth     smooth random positive spectra: an offset plus 1-3 Gaussians on the grid
The controls must come out clearly worse than the synthetic row (median larger by --margin degrees), else the
metric cannot tell physical spectra from arbitrary ones on this grid; a verdict line says which.

Columns: median, 25 % and 75 % quantiles of the angle (degrees), share of pixels under 5° and under 10°; then the
most common nearest library entries of the synthetic and the held-out real pixels. The angle ignores brightness.

Usage: python benchmarks/library_angle.py [--pixels 20000] [--params params.yaml] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import dask
import numpy as np

from ubf_core.catalog import project_catalog
from ubf_core.config import load_params
from ubf_core.data.stores import open_store
from ubf_core.errors import UBFInputError
from ubf_core.metrics.library_angle import angle_summary, nearest_library_angles
from ubf_core.spectral.grid import SpectralGrid
from ubf_core.spectral.library import LibrarySettings, load_library

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
GENERATOR_COORDS = ("generator", "model")     # a sample coordinate naming the generator, when a store mixes several


def dataset(params_path: Path, name: str) -> Path:
    """Catalogue dataset ``name`` of the project whose params file is ``params_path`` (as benchmarks/unmixing.py)."""
    return project_catalog(params_path.resolve().parent).path(name)


def library_on(params: dict, params_path: Path, wavelengths_nm: np.ndarray):
    """All usable library spectra on the params grid, which must have the stores' band centres (nm)."""
    grid = SpectralGrid.from_params(params["grid"], where="params.yaml grid")
    if grid.n_bands != wavelengths_nm.size or not np.allclose(grid.centres, wavelengths_nm, atol=1e-6):
        raise UBFInputError("params.yaml grid", f"{grid.n_bands} bands are not the stores' {wavelengths_nm.size}")
    settings = LibrarySettings.from_params(params)
    path = Path(settings.path)
    settings = replace(settings, path=str(path if path.is_absolute() else params_path.resolve().parent / path))
    return load_library(settings, grid)


def pixels(cube: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` finite pixels (P, C) drawn without replacement from patches (N, C, H, W)."""
    flat = np.moveaxis(cube, 1, -1).reshape(-1, cube.shape[1])
    flat = flat[np.all(np.isfinite(flat), axis=1)]
    if len(flat) > count:
        flat = flat[np.sort(rng.choice(len(flat), size=count, replace=False))]
    return flat.astype(np.float64)


def smooth_random(count: int, wl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``count`` smooth positive spectra (count, C): offset U(0, 0.1) plus 1-3 Gaussians (centre anywhere on the grid,
    sigma 15-100 nm, height 0.05-0.6)."""
    out = rng.uniform(0.0, 0.1, (count, 1)) + np.zeros((count, wl.size))
    bumps = rng.integers(1, 4, count)
    for j in range(3):
        on = (bumps > j)[:, None]
        c = rng.uniform(wl[0], wl[-1], (count, 1))
        s = rng.uniform(15.0, 100.0, (count, 1))
        a = rng.uniform(0.05, 0.6, (count, 1))
        out += on * a * np.exp(-0.5 * ((wl[None, :] - c) / s) ** 2)
    return out


def top_names(index: np.ndarray, names: tuple[str, ...], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most common nearest entries with their shares of the pixels that have one."""
    idx = index[index >= 0]
    return [(names[i], n / max(len(idx), 1)) for i, n in Counter(idx.tolist()).most_common(k)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--pixels", type=int, default=20000, help="pixels per row at most (default 20000)")
    ap.add_argument("--margin", type=float, default=5.0,
                    help="a control is flagged when its median angle exceeds the synthetic one by this many "
                         "degrees (default 5)")
    ap.add_argument("--json", action="store_true", help="also write benchmarks/out/library_angle.json")
    args = ap.parse_args()
    if args.pixels < 1:
        ap.error("--pixels must be positive")
    dask.config.set(scheduler="synchronous")               # one thread: read the stores chunk by chunk
    params = load_params(args.params)
    seed = int(params["seed"])
    syn = open_store(dataset(args.params, "synthetic"))
    hsi = open_store(dataset(args.params, "hsi"))
    wl = np.asarray(hsi["wavelength"].values, dtype=np.float64)
    if not np.allclose(np.asarray(syn["wavelength"].values, dtype=np.float64), wl, atol=1e-6):
        raise SystemExit("library_angle: the synthetic and HSI stores are on different wavelength grids")
    lib = library_on(params, args.params, wl)
    rng = lambda row: np.random.default_rng([seed, row])    # noqa: E731 — one stream per row, order-independent

    sets: dict[str, np.ndarray] = {}
    y_syn = np.asarray(syn["reflectance"].values)
    sets["synthetic (all)"] = pixels(y_syn, args.pixels, rng(0))
    for coord in [c for c in (*GENERATOR_COORDS, "label") if c in syn.coords and syn[c].dims == ("sample",)]:
        values = np.array([str(v) for v in syn[coord].values])
        for v in sorted(set(values)):
            sets[f"synthetic, {coord} {v}"] = pixels(y_syn[values == v], args.pixels, rng(len(sets)))
    y_hsi = np.asarray(hsi["reflectance"].values)
    sources = np.array([str(s) for s in hsi["source"].values])
    units = np.array([str(u) for u in hsi["units"].values])
    held = np.isin(sources, params["unmixing"]["validation_sources"])
    for name, part in (("real held-out", held), ("real training", ~held)):
        sets[f"{name} (all)"] = pixels(y_hsi[part], args.pixels, rng(len(sets)))
        for u in sorted(set(units[part])):
            sets[f"{name}, {u}"] = pixels(y_hsi[part & (units == u)], args.pixels, rng(len(sets)))
    perm = rng(1000).permutation(wl.size)
    sets["control: shuffled bands"] = sets["synthetic (all)"][:, perm]
    sets["control: smooth random"] = smooth_random(args.pixels, wl, rng(1001))

    results = {}
    for name, spectra in sets.items():
        angles, index = nearest_library_angles(spectra, lib.reflectance)
        results[name] = {**angle_summary(angles), "top": top_names(index, lib.names)}

    print(f"# nearest-library spectral angle — {lib.n} usable of {lib.dropped.get('in_file')} library spectra "
          f"({Path(lib.path).name}; dropped " + ", ".join(f"{k} {v}" for k, v in lib.dropped.items() if k != "in_file")
          + f") on {wl.size} bands {wl[0]:.0f}-{wl[-1]:.0f} nm; up to {args.pixels} pixels per row, seed {seed}")
    print(f"# held-out sources: {', '.join(sorted(set(sources[held])))}; synthetic store: "
          f"{syn.attrs.get('generator_model', '?')} v{syn.attrs.get('generator_version', '?')}, "
          f"units {syn.attrs.get('units', '?')}")
    print(f"{'set':<38}{'pixels':>8}{'median°':>9}{'q25°':>8}{'q75°':>8}{'<5°':>8}{'<10°':>8}")
    for name, r in results.items():
        print(f"{name:<38}{r['n']:>8d}{r['median']:>9.2f}{r['q25']:>8.2f}{r['q75']:>8.2f}"
              f"{r['share_below_5']:>8.3f}{r['share_below_10']:>8.3f}")
    for name in ("synthetic (all)", "real held-out (all)"):
        print(f"nearest entries, {name}: " + "; ".join(f"{n} {s:.1%}" for n, s in results[name]["top"]))
    ref, real = results["synthetic (all)"]["median"], results["real held-out (all)"]["median"]
    for name in ("control: shuffled bands", "control: smooth random"):
        d = results[name]["median"] - ref
        print(f"verdict, {name}: median {d:+.2f}° vs synthetic ({results[name]['median'] - real:+.2f}° vs real "
              f"held-out) → " + ("flagged (clearly worse)" if d >= args.margin
                                 else f"NOT flagged (< {args.margin:g}° worse)"))
    if args.json:
        OUT.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=OUT, prefix=".library_angle.", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"library_spectra": lib.n, "pixels": args.pixels, "seed": seed, "rows": results}, f, indent=1)
        os.chmod(tmp, 0o644)                                # mkstemp's 0600 → an ordinary report file
        os.replace(tmp, OUT / "library_angle.json")
        print(f"# wrote {OUT / 'library_angle.json'}")


if __name__ == "__main__":
    main()
