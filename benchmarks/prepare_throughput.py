"""Prepare throughput: MB of raw cube per second through reading, resampling, patching and writing Zarr.

Prints, for (a) the shared remote-sensing HSIs (../shared/data/hsi, those that cover the 398-698 nm grid) and
(b) a generated 1024 x 1024 x 224 float32 cube (AVIRIS wavelengths, ENVI file), the MB/s of the prepare step
(prepare_hsi_store) with a local Dask cluster of 1 and of 2 workers, side by side with the MB/s of merely reading
the same input and writing the same bytes with numpy (np.save): the floor any pipeline would pay on this machine,
and their ratio (prepare time / floor time; 1.0 = disk speed).

Each round runs a fresh process per code tree: this checkout, and with ``--before REV`` a ``git worktree`` of that
revision first (the same script, that tree's code on PYTHONPATH). The process starts both clusters and warms every
worker up with a small prepare (imports, first allocations; not timed). Then, for each case and worker count, it
runs the floor once untimed (on a VM, memory not touched for a few seconds costs up to 3 s/GB to touch again; the
run that follows finds it warm), times the floor, and right after it prepare, each after an ``os.sync()`` (neither
pays for the other's writeback): the ratio of that pair is what a machine busy with other work disturbs least.
Printed: the best floor and prepare times of the --repeat rounds (as MB/s), the median of the paired ratios, every
round's ratio, and the median ratio of CPU seconds (prepare: this process and its Dask workers; the floor: this
process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AVIRIS = {"table": "spectra/aviris_wavelengths.mat", "table_variable": "AVIRIS_wavlen", "sort": True}


def shared_sources(shared: Path):
    """The shared scenes that cover the remote-sensing grid (pavia starts at 430 nm, muufl at 412 nm: left out)."""
    from ubf_core.io import HSISource

    specs = {
        "salton-sea": {"path": "hsi/salton_sea_roi.mat", "variable": "I", "layout": "HWC",
                       "wavelengths": {"variable": "wl", "unit": "um", "sort": True},
                       "fwhm": {"variable": "params.fwhm", "unit": "nm"},
                       "bad_bands": {"variable": "bbl", "bad_value": 0}},
        "samson": {"path": "hsi/samson.mat", "variable": "SamSon", "layout": "HWC",
                   "wavelengths": {"linspace": [401, 889, 156]}},
        "jasper-ridge": {"path": "hsi/jasper_ridge_r198.mat", "variable": "Y", "layout": "pixel_major",
                         "rows": "nRow", "cols": "nCol", "order": "F", "scale": 1e-4,
                         "wavelengths": {**AVIRIS, "table": str(shared / AVIRIS["table"]),
                                         "indices_variable": "SlectBands", "index_base": 1}},
    }
    for f in sorted((shared / "hsi" / "abu").glob("*.mat")):
        specs[f.stem] = {"path": f"hsi/abu/{f.name}", "variable": "data", "layout": "HWC", "scale": 1e-4,
                         "wavelengths": {**AVIRIS, "table": str(shared / AVIRIS["table"]), "first_n": True},
                         "units": "radiance", "sensor": "aviris"}
    return [HSISource.from_params(k, _units(v), shared) for k, v in specs.items()]


def _units(spec: dict) -> dict:
    """``spec`` with ``units`` (reflectance unless given); without units and sensor for an earlier revision's
    reader, which knows neither."""
    from ubf_core.io import HSISource

    if "units" not in HSISource.__dataclass_fields__:
        return {k: v for k, v in spec.items() if k not in ("units", "sensor")}
    return {"units": "reflectance", **spec}


def generated_source(folder: Path):
    from ubf_core.io import HSISource

    return HSISource.from_params("generated", _units({"path": str(folder / "generated.hdr"), "format": "envi"}),
                                 folder)


def raw_bytes(sources) -> int:
    """Bytes of the cubes in their stored dtype (as loaded; scipy's whosmat reports int16 data as 'double')."""
    import scipy.io as sio

    total = 0
    for s in sources:
        if s.path.suffix == ".mat":
            total += sio.loadmat(s.path, variable_names=[s.variable])[s.variable].nbytes
        else:
            total += s.path.with_suffix(".img").stat().st_size
    return total


def numpy_floor(sources, tmp: Path) -> float:
    """Seconds to read each cube's variable and write the same bytes with np.save (the files are removed after)."""
    import scipy.io as sio

    t0 = time.perf_counter()
    for i, s in enumerate(sources):
        if s.path.suffix == ".mat":
            arr = sio.loadmat(s.path, variable_names=[s.variable])[s.variable]
        else:  # ENVI: the raw data file beside the header
            arr = np.fromfile(s.path.with_suffix(".img"), dtype=np.float32)
        np.save(tmp / f"floor-{i}.npy", arr)
    seconds = time.perf_counter() - t0
    for i in range(len(sources)):
        (tmp / f"floor-{i}.npy").unlink()
    return seconds


def generated_cube(size: int, folder: Path):
    """A size x size x 224 float32 cube with AVIRIS band centres (smooth random spectra), written as ENVI."""
    import scipy.io as sio
    import xarray as xr

    from ubf_core.io import write_envi

    folder.mkdir(parents=True, exist_ok=True)
    wl = np.sort(sio.loadmat(REPO / "data" / "spectra" / "aviris_wavelengths.mat")["AVIRIS_wavlen"].ravel())
    rng = np.random.default_rng(0)
    basis = np.stack([np.exp(-0.5 * ((wl - c) / 150.0) ** 2) for c in (450, 650, 900, 1600, 2200)])
    weights = rng.random((size * size, 5), dtype=np.float32)
    cube = (weights @ basis.astype(np.float32)).T.reshape(224, size, size) * 0.3
    da = xr.DataArray(cube.astype(np.float32), dims=("wavelength", "y", "x"),
                      coords={"wavelength": wl, "fwhm": ("wavelength", np.full(224, 10.0))},
                      attrs={"source": "generated"})
    write_envi(da, folder / "generated.hdr")
    return generated_source(folder)


# --------------------------------------------------------------------------------- the timing process (one tree)

def shard_patches(size: int, config: dict) -> int:
    """Patches per shard: --shard-patches, or the power of two nearest to --shard-mb of 59-band float32 patches."""
    if config["shard_patches"]:
        return config["shard_patches"]
    return 2 ** max(0, round(math.log2(config["shard_mb"] * 1e6 / (59 * size * size * 4))))


def _spec(size: int, stride: int, config: dict):
    """A PatchSpec; an earlier revision's has no shard_patches (one file per patch)."""
    from ubf_core.data.patches import PatchSpec

    if "shard_patches" in PatchSpec.__dataclass_fields__:
        return PatchSpec(size, stride, shard_patches=shard_patches(size, config))
    return PatchSpec(size, stride)


def _time_prepare(client, sources, out: Path, spec) -> tuple[float, int]:
    """Seconds of one prepare_hsi_store run on ``client`` (the store is removed afterwards), and its patch count."""
    from ubf_core.data.prepare import prepare_hsi_store
    from ubf_core.spectral import REMOTE_SENSING

    t0 = time.perf_counter()
    summary = prepare_hsi_store(sources, REMOTE_SENSING, spec, out, client=client, max_nan_fraction=0.5)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return seconds, summary.n_patches


def _cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its children (the Dask workers and nannies)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def child(config: dict) -> None:
    """Time one prepare per case and worker count with this process's ubf_core; print them as JSON."""
    import ubf_core
    from ubf_core.parallel import dask_client

    tmp = Path(config["tmp"]) / f"child-{os.getpid()}"
    tmp.mkdir(parents=True)
    cases = []
    if config["shared"]:
        cases.append(("shared", shared_sources(Path(config["shared"])), _spec(32, 16, config)))
    if config["large"]:
        cases.append(("large", [generated_source(Path(config["large"]))], _spec(64, 64, config)))
    times: dict = {name: {} for name, _, _ in cases}
    patches: dict = {}
    tasks: dict = {}
    try:
        with contextlib.ExitStack() as stack:
            clients = {w: stack.enter_context(dask_client(n_workers=w, threads_per_worker=1, processes=True))
                       for w in config["workers"]}
            warm = generated_cube(96, tmp / "warm")
            for w, client in clients.items():
                _time_prepare(client, [warm] * (2 * w), tmp / "warm.zarr", _spec(32, 32, config))
            for name, sources, spec in cases:
                for w, client in clients.items():
                    numpy_floor(sources, tmp)   # not timed: on a VM the first touch of fresh memory can be slow
                    os.sync()   # neither timing pays for the other's writeback
                    cpu0 = _cpu_seconds()
                    floor = numpy_floor(sources, tmp)
                    os.sync()
                    cpu1 = _cpu_seconds()
                    seconds, patches[name] = _time_prepare(client, sources, tmp / f"{name}-{w}.zarr", spec)
                    times[name][w] = (floor, seconds, cpu1 - cpu0, _cpu_seconds() - cpu1)
                try:
                    from ubf_core.data.prepare import scene_blocks
                    tasks[name] = sum(len(scene_blocks(s, spec)) for s in sources)
                except ImportError:   # an earlier revision: one task per scene
                    tasks[name] = len(sources)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"code": ubf_core.__file__, "times": times, "patches": patches, "tasks": tasks}))


def run_tree(tree: Path, config: dict) -> dict:
    """The figures of one timing process importing ``tree``'s code."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)], cwd=tree,
                         env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{tree}: the timing run failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(figures["code"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the timing run in {tree} imported {figures['code']}: not that tree's code")
    return figures


# ------------------------------------------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--size", type=int, default=1024, help="side of the generated cube (224 bands)")
    ap.add_argument("--skip-large", action="store_true", help="skip the generated cube")
    ap.add_argument("--skip-shared", action="store_true", help="skip the shared scenes")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the best of them")
    ap.add_argument("--shard-patches", type=int, help="patches per shard file (params patch.shard_patches); "
                                                     "default: from --shard-mb")
    ap.add_argument("--shard-mb", type=float, default=16.0,
                    help="shard size: the power of two of patches nearest to it (16 MB: 64 patches of 32 x 32, "
                         "as params.yaml; 16 of 64 x 64)")
    ap.add_argument("--before", help="also time this git revision (a temporary worktree), alternated with this one")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))

    from ubf_core.spectral import REMOTE_SENSING

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} "
          f"at the start; grid {REMOTE_SENSING.start_nm:g}-{REMOTE_SENSING.stop_nm:g} nm x "
          f"{REMOTE_SENSING.n_bands}; best of {args.repeat} rounds")
    tmp = Path(tempfile.mkdtemp(prefix="ubf-bench-"))
    trees = {"this checkout": REPO}
    try:
        if args.before:
            old = tmp / "before"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.before], cwd=REPO, check=True)
            trees = {f"before ({args.before})": old, **trees}
        cases: dict = {}
        if not args.skip_shared:
            if args.shared.is_dir():
                sources = shared_sources(args.shared)
                cases["shared"] = (f"shared HSIs ({len(sources)} scenes, patches 32/16)", sources, raw_bytes(sources),
                                   32)
            else:
                print(f"{args.shared} not found: shared-data figures skipped")
        if not args.skip_large:
            t0 = time.perf_counter()
            src = generated_cube(args.size, tmp / "large")
            print(f"(generated {args.size}x{args.size}x224 ENVI cube in {time.perf_counter() - t0:.1f} s)")
            cases["large"] = (f"generated cube {args.size}x{args.size}x224 float32 (patches 64/64)", [src],
                              224 * args.size * args.size * 4, 64)
        config = {"tmp": str(tmp), "workers": args.workers, "shard_patches": args.shard_patches,
                  "shard_mb": args.shard_mb,
                  "shared": str(args.shared.resolve()) if "shared" in cases else None,
                  "large": str(tmp / "large") if "large" in cases else None}
        runs: dict = {t: [] for t in trees}
        for r in range(args.repeat):
            for t, tree in trees.items():
                runs[t].append(run_tree(tree, config))
            print(f"round {r + 1}/{args.repeat} done", file=sys.stderr)
        for c, (title, _, nbytes, size) in cases.items():
            mb = nbytes / 1e6
            print(f"\n{title}: {mb:.1f} MB of raw cube, {shard_patches(size, config)} patches per shard file, "
                  + ", ".join(f"{t}: {runs[t][0]['patches'][c]} patches in {runs[t][0]['tasks'][c]} task(s)"
                              for t in trees))
            print(f"  {'':36s} {'floor MB/s':>10s} {'prepare MB/s':>12s} {'x floor':>8s} {'CPU x floor':>12s}"
                  f"   (every round: x floor)")
            for t in trees:
                for w in args.workers:
                    rounds = [run["times"][c][str(w)] for run in runs[t]]
                    floor, best = min(r[0] for r in rounds), min(r[1] for r in rounds)
                    ratios = [r[1] / r[0] for r in rounds]
                    cpu = statistics.median(r[3] / r[2] for r in rounds)
                    label = f"{t}, {w} worker{'s' if w > 1 else ''}"
                    print(f"  {label:36s} {mb / floor:10.1f} {mb / best:12.1f} {statistics.median(ratios):8.2f} "
                          f"{cpu:12.2f}   ({' '.join(f'{x:.2f}' for x in ratios)})")
    finally:
        if args.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")], cwd=REPO, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
