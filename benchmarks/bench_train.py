"""Training throughput: the classic tutorial loop vs ganops' loop, side by side.

Both loops train the same models (identical initial weights) with the same batch size and
objective, in the same process and on the same device. Measurements alternate between the
loops (classic, ganops, then ganops, classic, ...) so that drifting machine load hits both; the
table shows the median images/second of each and their ratio.

Imports only torch, torchvision, numpy and ganops modules that need nothing more (no MLflow,
DVC or typer), so it runs from a bare ``src/`` + ``benchmarks/`` copy:

    PYTHONPATH=src python benchmarks/bench_train.py --device cuda --json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganops.config import ModelConfig, TrainConfig
from ganops.errors import GanopsError
from ganops.idx_files import normalize, read_idx
from ganops.models import build_models
from ganops.stages import common as stages_common
from ganops.training.loop import Hooks, fit
from ganops.training.step import GAN, build_gan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo root
from benchmarks.classic_loop import (
    ClassicGAN,
    build_classic_gan,
    classic_fit,
    classic_loader,
    reference_step,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "mnist"


class StopTiming(Exception):
    """Raised from a loop's per-step callback once the timed steps are done."""


class StepClock:
    """Per-step callback: starts the clock after ``warmup`` steps, stops ``steps`` later.

    Both loops are timed through their own ``on_step`` hook, so each runs exactly as it would
    in training (ganops' with its per-interval host reads, the classic one with its
    ``.item()`` calls) and the timer only adds two device synchronisations.
    """

    def __init__(self, warmup: int, steps: int, device: torch.device) -> None:
        self.warmup, self.steps, self.device = warmup, steps, device
        self.count, self.started, self.seconds = 0, 0.0, math.nan

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # queued kernels belong to the interval
        return time.perf_counter()

    def __call__(self, *_: object) -> None:
        self.count += 1
        if self.count == self.warmup:
            self.started = self._now()
        elif self.count == self.warmup + self.steps:
            self.seconds = self._now() - self.started
            raise StopTiming


@dataclass
class Loops:
    """The two contenders for one architecture, ready to run on ``device``."""

    classic: ClassicGAN
    ganops: GAN
    loader: torch.utils.data.DataLoader[tuple[Tensor, int]]
    images: Tensor  # (N, 1, 28, 28) in [-1, 1], on the device (ganops' input)
    cfg: TrainConfig
    latent_dim: int


def build_loops(
    arch: str, raw: np.ndarray, args: argparse.Namespace, device: torch.device
) -> Loops:
    model_cfg = ModelConfig(arch=arch)  # params.yaml defaults: dropout 0.3, classic widths
    cfg = TrainConfig(batch_size=args.batch_size, seed=args.seed, log_every=50, precision="fp32")
    torch.manual_seed(args.seed)
    generator, discriminator = build_models(model_cfg)
    classic = build_classic_gan(copy.deepcopy(generator), copy.deepcopy(discriminator), cfg, device)
    return Loops(
        classic=classic,
        ganops=build_gan(generator, discriminator, cfg=cfg, device=device),
        loader=classic_loader(raw, cfg.batch_size, num_workers=args.workers, seed=args.seed),
        images=normalize(raw).to(device),
        cfg=cfg,
        latent_dim=model_cfg.latent_dim,
    )


def _epochs_for(steps: int, num_images: int, batch_size: int) -> int:
    return steps // (num_images // batch_size) + 2


def time_classic(loops: Loops, clock: StepClock) -> None:
    epochs = _epochs_for(clock.warmup + clock.steps, len(loops.images), loops.cfg.batch_size)
    classic_fit(
        loops.classic, loops.loader, epochs=epochs, latent_dim=loops.latent_dim, on_step=clock
    )


def time_ganops(loops: Loops, clock: StepClock, **train: Any) -> None:
    """ganops' loop as ``ganops train`` runs it with params.yaml's defaults (on a single GPU:
    replayed from CUDA graphs), or with the ``train`` settings given."""
    steps = clock.warmup + clock.steps
    epochs = _epochs_for(steps, len(loops.images), loops.cfg.batch_size)
    cfg = dataclasses.replace(loops.cfg, epochs=epochs, **train)
    fixed_noise = torch.randn(cfg.grid_size, loops.latent_dim, device=loops.images.device)
    fit(
        loops.ganops,
        loops.images,
        cfg=cfg,
        latent_dim=loops.latent_dim,
        fixed_noise=fixed_noise,
        hooks=Hooks(on_step=clock),
    )


def time_ganops_eager(loops: Loops, clock: StepClock) -> None:
    time_ganops(loops, clock, cuda_graph="off")


def time_ganops_bf16(loops: Loops, clock: StepClock) -> None:
    time_ganops(loops, clock, precision="bf16")


# --- Experiment: a technique measured here, not in ganops ------------------------------------


_COMPILED: dict[int, Any] = {}


def time_ganops_compiled(loops: Loops, clock: StepClock) -> None:
    """ganops' loop with both networks' forward passes through torch.compile (inductor),
    compiled once per network and kept across measurements."""
    originals = {}
    for module in (loops.ganops.generator, loops.ganops.discriminator):
        originals[module] = module.forward
        if id(module) not in _COMPILED:
            _COMPILED[id(module)] = torch.compile(module.forward)
        module.forward = _COMPILED[id(module)]  # type: ignore[method-assign]
    try:
        time_ganops(loops, clock)
    finally:
        for module, forward in originals.items():
            module.forward = forward  # type: ignore[method-assign]


Runner = Callable[[Loops, StepClock], None]
LOOPS: dict[str, Runner] = {
    "classic": time_classic,
    "ganops-eager": time_ganops_eager,
    "ganops": time_ganops,
    "ganops+bf16": time_ganops_bf16,  # train.precision: bf16
    "ganops+compile": time_ganops_compiled,  # experiment
}


def measure(run: Runner, loops: Loops, args: argparse.Namespace, device: torch.device) -> float:
    """One measurement: images/second over ``args.steps`` steps after ``args.warmup``."""
    clock = StepClock(args.warmup, args.steps, device)
    with contextlib.suppress(StopTiming):
        run(loops, clock)
    if math.isnan(clock.seconds):
        raise RuntimeError("the loop ended before the timed steps were done")
    return args.steps * args.batch_size / clock.seconds


def alternate(
    runners: dict[str, Runner], loops: Loops, args: argparse.Namespace, device: torch.device
) -> dict[str, dict[str, Any]]:
    """``args.repeats`` rounds over ``runners``, reversing the order every other round."""
    rates: dict[str, list[float]] = {name: [] for name in runners}
    peak_gpu: dict[str, int] = dict.fromkeys(runners, 0)
    names = list(runners)
    for round_index in range(args.repeats):
        for name in names if round_index % 2 == 0 else names[::-1]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rates[name].append(measure(runners[name], loops, args, device))
            if device.type == "cuda":
                peak_gpu[name] = max(peak_gpu[name], torch.cuda.max_memory_allocated(device))
            print(f"  {name:<28} {rates[name][-1]:>12,.0f} img/s", file=sys.stderr)
    return {
        name: {
            "images_per_s": rates[name],
            "median_images_per_s": statistics.median(rates[name]),
            "peak_gpu_mib": peak_gpu[name] / 2**20 if device.type == "cuda" else None,
        }
        for name in runners
    }


# --- Ablation: the classic loop with ganops' techniques added one at a time -----------------


def _device_batches(loops: Loops, seed: int) -> Iterator[Tensor]:
    """ganops' sampling without its loop: an on-device permutation per epoch, B at a time."""
    images, batch_size = loops.images, loops.cfg.batch_size
    rng = torch.Generator(device=images.device).manual_seed(seed)
    while True:
        order = torch.randperm(len(images), device=images.device, generator=rng)
        for batch in range(len(images) // batch_size):
            yield images[order[batch * batch_size : (batch + 1) * batch_size]]


def logits_step(gan: ClassicGAN, real: Tensor, z: Tensor) -> Tensor:
    """``reference_step`` with BCE-with-logits on D's logits (the Sigmoid skipped), no sync."""
    discriminator = gan.logits_discriminator
    gan.opt_d.zero_grad()
    loss_real = F.binary_cross_entropy_with_logits(
        discriminator(real), torch.ones(real.size(0), device=real.device)
    )
    loss_real.backward()
    fake = gan.generator(z)
    loss_fake = F.binary_cross_entropy_with_logits(
        discriminator(fake.detach()), torch.zeros(real.size(0), device=real.device)
    )
    loss_fake.backward()
    gan.opt_d.step()
    gan.opt_g.zero_grad()
    loss_g = F.binary_cross_entropy_with_logits(
        discriminator(fake), torch.ones(real.size(0), device=real.device)
    )
    loss_g.backward()
    gan.opt_g.step()
    return torch.stack([loss_real.detach() + loss_fake.detach(), loss_g.detach()])


def _ablation_runner(logits: bool, sync_every_step: bool) -> Runner:
    """Device-resident batches + CPU noise copied over, then the chosen step and sync policy."""

    def run(loops: Loops, clock: StepClock) -> None:
        device = loops.images.device
        sums = torch.zeros(2, device=device)
        for step, real in enumerate(_device_batches(loops, loops.cfg.seed), start=1):
            z = torch.randn(real.size(0), loops.latent_dim).to(device)
            if not logits:
                reference_step(loops.classic, real, z)  # .item() inside, as the tutorials
            else:
                sums += logits_step(loops.classic, real, z)
                if sync_every_step or step % loops.cfg.log_every == 0:
                    sums.tolist()
            clock()

    return run


GRAPH_ROW = "(e) + CUDA graph (GPU default)"
ABLATION: dict[str, Runner] = {
    "classic": time_classic,
    "(a) device data, no DataLoader": _ablation_runner(logits=False, sync_every_step=True),
    "(b) + BCE-with-logits": _ablation_runner(logits=True, sync_every_step=True),
    "(c) + no per-step .item()": _ablation_runner(logits=True, sync_every_step=False),
    "(d) ganops' loop, eager": time_ganops_eager,
    GRAPH_ROW: time_ganops,
}


# --- Command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--arch", choices=("mlp", "dcgan", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before each")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each loop")
    parser.add_argument("--workers", type=int, default=0, help="classic DataLoader num_workers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dir with MNIST IDX .gz")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="MLP only: classic, then ganops' techniques added one at a time",
    )
    parser.add_argument(
        "--loops",
        default="classic,ganops",
        help=f"comma-separated, the first is the ratios' baseline; from: {', '.join(LOOPS)}",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    unknown = [name for name in args.loops if name not in LOOPS]
    if unknown or not args.loops:
        parser.error(f"--loops {unknown or args.loops}: choose from {', '.join(LOOPS)}")
    if min(args.steps, args.warmup, args.repeats, args.batch_size) < 1:
        parser.error("--steps, --warmup, --repeats and --batch-size must be >= 1")
    return args


def resolve_device(name: str) -> torch.device:
    try:
        return stages_common.resolve_device(name, "--device")
    except GanopsError as error:
        raise SystemExit(str(error)) from None


def configure_backends(device: torch.device) -> None:
    """The settings ``ganops train`` uses on CUDA, applied to both loops alike."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes; this script targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(results: dict[str, dict[str, dict[str, Any]]], baseline: str) -> None:
    print(f"\n{'arch':<6} {'loop':<32} {'median img/s':>14} {'x ' + baseline:>12} {'GPU MiB':>9}")
    for arch, loops in results.items():
        base = loops[baseline]["median_images_per_s"]
        for name, row in loops.items():
            gpu = row["peak_gpu_mib"]
            gpu_text = f"{gpu:9.0f}" if gpu is not None else f"{'-':>9}"
            ratio = row["median_images_per_s"] / base
            print(
                f"{arch:<6} {name:<32} {row['median_images_per_s']:>14,.0f} {ratio:>12.2f} {gpu_text}"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    configure_backends(device)
    raw = read_idx(args.data / "train-images-idx3-ubyte.gz")  # uint8 (60000, 28, 28)
    archs = ["mlp"] if args.ablation else ["mlp", "dcgan"] if args.arch == "both" else [args.arch]
    runners: dict[str, Runner] = (
        dict(ABLATION) if args.ablation else {name: LOOPS[name] for name in args.loops}
    )
    if device.type != "cuda":  # identical to the eager row there
        runners.pop(GRAPH_ROW, None)
    print(f"device: {device_name(device)}; torch {torch.__version__}", file=sys.stderr)
    results = {}
    for arch in archs:
        print(
            f"{arch}: {args.repeats} x {args.steps} steps of batch {args.batch_size}",
            file=sys.stderr,
        )
        results[arch] = alternate(runners, build_loops(arch, raw, args, device), args, device)
    print_table(results, baseline=next(iter(runners)))
    print(f"\npeak host RSS (whole process): {peak_rss_mib():,.0f} MiB")
    if args.json:
        report = {
            "device": device_name(device),
            "torch": torch.__version__,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "peak_rss_mib": peak_rss_mib(),
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
