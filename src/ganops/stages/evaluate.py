"""Stage ``evaluate``: every metric of generated samples against real test images.

Inception features are extracted once per image set (real ones cached) and give FID, KID and
precision/recall; the class-metrics classifier gives the class report and ``fcd_<n>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from ganops import outputs, run_reference
from ganops.checkpoints import load_generator, scored_generator
from ganops.classifier import Classifier, classify, load_classifier
from ganops.config import EvaluateConfig, ModelConfig, Params
from ganops.data import load_prepared
from ganops.errors import DataError
from ganops.files import ensure_writable, remove_stale_temps, write_json, write_text
from ganops.metrics.classes import real_class_share
from ganops.progress import Progress
from ganops.stages.common import resolve_device


def generated_batches(
    generator: nn.Module,
    latent_dim: int,
    total: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    classes: Tensor | None = None,
) -> Iterator[Tensor]:
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
    classifier_path: Path | None = None,
    floor: bool = False,
) -> dict[str, float]:
    """Write ``out_dir/metrics.json`` (and ``classes.csv``) and log them to the training run.

    ``floor``: score real training images instead of the generator, into ``floor.json``: the
    best any generator can do at this sample count.
    """
    cfg = params.evaluate
    device = resolve_device(cfg.device, "evaluate.device")
    ensure_writable(out_dir, cache_dir)  # before minutes of feature extraction
    remove_stale_temps(cache_dir)  # a conversion or cache write cut short by kill -9
    generator_path = scored_generator(models_dir, cfg.generator)
    generator = None if floor else load_generator(generator_path)
    # Checked before minutes of Inception: the metrics must go to this generator's own run.
    run_ref = None
    if not floor and params.tracking.enabled:
        run_ref = run_reference.read(train_dir, generator_path)
    real, real_labels = _real_test_images(data_dir, cfg.num_samples)
    train_images, train_labels = load_prepared(data_dir / outputs.TRAIN_IMAGES)
    # Loaded before the slow Inception pass, so a bad classifier file fails at once.
    classifier = load_classifier(classifier_path)[0].to(device) if classifier_path else None
    if generator is None:
        fakes = _floor_images(train_images, cfg.num_samples)
    else:
        fakes = _generate(*generator, real_labels, cfg, device)
    metrics = _inception_metrics(params, cache_dir, fakes, real, device)
    if classifier is not None:
        class_metrics, counts, share = _class_metrics(classifier, fakes, real, train_labels, cfg)
        metrics.update(class_metrics)
        if not floor:
            write_text(_classes_csv(counts, share), out_dir / outputs.CLASSES)
    metrics["num_samples"] = cfg.num_samples
    bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
    if bad:  # never a number in metrics.json that a gate could misread
        raise DataError(f"metrics {', '.join(bad)} are not finite; nothing was written")
    write_json(metrics, out_dir / (outputs.FLOOR if floor else outputs.METRICS))
    if not floor:
        _log(params, run_ref, metrics)
    what = "real training" if floor else "generated"
    print(f"{cfg.num_samples} {what} vs {cfg.num_samples} real test images ({device}):")
    for name, value in metrics.items():
        print(f"  {name:<18} {value:.5g}")
    return metrics


def _floor_images(train_images: Tensor, num_samples: int) -> Tensor:
    if len(train_images) < num_samples:
        raise DataError(
            f"--floor compares evaluate.num_samples = {num_samples} training images but the "
            f"prepared training set has {len(train_images)}; lower evaluate.num_samples"
        )
    return train_images[:num_samples]


def _class_metrics(
    classifier: Classifier, fakes: Tensor, real: Tensor, train_labels: Tensor, cfg: EvaluateConfig
) -> tuple[dict[str, float], list[int], Tensor]:
    """Class report and fcd of ``fakes``; the real class shares come from the training set."""
    from ganops.metrics.suite import classifier_metrics

    device = next(classifier.parameters()).device
    share = real_class_share(train_labels, classifier.num_classes)
    fake_out, real_out = (
        classify(classifier, images.split(cfg.batch_size), device) for images in (fakes, real)
    )
    metrics, report = classifier_metrics(fake_out, real_out, share)
    return metrics, report.counts, share


def _real_test_images(data_dir: Path, num_samples: int) -> tuple[Tensor, Tensor]:
    real, labels = load_prepared(data_dir / outputs.TEST_IMAGES)
    if num_samples > len(real):
        raise DataError(
            f"evaluate.num_samples is {num_samples} but the prepared test set "
            f"has {len(real)} images; lower it (or raise data.test_subset)"
        )
    return real[:num_samples], labels[:num_samples]


def _generate(
    generator: nn.Module,
    model_cfg: ModelConfig,
    classes: Tensor,
    cfg: EvaluateConfig,
    device: torch.device,
) -> Tensor:
    """``len(classes)`` images; a conditional generator draws the given (real test) classes,
    so its samples have the real class distribution."""
    batches = generated_batches(
        generator.to(device),
        model_cfg.latent_dim,
        len(classes),
        cfg.batch_size,
        device,
        cfg.seed,
        classes if model_cfg.conditional else None,
    )
    images = torch.cat([batch.cpu() for batch in batches])
    if not bool(torch.isfinite(images).all()):  # NaN pixels would score as black ones
        raise DataError(
            "the generator produced NaN or inf pixels; it cannot be scored. Train again "
            "(e.g. with a lower train.lr_g/train.lr_d)"
        )
    return images


def _inception_metrics(
    params: Params,
    cache_dir: Path,
    fakes: Tensor,
    real: Tensor,
    device: torch.device,
) -> dict[str, float]:
    # Imported here: torchmetrics and torch-fidelity load slowly, and inputs are checked first.
    from ganops.metrics.features import real_and_fake_features, tensor_digest
    from ganops.metrics.inception import resolve_inception_weights, weights_fingerprint
    from ganops.metrics.suite import inception_metrics

    cfg = params.evaluate
    weights = resolve_inception_weights(cfg.inception_weights, cache_dir)
    # The images themselves, not their file's name or meta.json: other images, other features.
    cache_key = f"test:{tensor_digest(real)}:{weights_fingerprint(weights)}"
    with Progress(total=2 * len(real), desc="Inception features", unit="img") as bar:
        fake_features, real_features = real_and_fake_features(
            fakes.split(cfg.batch_size),
            real,
            batch_size=cfg.batch_size,
            device=device,
            weights=weights,
            cache=cache_dir / f"real_features_{len(real)}.pt",
            cache_key=cache_key,
            progress=bar.update,
        )
    return inception_metrics(fake_features, real_features, seed=cfg.seed)


def _classes_csv(counts: list[int], real_share: Tensor) -> str:
    """One row per class: its share of the generated and of the real images (a DVC plot)."""
    total = sum(counts) or 1
    rows = ["class,generated,real"]
    shares = zip(counts, real_share.tolist(), strict=True)
    rows += [f"{c},{n / total:.4f},{r:.4f}" for c, (n, r) in enumerate(shares)]
    return "\n".join(rows) + "\n"


def _log(params: Params, run_ref: dict[str, str] | None, metrics: dict[str, float]) -> None:
    if params.tracking.enabled and run_ref is not None:
        from ganops.tracking.runs import attempt, log_to_run

        # metrics.json is written already; a tracking failure only warns.
        attempt(
            f"metrics to run {run_ref['run_id']}",
            lambda: log_to_run(run_ref, {k: float(v) for k, v in metrics.items()}),
        )
