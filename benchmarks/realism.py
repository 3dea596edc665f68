"""Realism of generated abundance maps, measured with the metrics of ubf_core.evaluation.realism on the stores that
`make repro` wrote: each against held-out real maps (the RGB images of ``heldout_rgb_per_class``, same class mix),
next to the real-vs-real floor (as many training maps of the same classes).

  controls   the metrics on known-bad sets made from real maps of this run (pixels shuffled, blurred, copies of
             training maps): each must be flagged, else the metric cannot be trusted on this data
  samplers   one saved generator (default: the checkpoint generator.checkpoint) sampled with each sampler at the
             same number of steps and the same seeds: ancestral (ddpm), ddim, dpm++, dpm++sde
  source     the generator trained from scratch on RGB maps only and on RGB + HSI maps (HSI maps as "no class"),
             the same steps, seeds and samples: does mixing the two kinds of maps help?

Columns: c2st (0.5 = a CNN cannot tell), psd (mean |Δ log10| of the radial power spectra), grad (Wasserstein
distance of gradient magnitudes), purity (total variation of pixel-purity histograms), nn_ratio (median nearest-
training distance of the set / that of held-out real maps; ≈1 ideal, ≈0 copies), copies (share of near-copies),
cas (a classifier trained on real training maps labels the set; "floor" row: held-out real maps), s/sample.

Usage: python benchmarks/realism.py controls
       python benchmarks/realism.py samplers [--model checkpoints/generator] [--steps 20] [--per-class 8]
       python benchmarks/realism.py source [--train-steps 1500] [--hsi-share 0.125] [--per-class 8]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ubf_core.evaluation.realism_suite import matching_draw
from tasks.generator import generator_training_set, heldout_rgb_maps
from ubf_core.config import load_params
from ubf_core.evaluation.realism import (classification_accuracy, fit_map_classifier, negative_controls,
                                         realism_report)

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["c2st", "psd_distance", "gradient_distance", "purity_distance", "nn_ratio", "copy_share", "cas"]


def params(path: str = "params.yaml", **generator) -> dict:
    p = load_params(REPO / path)
    p["_root"] = str(REPO)
    p["generator"].update(generator)
    return p


class Judge:
    """The real sets of one run: held-out maps with the class mix ``want``, the floor, the training maps and a
    classifier trained on the labelled training maps."""

    def __init__(self, p: dict, per_class: int, seed: int = 0):
        self.maps, self.labels, self.classes = generator_training_set(p)
        self.want = [c for c in self.classes for _ in range(per_class)]
        rng = np.random.default_rng(seed)
        held, held_labels = heldout_rgb_maps(p)
        self.real = held[matching_draw(held_labels, self.want, rng, "held-out RGB maps")]
        lab = [j for j, v in enumerate(self.labels) if v is not None]
        self.floor = self.maps[lab][matching_draw([self.labels[j] for j in lab], self.want, rng, "training maps")]
        self.classifier = fit_map_classifier(self.maps[lab], [self.labels[j] for j in lab], self.classes, seed=seed)
        self.seed = seed

    def row(self, maps: np.ndarray, memorisation: bool = True) -> dict:
        out = realism_report(self.real, maps, training=self.maps if memorisation else None, seed=self.seed)
        out["cas"] = classification_accuracy(self.classifier, maps, self.want)["accuracy"]
        return out


def show(rows: dict[str, dict], extra: str = "") -> None:
    columns = COLUMNS + ([extra] if extra else [])
    widths = [max(10, len(c) + 2) for c in columns]
    print(f"{'set':28s}" + "".join(f"{c:>{w}s}" for c, w in zip(columns, widths)))
    for name, row in rows.items():
        print(f"{name:28s}" + "".join(f"{row[c]:{w}.3f}" if c in row else f"{'—':>{w}s}"
                                      for c, w in zip(columns, widths)))


def controls(args) -> None:
    judge = Judge(params(), args.per_class)
    rows = {"real vs real (floor)": judge.row(judge.floor, memorisation=False)}
    for name, bad in negative_controls(judge.floor, seed=0).items():
        rows[f"control: {name}"] = judge.row(bad)
    show(rows)


def samplers(args) -> None:
    from ubf_core.generators import load_generator

    judge = Judge(params(), args.per_class)
    gen = load_generator(REPO / args.model)
    rows = {"real vs real (floor)": judge.row(judge.floor, memorisation=False)}
    for sampler in ("ddpm", "ddim", "dpm++", "dpm++sde"):
        start = time.perf_counter()
        maps = gen.sample(len(judge.want), seed=0, labels=judge.want, sampler=sampler, steps=args.steps)
        rows[f"{sampler}, {args.steps} steps"] = {**judge.row(maps),
                                                  "s/sample": (time.perf_counter() - start) / len(judge.want)}
    show(rows, "s/sample")


def source(args) -> None:
    from ubf_core.generators import TrainSettings, make_generator

    base = params()
    judge = Judge(base, args.per_class)
    rows = {"real vs real (floor)": judge.row(judge.floor, memorisation=False)}
    long = params("params.long.yaml")["generator"]["train"]   # the long profile's from-scratch settings, shortened
    train = TrainSettings.from_params({**long, "steps": args.train_steps, "log_every": args.train_steps,
                                       "warmup_steps": min(long["warmup_steps"], args.train_steps // 10)})
    for name, overrides in (("rgb", {"source": "rgb"}),
                            (f"both (hsi_share {args.hsi_share})", {"source": "both", "hsi_share": args.hsi_share})):
        p = params(**overrides)
        maps, labels, classes = generator_training_set(p)
        gen = make_generator("ddpm", maps.shape[1], tuple(maps.shape[2:]), classes, **p["generator"]["options"])
        gen.fit(maps, labels, settings=train, seed=0)
        samples = gen.sample(len(judge.want), seed=0, labels=judge.want, sampler="dpm++sde", steps=20)
        rows[f"{name}, {args.train_steps} steps"] = judge.row(samples)
    show(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("controls", "samplers", "source"):
        s = sub.add_parser(name)
        s.add_argument("--per-class", type=int, default=8, help="samples (and real maps) per class (default 8)")
    sub.choices["samplers"].add_argument("--model", default="checkpoints/generator",
                                         help="a saved generator folder (default: checkpoints/generator)")
    sub.choices["samplers"].add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    sub.choices["source"].add_argument("--train-steps", type=int, default=1500, help="optimizer steps (default 1500)")
    sub.choices["source"].add_argument("--hsi-share", type=float, default=0.125,
                                       help="share of HSI maps with source both (default 0.125)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"# {args.what}: held-out RGB images vs the generator's training maps (stores of {REPO.name}); "
          f"torch threads {torch.get_num_threads()}")
    {"controls": controls, "samplers": samplers, "source": source}[args.what](args)


if __name__ == "__main__":
    main()
