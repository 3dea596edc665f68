"""Sampling speed and quality of the abundance DDPM: ancestral sampling over all T steps against DDIM,
DPM-Solver++ and its stochastic (SDE) variant at a few steps, on the same model and the same seeds.

Trains a CPU-sized DDPM (ubf_core.generators, unconditional) on the RGB abundance store, then draws the same M
samples (seed 0, indices 0 … M−1) with each sampler and prints, per sampler:

  s/sample   wall seconds per sample (sampling M maps in one call, divided by M)
  NFE        UNet evaluations per sample
  speed-up   ancestral seconds per sample / this sampler's
  angle°     mean spectral angle of each generated pixel to its nearest real pixel, in degrees, both mixed with the
             learned endmembers (Y = E·A, E from stores/endmembers.zarr; real pixels: E·A of the training maps)
  hist       abundance-histogram distance (ubf_core.metrics.distribution.abundance_histogram_distance) to the
             training maps
  Δangle, Δhist   relative difference of those two figures to the ancestral samples', in %

plus two yardsticks: the same figures for M real training maps (the floor), and a last row with ancestral
sampling of the next M sample indices (other seeds): how far two sets of M samples of one sampler differ. A fast
sampler whose Δ lies within that row's is as close to ancestral as M samples can tell.
Target of the issue: ≥ 40× less wall time at 20–25 steps with quality within 1 % of ancestral sampling.

Usage: python benchmarks/generator_sampling.py [--train-steps 1500] [--steps-train 2000] [--size 32] [--samples 16]
       python benchmarks/generator_sampling.py --quick      (4 training steps, 16×16 tiles, 2 samples: checks it runs)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ubf_core.generators import TrainSettings, make_generator, nearest_real_angle_deg
from ubf_core.metrics.distribution import abundance_histogram_distance

REPO = Path(__file__).resolve().parents[1]


def load_maps(store: Path, size: int) -> np.ndarray:
    """Abundance maps (N, k, size, size): the store's 32×32 patches, cut into size×size tiles when smaller."""
    maps = xr.open_zarr(store, consolidated=False)["abundance"].values.astype(np.float32)
    n, k, h, w = maps.shape
    if h % size or w % size:
        raise SystemExit(f"--size {size} must divide the store's patch size {h}×{w}")
    tiles = maps.reshape(n, k, h // size, size, w // size, size).transpose(0, 2, 4, 1, 3, 5)
    return np.ascontiguousarray(tiles.reshape(-1, k, size, size))


def spectra(maps: np.ndarray, endmembers: np.ndarray) -> np.ndarray:
    """Abundance maps (N, k, H, W) → pixel spectra (N·H·W, C) by linear mixing Y = E·A."""
    k = maps.shape[1]
    return np.moveaxis(maps, 1, -1).reshape(-1, k) @ endmembers.T


def quality(maps: np.ndarray, train: np.ndarray, real_spectra: np.ndarray, endmembers: np.ndarray,
            max_real: int) -> tuple[float, float]:
    """(mean nearest-real angle in degrees after mixing, abundance-histogram distance to the training maps)."""
    angle = nearest_real_angle_deg(spectra(maps, endmembers), real_spectra, max_real=max_real, seed=0)
    return angle, abundance_histogram_distance(maps, train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=REPO / "stores" / "abundance_rgb.zarr",
                        help="abundance store (variable 'abundance' (patch, endmember, y, x))")
    parser.add_argument("--endmembers", type=Path, default=REPO / "stores" / "endmembers.zarr",
                        help="endmember store (variable 'endmembers' (wavelength, endmember))")
    parser.add_argument("--train-steps", type=int, default=1500, help="optimizer steps of training (default 1500)")
    parser.add_argument("--steps-train", type=int, default=2000, help="diffusion steps T (default 2000)")
    parser.add_argument("--size", type=int, default=32, help="map side in pixels; < 32 cuts patches into tiles")
    parser.add_argument("--samples", type=int, default=16, help="samples M per sampler (default 16)")
    parser.add_argument("--fast-steps", type=int, nargs="+", default=[10, 20, 50],
                        help="steps of the fast samplers (default 10 20 50)")
    parser.add_argument("--constraint", choices=["softmax", "hud"], default="hud",
                        help="diffusion space (default hud, as params.yaml)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-real", type=int, default=20000, help="real pixels used for the nearest-real search")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the CPU-sized UNet gains little from more, and the cores "
                             "may be shared)")
    parser.add_argument("--quick", action="store_true", help="a short run: 4 training steps, 16×16 tiles, 2 samples")
    args = parser.parse_args()
    if args.quick:
        args.train_steps, args.size, args.samples = 4, 16, 2
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    train = load_maps(args.store, args.size)
    endmembers = xr.open_zarr(args.endmembers, consolidated=False)["endmembers"].values.astype(np.float64)
    real = spectra(train, endmembers)
    k = train.shape[1]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"# training maps: {train.shape} from {args.store.name}; endmembers {endmembers.shape} "
          f"(wavelength, endmember) from {args.endmembers.name}")

    gen = make_generator("ddpm", k, (args.size, args.size), None, num_train_timesteps=args.steps_train,
                         constraint=args.constraint)
    n_params = sum(p.numel() for p in gen.unet.parameters())
    t0 = time.perf_counter()
    history = gen.fit(train, settings=TrainSettings(steps=args.train_steps, batch_size=args.batch_size, lr=args.lr),
                      seed=0, progress=False)
    print(f"# DDPM: T = {args.steps_train}, β 1e-6 → 1e-2, constraint {args.constraint}, UNet "
          f"{gen.config['block_out_channels']} ({n_params / 1e6:.2f} M parameters); {args.train_steps} steps in "
          f"{time.perf_counter() - t0:.1f} s, loss {history[0]['loss']:.4f} → {history[-1]['loss']:.4f}")
    print("# quality: angle = mean spectral angle (°) of generated pixels to the nearest real pixel after mixing "
          "Y = E·A; hist = abundance-histogram distance to the training maps")

    rng = np.random.default_rng(0)
    floor = quality(train[rng.choice(len(train), args.samples, replace=False)], train, real, endmembers,
                    args.max_real)
    print(f"# noise floor: {args.samples} real training maps: angle {floor[0]:.4f}°, hist {floor[1]:.4f}")

    fast = [(s, n, 0) for s in ("ddim", "dpm++", "dpm++sde") for n in args.fast_steps]
    # (sampler, steps, first sample index); the last row: ancestral on the next M indices (other seeds)
    runs = [("ddpm", args.steps_train, 0)] + fast + [("ddpm", args.steps_train, args.samples)]
    header = f"{'sampler':<9}{'samples':>8}{'steps':>6}{'s/sample':>10}{'NFE':>6}{'speed-up':>10}{'angle°':>9}" \
             f"{'hist':>8}{'Δangle':>9}{'Δhist':>9}"
    print(header)
    reference = None
    for sampler, steps, first in runs:
        t0 = time.perf_counter()
        maps = gen.sample(args.samples, seed=0, start_index=first, sampler=sampler, steps=steps)
        per_sample = (time.perf_counter() - t0) / args.samples
        angle, hist = quality(maps, train, real, endmembers, args.max_real)
        if reference is None:
            reference = (per_sample, angle, hist)
        indices = f"{first}–{first + args.samples - 1}"
        print(f"{sampler:<9}{indices:>8}{steps:>6}{per_sample:>10.3f}{gen.last_nfe:>6}"
              f"{reference[0] / per_sample:>9.1f}×"
              f"{angle:>9.4f}{hist:>8.4f}{100 * (angle / reference[1] - 1):>8.1f}%"
              f"{100 * (hist / reference[2] - 1):>8.1f}%")


if __name__ == "__main__":
    main()
