"""The MLflow runs table opened on quality: a shared view of the experiment whose columns
are the evaluation's FID, KID, precision, recall and class metrics, sorted by FID.

MLflow 3's UI keeps a shared view as the experiment tag ``mlflow.sharedViewState.<key>``
(its own "Share" button writes the same) and opens it from
``#/experiments/<id>/runs?viewStateShareKey=<key>``. Without it the runs table shows
source, models and dataset, and every metric sits out of sight behind the params.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ganops.metrics.names import family_of, sample_count
from ganops.metrics.registry import GATED

VIEW_KEY = "ganops-quality"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# Shown in this order, each family's larger sample counts first (fid_10k before fid_500).
FAMILIES = tuple(metric.family for metric in GATED)  # the gated metrics, in the gate's order
MAX_COLUMNS = 12
_METRIC_COLUMN = re.compile(r"metrics\.`([^`]+)`")


def column(name: str) -> str:
    """A metric's column key as the UI names it (``metrics.`fid_10k```)."""
    return f"metrics.`{name}`"


def quality_columns(names: Iterable[str]) -> list[str]:
    """The quality metrics among ``names``, in the order the table shows them."""
    kept = {name for name in names if family_of(name) in FAMILIES}
    ordered = sorted(
        kept, key=lambda name: (FAMILIES.index(family_of(name)), -(sample_count(name) or 0))
    )
    return ordered[:MAX_COLUMNS]


def shown_metrics(tag_value: str | None) -> list[str]:
    """The metric columns of an earlier view (a tag read back: anything not a view is none)."""
    try:
        view = json.loads(tag_value or "")
    except ValueError:
        return []
    selected = view.get("selectedColumns") if isinstance(view, dict) else None
    if not isinstance(selected, list):
        return []
    found = (_METRIC_COLUMN.fullmatch(key) for key in selected if isinstance(key, str))
    return [match.group(1) for match in found if match]


def view_state(metrics: Iterable[str], *, earlier: str | None = None) -> str | None:
    """The view's JSON: the quality columns of ``metrics`` and of the ``earlier`` view,
    sorted by the FID among ``metrics`` (the latest evaluation's count); None without one."""
    latest = quality_columns(metrics)
    fids = [name for name in latest if family_of(name) == "fid"]
    if not fids:
        return None
    columns = [column(name) for name in quality_columns({*latest, *shown_metrics(earlier)})]
    view: dict[str, Any] = {
        "selectedColumns": [*columns, "attributes.`Models`", "attributes.`Dataset`"],
        "columnOrder": columns,  # the metrics straight after the run's name and date
        "orderByKey": column(fids[0]),
        "orderByAsc": True,  # the lowest FID first
    }
    return json.dumps(view)


def publish(client: Any, run_id: str, metrics: Iterable[str]) -> None:
    """Set (or widen) the quality view on the experiment of ``run_id``, whose evaluation
    logged ``metrics``; nothing when they hold no FID."""
    experiment_id = client.get_run(run_id).info.experiment_id
    earlier = client.get_experiment(experiment_id).tags.get(VIEW_TAG)
    value = view_state(metrics, earlier=earlier)
    if value is not None and value != earlier:
        client.set_experiment_tag(experiment_id, VIEW_TAG, value)


def query(experiment_tags: dict[str, str]) -> str:
    """The runs table address's query for an experiment with these tags ("" without a view)."""
    return f"?viewStateShareKey={VIEW_KEY}" if VIEW_TAG in experiment_tags else ""
