"""Stage ``train``: fit the GAN on the prepared training set, save models and curves."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ganops.checkpoints import save_checkpoint, save_generator
from ganops.config import Params
from ganops.data import load_prepared
from ganops.images import grid_array, save_png
from ganops.io import write_json, write_text
from ganops.models import build_models
from ganops.progress import Progress
from ganops.stages.common import resolve_device
from ganops.training import (
    GAN,
    STAT_NAMES,
    NullLogger,
    Schedule,
    TrainLogger,
    TrainResult,
    build_gan,
    fit,
    sample_images,
)


def _history_csv(result: TrainResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "epoch", *STAT_NAMES], lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.history)
    return buffer.getvalue()


def _save_models(gan: GAN, params: Params, result: TrainResult, models_dir: Path) -> None:
    save_generator(gan.sampler, params, models_dir / "generator.pt")
    save_checkpoint(
        {
            "step": result.steps,
            "generator": gan.generator.state_dict(),
            "discriminator": gan.discriminator.state_dict(),
            "opt_g": gan.opt_g.state_dict(),
            "opt_d": gan.opt_d.state_dict(),
            "ema": gan.ema.state_dict() if gan.ema is not None else None,
        },
        params,
        models_dir / "checkpoint.pt",
    )


def _train(
    params: Params, images: torch.Tensor, device: torch.device, logger: TrainLogger
) -> tuple[GAN, TrainResult, torch.Tensor]:
    torch.manual_seed(params.train.seed)  # weight init
    generator, discriminator = build_models(params.model)
    gan = build_gan(generator, discriminator, params.train, device)
    fixed_noise = torch.randn(
        params.train.grid_size,
        params.model.latent_dim,
        generator=torch.Generator().manual_seed(params.train.seed),
    ).to(device)
    schedule = Schedule(len(images), params.train.batch_size, params.train.epochs)
    with Progress(total=schedule.total_steps, desc=f"train ({device.type})", unit="step") as bar:
        result = fit(
            gan,
            images,
            params.train,
            latent_dim=params.model.latent_dim,
            fixed_noise=fixed_noise,
            logger=logger,
            on_step=lambda postfix: bar.update(1, postfix),
        )
    return gan, result, fixed_noise


def run(params: Params, data_dir: Path, models_dir: Path, out_dir: Path) -> TrainResult:
    """Train; write ``models/{generator,checkpoint}.pt`` and ``out_dir/{losses.csv,...}``."""
    device = resolve_device(params.train.device, "train.device")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    images, _ = load_prepared(data_dir / "train.pt")
    images = images.to(device)  # the whole set lives on the device: no DataLoader
    meta = json.loads((data_dir / "meta.json").read_text(encoding="utf-8"))
    tags = {
        "dataset": meta["dataset"],
        "dataset_sha256": meta["dataset_sha256"],
        "device": str(device),
    }
    started = time.monotonic()
    with _tracking(params, tags) as (logger, run_ref):
        gan, result, fixed_noise = _train(params, images, device, logger)
        _save_models(gan, params, result, models_dir)
        write_text(_history_csv(result), out_dir / "losses.csv")
        save_png(grid_array(sample_images(gan.sampler, fixed_noise)), out_dir / "samples.png")
        if run_ref:
            _log_final(gan, params, out_dir, time.monotonic() - started)
    write_json(
        {"run_id": run_ref.get("run_id"), "uri": run_ref.get("uri")}, out_dir / "mlflow_run.json"
    )
    print(
        f"trained {result.steps} steps in {time.monotonic() - started:.1f} s on {device}; "
        f"models in {models_dir}"
    )
    return result


@contextlib.contextmanager
def _tracking(params: Params, tags: dict[str, str]) -> Iterator[tuple[TrainLogger, dict[str, str]]]:
    """MLflow logger and run reference, or a no-op logger when tracking is off."""
    if not params.tracking.enabled:
        yield NullLogger(), {}
        return
    from ganops.tracking import MlflowLogger, training_run

    with training_run(params, Path.cwd(), tags) as run_ref:
        yield MlflowLogger(), run_ref


def _log_final(gan: GAN, params: Params, out_dir: Path, seconds: float) -> None:
    from ganops import tracking

    tracking.log_to_active({"train_seconds": seconds})
    for name in ("losses.csv", "samples.png"):
        tracking.log_artifact(out_dir / name)
    tracking.log_generator(gan.sampler, params.model.latent_dim)
