"""Wall time of the Fréchet, KID and precision/recall maths on extracted features.

Times ``fid_from_features``, ``kid_from_features`` and ``precision_recall`` (and all three
through ``inception_metrics``, as ``ganops evaluate`` calls them) on random non-negative
float32 features shaped like Inception's pool features (N x 2048 by default), generated and
real sets of the same size. No Inception network, no images: only the maths.

To compare two versions of the code under the same load, run this script alternately against
each version's ``src`` (A, B, A, B), e.g. with an exported copy of an older commit:

    git archive <rev> src | tar -x -C /tmp/before
    for i in 1 2; do
        PYTHONPATH=/tmp/before/src python benchmarks/bench_metrics.py --json before$i.json
        PYTHONPATH=src python benchmarks/bench_metrics.py --json after$i.json
    done
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

import ganops
from ganops.metrics.fid import fid_from_features
from ganops.metrics.kid import kid_from_features
from ganops.metrics.precision_recall import precision_recall
from ganops.metrics.suite import inception_metrics


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=10000, help="features per side")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--repeats", type=int, default=1, help="measurements of each metric")
    parser.add_argument("--metrics", default="fid,kid,pr,all", help="which to time, in order")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)"
    )
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args(argv)
    if args.num < 4 or args.dim < 1 or args.repeats < 1:
        parser.error("--num must be >= 4, --dim and --repeats >= 1")
    return args


def features(num: int, dim: int, seed: int) -> tuple[Tensor, Tensor]:
    """(fake, real): |N(0, 1)| features, the fake set shifted by 0.1 so that it differs."""
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(num, dim, generator=generator).abs()
    fake = torch.randn(num, dim, generator=generator).abs() + 0.1
    return fake, real


def timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fake, real = features(args.num, args.dim, args.seed)
    calls: dict[str, Callable[[], object]] = {
        "fid": lambda: fid_from_features(fake, real),
        "kid": lambda: kid_from_features(fake, real, seed=1234),
        "pr": lambda: precision_recall(fake, real),
        "all": lambda: inception_metrics(fake, real, seed=1234),
    }
    print(
        f"ganops from {Path(ganops.__file__).parent}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.num} x {args.dim} per side"
    )
    records = []
    for name in args.metrics.split(","):
        for repeat in range(args.repeats):
            load = os.getloadavg()[0]
            seconds, value = timed(calls[name])
            records.append(
                {
                    "metric": name,
                    "repeat": repeat,
                    "seconds": seconds,
                    "load_1min": load,
                    "value": value,
                }
            )
            print(f"{name:>4}  {seconds:8.2f} s  (load {load:.2f})  {value}", flush=True)
    for name in args.metrics.split(","):
        median = statistics.median(r["seconds"] for r in records if r["metric"] == name)
        print(f"median {name}: {median:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
