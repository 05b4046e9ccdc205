"""Inception in fp32 against bf16 autocast (``evaluate.precision``): speed, features and FID.

Both precisions see the same images in the same process: the first ``--num-samples`` MNIST
test images and as many images of a trained ``--generator`` (drawn once, from ``--seed``).
Each round extracts the features of both sets in fp32, then in bf16, alternating, and times
them; the features of the first round give each image's relative feature error and the FID of
each precision against its own real features (what ``ganops evaluate`` computes). The
question it answers: does bf16 move FID by less than 0.5%, and how much faster is it?

    PYTHONPATH=src python benchmarks/bench_precision.py --generator models/generator.pt
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ganops.checkpoints import load_generator
from ganops.data import load_split
from ganops.metrics.features import build_inception, extract_features
from ganops.metrics.fid import fid_from_features
from ganops.models.sampling import generated_batches

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo root
from benchmarks.inception_options import add_inception_options, inception_weights

PRECISIONS = ("fp32", "bf16")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, required=True, help="a trained generator.pt")
    parser.add_argument("--num-samples", type=int, default=1000, help="generated = real images")
    parser.add_argument("--batch-size", type=int, default=100, help="images per Inception pass")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds of each precision")
    add_inception_options(parser)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.num_samples < 2 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--num-samples must be >= 2, --batch-size and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = torch.device("cpu")
    real, _ = load_split(args.data, "mnist", "test", limit=args.num_samples)
    weights = inception_weights(args)
    network = build_inception(weights, cpu)
    generator, model_cfg = load_generator(args.generator)
    batches = generated_batches(
        generator.eval(),
        model_cfg.latent_dim,
        args.num_samples,
        batch_size=args.batch_size,
        device=cpu,
        seed=args.seed,
    )
    fake = torch.cat(list(batches))
    seconds: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for round_index in range(args.repeats):
        for name in PRECISIONS if round_index % 2 == 0 else PRECISIONS[::-1]:
            options = {"chunk": args.batch_size, "device": cpu, "limit": args.num_samples}
            started = time.perf_counter()
            pair = tuple(
                extract_features(network, [images], bf16=name == "bf16", **options)
                for images in (fake, real)
            )
            seconds[name].append(time.perf_counter() - started)
            features.setdefault(name, pair)  # type: ignore[arg-type]
            rate = 2 * args.num_samples / seconds[name][-1]
            print(f"  round {round_index + 1}: {name} {rate:.1f} images/s", file=sys.stderr)
    (fake32, real32), (fake16, real16) = features["fp32"], features["bf16"]
    both32, both16 = torch.cat([fake32, real32]), torch.cat([fake16, real16])
    relative = (both16 - both32).norm(dim=1) / both32.norm(dim=1)
    fid32, fid16 = fid_from_features(fake32, real32), fid_from_features(fake16, real16)
    rates = {k: 2 * args.num_samples / statistics.median(v) for k, v in seconds.items()}
    result = {
        "num_samples": args.num_samples,
        "generator": str(args.generator),
        "torch_threads": torch.get_num_threads(),
        "images_per_second": rates,
        "feature_relative_error": {
            "median": float(relative.median()),
            "max": float(relative.max()),
        },
        "fid": {"fp32": fid32, "bf16": fid16, "change_percent": 100 * (fid16 - fid32) / fid32},
    }
    n = args.num_samples
    print(f"\nInception fp32 vs bf16 autocast, {n} generated + {n} real images, CPU")
    print(f"images/s: fp32 {rates['fp32']:.1f}, bf16 {rates['bf16']:.1f}")
    print(f"feature relative error: median {relative.median():.2e}, max {relative.max():.2e}")
    print(f"fid_{n}: fp32 {fid32:.4f}, bf16 {fid16:.4f} ({result['fid']['change_percent']:+.3f}%)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
