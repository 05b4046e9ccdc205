"""Stage ``evaluate``: FID between generated samples and real test images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ganops.checkpoints import load_generator
from ganops.config import Params
from ganops.data import load_prepared
from ganops.errors import DataError
from ganops.io import ensure_writable, write_json
from ganops.progress import Progress
from ganops.stages.common import resolve_device


def metric_name(num_samples: int) -> str:
    """``fid_10k`` for 10000 samples, ``fid_500`` for 500: FID depends on the sample count."""
    if num_samples % 1000 == 0:
        return f"fid_{num_samples // 1000}k"
    return f"fid_{num_samples}"


def generated_batches(
    generator: nn.Module,
    latent_dim: int,
    total: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    classes: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """``total`` images from ``generator`` in batches, reproducible from ``seed``;
    of the given ``classes`` (one per image) for a conditional generator."""
    rng = torch.Generator(device=device).manual_seed(seed)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            n = min(batch_size, total - start)
            z = torch.randn(n, latent_dim, device=device, generator=rng)
            labels = None if classes is None else classes[start : start + n].to(device)
            yield generator(z, labels)


def run(
    params: Params,
    data_dir: Path,
    models_dir: Path,
    train_dir: Path,
    out_dir: Path,
    cache_dir: Path,
) -> dict[str, float]:
    """Compute FID; write ``out_dir/metrics.json`` and log it to the training run."""
    cfg = params.evaluate
    device = resolve_device(cfg.device, "evaluate.device")
    ensure_writable(out_dir, cache_dir)  # before minutes of feature extraction
    generator, model_cfg = load_generator(models_dir / "generator.pt")
    real, real_labels = load_prepared(data_dir / "test.pt")
    if cfg.num_samples > len(real):
        raise DataError(
            f"evaluate.num_samples is {cfg.num_samples} but the prepared test set "
            f"has {len(real)} images; lower it (or raise data.test_subset)"
        )
    real = real[: cfg.num_samples]
    meta = json.loads((data_dir / "meta.json").read_text(encoding="utf-8"))
    # Imported here: torchmetrics and torch-fidelity load slowly, and inputs are checked first.
    from ganops.metrics.fid import compute_fid
    from ganops.metrics.inception import resolve_inception_weights, weights_fingerprint

    weights = resolve_inception_weights(cfg.inception_weights, cache_dir)
    cache_key = f"{meta['dataset_sha256']}:test:{cfg.num_samples}:{weights_fingerprint(weights)}"
    fakes = generated_batches(
        generator.to(device),
        model_cfg.latent_dim,
        cfg.num_samples,
        cfg.batch_size,
        device,
        cfg.seed,
        # A conditional generator draws the real images' classes: same class distribution.
        real_labels[: cfg.num_samples] if model_cfg.conditional else None,
    )
    with Progress(total=2 * cfg.num_samples, desc="FID features", unit="img") as bar:
        fid = compute_fid(
            fakes,
            real,
            batch_size=cfg.batch_size,
            device=device,
            weights=weights,
            stats_cache=cache_dir / f"real_stats_{cfg.num_samples}.pt",
            cache_key=cache_key,
            progress=bar.update,
        )
    metrics = {metric_name(cfg.num_samples): fid, "fid_num_samples": cfg.num_samples}
    write_json(metrics, out_dir / "metrics.json")
    _log(params, train_dir, metrics)
    print(
        f"{metric_name(cfg.num_samples)} = {fid:.3f} ({cfg.num_samples} generated vs "
        f"{cfg.num_samples} real test images, {device})"
    )
    return metrics


def _log(params: Params, train_dir: Path, metrics: dict[str, float]) -> None:
    run_file = train_dir / "mlflow_run.json"
    run_ref = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else {}
    if params.tracking.enabled and run_ref.get("run_id"):
        from ganops.tracking import attempt, log_to_run

        # metrics.json is written already; a tracking failure only warns.
        attempt(
            f"metrics to run {run_ref['run_id']}",
            lambda: log_to_run(run_ref, {k: float(v) for k, v in metrics.items()}),
        )
