"""Training throughput: optimizer steps per second of the unmixing network and of the DDPM UNet, in this checkout
and in an earlier revision of the project, measured side by side in one run.

Each measurement is a fresh Python process (``python -c``) in a tree of the project: this checkout, and a
``git worktree`` of ``--before`` (default: the last revision before the training-speed work) made in a temporary
folder. The two trees are timed in turn, ``--repeats`` times, and the median steps/s of each is printed with the
ratio after / before. The data are random but shaped as in the default profile (params.yaml):

  ddpm       5 × 32 × 32 abundance maps (Dirichlet), 8 classes, UNet [16, 32, 64, 64], batch 16, EMA 0.99,
             dihedral augmentation; ``fit`` for ``--steps`` steps after a 5-step warm-up (not timed)
  unmixing   3-band 32 × 32 inputs → 59 bands, k = 5, stem 16, widths [16, 32, 24, 12], batch 16; 256 training and
             64 validation patches; ``train_unmixing`` for ``--epochs`` epochs (16 steps each, validation included)

Usage: python benchmarks/training_speed.py [--before REV] [--models ddpm unmixing] [--steps 60] [--epochs 4]
       [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE = "1272d5c"   # the last revision before the training-speed work (issue: speed where it buys quality)

DDPM = """
import json, time, numpy as np, torch
torch.set_num_threads({threads})
from ubf_core.generators import TrainSettings, make_generator
rng = np.random.default_rng(0)
maps = rng.dirichlet(np.full(5, 0.3), size=(256, 32, 32)).transpose(0, 3, 1, 2).astype(np.float32)
labels = np.arange(256) % 8
gen = make_generator("ddpm", 5, (32, 32), [f"c{{i}}" for i in range(8)], constraint="hud",
                     block_out_channels=[16, 32, 64, 64], num_train_timesteps=2000)
common = dict(batch_size=16, lr=2e-4, ema_decay=0.99, augment=True)
gen.fit(maps, labels, settings=TrainSettings(steps=5, log_every=5, **common), seed=0, progress=False)
t0 = time.perf_counter()
gen.fit(maps, labels, settings=TrainSettings(steps={steps}, log_every=25, **common), seed=1, progress=False)
import ubf_core
print(json.dumps({{"steps": {steps}, "seconds": time.perf_counter() - t0, "code": ubf_core.__file__}}))
"""

UNMIXING = """
import json, time, numpy as np, torch
torch.set_num_threads({threads})
from ubf_core.unmixing import UnmixingNet
from ubf_core.unmixing.training import TrainConfig, train_unmixing
rng = np.random.default_rng(0)
E = rng.uniform(0.02, 0.6, (59, 5)).astype(np.float32)
a = rng.dirichlet(np.full(5, 0.5), size=(320, 32, 32)).transpose(0, 3, 1, 2).astype(np.float32)
y = np.einsum("ck,nkhw->nchw", E, a).astype(np.float32)
x = np.ascontiguousarray(y[:, [44, 25, 8]])
torch.manual_seed(0)
model = UnmixingNet(5, 59, stem=16, widths=[16, 32, 24, 12])
cfg = TrainConfig(epochs={epochs}, batch_size=16, lr=2e-3, patience=100, seed=0, progress=False)
t0 = time.perf_counter()
train_unmixing(model, x[:256], y[:256], x[256:], y[256:], cfg)
import ubf_core
print(json.dumps({{"steps": {epochs} * 16, "seconds": time.perf_counter() - t0, "code": ubf_core.__file__}}))
"""


def run(tree: Path, code: str) -> float:
    """Steps per second printed by ``code`` run in ``tree`` (a fresh process importing that tree's packages)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{tree}: the timing run failed:\n{out.stderr[-2000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(figures["code"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the timing run in {tree} imported {figures['code']}: not that tree's code")
    return figures["steps"] / figures["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=BEFORE, help=f"git revision to compare with (default {BEFORE})")
    ap.add_argument("--models", nargs="+", choices=["ddpm", "unmixing"], default=["ddpm", "unmixing"])
    ap.add_argument("--steps", type=int, default=60, help="timed DDPM optimizer steps (default 60)")
    ap.add_argument("--epochs", type=int, default=4, help="timed unmixing epochs of 16 steps (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each tree, alternated (default 3)")
    args = ap.parse_args()
    code = {"ddpm": DDPM.format(threads=args.threads, steps=args.steps),
            "unmixing": UNMIXING.format(threads=args.threads, epochs=args.epochs)}
    print(f"# training speed — {platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads; "
          f"before = {args.before}, after = this checkout; median of {args.repeats} runs each, alternated")
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.before], cwd=REPO, check=True)
        try:
            print("model      before steps/s  after steps/s  after/before")
            for model in args.models:
                speeds: dict[str, list[float]] = {"before": [], "after": []}
                for _ in range(args.repeats):
                    speeds["before"].append(run(old, code[model]))
                    speeds["after"].append(run(REPO, code[model]))
                b, a = statistics.median(speeds["before"]), statistics.median(speeds["after"])
                print(f"{model:<9}  {b:14.2f}  {a:13.2f}  {a / b:11.2f}×   "
                      f"(before {min(speeds['before']):.2f}–{max(speeds['before']):.2f}, "
                      f"after {min(speeds['after']):.2f}–{max(speeds['after']):.2f})")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False)


if __name__ == "__main__":
    main()
