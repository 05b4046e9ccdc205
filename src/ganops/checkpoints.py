"""Model files: what they hold, how they are written (atomically) and read (safely)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from ganops.config import ModelConfig, Params, params_from_dict
from ganops.errors import CheckpointError, ConfigError
from ganops.io import save_torch
from ganops.models import build_models

GENERATOR_FORMAT = "ganops-generator/1"
CHECKPOINT_FORMAT = "ganops-checkpoint/1"


def save_generator(generator: nn.Module, params: Params, path: Path) -> None:
    """The generator alone (EMA weights when enabled) with the config that rebuilds it."""
    save_torch(
        {
            "format": GENERATOR_FORMAT,
            "model": dataclasses.asdict(params.model),
            "state_dict": generator.state_dict(),
        },
        path,
    )


def save_checkpoint(state: dict[str, Any], params: Params, path: Path) -> None:
    """Everything needed to continue training: both nets, optimizers, EMA, step, config."""
    save_torch(
        {
            "format": CHECKPOINT_FORMAT,
            "model": dataclasses.asdict(params.model),
            "train": dataclasses.asdict(params.train),
            **state,
        },
        path,
    )


def _read(path: Path, expected_format: str) -> dict[str, Any]:
    import torch

    try:
        # weights_only: a crafted file cannot execute code when loaded.
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: not found; run `ganops train` (or `dvc repro`) first"
        ) from None
    except Exception as error:  # unpickling failures come in many types
        raise CheckpointError(f"{path}: not a loadable ganops model file ({error})") from None
    if not isinstance(blob, dict) or blob.get("format") != expected_format:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: format {found!r}, expected {expected_format!r}")
    return blob


def load_generator(path: Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the generator saved by ``save_generator``, in eval mode on the CPU."""
    blob = _read(path, GENERATOR_FORMAT)
    try:
        model_cfg = params_from_dict({"model": blob["model"]}).model
    except ConfigError as error:
        raise CheckpointError(f"{path}: stored model config is invalid ({error})") from None
    generator, _ = build_models(model_cfg)
    try:
        generator.load_state_dict(blob["state_dict"])
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit model.arch={model_cfg.arch!r} ({first})"
        ) from None
    return generator.eval(), model_cfg
