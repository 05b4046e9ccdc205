"""About how many images/s this machine's fp32 FID Inception can reach: the network's
floating-point operations per image against the machine's measured fp32 matrix-product rate.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one 28x28 image (resized
to 299x299 inside the network, as ``ganops evaluate`` runs it); a multiply-add is 2 FLOPs.
The rate is the best of ``--repeats`` square fp32 ``matmul`` products (torch's BLAS, all of
torch's threads): a convolution network runs about that fast at best on a CPU. Their ratio
estimates the images/s that layouts, fusion or compilation can approach (an estimate, not a
bound: oneDNN's convolutions can beat the matrix product somewhat).

    PYTHONPATH=src python benchmarks/inception_ceiling.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ganops.inception_weights import build_inception
from ganops.metrics.features import to_inception_input

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo root
from benchmarks.inception_options import add_inception_options, inception_weights


def matmul_rate(size: int, repeats: int) -> float:
    """fp32 FLOP/s of the fastest of ``repeats`` (size x size) @ (size x size) products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="matrix side of the rate test")
    parser.add_argument("--repeats", type=int, default=3)
    add_inception_options(parser)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    network = build_inception(inception_weights(args), torch.device("cpu"))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(to_inception_input(torch.zeros(1, 1, 28, 28)))
    flops = counter.get_total_flops()
    rate = matmul_rate(args.size, args.repeats)
    result = {
        "inception_gflop_per_image": flops / 1e9,
        "matmul_gflop_per_second": rate / 1e9,
        "ceiling_images_per_second": rate / flops,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"FID Inception: {flops / 1e9:.2f} GFLOP per image")
    print(
        f"fp32 matmul ({args.size}^2, {torch.get_num_threads()} threads): {rate / 1e9:.0f} GFLOP/s"
    )
    print(f"ceiling: {rate / flops:.1f} images/s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
