"""Training checkpoints (``models/checkpoint.pt``): everything a run needs to continue, and
what must match for it to be resumed (the model, the trajectory params, the data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ganops.config import (
    ROLE_OPERATIONAL,
    ModelConfig,
    Params,
    TrainConfig,
    keys_with_role,
)
from ganops.errors import CheckpointError
from ganops.files import save_torch
from ganops.models import build_models
from ganops.untrusted_state import checkpoint_misfit, on_meta_device, read_model_file

CHECKPOINT_FORMAT = "ganops-checkpoint/1"


# train.* keys a run may resume across: those the schema marks operational (config.py).
RESUME_FREE_KEYS = keys_with_role(TrainConfig, ROLE_OPERATIONAL)


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
        "epoch_samples": params.train.score_samples,  # the file's key: its old name
    }


def save_checkpoint(state: dict[str, Any], params: Params, *, data_id: str, path: Path) -> None:
    """Everything needed to continue training: both nets, optimizers, EMA, loop state, RNG."""
    save_torch(
        {"format": CHECKPOINT_FORMAT, "shape": training_shape(params, data_id), **state}, path
    )


def _differences(saved: dict[str, Any], current: dict[str, Any], *, scored: bool) -> list[str]:
    """What differs between a checkpoint's shape and this run's; ``scored``: the checkpoint
    holds in-training fcd scores, which a changed train.score_samples would not match."""
    out = []
    defaults = {
        "model": dataclasses.asdict(ModelConfig()),
        "train": dataclasses.asdict(TrainConfig()),
    }
    for section in ("model", "train"):
        stored = saved.get(section, {})
        if not isinstance(stored, dict):
            out.append(f"{section} (the checkpoint's is a {type(stored).__name__})")
            continue
        for key, value in current[section].items():
            # A key added after the checkpoint was written: it had the default's behaviour.
            old = stored.get(key, defaults[section][key])
            if old != value:
                out.append(f"{section}.{key} {old!r} -> {value!r}")
    if saved.get("data") != current["data"]:
        out.append("the prepared training data")
    # A checkpoint from before this key was recorded: unknown, None.
    old, new = saved.get("epoch_samples"), current["epoch_samples"]
    if scored and old is not None and old != new:
        out.append(
            f"train.score_samples {old!r} -> {new!r} (the best generator is picked by "
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
    fix = f"run `ganops train --fresh` (or delete {path}) to start over"
    loop, shape = blob.get("loop"), blob.get("shape")
    if not isinstance(loop, dict) or not isinstance(shape, dict):
        raise CheckpointError(f"{path}: not a ganops training checkpoint (no loop state); {fix}")
    quality = loop.get("quality")
    scored = isinstance(quality, list) and any(
        isinstance(row, dict) and "fcd" in row for row in quality
    )
    changed = _differences(shape, training_shape(params, data_id), scored=scored)
    if changed:
        raise CheckpointError(
            f"{path} holds an interrupted run (step {loop.get('step')!r}) with a different "
            f"config: {'; '.join(changed)}. Restore those params to resume it, or run "
            f"`ganops train --fresh` (or delete {path}) to start over"
        )
    _check_restorable(blob, params, path=path, fix=fix)
    return blob


def _check_restorable(blob: dict[str, Any], params: Params, *, path: Path, fix: str) -> None:
    """Refuse a checkpoint whose contents would not restore into this run's networks,
    optimizers and loop (a traceback in the middle of restoring, or later in training)."""
    generator, discriminator = on_meta_device(lambda: build_models(params.model))
    problem = checkpoint_misfit(blob, generator, discriminator)
    if problem:
        raise CheckpointError(f"{path}: cannot be resumed: {problem}; {fix}")
