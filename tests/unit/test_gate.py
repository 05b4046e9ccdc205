from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from ganops import gate
from ganops.config import GateConfig
from ganops.errors import DataError


def write(path: Path, metrics: dict[str, float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics), encoding="utf-8")
    return path


def test_absolute_limit_is_lower_is_better(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"fid_1k": 40.0, "fid_num_samples": 1000})
    (check,) = gate.run(GateConfig(max_fid=50.0), path, None, tmp_path)
    assert check.passed and check.metric == "fid_1k"
    with pytest.raises(gate.GateFailed, match="fid_1k") as failed:
        gate.run(GateConfig(max_fid=30.0), path, None, tmp_path)
    assert failed.value.exit_code == 1


def test_nan_fid_never_passes() -> None:
    (check,) = gate.checks(GateConfig(max_fid=1e9), {"fid_1k": math.nan}, "m")
    assert not check.passed


def test_missing_metrics_file_and_nothing_to_check_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="metrics file not found; run `dvc repro`") as error:
        gate.run(GateConfig(max_fid=1.0), tmp_path / "none.json", None, tmp_path)
    assert error.value.exit_code == 2
    path = write(tmp_path / "m.json", {"fid_1k": 40.0})
    with pytest.raises(DataError, match="nothing to check"):
        gate.run(GateConfig(), path, None, tmp_path)


def test_summary_gets_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"fid_10k": 12.5})
    summary = tmp_path / "summary.md"
    gate.run(GateConfig(max_fid=20.0), path, None, tmp_path, summary)
    assert "| fid_10k | 12.500 | <= 20 | pass |" in summary.read_text(encoding="utf-8")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_baseline_revision_allows_the_tolerance_and_no_more(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(
        tmp_path,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "0",
    )
    path = write(tmp_path / "outputs" / "metrics.json", {"fid_1k": 50.0})
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    cfg = GateConfig(fid_tolerance=0.1)
    write(path, {"fid_1k": 54.9})  # within 10% of 50
    (check,) = gate.run(cfg, path, "HEAD", tmp_path)
    assert check.passed and "baseline HEAD: 50.000" in check.limit
    write(path, {"fid_1k": 55.1})
    with pytest.raises(gate.GateFailed):
        gate.run(cfg, path, "HEAD", tmp_path)
    write(path, {"fid_10k": 20.0})  # a different sample count is not comparable
    with pytest.raises(DataError, match="not comparable"):
        gate.run(cfg, path, "HEAD", tmp_path)
    with pytest.raises(DataError, match=r"baseline 'HEAD~1': cannot read outputs/metrics\.json"):
        gate.run(cfg, path, "HEAD~1", tmp_path)


def test_promotion_needs_a_tracked_run_and_a_registry_name(tmp_path: Path) -> None:
    from ganops.config import TrackingConfig

    with pytest.raises(DataError, match=r"needs tracking\.enabled: true"):
        gate.promotion_target(TrackingConfig(registered_model=""), tmp_path)
    with pytest.raises(DataError, match="no readable MLflow run reference"):
        gate.promotion_target(TrackingConfig(), tmp_path)
    (tmp_path / "mlflow_run.json").write_text('{"run_id": null, "uri": null}', encoding="utf-8")
    with pytest.raises(DataError, match="was not tracked"):
        gate.promotion_target(TrackingConfig(), tmp_path)
    (tmp_path / "mlflow_run.json").write_text('{"run_id": "abc", "uri": "u"}', encoding="utf-8")
    assert gate.promotion_target(TrackingConfig(), tmp_path) == {"run_id": "abc", "uri": "u"}
