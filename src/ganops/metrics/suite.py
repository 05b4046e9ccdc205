"""Every metric of one generated set against one real set, from features extracted once."""

from __future__ import annotations

from torch import Tensor

from ganops.metrics.classes import ClassReport, class_report
from ganops.metrics.fid import fid_from_features
from ganops.metrics.kid import kid_from_features
from ganops.metrics.names import metric_name
from ganops.metrics.precision_recall import precision_recall
from ganops.models.classifier import Outputs


def inception_metrics(fake: Tensor, real: Tensor, *, seed: int) -> dict[str, float]:
    """FID, KID (mean and spread over subsets), precision and recall of Inception features."""
    n = len(real)
    kid, kid_std = kid_from_features(fake, real, seed=seed)
    precision, recall = precision_recall(fake, real)
    values = {
        "fid": fid_from_features(fake, real),
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
    }
    return {metric_name(family, n): value for family, value in values.items()}


def classifier_metrics(
    fake: Outputs, real: Outputs, *, real_share: Tensor
) -> tuple[dict[str, float], ClassReport]:
    """The class report of the generated images and the Fréchet distance of classifier features
    (``fcd_<n>``: like FID, in a space that knows what digits look like)."""
    report = class_report(fake.probabilities, real_share)
    fcd = fid_from_features(fake.features, real.features)
    return {metric_name("fcd", len(real.features)): fcd, **report.metrics()}, report
