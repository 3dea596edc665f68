"""Synthesis throughput: samples per second through sampling, mixing and writing the Zarr store, with 1 and 2 Dask
workers, using the registered generator and unmixing model of this project (run `make repro` first).

Usage: python benchmarks/synthesis_throughput.py [--n 32] [--block-size 4] [--steps 20] [--sampler dpm++sde]
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

import tasks  # noqa: F401  (offline defaults)
from tasks.registry import configure_tracking, download_generator, load_torch_model, resolve_model_version
from ubf_core.config import load_params
from ubf_core.generators import load_generator
from ubf_core.parallel import dask_client
from ubf_core.synthesis import SynthesisJob, plan_labels, synthesize

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--block-size", type=int, default=4)
    ap.add_argument("--sampler", default="dpm++sde")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    params = load_params(args.params)
    configure_tracking(args.params.resolve().parent)
    uri = params["generator"]["model_uri"]
    version = resolve_model_version(uri)
    unmixing_uri = f"models:/{params['unmixing']['model_name']}/{version.tags['unmixing_model_version']}"
    model = load_torch_model(unmixing_uri)
    E = model.endmembers().detach().numpy()
    wl = np.asarray(model.meta["wavelength_nm"])
    print(f"# synthesis throughput — {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_generator(uri, Path(tmp) / "gen")
        gen = load_generator(folder)
        class_mix = {c: 1 for c in gen.classes} if gen.classes else None
        sampler = {"sampler": args.sampler, "steps": args.steps} if gen.name == "ddpm" else {}
        job = SynthesisJob(plan_labels(args.n, class_mix, gen.classes), 0, tuple(gen.size), E, wl, sampler=sampler,
                           config={"generator": uri})
        print(f"# {uri} ({gen.name}, v{version.version}), {args.n} samples of {gen.size[0]}×{gen.size[1]}×"
              f"{len(wl)}, blocks of {args.block_size}, {args.sampler} {args.steps} steps, 1 torch thread per block")
        print("workers  seconds  samples/s  MB/s (float32 reflectance written)")
        stores = []
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}.zarr"
            with dask_client(n_workers=workers, threads_per_worker=1, processes=True) as client:
                client.run(lambda: __import__("ubf_core.synthesis"))  # warm the workers' imports
                t0 = time.perf_counter()
                synthesize(job, folder, out, client=client, block_size=args.block_size)
                took = time.perf_counter() - t0
            mb = args.n * len(wl) * gen.size[0] * gen.size[1] * 4 / 1e6
            print(f"{workers:>7}  {took:7.2f}  {args.n / took:9.2f}  {mb / took:6.2f}")
            stores.append(out)
        import xarray as xr

        same = all(np.array_equal(xr.open_zarr(stores[0], consolidated=False)[v].values,
                                  xr.open_zarr(stores[1], consolidated=False)[v].values)
                   for v in ("reflectance", "abundance"))
        print(f"# 1-worker and 2-worker stores identical: {same}")


if __name__ == "__main__":
    main()
