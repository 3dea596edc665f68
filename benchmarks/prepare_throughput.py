"""Prepare throughput: MB of raw cube per second through reading, resampling, patching and writing Zarr.

Prints, for (a) the shared remote-sensing HSIs (../shared/data/hsi, those that cover the 398-698 nm grid) and
(b) a generated 1024 x 1024 x 224 float32 cube (AVIRIS wavelengths, ENVI file), the wall time of the prepare step
with a local Dask cluster of 1 and 2 workers, and next to it the time to merely read the same input and write the
same bytes with numpy (np.save), the floor any pipeline would pay on this machine.

Usage: python benchmarks/prepare_throughput.py [--shared ../shared/data] [--skip-large] [--size 1024]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ubf_core.data.patches import PatchSpec
from ubf_core.data.prepare import prepare_hsi_store
from ubf_core.io import HSISource, write_envi
from ubf_core.parallel import dask_client
from ubf_core.spectral import REMOTE_SENSING

REPO = Path(__file__).resolve().parents[1]
AVIRIS = {"table": "spectra/aviris_wavelengths.mat", "table_variable": "AVIRIS_wavlen", "sort": True}


def shared_sources(shared: Path) -> list[HSISource]:
    """The shared scenes that cover the remote-sensing grid (pavia starts at 430 nm, muufl at 412 nm: left out)."""
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
                         "wavelengths": {**AVIRIS, "table": str(shared / AVIRIS["table"]), "first_n": True}}
    return [HSISource.from_params(k, v, shared) for k, v in specs.items()]


def raw_bytes(sources: list[HSISource]) -> int:
    """Bytes of the cubes in their stored dtype (as loaded; scipy's whosmat reports int16 data as 'double')."""
    import scipy.io as sio

    total = 0
    for s in sources:
        if s.path.suffix == ".mat":
            total += sio.loadmat(s.path, variable_names=[s.variable])[s.variable].nbytes
        else:
            total += s.path.with_suffix(".img").stat().st_size
    return total


def numpy_floor(sources: list[HSISource], tmp: Path) -> float:
    """Seconds to read each cube's variable and write the same bytes with np.save."""
    import scipy.io as sio

    t0 = time.perf_counter()
    for i, s in enumerate(sources):
        if s.path.suffix == ".mat":
            arr = sio.loadmat(s.path, variable_names=[s.variable])[s.variable]
        else:  # ENVI: the raw data file beside the header
            arr = np.fromfile(s.path.with_suffix(".img"), dtype=np.float32)
        np.save(tmp / f"floor-{i}.npy", arr)
    return time.perf_counter() - t0


def time_prepare(sources, out: Path, spec: PatchSpec, n_workers: int) -> tuple[float, int]:
    with dask_client(n_workers=n_workers, threads_per_worker=1, processes=True) as client:
        t0 = time.perf_counter()
        summary = prepare_hsi_store(sources, REMOTE_SENSING, spec, out, client=client, max_nan_fraction=0.5)
        return time.perf_counter() - t0, summary.n_patches


def generated_cube(size: int, tmp: Path) -> HSISource:
    """A size x size x 224 float32 cube with AVIRIS band centres (smooth random spectra), written as ENVI."""
    import scipy.io as sio

    wl = np.sort(sio.loadmat(REPO / "data" / "spectra" / "aviris_wavelengths.mat")["AVIRIS_wavlen"].ravel())
    rng = np.random.default_rng(0)
    basis = np.stack([np.exp(-0.5 * ((wl - c) / 150.0) ** 2) for c in (450, 650, 900, 1600, 2200)])
    weights = rng.random((size * size, 5), dtype=np.float32)
    cube = (weights @ basis.astype(np.float32)).T.reshape(224, size, size) * 0.3
    da = xr.DataArray(cube.astype(np.float32), dims=("wavelength", "y", "x"),
                      coords={"wavelength": wl, "fwhm": ("wavelength", np.full(224, 10.0))},
                      attrs={"source": "generated"})
    path = tmp / "generated.hdr"
    write_envi(da, path)
    return HSISource.from_params("generated", {"path": str(path), "format": "envi"}, tmp)


def report(name: str, nbytes: int, floor_s: float, runs: dict[int, tuple[float, int]]) -> None:
    mb = nbytes / 1e6
    print(f"\n{name}: {mb:.1f} MB of raw cube")
    print(f"  numpy floor (read + np.save same bytes): {floor_s:7.2f} s  {mb / floor_s:8.1f} MB/s")
    for workers, (sec, n) in runs.items():
        print(f"  prepare, {workers} Dask worker(s):            {sec:7.2f} s  {mb / sec:8.1f} MB/s  ({n} patches)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--size", type=int, default=1024, help="side of the generated cube (224 bands)")
    ap.add_argument("--skip-large", action="store_true", help="skip the generated cube")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"grid {REMOTE_SENSING.start_nm:g}-{REMOTE_SENSING.stop_nm:g} nm x {REMOTE_SENSING.n_bands}")
    spec_small = PatchSpec(32, 16)
    tmp = Path(tempfile.mkdtemp(prefix="ubf-bench-"))
    try:
        if args.shared.is_dir():
            sources = shared_sources(args.shared)
            nbytes = raw_bytes(sources)
            runs = {w: time_prepare(sources, tmp / f"shared-{w}.zarr", spec_small, w) for w in args.workers}
            report(f"shared HSIs ({len(sources)} scenes, patches 32/16)", nbytes, numpy_floor(sources, tmp), runs)
        else:
            print(f"{args.shared} not found: shared-data figures skipped")
        if not args.skip_large:
            t0 = time.perf_counter()
            src = generated_cube(args.size, tmp)
            print(f"\n(generated {args.size}x{args.size}x224 ENVI cube in {time.perf_counter() - t0:.1f} s)")
            n = 224 * args.size * args.size * 4
            floor = numpy_floor([src], tmp)
            runs = {w: time_prepare([src], tmp / f"gen-{w}.zarr", PatchSpec(64, 64), w) for w in args.workers}
            report(f"generated cube {args.size}x{args.size}x224 float32 (patches 64/64, one scene = one task)",
                   n, floor, runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
