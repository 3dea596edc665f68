"""Synthesis throughput: samples per second through sampling, mixing and writing the Zarr store, for each
micro-batch m (samples per generator call) with 1 and 2 Dask workers, using the registered generator and unmixing
model of this project (run `make repro` first). The block size stays the same for every m (a multiple of each), so
only m changes; stores of one m must be identical for 1 and 2 workers.

Usage: python benchmarks/synthesis_throughput.py [--n 64] [--block-size 32] [--micro-batch 1 8 32] [--steps 20]
       [--sampler dpm++sde] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import tasks  # noqa: F401  (offline defaults)
from tasks.registry import (configure_tracking, download_generator, load_registered_unmixing_model,
                            resolve_model_version)
from ubf_core.config import load_params
from ubf_core.generators import load_generator
from ubf_core.parallel import dask_client
from ubf_core.synthesis.blocks import synthesize
from ubf_core.synthesis.job import SynthesisJob, plan_labels

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--block-size", type=int, default=32, help="samples per block: a multiple of every --micro-batch")
    ap.add_argument("--micro-batch", type=int, nargs="+", default=[1, 8, 32], help="values of m to time")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Dask worker counts (1 thread each)")
    ap.add_argument("--sampler", default="dpm++sde")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    params = load_params(args.params)
    configure_tracking(args.params.resolve().parent)
    uri = params["generator"]["model_uri"]
    version = resolve_model_version(uri)
    unmixing_uri = f"models:/{params['unmixing']['model_name']}/{version.tags['unmixing_model_version']}"
    model = load_registered_unmixing_model(unmixing_uri)
    E = model.endmembers().detach().numpy()
    wl = np.asarray(model.meta["wavelength_nm"])
    print(f"# synthesis throughput — {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_generator(uri, Path(tmp) / "gen")
        gen = load_generator(folder)
        class_mix = {c: 1 for c in gen.classes} if gen.classes else None
        bad = [m for m in args.micro_batch if args.block_size % m]
        if bad:
            raise SystemExit(f"--block-size {args.block_size} is not a multiple of --micro-batch {bad[0]}")
        base = {"sampler": args.sampler, "steps": args.steps} if gen.name == "ddpm" else {}
        print(f"# {uri} ({gen.name}, v{version.version}), {args.n} samples of {gen.size[0]}×{gen.size[1]}×"
              f"{len(wl)}, blocks of {args.block_size}, {args.sampler} {args.steps} steps, 1 torch thread per block")
        print("  m  workers  seconds  samples/s  MB/s  speed-up over the first m (same workers)")
        first = {}
        for m in args.micro_batch:
            job = SynthesisJob(plan_labels(args.n, class_mix, gen.classes), 0, tuple(gen.size), E, wl,
                               sampler={**base, "micro_batch": m}, config={"generator": uri})
            stores = []
            for workers in args.workers:
                out = Path(tmp) / f"m{m}-w{workers}.zarr"
                with dask_client(n_workers=workers, threads_per_worker=1, processes=True) as client:
                    client.run(lambda: __import__("ubf_core.synthesis.blocks"))  # warm the workers' imports
                    t0 = time.perf_counter()
                    synthesize(job, folder, out, client=client, block_size=args.block_size)
                    took = time.perf_counter() - t0
                mb = args.n * len(wl) * gen.size[0] * gen.size[1] * 4 / 1e6
                ratio = first.setdefault(workers, took) / took
                print(f"{m:>3}  {workers:>7}  {took:7.2f}  {args.n / took:9.2f}  {mb / took:5.2f}  {ratio:5.2f}×")
                stores.append(out)
            same = all(np.array_equal(xr.open_zarr(stores[0], consolidated=False)[v].values,
                                      xr.open_zarr(a, consolidated=False)[v].values)
                       for a in stores[1:] for v in ("reflectance", "abundance"))
            print(f"# m = {m}: stores of {', '.join(map(str, args.workers))} workers identical: {same}")


if __name__ == "__main__":
    main()
