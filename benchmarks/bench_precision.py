"""Inception in fp32 and under bf16 autocast (``evaluate.precision``), eager and compiled
(``evaluate.compile``): speed, features and FID.

Every mode sees the same images in the same process: the first ``--num-samples`` MNIST
test images and as many images of a trained ``--generator`` (drawn once, from ``--seed``).
Each round extracts the features of both sets in each mode, in alternating order, and times
them; a compiled mode is compiled (and timed) on one batch before its first round. The
features of the first round give each image's relative feature error against fp32 eager (the
classic FID features) and the FID of each mode against its own real features (what ``ganops
evaluate`` computes). The questions it answers: does a mode move FID (bf16: by less than
0.5%; compiling: by less than 0.1%), and how much faster is it?

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

from ganops.generator_file import load_generator
from ganops.idx_files import load_split
from ganops.inception_weights import build_inception
from ganops.metrics.features import CompiledInception, extract_features
from ganops.metrics.fid import fid_from_features
from ganops.models.sampling import generated_batches

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo root
from benchmarks.inception_options import add_inception_options, inception_weights

MODES = ("fp32", "bf16", "fp32-compiled", "bf16-compiled")  # the first is the reference


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, required=True, help="a trained generator.pt")
    parser.add_argument("--num-samples", type=int, default=1000, help="generated = real images")
    parser.add_argument("--batch-size", type=int, default=100, help="images per Inception pass")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds of each mode")
    parser.add_argument("--modes", default=",".join(MODES), help=f"a subset of {MODES}")
    add_inception_options(parser)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.num_samples < 2 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--num-samples must be >= 2, --batch-size and --repeats >= 1")
    args.modes = args.modes.split(",")
    if args.modes[0] != MODES[0] or not set(args.modes) <= set(MODES):
        parser.error(f"--modes must start with {MODES[0]} and name modes of {MODES}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = torch.device("cpu")
    real, _ = load_split(args.data, "mnist", split="test", limit=args.num_samples)
    weights = inception_weights(args)
    network = build_inception(weights, cpu)
    generator, model_cfg = load_generator(args.generator)
    batches = generated_batches(
        generator.eval(),
        model_cfg.latent_dim,
        total=args.num_samples,
        batch_size=args.batch_size,
        device=cpu,
        seed=args.seed,
    )
    fake = torch.cat(list(batches))
    options = {"chunk": args.batch_size, "device": cpu, "limit": args.num_samples}
    networks, compile_seconds = {}, {}
    for mode in args.modes:
        bf16 = mode.startswith("bf16")
        if mode.endswith("compiled"):
            networks[mode] = CompiledInception(network, min(args.batch_size, args.num_samples))
            started = time.perf_counter()
            extract_features(networks[mode], [real[: args.batch_size]], bf16=bf16, **options)
            compile_seconds[mode] = time.perf_counter() - started
        else:
            networks[mode] = network
    seconds: dict[str, list[float]] = {mode: [] for mode in args.modes}
    features: dict[str, torch.Tensor] = {}  # fake then real, per mode
    for round_index in range(args.repeats):
        for mode in args.modes if round_index % 2 == 0 else args.modes[::-1]:
            started = time.perf_counter()
            both = torch.cat(
                [
                    extract_features(
                        networks[mode], [images], bf16=mode.startswith("bf16"), **options
                    )
                    for images in (fake, real)
                ]
            )
            seconds[mode].append(time.perf_counter() - started)
            features.setdefault(mode, both)
            rate = 2 * args.num_samples / seconds[mode][-1]
            print(f"  round {round_index + 1}: {mode} {rate:.1f} images/s", file=sys.stderr)
    n = args.num_samples
    reference = features[MODES[0]]
    fid = {mode: fid_from_features(f[:n], f[n:]) for mode, f in features.items()}
    result: dict[str, object] = {
        "num_samples": n,
        "generator": str(args.generator),
        "torch_threads": torch.get_num_threads(),
        "compile_seconds": compile_seconds,
        "modes": {},
    }
    print(f"\nInception modes, {n} generated + {n} real images, CPU")
    for mode in args.modes:
        relative = (features[mode] - reference).norm(dim=1) / reference.norm(dim=1)
        rate = 2 * n / statistics.median(seconds[mode])
        change = 100 * (fid[mode] - fid[MODES[0]]) / fid[MODES[0]]
        result["modes"][mode] = {  # type: ignore[index]
            "images_per_second": rate,
            "feature_relative_error": {
                "median": float(relative.median()),
                "max": float(relative.max()),
            },
            "fid": fid[mode],
            "fid_change_percent": change,
        }
        print(
            f"{mode}: {rate:.1f} images/s, fid_{n} {fid[mode]:.4f} ({change:+.3f}%), feature "
            f"relative error median {relative.median():.2e}, max {relative.max():.2e}"
            + (f", compiled in {compile_seconds[mode]:.1f} s" if mode in compile_seconds else "")
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
