"""Generator files (``models/generator.pt``, ``generator_best.pt``, snapshots): the generator
alone with the model config that rebuilds it, written atomically and read as untrusted; which
of them a run hands on, and keeping the best one during training."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from torch import nn

from ganops.config import (
    ARCHS,
    ModelConfig,
    params_from_dict,
)
from ganops.errors import CheckpointError, ConfigError
from ganops.files import save_torch
from ganops.models import build_models
from ganops.outputs import BEST_GENERATOR, GENERATOR
from ganops.untrusted_state import (
    bad_values,
    load_checked,
    on_meta_device,
    read_model_file,
    state_misfit,
)

GENERATOR_FORMAT = "ganops-generator/1"


def scored_generator(models_dir: Path, which: str) -> Path:
    """The generator file ``train.keep`` names: 'last', or 'best' where training saved
    one (a run without in-training scores has only the last)."""
    best = models_dir / BEST_GENERATOR
    return best if which == "best" and best.is_file() else models_dir / GENERATOR


EpochScore = Callable[[nn.Module, int], dict[str, float]]


def keeping_best(
    evaluate_epoch: EpochScore,
    model: ModelConfig,
    *,
    models_dir: Path,
    earlier: Iterable[float] = (),
) -> EpochScore:
    """``evaluate_epoch`` that also saves the generator of the lowest fcd so far as
    ``models_dir/generator_best.pt`` (model selection by quality); ``earlier``: the fcd of a
    resumed run's scored epochs, so it remembers their best."""
    best = [min(earlier, default=math.inf)]

    def evaluate(generator: nn.Module, epoch: int) -> dict[str, float]:
        quality = evaluate_epoch(generator, epoch)
        if quality and quality["fcd"] < best[0]:
            best[0] = quality["fcd"]
            save_generator(generator, model, path=models_dir / BEST_GENERATOR)
        return quality

    return evaluate


def save_generator(generator: nn.Module, model: ModelConfig, *, path: Path) -> None:
    """The generator alone (EMA weights when enabled) with the config that rebuilds it."""
    save_torch(
        {
            "format": GENERATOR_FORMAT,
            "model": dataclasses.asdict(model),
            "state_dict": generator.state_dict(),
        },
        path,
    )


def load_generator(path: Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the generator saved by ``save_generator``, in eval mode on the CPU."""
    blob = read_model_file(path, GENERATOR_FORMAT)
    fix = "train again to rewrite it"
    if not isinstance(blob.get("model"), dict):
        raise CheckpointError(f"{path}: stored model config is missing; {fix}")
    try:
        model_cfg = params_from_dict({"model": blob["model"]}).model
    except ConfigError as error:
        raise CheckpointError(f"{path}: stored model config is invalid ({error})") from None
    # Built on the meta device first: a config read from the file sizes no memory until the
    # file's own tensors are known to fit it (and loading draws no random numbers).
    skeleton, _ = on_meta_device(lambda: build_models(model_cfg))
    state = blob.get("state_dict")
    problem = state_misfit(state, skeleton)
    if problem:
        found = _weights_arch(state, model_cfg)
        what = (
            f"its weights are a {found!r} generator but its stored config says"
            if found
            else "its weights do not fit the generator its stored config describes,"
        )
        raise CheckpointError(
            f"{path}: {what} model.arch={model_cfg.arch!r} (the file is inconsistent; {fix}) "
            f"({problem})"
        )
    assert isinstance(state, dict)  # state_misfit checked it
    problem = bad_values(state)
    if problem:
        raise CheckpointError(
            f"{path}: {problem}, so every image would be NaN (black); the training run "
            "diverged or the file was edited. Train again, e.g. with a lower train.lr_g/train.lr_d"
        )
    generator = load_checked(skeleton, state)
    _check_finite(generator, path)  # float64 weights past float32's range become inf
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


def _weights_arch(state: object, model_cfg: ModelConfig) -> str | None:
    """Which architecture's parameter names ``state`` has, if any (for error messages)."""
    if not isinstance(state, dict):
        return None
    for arch in ARCHS:
        other = dataclasses.replace(model_cfg, arch=arch)
        candidate, _ = on_meta_device(functools.partial(build_models, other))
        if arch != model_cfg.arch and set(candidate.state_dict()) == set(state):
            return arch
    return None
