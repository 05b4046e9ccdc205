"""The runs table's quality view: which metric columns it shows and in what order, how an
earlier view read back from the store is widened (or ignored when it is not a view), and
that an evaluation sets it and ``ganops ui``'s address opens it."""

from __future__ import annotations

import json

import pytest

from ganops.tracking import quality_view
from ganops.tracking.quality_view import VIEW_TAG, quality_columns, shown_metrics, view_state

EVALUATED = {
    "fid_500": 120.0,
    "kid_500": 0.1,
    "kid_std_500": 0.01,
    "precision_500": 0.5,
    "recall_500": 0.6,
    "classes_covered": 10,
    "class_kl": 0.2,
    "num_samples": 500,
    "loss_d": 1.3,
    "system/cpu_utilization_percentage": 50.0,
}


def test_the_quality_metrics_come_fid_first_and_larger_counts_first() -> None:
    names = [*EVALUATED, "fid_10k", "recall_10k", "fcd_1k"]
    assert quality_columns(names) == [
        "fid_10k",
        "fid_500",
        "kid_500",
        "precision_500",
        "recall_10k",
        "recall_500",
        "classes_covered",
        "class_kl",
    ]


def test_the_view_sorts_by_the_latest_evaluation_s_fid_and_keeps_earlier_columns() -> None:
    first = view_state({"fid_10k": 9.6, "kid_10k": 0.001})
    assert first is not None
    second = json.loads(view_state(EVALUATED, earlier=first) or "")
    assert second["orderByKey"] == "metrics.`fid_500`" and second["orderByAsc"] is True
    assert second["columnOrder"][:3] == [
        "metrics.`fid_10k`",
        "metrics.`fid_500`",
        "metrics.`kid_10k`",
    ]
    assert second["selectedColumns"][: len(second["columnOrder"])] == second["columnOrder"]
    assert "metrics.`loss_d`" not in second["selectedColumns"]


def test_an_evaluation_without_fid_sets_no_view() -> None:
    assert view_state({"classes_covered": 10, "loss_d": 1.0}) is None


@pytest.mark.parametrize(
    "tag",
    [
        None,
        "",
        "{",
        "[1, 2]",
        '"text"',
        '{"selectedColumns": "metrics.`x`"}',
        '{"selectedColumns": [1, null, "params.`lr`", "metrics.`a`b`"]}',
    ],
)
def test_a_tag_that_is_not_a_view_contributes_no_column(tag: str | None) -> None:
    assert shown_metrics(tag) == []
    assert json.loads(view_state({"fid_64": 1.0}, earlier=tag) or "")["columnOrder"] == [
        "metrics.`fid_64`"
    ]


def test_an_evaluation_sets_the_view_and_the_ui_address_opens_it(
    store: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from ganops.tracking.runs import log_to_run
    from ganops.tracking.ui import runs_table_url

    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("viewed")
    run_id = client.create_run(experiment_id).info.run_id
    base = "http://127.0.0.1:5000"
    assert runs_table_url(base, store, "viewed") == f"{base}/#/experiments/{experiment_id}/runs"
    log_to_run({"run_id": run_id, "uri": store}, EVALUATED)
    assert "warning" not in capfd.readouterr().err
    tags = client.get_experiment(experiment_id).tags
    assert json.loads(tags[VIEW_TAG])["orderByKey"] == "metrics.`fid_500`"
    assert runs_table_url(base, store, "viewed") == (
        f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey=ganops-quality"
    )


def test_a_failed_view_only_warns_and_keeps_the_metrics(
    store: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from ganops.tracking.runs import log_to_run

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("experiment tags are read-only")

    client = mlflow.MlflowClient()
    run_id = client.create_run(client.create_experiment("unviewed")).info.run_id
    monkeypatch.setattr(quality_view, "publish", refuse)
    log_to_run({"run_id": run_id, "uri": store}, {"fid_64": 50.0})
    assert client.get_run(run_id).data.metrics == {"fid_64": 50.0}
    assert (
        "could not log the runs table's quality view (RuntimeError: experiment tags are read-only)"
        in (capfd.readouterr().err)
    )
