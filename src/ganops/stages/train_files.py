"""What a training run reads from and leaves in its directories, around ``run.train``.

Before: the interrupted run's checkpoint to resume (or none), after clearing what must not
outlive the previous run. During: the hooks that write checkpoints and keep the best-scoring
generator. After: the generator, the run reference, the loss and quality curves (CSV and
PNG) and the sample grid, with their copies in the MLflow run.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganops import mlflow_run_file, outputs
from ganops.checkpoints import load_resumable, save_checkpoint
from ganops.classifier import load_classifier
from ganops.config import Params
from ganops.data import load_prepared, require_images
from ganops.files import remove_stale_temps, write_csv
from ganops.generator_file import (
    EpochScore,
    keeping_best,
    load_generator,
    save_generator,
    scored_generator,
)
from ganops.images import VIEW_SCALE, grid_array, save_png
from ganops.metrics.epoch import QUALITY_NAMES, EpochEvaluator
from ganops.models.sampling import sample_images
from ganops.plots import training_curves_png
from ganops.tracking.runs import log_training_outputs
from ganops.training.loop import STAT_NAMES, LoopState
from ganops.training.run import TrainData, TrainResult, fixed_inputs, gan_state
from ganops.training.step import GAN


def resume_or_start(
    params: Params, data_id: str, *, models_dir: Path, out_dir: Path, fresh: bool, main: bool
) -> dict[str, Any] | None:
    """The interrupted run's checkpoint to continue (None: a new run), after clearing what
    must not outlive the previous run: its reference, and for a new run its best generator.
    Only the main process (``main``) changes files."""
    checkpoint_path = models_dir / outputs.CHECKPOINT
    if main:
        remove_stale_temps(models_dir)  # writes cut short by kill -9 (a live writer's stay)
    resume = None if fresh else load_resumable(checkpoint_path, params, data_id=data_id)
    if main:  # the old run's reference must not outlive it (ganops.mlflow_run_file)
        mlflow_run_file.clear(out_dir)
        if resume is None:
            (models_dir / outputs.BEST_GENERATOR).unlink(missing_ok=True)
            shutil.rmtree(models_dir / outputs.SNAPSHOTS, ignore_errors=True)
        else:
            step = resume["loop"]["step"]
            print(f"resuming the interrupted run from step {step} ({checkpoint_path})")
    return resume


def earlier_seconds(resume: dict[str, Any] | None) -> float:
    """The training time of a resumed run's earlier sessions, as its checkpoint recorded it
    (0 for a new run, and for a value that is not a finite, non-negative number: the file is
    read back, so untrusted)."""
    stored = resume.get("seconds") if resume else None
    seconds = float(stored) if isinstance(stored, int | float) else 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0


def checkpoint_writer(
    gan: GAN,
    params: Params,
    *,
    data_id: str,
    path: Path,
    run_ref: dict[str, str],
    main: bool,
    seconds: Callable[[], float] = lambda: 0.0,
    snapshots: Path | None = None,
) -> Callable[..., None]:
    """``Hooks.on_checkpoint``: the run's state, atomically, to ``path`` (``complete=True`` for
    the last one), with its training time so far (``seconds()``, carried over on resume);
    only the main process (``main``) writes. ``snapshots`` (train.snapshots): a directory
    that also keeps each checkpoint's generator, listed in its snapshots.csv."""

    def checkpoint(loop: LoopState, complete: bool = False) -> None:
        if main:
            blob = {**gan_state(gan), "loop": loop.state_dict(), "complete": complete}
            blob["run_id"] = run_ref.get("run_id")
            blob["seconds"] = float(seconds())
            save_checkpoint(blob, params, data_id=data_id, path=path)
            if snapshots is not None:
                keep_snapshot(gan, params, loop, seconds=blob["seconds"], directory=snapshots)

    return checkpoint


SNAPSHOT_COLUMNS = ["step", "epoch", "seconds", "file"]


def snapshot_name(step: int) -> str:
    """The file a snapshot of the generator at ``step`` is kept in."""
    return f"generator-step{step:07d}.pt"


def keep_snapshot(
    gan: GAN, params: Params, loop: LoopState, *, seconds: float, directory: Path
) -> None:
    """The generator at ``loop.step`` as ``directory/generator-step<N>.pt`` and its row in
    ``directory/snapshots.csv`` (step, epoch, training seconds, file), both atomically. The
    rows kept are those of earlier steps whose file is there: after a resume, the steps a
    killed session went past are snapshotted again."""
    name = snapshot_name(loop.step)
    save_generator(gan.sampler, params.model, path=directory / name)
    rows = [row for row in snapshot_rows(directory) if int(row["step"]) < loop.step]
    # The epoch this step belongs to: at an epoch's end the loop already names the next one.
    epoch = loop.epoch if loop.batch else loop.epoch - 1
    rows.append({"step": loop.step, "epoch": epoch, "seconds": round(seconds, 3), "file": name})
    write_csv(rows, SNAPSHOT_COLUMNS, final=directory / outputs.SNAPSHOTS_CSV)


def snapshot_rows(directory: Path) -> list[dict[str, Any]]:
    """The rows of ``directory/snapshots.csv`` whose values parse and whose file is there (the
    file is read back, so untrusted: a row that does not parse is left out)."""
    listing = directory / outputs.SNAPSHOTS_CSV
    if not listing.is_file():
        return []
    rows = []
    with listing.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                parsed: dict[str, Any] = {"step": int(row["step"]), "epoch": int(row["epoch"])}
                parsed["seconds"] = float(row["seconds"])
            except (KeyError, TypeError, ValueError):
                continue
            name = row.get("file") or ""
            if name == snapshot_name(parsed["step"]) and (directory / name).is_file():
                rows.append({**parsed, "file": name})
    return rows


def best_keeping_scorer(
    params: Params,
    *,
    classifier: Path,
    data: TrainData,
    data_dir: Path,
    device: torch.device,
    models_dir: Path,
    state: LoopState | None,
) -> EpochScore | None:
    """``Hooks.evaluate_epoch``: class metrics every train.score_every, keeping the
    generator of the lowest fcd (a resumed run's ``state`` remembers its best so far); None
    when per-epoch scoring is off."""
    score = epoch_evaluator(
        params, classifier=classifier, data_dir=data_dir, train_labels=data.labels, device=device
    )
    if score is None:
        return None
    earlier = [row["fcd"] for row in (state.quality if state else []) if "fcd" in row]
    return keeping_best(score, params.model, models_dir=models_dir, earlier=earlier)


def write_outputs(
    result: TrainResult,
    params: Params,
    *,
    models_dir: Path,
    out_dir: Path,
    run_ref: dict[str, str],
    seconds: float,
) -> None:
    """The finished run's generator, run reference, curves and sample grid; with a
    ``run_ref`` (tracking on), their MLflow copies and the scored generator as a model."""
    sampler, last = result.gan.sampler, models_dir / outputs.GENERATOR
    save_generator(sampler, params.model, path=last)
    # Before any upload: a signal during the uploads must not leave the old run's reference
    # beside the new generator.
    generators = [last, models_dir / outputs.BEST_GENERATOR]
    # The generator evaluate scores (and gate --promote promotes): last or best.
    scored = scored_generator(models_dir, params.train.keep)
    mlflow_run_file.write(
        out_dir,
        run_ref,
        generators=[path for path in generators if path.is_file()],
        model=scored if run_ref else None,
    )
    write_csv(result.state.history, ["step", "epoch", *STAT_NAMES], final=out_dir / outputs.LOSSES)
    write_csv(
        result.state.quality, ["step", "epoch", *QUALITY_NAMES], final=out_dir / outputs.QUALITY
    )
    training_curves_png(result.state.history, result.state.quality, path=out_dir / outputs.CURVES)
    z, labels = fixed_inputs(params, next(sampler.parameters()).device)
    grid = sample_images(sampler, z, labels=labels)
    save_png(grid_array(grid, scale=VIEW_SCALE), out_dir / outputs.SAMPLES)
    if run_ref:
        names = (outputs.LOSSES, outputs.QUALITY, outputs.SAMPLES, outputs.CURVES)
        # The generator file too: `ganops sample --model models:/NAME@champion` loads it.
        files = [out_dir / name for name in names] + [scored]
        log_training_outputs(
            files,
            seconds,
            # The file's module, rebuilt: under DDP the live one holds SyncBatchNorm layers.
            generator=lambda: load_generator(scored)[0],
            params=params,
        )


def epoch_evaluator(
    params: Params,
    *,
    classifier: Path,
    data_dir: Path,
    train_labels: Tensor,
    device: torch.device,
) -> EpochEvaluator | None:
    """The run's per-epoch scorer, or None when train.score_every is 0; built before
    training, so a bad classifier file or too few test images fail at once."""
    cfg = params.train
    if cfg.score_every == 0:
        return None
    model, _ = load_classifier(classifier, data_dir=data_dir)
    test_path = data_dir / outputs.TEST_IMAGES
    real, real_labels = load_prepared(test_path)
    require_images(real, cfg.score_samples, key="train.score_samples", path=test_path)
    return EpochEvaluator(
        model,
        real_images=real[: cfg.score_samples],
        real_labels=real_labels[: cfg.score_samples],
        train_labels=train_labels,
        every=cfg.score_every,
        latent_dim=params.model.latent_dim,
        conditional=params.model.conditional,
        seed=cfg.seed,  # the run's seed: the scoring keys are operational (no retraining)
        device=device,
    )
