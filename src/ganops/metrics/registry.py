"""Every metric ganops reports, declared once (as StyleGAN2-ADA's ``metric_main`` registers
each by one name): which way is better, whether its value depends on the sample count (its
name then carries the count, ``fid_10k``), whether training scores it every epoch, and the
two ``gate.*`` keys where ``ganops gate`` checks it.

Metric names (``names``), the gate's rules (``gate``), the per-epoch scores and their
``quality.csv`` columns (``epoch``) and the MLflow runs table's columns (``quality_view``)
are all read from ``METRICS``; a gated metric's two keys are params, so they are also in
``config.GateConfig`` (``tests/unit/test_metric_registry.py`` keeps the two in step).
Adding a metric: docs/development.md#adding-a-metric.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    family: str  # the name without a sample count: fid, class_kl
    lower_is_better: bool | None  # None: no direction (a spread, such as kid_std)
    counted: bool = False  # depends on the sample count: fid_10k, fcd_1k
    per_epoch: bool = False  # scored during training (outputs/train/quality.csv, epoch/<name>)
    limit_key: str = ""  # gate.<key>: absolute limit (0 = off); "" = not gated
    tolerance_key: str = ""  # gate.<key>: allowed worsening against --baseline REV
    relative: bool = False  # the tolerance is a fraction of REV's value (else in its units)
    # "module:function" of (generated, real) Inception features -> the value, which the suite
    # calls for every metric that names one (named, not imported: no torch import here)
    from_features: str = ""

    @property
    def gated(self) -> bool:
        return bool(self.limit_key)


# In the order the gate's table, the runs table and quality.csv's columns show them.
METRICS = (
    Metric(
        "fid",
        True,
        counted=True,
        limit_key="max_fid",
        tolerance_key="fid_tolerance",
        relative=True,
        from_features="ganops.metrics.fid:fid_from_features",
    ),
    Metric(
        "kid", True, counted=True, limit_key="max_kid", tolerance_key="kid_tolerance", relative=True
    ),
    Metric("kid_std", None, counted=True),
    Metric(
        "precision",
        False,
        counted=True,
        limit_key="min_precision",
        tolerance_key="precision_tolerance",
    ),
    Metric("recall", False, counted=True, limit_key="min_recall", tolerance_key="recall_tolerance"),
    Metric("fcd", True, counted=True, per_epoch=True),
    Metric(
        "classes_covered",
        False,
        per_epoch=True,
        limit_key="min_classes_covered",
        tolerance_key="classes_covered_tolerance",
    ),
    Metric(
        "class_kl",
        True,
        per_epoch=True,
        limit_key="max_class_kl",
        tolerance_key="class_kl_tolerance",
    ),
    Metric("class_confidence", False, per_epoch=True),
)

COUNTED = tuple(metric.family for metric in METRICS if metric.counted)
PER_EPOCH = tuple(metric.family for metric in METRICS if metric.per_epoch)
GATED = tuple(metric for metric in METRICS if metric.gated)
