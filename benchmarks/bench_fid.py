"""Wall time of the evaluate stage's Inception metrics: generation, features, FID/KID/PR.

Runs the same code as ``ganops evaluate`` (``generated_batches``, ``real_and_fake_features``
and ``inception_metrics``) on the real MNIST test images, with the real-image features cached
and not: each "not cached" measurement starts from an empty cache file, each "cached" one reads
the file the previous measurement wrote. The two alternate, and the medians are printed.
Generation alone is timed too, and so is the maths on extracted features ("metrics only"), so
what the Inception network costs can be told apart from the rest.

The generator is untrained unless ``--generator`` names a ``generator.pt``: the wall time does
not depend on its weights. Needs torchmetrics and torch-fidelity, not MLflow or DVC:

    PYTHONPATH=src python benchmarks/bench_fid.py --device cuda --weights inception.pth
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganops.config import ModelConfig
from ganops.errors import GanopsError
from ganops.feature_cache import real_and_fake_features
from ganops.idx_files import load_split
from ganops.inception_weights import weights_fingerprint
from ganops.metrics.suite import inception_metrics
from ganops.models import build_models
from ganops.models.sampling import generated_batches
from ganops.stages import common as stages_common

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo root
from benchmarks.inception_options import add_inception_options, inception_weights


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--num-samples", type=int, default=10000, help="generated = real images")
    parser.add_argument("--batch-size", type=int, default=200, help="images per Inception pass")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each mode")
    add_inception_options(parser)
    parser.add_argument("--generator", type=Path, help="a generator.pt (default: untrained MLP)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.num_samples < 2 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--num-samples must be >= 2, --batch-size and --repeats >= 1")
    return args


def resolve_device(name: str) -> torch.device:
    try:
        return stages_common.resolve_device(name, "--device")
    except GanopsError as error:
        raise SystemExit(str(error)) from None


def load_generator(path: Path | None, device: torch.device) -> tuple[nn.Module, int]:
    if path is None:
        torch.manual_seed(0)
        generator, _ = build_models(ModelConfig(arch="mlp"))
        return generator.to(device).eval(), ModelConfig().latent_dim
    from ganops.generator_file import load_generator as load

    generator, model_cfg = load(path)
    return generator.to(device).eval(), model_cfg.latent_dim


def seconds(work: Callable[[], object], device: torch.device) -> float:
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    real, _ = load_split(args.data, "mnist", split="test", limit=args.num_samples)
    if len(real) < args.num_samples:
        raise SystemExit(f"--num-samples {args.num_samples}: the test set has {len(real)}")
    weights = inception_weights(args)
    generator, latent_dim = load_generator(args.generator, device)

    def fakes() -> Any:
        return generated_batches(
            generator,
            latent_dim,
            total=args.num_samples,
            batch_size=args.batch_size,
            device=device,
            seed=args.seed,
        )

    def features(cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
        return real_and_fake_features(
            fakes(),
            real,
            batch_size=args.batch_size,
            device=device,
            weights=weights,
            cache=cache,
            cache_key=f"bench:{args.num_samples}:{weights_fingerprint(weights)}",
        )

    def metrics(cache: Path) -> dict[str, float]:
        return inception_metrics(*features(cache), seed=args.seed)

    times: dict[str, list[float]] = {
        "generation": [],
        "not cached": [],
        "cached": [],
        "metrics only": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "real_features.pt"
        for round_index in range(args.repeats):
            times["generation"].append(seconds(lambda: [b.sum() for b in fakes()], device))
            cache.unlink(missing_ok=True)
            times["not cached"].append(seconds(lambda: metrics(cache), device))
            times["cached"].append(seconds(lambda: metrics(cache), device))
            fake, real_features = features(cache)
            maths = functools.partial(inception_metrics, fake, real_features, seed=args.seed)
            times["metrics only"].append(seconds(maths, device))
            print(
                f"  round {round_index + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                file=sys.stderr,
            )
    report(args, device, weights, times)
    return 0


def report(
    args: argparse.Namespace,
    device: torch.device,
    weights: Path | None,
    times: dict[str, list[float]],
) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nFID/KID/PR on {args.num_samples} generated vs {args.num_samples} real, {name}")
    print(f"{'measurement':<40} {'median s':>10}")
    labels = {
        "generation": "generation only",
        "not cached": "all metrics, real features not cached",
        "cached": "all metrics, real features cached",
        "metrics only": "FID + KID + PR from extracted features",
    }
    for key, label in labels.items():
        print(f"{label:<40} {statistics.median(times[key]):>10.2f}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"\npeak host RSS: {peak_rss:,.0f} MiB")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB")
    if args.json:
        result = {
            "device": name,
            "num_samples": args.num_samples,
            "batch_size": args.batch_size,
            "weights": str(weights) if weights else "torch-fidelity download",
            "seconds": times,
            "median_seconds": {k: statistics.median(v) for k, v in times.items()},
            "peak_rss_mib": peak_rss,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
