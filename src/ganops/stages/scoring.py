"""Every metric of one image set against the real test images, streamed: each batch goes
through Inception (and the class-metrics classifier) as it is made, so memory holds 2048-d
features, never all the images; a batch with NaN or inf pixels stops it at once."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ganops.config import EvaluateConfig
from ganops.errors import DataError
from ganops.models.classifier import Classifier, Outputs, classify
from ganops.progress import Progress

AUTO_COMPILE_SAMPLES = 5000  # evaluate.compile 'auto': well past where the compile pays back


@dataclass
class Scores:
    metrics: dict[str, float]
    class_counts: list[int] = field(default_factory=list)  # generated images per class
    real_share: Tensor | None = None  # the class shares the samples should have


def score_images(
    batches: Iterable[Tensor],
    real: Tensor,
    *,
    cfg: EvaluateConfig,
    device: torch.device,
    cache_dir: Path,
    classifier: Classifier | None = None,
    class_share: Tensor | None = None,
) -> Scores:
    """FID, KID, precision/recall (and, with a ``classifier``, the class report and fcd) of
    the images in ``batches`` ([-1, 1], exactly ``len(real)`` of them) against ``real``;
    ``class_share``: the class shares the samples should have (``expected_class_share``)."""
    # Imported here: torchmetrics and torch-fidelity load slowly, and inputs are checked first.
    from ganops.feature_cache import real_and_fake_features
    from ganops.inception_weights import resolve_inception_weights, weights_fingerprint
    from ganops.metrics.features import tensor_digest
    from ganops.metrics.suite import classifier_metrics, inception_metrics

    weights = resolve_inception_weights(cfg.inception_weights, cache_dir)
    # The images themselves, not their file's name or meta.json: other images, other features.
    cache_key = f"test:{tensor_digest(real)}:{weights_fingerprint(weights)}"
    bf16 = cfg.precision == "bf16"
    suffix = "_bf16" if bf16 else ""  # fp32 and bf16 real features kept side by side
    judged: list[Outputs] = []
    with Progress(total=2 * len(real), desc="Inception features", unit="img") as bar:
        fake_features, real_features = real_and_fake_features(
            _checked(batches, classifier, judged, device, cfg.batch_size),
            real,
            batch_size=cfg.batch_size,
            device=device,
            weights=weights,
            cache=cache_dir / f"real_features_{len(real)}{suffix}.pt",
            cache_key=cache_key,
            bf16=bf16,
            compiled=_compiles(cfg, device),
            progress=bar.update,
            skipped=bar.skip,
        )
    n = len(real_features)
    print(f"FID, KID and precision/recall of {n} vs {n} features", file=sys.stderr, flush=True)
    scores = Scores(inception_metrics(fake_features, real_features, seed=cfg.seed))
    if classifier is not None and class_share is not None:
        fake = Outputs(
            torch.cat([o.probabilities for o in judged]), torch.cat([o.features for o in judged])
        )
        real_out = classify(classifier, real.split(cfg.batch_size), device=device)
        class_metrics, report = classifier_metrics(fake, real_out, real_share=class_share)
        scores.metrics.update(class_metrics)
        scores.class_counts, scores.real_share = report.counts, class_share
    return scores


def _compiles(cfg: EvaluateConfig, device: torch.device) -> bool:
    """Whether evaluate.compile asks for a compiled Inception on ``device``."""
    if cfg.compile == "auto":  # on a GPU, eager Inception already takes seconds at 10k
        return device.type == "cpu" and cfg.num_samples >= AUTO_COMPILE_SAMPLES
    return cfg.compile == "always"


def _checked(
    batches: Iterable[Tensor],
    classifier: Classifier | None,
    judged: list[Outputs],
    device: torch.device,
    chunk: int,
) -> Iterator[Tensor]:
    """``batches`` as they come, each checked for finite pixels and, with a ``classifier``,
    classified on the way (into ``judged``)."""
    for batch in batches:
        for part in batch.split(chunk):
            if not bool(torch.isfinite(part).all()):  # NaN pixels would score as black ones
                raise DataError(
                    "the generator produced NaN or inf pixels; it cannot be scored. Train "
                    "again (e.g. with a lower train.lr_g/train.lr_d)"
                )
            if classifier is not None:
                judged.append(classify(classifier, [part], device=device))
            yield part
