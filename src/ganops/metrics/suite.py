"""Every metric of one generated set against one real set, from features extracted once."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import Tensor

from ganops.metrics.classes import ClassReport, class_report
from ganops.metrics.fid import fid_from_features
from ganops.metrics.kid import kid_from_features
from ganops.metrics.names import metric_name
from ganops.metrics.precision_recall import precision_recall
from ganops.metrics.registry import METRICS
from ganops.models.classifier import Outputs


def inception_metrics(fake: Tensor, real: Tensor, *, seed: int) -> dict[str, float]:
    """FID and every other registered metric of Inception features (``from_features``), KID
    (mean and spread over subsets), precision and recall."""
    n = len(real)
    values = {
        metric.family: _function(metric.from_features)(fake, real)
        for metric in METRICS
        if metric.from_features
    }
    values["kid"], values["kid_std"] = kid_from_features(fake, real, seed=seed)
    values["precision"], values["recall"] = precision_recall(fake, real)
    return {metric_name(family, n): value for family, value in values.items()}


def _function(reference: str) -> Callable[[Tensor, Tensor], float]:
    """The function a registry entry names as ``module:function``."""
    module, _, name = reference.partition(":")
    function: Callable[[Tensor, Tensor], float] = getattr(importlib.import_module(module), name)
    return function


def classifier_metrics(
    fake: Outputs, real: Outputs, *, real_share: Tensor
) -> tuple[dict[str, float], ClassReport]:
    """The class report of the generated images and the Fréchet distance of classifier features
    (``fcd_<n>``: like FID, in a space that knows what digits look like)."""
    report = class_report(fake.probabilities, real_share)
    fcd = fid_from_features(fake.features, real.features)
    return {metric_name("fcd", len(real.features)): fcd, **report.metrics()}, report
