"""Sample quality during training: class metrics and fcd of a fixed noise batch, per epoch.

Cheap enough for every epoch on a CPU (a small classifier, no Inception): a quality curve
over the run, next to the loss curves, in MLflow and in a DVC plot.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganops.metrics.classes import expected_class_share
from ganops.metrics.names import family_of
from ganops.metrics.registry import PER_EPOCH
from ganops.models.classifier import Classifier, Outputs, classify
from ganops.models.sampling import sample_images

QUALITY_NAMES = PER_EPOCH  # the metrics registry's per-epoch ones, in quality.csv's order
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
