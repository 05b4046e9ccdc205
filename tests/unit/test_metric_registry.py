"""The metrics registry is the one list of metrics: the gate's params, the suite's names,
the per-epoch scores and the runs table's columns follow it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganops.config import GateConfig
from ganops.metrics.classes import ClassReport
from ganops.metrics.names import family_of, metric_name
from ganops.metrics.registry import GATED, METRICS, PER_EPOCH
from ganops.metrics.suite import inception_metrics
from ganops.tracking.quality_view import quality_columns

FAMILIES = {metric.family for metric in METRICS}


def test_the_gate_params_are_exactly_the_registered_gate_keys() -> None:
    keys = {key for metric in GATED for key in (metric.limit_key, metric.tolerance_key)}
    assert keys == {field.name for field in dataclasses.fields(GateConfig)}
    assert all(metric.lower_is_better is not None for metric in GATED)


def test_every_metric_the_suite_computes_is_registered() -> None:
    fake = torch.randn(40, 8, generator=torch.Generator().manual_seed(0)).double()
    real = torch.randn(40, 8, generator=torch.Generator().manual_seed(1)).double()
    names = set(inception_metrics(fake, real, seed=0))
    report = ClassReport(counts=[1, 2], classes_covered=2, class_kl=0.1, class_confidence=0.9)
    names |= set(report.metrics())
    assert {family_of(name) for name in names} <= FAMILIES
    assert "fid_40" in names  # counted metrics carry the sample count


def test_an_unregistered_metric_gets_no_counted_name() -> None:
    assert metric_name("fid", 10_000) == "fid_10k"
    with pytest.raises(ValueError, match="'sharpness' is not a counted metric"):
        metric_name("sharpness", 500)


def test_per_epoch_scores_and_table_columns_follow_the_registry() -> None:
    assert set(PER_EPOCH) <= set(ClassReport.__dataclass_fields__) | {"fcd"}
    shown = quality_columns(["fid_10k", "kid_std_10k", "fcd_1k", "class_kl", "loss_d"])
    assert shown == ["fid_10k", "class_kl"]  # gated ones only


def test_each_named_feature_function_resolves() -> None:
    from ganops.metrics.suite import _function

    named = [metric for metric in METRICS if metric.from_features]
    assert [metric.family for metric in named] == ["fid"]
    for metric in named:
        assert callable(_function(metric.from_features))
