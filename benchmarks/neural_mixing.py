"""The INSS neural mixing decoder (ubf_core/unmixing/nonlinear.py) next to the linear decoder: cost and fit.

speed (default)  one training step (forward + backward of an L1 loss, no optimizer) is timed for a batch shaped as in the default
profile (params.yaml): 16 patches × 59 bands × 32 × 32 pixels, k = 5 abundance maps (random Dirichlet) as both the
decoder input and the neural mixing's context:

  linear            the linear decoder Ŷ = Ê·Â + b alone (LinearMixingDecoder)
  neural order n    the linear decoder, then NeuralMixing(order n, downsample D) on its output, context = Â
  network           for scale: the whole default unmixing network (encoder stem 16, widths [16, 32, 24, 12] +
                    linear decoder) on 3-band inputs

Printed: median milliseconds per step over ``--repeats`` timed steps (after 2 untimed), the ratio to the linear
decoder, and each decoder's trainable parameters. Also callable: :func:`mixing_timings`.

fit  on the prepared stores of a project (``--params``, default this checkout's params.yaml; the stores are only
     read): the params' unmixing network trained as train_unmixing trains it (VCA initial endmembers, same seed,
     split on unmixing.validation_sources, loss MAE + α·SAD + β·ETV), once with the linear decoder and once per
     ``--orders`` with NeuralMixing (context = the abundances, ``--downsample`` D) on the linear mixture; pooled
     validation PSNR / SSIM / SAD° / RMSE, Samson's separately, and seconds per epoch, next to least squares from
     the 3 input bands and VCA+FCLS (ubf_core.unmixing.experiment's baselines).

Usage: python benchmarks/neural_mixing.py [speed] [--orders 1 2 3] [--downsample 4] [--batch 16] [--bands 59]
       [--size 32] [--k 5] [--repeats 10] [--threads 2]
       python benchmarks/neural_mixing.py fit [--params params.yaml] [--orders 1 2 3] [--downsample 4] [--epochs N]
       [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ubf_core.catalog import project_catalog
from ubf_core.config import load_params
from ubf_core.data.stores import open_store
from ubf_core.unmixing.experiment import UnmixingSettings, fit_references, validation_figures
from ubf_core.unmixing.losses import UnmixingLoss
from ubf_core.unmixing.network import LinearMixingDecoder, UnmixingNet, n_parameters
from ubf_core.unmixing.nonlinear import NeuralMixing
from ubf_core.unmixing.training import TrainConfig, train_unmixing

REPO = Path(__file__).resolve().parents[1]


def _step_ms(step, repeats: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def mixing_timings(orders=(1, 2, 3), downsample: int = 4, batch: int = 16, bands: int = 59, size: int = 32,
                   k: int = 5, repeats: int = 10, seed: int = 0) -> list[dict]:
    """Median ms per forward + backward step of each decoder: rows ``{"decoder", "ms", "params"}``."""
    torch.manual_seed(seed)
    abundances = torch.softmax(torch.randn(batch, k, size, size), dim=1)
    target = torch.rand(batch, bands, size, size)
    linear = LinearMixingDecoder(k, bands)

    def linear_step():
        linear.zero_grad(set_to_none=True)
        (linear(abundances) - target).abs().mean().backward()

    rows = [{"decoder": "linear", "ms": _step_ms(linear_step, repeats), "params": n_parameters(linear)}]
    for order in orders:
        mixing = NeuralMixing(bands, k, order, downsample)

        def neural_step(mixing=mixing):
            linear.zero_grad(set_to_none=True)
            mixing.zero_grad(set_to_none=True)
            (mixing(linear(abundances), abundances) - target).abs().mean().backward()

        rows.append({"decoder": f"neural order {order} (D {downsample})", "ms": _step_ms(neural_step, repeats),
                     "params": n_parameters(linear) + n_parameters(mixing)})
    net = UnmixingNet(k, bands, stem=16, widths=(16, 32, 24, 12))
    x = torch.rand(batch, 3, size, size)

    def network_step():
        net.zero_grad(set_to_none=True)
        (net(x)[1] - target).abs().mean().backward()

    rows.append({"decoder": "network (encoder + linear)", "ms": _step_ms(network_step, repeats),
                 "params": n_parameters(net)})
    return rows


class NeuralUnmixingNet(nn.Module):
    """The unmixing network with NeuralMixing after its linear decoder: 3-band image (N, 3, H, W) → (abundances
    (N, k, H, W), ``mixing(Ê·Â + b, Â)`` (N, C, H, W)); ``endmembers()`` Ê (C, k) as the network's."""

    def __init__(self, net: UnmixingNet, mixing: NeuralMixing):
        super().__init__()
        self.net, self.mixing = net, mixing

    def endmembers(self) -> torch.Tensor:
        return self.net.endmembers()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        abundances, linear = self.net(x)
        return abundances, self.mixing(linear, abundances)


def _stores(params_path: Path):
    """(params, reflectance (N, C, H, W), wavelengths (C,) nm, is-validation (N,), sources (N,), RGB sample)."""
    params = load_params(params_path)
    catalog = project_catalog(params_path.resolve().parent)
    hsi, rgb = open_store(catalog.path("hsi")), open_store(catalog.path("rgb"))
    sources = np.array([str(s) for s in hsi["source"].values])
    is_val = np.isin(sources, params["unmixing"]["validation_sources"])
    return params, hsi["reflectance"].values, hsi["wavelength"].values, is_val, sources, rgb["rgb"].values[:512]


def fit(args) -> None:
    params, y, wl, is_val, sources, rgb = _stores(args.params)
    s = UnmixingSettings.from_params(params["unmixing"], int(params.get("seed", 0)))
    if s.three_band != "select":
        raise SystemExit("fit: only unmixing.three_band: select is supported here")
    seed = int(params.get("seed", 0))
    refs = fit_references(y, wl, is_val, rgb, s, seed=seed)
    epochs = args.epochs or s.train.epochs
    cfg = TrainConfig(**{**s.train.__dict__, "seed": seed, "epochs": epochs, "device": "cpu", "progress": False})
    loss = UnmixingLoss(s.alpha, s.beta)
    print(f"# {int((~is_val).sum())} training / {int(is_val.sum())} validation patches {y.shape[1:]}; k {s.k}, "
          f"stem {s.stem}, widths {list(s.widths)}; {epochs} epochs max (patience {cfg.patience}), "
          f"{args.threads} thread(s); validation scenes {', '.join(sorted(set(sources[is_val].tolist())))}")
    header = (f"{'model':<34} {'PSNR dB':>7} {'SSIM':>6} {'SAD°':>6} {'RMSE':>7} | {'Samson PSNR':>11} "
              f"{'SAD°':>6} | {'s/epoch':>7} {'epochs':>6} {'params':>7}")
    rows, compared = [], None
    for order in [0, *args.orders]:
        torch.manual_seed(seed)
        init = torch.as_tensor(refs.vca_endmembers, dtype=torch.float32)
        net = UnmixingNet(s.k, len(wl), stem=s.stem, widths=s.widths,
                          nonnegative_endmembers=s.nonnegative_endmembers, init_endmembers=init)
        model = net if order == 0 else NeuralUnmixingNet(net, NeuralMixing(len(wl), s.k, order, args.downsample))
        t0 = time.perf_counter()
        result = train_unmixing(model, refs.x[~is_val], y[~is_val], refs.x[is_val], y[is_val], cfg, loss)
        per_epoch = (time.perf_counter() - t0) / len(result.history)
        refs.model = model.eval()
        _, compared_now = validation_figures(refs, y, is_val, sources)
        compared = compared or compared_now
        name = "network, linear decoder" if order == 0 else f"network + neural order {order} (D {args.downsample})"
        rows.append((name, compared_now["network"], per_epoch, len(result.history), n_parameters(model)))
        print(f"  trained {name}: best epoch {result.best_epoch} of {len(result.history)}", flush=True)
    print(header)

    def line(name, rec, extra=""):
        p, sam = rec["pooled"], rec["per_scene"].get("samson")
        sam_txt = f"{sam['psnr']:11.2f} {sam['sad_deg']:6.2f}" if sam else f"{'-':>11} {'-':>6}"
        return (f"{name:<34} {p['psnr']:7.2f} {p['ssim']:6.3f} {p['sad_deg']:6.2f} {p['rmse']:7.4f} | {sam_txt} |"
                f"{extra}")

    for who, label in (("least_squares_1", "least squares, 3 bands + offset"), ("vca_fcls", "VCA+FCLS (all bands)")):
        print(line(label, compared[who]))
    for name, rec, per_epoch, n_epochs, n_params in rows:
        print(line(name, rec, f" {per_epoch:7.2f} {n_epochs:>6d} {n_params:>7d}"))


def speed(args) -> None:
    rows = mixing_timings(args.orders, args.downsample, args.batch, args.bands, args.size, args.k, args.repeats)
    base = rows[0]["ms"]
    print(f"forward + backward, batch {args.batch} x {args.bands} x {args.size} x {args.size}, k {args.k}, "
          f"{args.threads} thread(s), median of {args.repeats}")
    print(f"{'decoder':<30} {'ms/step':>9} {'x linear':>9} {'params':>9}")
    for row in rows:
        print(f"{row['decoder']:<30} {row['ms']:>9.1f} {row['ms'] / base:>9.1f} {row['params']:>9d}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", choices=["speed", "fit"], default="speed")
    ap.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--downsample", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bands", type=int, default=59)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--epochs", type=int, default=None, help="fit: at most this many epochs (default: params')")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    (fit if args.what == "fit" else speed)(args)


if __name__ == "__main__":
    main()
