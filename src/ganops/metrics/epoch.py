"""Sample quality during training: class metrics and fcd of a fixed noise batch, per epoch.

Cheap enough for every epoch on a CPU (a small classifier, no Inception): a quality curve
over the run, next to the loss curves, in MLflow and in a DVC plot.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ganops.classifier import Classifier, Outputs, classify, load_classifier
from ganops.config import Params
from ganops.data import load_prepared, require_images
from ganops.metrics.classes import expected_class_share
from ganops.metrics.names import family_of
from ganops.models.sampling import sample_images
from ganops.outputs import TEST_IMAGES

QUALITY_NAMES = ("fcd", "class_kl", "classes_covered", "class_confidence")
_CHUNK = 500  # images per forward pass


class EpochEvaluator:
    """Scores the generator every ``every`` epochs on the same ``num_samples`` noise vectors."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        real_images: Tensor,
        real_labels: Tensor,
        train_labels: Tensor,
        every: int,
        latent_dim: int,
        conditional: bool,
        seed: int,
        device: torch.device,
    ) -> None:
        self.classifier, self.every, self.device = classifier.to(device), every, device
        # The class mix the samples should have: the training set's, or for a conditional
        # generator the classes it is asked for (those of the real images).
        asked = real_labels if conditional else None
        self.share = expected_class_share(train_labels, classifier.num_classes, asked=asked)
        self.real: Outputs = classify(self.classifier, real_images.split(_CHUNK), device=device)
        # Drawn on the CPU from their own seed: the training RNG is never touched.
        rng = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(len(real_images), latent_dim, generator=rng).to(device)
        self.labels = real_labels.to(device) if conditional else None

    def __call__(self, generator: nn.Module, epoch: int) -> dict[str, float]:
        """The quality metrics at the end of ``epoch``, or {} if this epoch is not scored."""
        if self.every == 0 or epoch % self.every:
            return {}
        images = sample_images(generator, self.noise, labels=self.labels)  # one pass: ~1k images
        from ganops.metrics.suite import classifier_metrics  # torchmetrics: slow to import

        fake = classify(self.classifier, images.split(_CHUNK), device=self.device)
        metrics, _ = classifier_metrics(fake, self.real, real_share=self.share)
        by_family = {family_of(name): value for name, value in metrics.items()}  # fcd_1k -> fcd
        return {name: by_family[name] for name in QUALITY_NAMES}


def epoch_evaluator(
    params: Params,
    *,
    classifier: Path,
    data_dir: Path,
    train_labels: Tensor,
    device: torch.device,
) -> EpochEvaluator | None:
    """The run's per-epoch scorer, or None when evaluate.every_epochs is 0; built before
    training, so a bad classifier file or too few test images fail at once."""
    cfg = params.evaluate
    if cfg.every_epochs == 0:
        return None
    model, _ = load_classifier(classifier, data_dir=data_dir)
    test_path = data_dir / TEST_IMAGES
    real, real_labels = load_prepared(test_path)
    require_images(real, cfg.epoch_samples, key="evaluate.epoch_samples", path=test_path)
    return EpochEvaluator(
        model,
        real_images=real[: cfg.epoch_samples],
        real_labels=real_labels[: cfg.epoch_samples],
        train_labels=train_labels,
        every=cfg.every_epochs,
        latent_dim=params.model.latent_dim,
        conditional=params.model.conditional,
        seed=params.train.seed,  # the run's seed: a change of evaluate.* does not retrain
        device=device,
    )
