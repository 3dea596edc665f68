"""Cost of the INSS neural mixing decoder (ubf_core/unmixing/nonlinear.py) next to the linear decoder, on the CPU.

One training step (forward + backward of an L1 loss, no optimizer) is timed for a batch shaped as in the default
profile (params.yaml): 16 patches × 59 bands × 32 × 32 pixels, k = 5 abundance maps (random Dirichlet) as both the
decoder input and the neural mixing's context:

  linear            the linear decoder Ŷ = Ê·Â + b alone (LinearMixingDecoder)
  neural order n    the linear decoder, then NeuralMixing(order n, downsample D) on its output, context = Â
  network           for scale: the whole default unmixing network (encoder stem 16, widths [16, 32, 24, 12] +
                    linear decoder) on 3-band inputs

Printed: median milliseconds per step over ``--repeats`` timed steps (after 2 untimed), the ratio to the linear
decoder, and each decoder's trainable parameters. Also callable: :func:`mixing_timings`.

Usage: python benchmarks/neural_mixing.py [--orders 1 2 3] [--downsample 4] [--batch 16] [--bands 59] [--size 32]
       [--k 5] [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ubf_core.unmixing.network import LinearMixingDecoder, UnmixingNet, n_parameters
from ubf_core.unmixing.nonlinear import NeuralMixing


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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--downsample", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bands", type=int, default=59)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = mixing_timings(args.orders, args.downsample, args.batch, args.bands, args.size, args.k, args.repeats)
    base = rows[0]["ms"]
    print(f"forward + backward, batch {args.batch} x {args.bands} x {args.size} x {args.size}, k {args.k}, "
          f"{args.threads} thread(s), median of {args.repeats}")
    print(f"{'decoder':<30} {'ms/step':>9} {'x linear':>9} {'params':>9}")
    for row in rows:
        print(f"{row['decoder']:<30} {row['ms']:>9.1f} {row['ms'] / base:>9.1f} {row['params']:>9d}")


if __name__ == "__main__":
    main()
