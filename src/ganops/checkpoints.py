"""Model files: what they hold, how they are written (atomically) and read (safely)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn

from ganops.config import ARCHS, ModelConfig, Params, TrainConfig, params_from_dict
from ganops.errors import CheckpointError, ConfigError
from ganops.files import save_torch
from ganops.models import build_models
from ganops.outputs import BEST_GENERATOR, GENERATOR

GENERATOR_FORMAT = "ganops-generator/1"
CHECKPOINT_FORMAT = "ganops-checkpoint/1"


def scored_generator(models_dir: Path, which: str) -> Path:
    """The generator file ``evaluate.generator`` names: 'last', or 'best' where training saved
    one (a run without in-training scores has only the last)."""
    best = models_dir / BEST_GENERATOR
    return best if which == "best" and best.is_file() else models_dir / GENERATOR


EpochScore = Callable[[nn.Module, int], dict[str, float]]


def keeping_best(
    evaluate_epoch: EpochScore, params: Params, *, models_dir: Path, earlier: Iterable[float] = ()
) -> EpochScore:
    """``evaluate_epoch`` that also saves the generator of the lowest fcd so far as
    ``models_dir/generator_best.pt`` (model selection by quality); ``earlier``: the fcd of a
    resumed run's scored epochs, so it remembers their best."""
    best = [min(earlier, default=math.inf)]

    def evaluate(generator: nn.Module, epoch: int) -> dict[str, float]:
        quality = evaluate_epoch(generator, epoch)
        if quality and quality["fcd"] < best[0]:
            best[0] = quality["fcd"]
            save_generator(generator, params, path=models_dir / BEST_GENERATOR)
        return quality

    return evaluate


def save_generator(generator: nn.Module, params: Params, *, path: Path) -> None:
    """The generator alone (EMA weights when enabled) with the config that rebuilds it."""
    save_torch(
        {
            "format": GENERATOR_FORMAT,
            "model": dataclasses.asdict(params.model),
            "state_dict": generator.state_dict(),
        },
        path,
    )


# Train keys that do not change the trajectory: a run may resume with them changed.
RESUME_FREE_KEYS = frozenset({"device", "log_every", "grid_size", "checkpoint_every", "cuda_graph"})


def training_shape(params: Params, data_id: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: model, trajectory params, data, and
    (once an epoch has been scored) the sample count of in-training scores: the best
    generator is picked by comparing the fcd of every scored epoch, which only compares at
    one count."""
    train = {k: v for k, v in dataclasses.asdict(params.train).items() if k not in RESUME_FREE_KEYS}
    return {
        "model": dataclasses.asdict(params.model),
        "train": train,
        "data": data_id,
        "epoch_samples": params.evaluate.epoch_samples,
    }


def save_checkpoint(state: dict[str, Any], params: Params, *, data_id: str, path: Path) -> None:
    """Everything needed to continue training: both nets, optimizers, EMA, loop state, RNG."""
    save_torch(
        {"format": CHECKPOINT_FORMAT, "shape": training_shape(params, data_id), **state}, path
    )


def _differences(saved: dict[str, Any], current: dict[str, Any], *, scored: bool) -> list[str]:
    """What differs between a checkpoint's shape and this run's; ``scored``: the checkpoint
    holds in-training fcd scores, which a changed evaluate.epoch_samples would not match."""
    out = []
    defaults = {
        "model": dataclasses.asdict(ModelConfig()),
        "train": dataclasses.asdict(TrainConfig()),
    }
    for section in ("model", "train"):
        for key, value in current[section].items():
            # A key added after the checkpoint was written: it had the default's behaviour.
            old = saved.get(section, {}).get(key, defaults[section][key])
            if old != value:
                out.append(f"{section}.{key} {old!r} -> {value!r}")
    if saved.get("data") != current["data"]:
        out.append("the prepared training data")
    # A checkpoint from before this key was recorded: unknown, None.
    old, new = saved.get("epoch_samples"), current["epoch_samples"]
    if scored and old is not None and old != new:
        out.append(
            f"evaluate.epoch_samples {old!r} -> {new!r} (the best generator is picked by "
            "comparing every scored epoch's fcd, and fcd at different counts does not compare)"
        )
    return out


def load_resumable(path: Path, params: Params, *, data_id: str) -> dict[str, Any] | None:
    """The checkpoint of an interrupted run to continue, or None to start afresh.

    A finished run's checkpoint is not resumed (a new ``train`` starts a new run). An
    interrupted one whose model/train/data differ is refused: silently starting over would
    throw its progress away, silently resuming would mix two configurations.
    """
    if not path.exists():
        return None
    blob = read_model_file(path, CHECKPOINT_FORMAT)
    if blob.get("complete", True):
        return None
    scored = any("fcd" in row for row in blob.get("loop", {}).get("quality", []))
    changed = _differences(blob.get("shape", {}), training_shape(params, data_id), scored=scored)
    if changed:
        raise CheckpointError(
            f"{path} holds an interrupted run (step {blob['loop']['step']}) with a different "
            f"config: {'; '.join(changed)}. Restore those params to resume it, or run "
            f"`ganops train --fresh` (or delete {path}) to start over"
        )
    return blob


def read_model_file(
    path: Path,
    expected_format: str,
    *,
    missing_hint: str = "run `ganops train` (or `dvc repro`) first",
) -> dict[str, Any]:
    """The dict saved in a ganops model file of ``expected_format``, loaded safely on the CPU."""
    import torch

    try:
        # weights_only: a crafted file cannot execute code when loaded.
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; {missing_hint}") from None
    except Exception as error:  # unpickling failures come in many types
        raise CheckpointError(f"{path}: not a loadable ganops model file ({error})") from None
    if not isinstance(blob, dict) or blob.get("format") != expected_format:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: format {found!r}, expected {expected_format!r}")
    return blob


def load_generator(path: Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the generator saved by ``save_generator``, in eval mode on the CPU."""
    blob = read_model_file(path, GENERATOR_FORMAT)
    try:
        model_cfg = params_from_dict({"model": blob["model"]}).model
    except ConfigError as error:
        raise CheckpointError(f"{path}: stored model config is invalid ({error})") from None
    import torch

    # Loading draws no random numbers: the throwaway initial weights come from a forked
    # generator, so a file loaded during training does not change its dropout masks.
    with torch.random.fork_rng(devices=[]):
        generator, _ = build_models(model_cfg)
    try:
        generator.load_state_dict(blob["state_dict"])
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        found = _weights_arch(blob["state_dict"], model_cfg)
        what = f"its weights are a {found!r} generator" if found else "its weights"
        raise CheckpointError(
            f"{path}: {what} but its stored config says model.arch={model_cfg.arch!r} "
            f"(the file is inconsistent; train again to rewrite it) ({first})"
        ) from None
    _check_finite(generator, path)
    return generator.eval(), model_cfg


def _check_finite(module: nn.Module, path: Path) -> None:
    """Refuse NaN/inf weights: they would give black (NaN -> 0) images a finite FID."""
    import torch

    bad = [
        name
        for name, tensor in module.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} weight tensors hold NaN or inf values (first: {bad[0]}); "
            "the training run diverged. Train again, e.g. with a lower train.lr_g/train.lr_d"
        )


def _weights_arch(state: dict[str, Any], model_cfg: ModelConfig) -> str | None:
    """Which architecture's parameter names ``state`` has, if any (for error messages)."""
    for arch in ARCHS:
        candidate, _ = build_models(dataclasses.replace(model_cfg, arch=arch))
        if arch != model_cfg.arch and set(candidate.state_dict()) == set(state):
            return arch
    return None
