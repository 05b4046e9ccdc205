from __future__ import annotations

from pathlib import Path

import pytest

from ganops.config import Params, TrackingConfig, params_from_dict
from ganops.tracking.runs import describe_changes, repo_root, tracking_uri


def test_description_lists_exactly_the_changed_keys() -> None:
    assert describe_changes(Params()) == "Changed from defaults: nothing"
    params = params_from_dict({"train": {"loss": "hinge", "epochs": 3}})
    assert describe_changes(params) == "Changed from defaults: train.epochs=3, train.loss=hinge"


def test_runs_from_dvc_temp_workspaces_land_in_the_root_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    workspace.mkdir(parents=True)
    assert repo_root(workspace) == tmp_path.resolve()
    assert tracking_uri(TrackingConfig(), workspace) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(TrackingConfig(), workspace) == "http://127.0.0.1:5000"
    assert tracking_uri(TrackingConfig(uri="sqlite:///x.db"), workspace) == "sqlite:///x.db"
