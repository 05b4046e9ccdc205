"""Stage ``train``: fit the GAN on the prepared training set, save models and curves.

Checkpoints (atomic) every ``train.checkpoint_every`` steps, at the end, and on SIGINT or
SIGTERM; an interrupted run is resumed by running the stage again with the same config.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ganops import run_reference
from ganops.checkpoints import (
    BEST_GENERATOR,
    load_generator,
    load_resumable,
    save_checkpoint,
    save_generator,
    scored_generator,
)
from ganops.config import Params
from ganops.data import load_prepared, read_meta
from ganops.errors import DataError
from ganops.files import ensure_writable, write_text
from ganops.images import grid_array, save_png
from ganops.metrics.epoch import QUALITY_NAMES
from ganops.models import NUM_CLASSES, build_models
from ganops.progress import Progress
from ganops.stages.common import resolve_device
from ganops.training import distributed
from ganops.training.cuda_graphs import use_cuda_graph
from ganops.training.distributed import Replicas
from ganops.training.loop import (
    STAT_NAMES,
    Hooks,
    LoopState,
    NullLogger,
    TrainLogger,
    fit,
    sample_images,
)
from ganops.training.step import GAN, build_gan, precision_warning


def _csv(rows: list[dict[str, float]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "epoch", *columns], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _epoch_evaluator(
    params: Params, data_dir: Path, classifier: Path | None, train_labels: torch.Tensor
) -> Callable[[torch.nn.Module, int], dict[str, float]] | None:
    """The per-epoch quality hook, or None when evaluate.every_epochs is 0 or no classifier
    was given; built before training so a bad classifier file fails at once."""
    cfg = params.evaluate
    if cfg.every_epochs == 0 or classifier is None:
        return None
    from ganops.classifier import load_classifier
    from ganops.metrics.epoch import EpochEvaluator

    model, _ = load_classifier(classifier)
    real, real_labels = load_prepared(data_dir / "test.pt")
    if cfg.epoch_samples > len(real):
        raise DataError(
            f"evaluate.epoch_samples is {cfg.epoch_samples} but the prepared test set has "
            f"{len(real)} images; lower it (or raise data.test_subset)"
        )
    return EpochEvaluator(
        model,
        real_images=real[: cfg.epoch_samples],
        real_labels=real_labels[: cfg.epoch_samples],
        train_labels=train_labels,
        every=cfg.every_epochs,
        latent_dim=params.model.latent_dim,
        conditional=params.model.conditional,
        seed=params.train.seed,  # the run's seed: a change of evaluate.* does not retrain
        device=resolve_device(params.train.device, "train.device"),
    )


def _keeping_best(
    evaluate_epoch: Callable[[torch.nn.Module, int], dict[str, float]],
    params: Params,
    models_dir: Path,
    state: LoopState | None,
) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """``evaluate_epoch`` that also saves the generator of the lowest fcd so far as
    ``models/generator_best.pt`` (model selection by quality; a resumed run remembers the
    best of its scored epochs)."""
    scored = [row["fcd"] for row in (state.quality if state else []) if "fcd" in row]
    best = [min(scored, default=math.inf)]

    def evaluate(generator: torch.nn.Module, epoch: int) -> dict[str, float]:
        quality = evaluate_epoch(generator, epoch)
        if quality and quality["fcd"] < best[0]:
            best[0] = quality["fcd"]
            save_generator(generator, params, models_dir / BEST_GENERATOR)
        return quality

    return evaluate


def _gan_state(gan: GAN) -> dict[str, Any]:
    return {
        "generator": gan.generator.state_dict(),
        "discriminator": gan.discriminator.state_dict(),
        "opt_g": gan.opt_g.state_dict(),
        "opt_d": gan.opt_d.state_dict(),
        "ema": gan.ema.state_dict() if gan.ema is not None else None,
        "d_updates": gan.d_updates,
    }


def _restore(gan: GAN, blob: dict[str, Any]) -> LoopState:
    gan.generator.load_state_dict(blob["generator"])
    gan.discriminator.load_state_dict(blob["discriminator"])
    gan.opt_g.load_state_dict(blob["opt_g"])
    gan.opt_d.load_state_dict(blob["opt_d"])
    if gan.ema is not None and blob["ema"] is not None:
        gan.ema.load_state_dict(blob["ema"])
    gan.d_updates = int(blob.get("d_updates", 0))  # absent before lazy R1 existed
    torch.set_rng_state(blob["torch_rng"])  # dropout draws continue where they stopped
    if blob.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return LoopState.from_state_dict(blob["loop"])


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (so it can save)."""
    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers need the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield lambda: bool(received)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _tracking(
    params: Params, tags: dict[str, str], run_id: str | None
) -> Iterator[tuple[TrainLogger, dict[str, str]]]:
    """MLflow logger and run reference, or a no-op logger when tracking is off (or, with
    ``tracking.required: false``, when the server or store cannot be used at the start)."""
    if not params.tracking.enabled:
        yield NullLogger(), {}
        return
    from ganops.errors import TrackingError
    from ganops.tracking import MlflowLogger, training_run, warn

    with contextlib.ExitStack() as stack:
        try:
            run_ref = stack.enter_context(training_run(params, Path.cwd(), tags, run_id=run_id))
        except TrackingError as error:
            if params.tracking.required:
                raise
            warn(f"warning: {error}; training without tracking (tracking.required is false)")
            run_ref = None
        if run_ref is None:
            yield NullLogger(), {}
            return
        logger = MlflowLogger(run_ref["run_id"])
        stack.callback(logger.close)  # before the run ends: send what is still queued
        yield logger, run_ref


def run(
    params: Params,
    data_dir: Path,
    models_dir: Path,
    out_dir: Path,
    fresh: bool = False,
    classifier: Path | None = None,
) -> LoopState:
    """Train; write ``models/{generator,checkpoint}.pt`` and ``out_dir/{losses.csv,...}``.

    With a ``classifier`` (``ganops classifier``), score samples every evaluate.every_epochs.
    Under ``torchrun --nproc-per-node N`` it trains with DDP (see ``ganops.training.distributed``).
    """
    replicas = distributed.from_env()
    distributed.check_batch_size(params.train.batch_size, replicas)
    device = distributed.device_for(resolve_device(params.train.device, "train.device"), replicas)
    ensure_writable(models_dir, out_dir)  # fail now, not after hours of training
    use_cuda_graph(params.train, device, replicas)  # 'on' where impossible: fail now too
    with distributed.process_group(replicas, device):
        return _run(params, data_dir, models_dir, out_dir, fresh, classifier, replicas, device)


def _run(
    params: Params,
    data_dir: Path,
    models_dir: Path,
    out_dir: Path,
    fresh: bool,
    classifier: Path | None,
    replicas: Replicas,
    device: torch.device,
) -> LoopState:
    main = replicas.is_main  # only rank 0 tracks, reports and writes files
    slow_precision = precision_warning(params.train, device)
    if slow_precision and main:
        print(f"warning: {slow_precision}", file=sys.stderr)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    images, all_labels = load_prepared(data_dir / "train.pt")
    images = images.to(device)  # the whole set lives on the device: no DataLoader
    labels = all_labels.to(device) if params.model.conditional else None
    evaluate_epoch = _epoch_evaluator(params, data_dir, classifier, all_labels) if main else None
    meta = read_meta(data_dir)
    data_id = f"{meta['dataset_sha256']}:{len(images)}"
    checkpoint_path = models_dir / "checkpoint.pt"
    for stale in models_dir.glob(".*.tmp") if main else ():  # cut short by kill -9 earlier
        stale.unlink()
    resume = None if fresh else load_resumable(checkpoint_path, params, data_id)
    if main:  # the old run's reference must not outlive it (ganops.run_reference)
        run_reference.clear(out_dir)
        if resume is None:  # a new run: the old run's best is not this run's
            (models_dir / BEST_GENERATOR).unlink(missing_ok=True)
    torch.manual_seed(params.train.seed)  # weight init
    gan = build_gan(*build_models(params.model), params.train, device)
    state = _restore(gan, resume) if resume else None
    distributed.check_same_start(state.step if state else 0, replicas, device)
    if replicas.distributed:
        gan.wrapped = (
            distributed.wrap(gan.generator, device),
            distributed.wrap(gan.discriminator, device),
        )
        if replicas.rank:  # other dropout masks than rank 0's (weights were drawn alike)
            torch.manual_seed(hash((params.train.seed, replicas.rank, state.step if state else 0)))
    if state is not None and main:
        print(f"resuming the interrupted run from step {state.step} ({checkpoint_path})")
    tags = {
        "dataset": meta["dataset"],
        "dataset_sha256": meta["dataset_sha256"],
        "device": str(device),
        "processes": str(replicas.world_size),  # > 1: torchrun, DDP
        "cuda_graph": str(use_cuda_graph(params.train, device, replicas)).lower(),
    }
    started = time.monotonic()
    off = dataclasses.replace(params, tracking=dataclasses.replace(params.tracking, enabled=False))
    tracked = params if main else off
    with _tracking(tracked, tags, resume.get("run_id") if resume else None) as (logger, ref):

        def checkpoint(loop: LoopState, complete: bool = False) -> None:
            if not main:
                return
            save_checkpoint(
                {
                    **_gan_state(gan),
                    "loop": loop.state_dict(),
                    "complete": complete,
                    "run_id": ref.get("run_id"),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                },
                params,
                data_id,
                checkpoint_path,
            )

        hooks = Hooks(logger=logger, on_checkpoint=checkpoint)
        if evaluate_epoch is not None:
            hooks.evaluate_epoch = _keeping_best(evaluate_epoch, params, models_dir, state)
        state = _fit(params, gan, images, labels, hooks, state, replicas)
        distributed.assert_identical_weights(
            {"generator": gan.generator, "discriminator": gan.discriminator}, replicas
        )
        if not main:
            return state
        checkpoint(state, complete=True)
        _write_outputs(gan, params, state, models_dir, out_dir, ref, time.monotonic() - started)
    if replicas.distributed:
        print(f"{replicas.world_size} processes (DDP) ended with identical weights")
    print(
        f"trained to step {state.step} in {time.monotonic() - started:.1f} s on {device}; "
        f"models in {models_dir}"
    )
    return state


def _fixed_inputs(params: Params, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and, for a conditional model, the classes, in reading order 0..9) behind
    every sample grid of a run; drawn on the CPU so they do not depend on the device."""
    rng = torch.Generator().manual_seed(params.train.seed)
    n = params.train.grid_size
    z = torch.randn(n, params.model.latent_dim, generator=rng).to(device)
    labels = torch.arange(n, device=device) * NUM_CLASSES // n if params.model.conditional else None
    return z, labels


def _fit(
    params: Params,
    gan: GAN,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    hooks: Hooks,
    state: LoopState | None,
    replicas: Replicas,
) -> LoopState:
    total = len(images) // params.train.batch_size * params.train.epochs
    device = images.device
    with contextlib.ExitStack() as stack:
        if replicas.is_main:
            where = device.type + (f" x{replicas.world_size}" if replicas.distributed else "")
            bar = stack.enter_context(
                Progress(total, f"train ({where})", unit="step", initial=state.step if state else 0)
            )
            hooks.on_step = lambda postfix: bar.update(1, postfix)
        hooks.should_stop = stack.enter_context(_stop_on_signals())
        fixed_noise, fixed_labels = _fixed_inputs(params, device)
        return fit(
            gan,
            images,
            params.train,
            latent_dim=params.model.latent_dim,
            fixed_noise=fixed_noise,
            labels=labels,
            fixed_labels=fixed_labels,
            hooks=hooks,
            state=state,
            replicas=replicas,
        )


def _write_outputs(
    gan: GAN,
    params: Params,
    state: LoopState,
    models_dir: Path,
    out_dir: Path,
    run_ref: dict[str, str],
    seconds: float,
) -> None:
    save_generator(gan.sampler, params, models_dir / "generator.pt")
    # Before any upload: a signal during the uploads must not leave the old run's reference
    # beside the new generator.
    best = models_dir / BEST_GENERATOR
    generators = [models_dir / "generator.pt"] + ([best] if best.is_file() else [])
    run_reference.write(out_dir, run_ref, generators)
    write_text(_csv(state.history, STAT_NAMES), out_dir / "losses.csv")
    write_text(_csv(state.quality, QUALITY_NAMES), out_dir / "quality.csv")
    device = next(gan.sampler.parameters()).device
    grid = sample_images(gan.sampler, *_fixed_inputs(params, device))
    save_png(grid_array(grid), out_dir / "samples.png")
    if run_ref:  # each call only warns on failure: the outputs above are already safe
        from ganops.tracking import attempt, log_artifact, log_generator, log_to_active

        attempt("train_seconds", lambda: log_to_active({"train_seconds": seconds}))
        for path in (out_dir / "losses.csv", out_dir / "quality.csv", out_dir / "samples.png"):
            attempt(path.name, functools.partial(log_artifact, path))
        # The generator evaluate scores (and gate --promote promotes): the last or the best.
        scored = scored_generator(models_dir, params.evaluate.generator)
        model = load_generator(scored)[0] if scored != models_dir / "generator.pt" else gan.sampler
        attempt(
            "the generator model",
            lambda: log_generator(model, params.model, params.tracking.registered_model),
        )
