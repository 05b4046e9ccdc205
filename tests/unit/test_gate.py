from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from ganops import gate
from ganops.config import GateConfig
from ganops.errors import DataError
from ganops.metrics_file import load_metrics


def write(path: Path, metrics: dict[str, float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics), encoding="utf-8")
    return path


def test_absolute_limit_is_lower_is_better(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"fid_1k": 40.0, "num_samples": 1000})
    (check,) = gate.run(GateConfig(max_fid=50.0), path, baseline=None, repo=tmp_path)
    assert check.passed and check.metric == "fid_1k"
    with pytest.raises(gate.GateFailed, match="fid_1k") as failed:
        gate.run(GateConfig(max_fid=30.0), path, baseline=None, repo=tmp_path)
    assert failed.value.exit_code == 1


@pytest.mark.parametrize(
    ("limit", "name", "good", "bad"),
    [
        ({"max_fid": 50.0}, "fid_1k", 49.0, 51.0),
        ({"max_kid": 0.02}, "kid_1k", 0.01, 0.03),
        ({"min_precision": 0.6}, "precision_1k", 0.7, 0.5),
        ({"min_recall": 0.4}, "recall_1k", 0.45, 0.35),
        ({"min_classes_covered": 10}, "classes_covered", 10.0, 9.0),
        ({"max_class_kl": 0.1}, "class_kl", 0.05, 0.2),
    ],
)
def test_each_limit_checks_its_metric_in_its_direction(
    limit: dict[str, float], name: str, good: float, bad: float
) -> None:
    cfg = GateConfig(**limit)  # type: ignore[arg-type]
    (passed,) = gate.checks(cfg, {name: good, "num_samples": 1000}, source="m")
    (failed,) = gate.checks(cfg, {name: bad, "num_samples": 1000}, source="m")
    assert passed.metric == failed.metric == name
    assert passed.passed and not failed.passed
    (nan,) = gate.checks(cfg, {name: math.nan}, source="m")
    assert not nan.passed  # NaN is infinitely bad, whichever way the metric improves


def test_a_limit_on_a_metric_the_file_lacks_is_bad_input() -> None:
    with pytest.raises(DataError, match=r"gate\.min_precision is set but m has no precision"):
        gate.checks(GateConfig(min_precision=0.5), {"fid_1k": 20.0}, source="m")


def test_only_the_limits_that_are_set_are_checked() -> None:
    metrics = {"fid_1k": 20.0, "kid_1k": 0.5, "precision_1k": 0.1, "classes_covered": 3.0}
    checks = gate.checks(GateConfig(max_fid=30.0, min_classes_covered=2), metrics, source="m")
    assert [(c.metric, c.passed) for c in checks] == [("fid_1k", True), ("classes_covered", True)]


def test_missing_metrics_file_and_nothing_to_check_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="metrics file not found; run `dvc repro`") as error:
        gate.run(GateConfig(max_fid=1.0), tmp_path / "none.json", baseline=None, repo=tmp_path)
    assert error.value.exit_code == 2
    path = write(tmp_path / "m.json", {"fid_1k": 40.0})
    with pytest.raises(DataError, match="nothing to check"):
        gate.run(GateConfig(), path, baseline=None, repo=tmp_path)


def test_summary_gets_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"fid_10k": 12.5})
    summary = tmp_path / "summary.md"
    gate.run(GateConfig(max_fid=20.0), path, baseline=None, repo=tmp_path, summary=summary)
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
    (check,) = gate.run(cfg, path, baseline="HEAD", repo=tmp_path)
    assert check.passed and check.limit == "<= 55 (baseline HEAD: 50 +10%)"
    write(path, {"fid_1k": 55.1})
    with pytest.raises(gate.GateFailed):
        gate.run(cfg, path, baseline="HEAD", repo=tmp_path)
    write(path, {"fid_10k": 20.0})  # a different sample count is not comparable
    with pytest.raises(DataError, match="not comparable"):
        gate.run(cfg, path, baseline="HEAD", repo=tmp_path)
    with pytest.raises(DataError, match=r"baseline 'HEAD~1': cannot read outputs/metrics\.json"):
        gate.run(cfg, path, baseline="HEAD~1", repo=tmp_path)


def test_baseline_is_direction_aware_with_absolute_and_relative_tolerances() -> None:
    base = {"fid_1k": 40.0, "precision_1k": 0.80, "classes_covered": 10.0, "class_kl": 0.05}
    cfg = GateConfig(precision_tolerance=0.02, class_kl_tolerance=0.01)
    same = gate.checks(cfg, dict(base), source="m", baseline=base, baseline_name="main")
    assert [c.metric for c in same] == ["fid_1k", "precision_1k", "classes_covered", "class_kl"]
    assert all(c.passed for c in same)
    better = {"fid_1k": 30.0, "precision_1k": 0.95, "classes_covered": 10.0, "class_kl": 0.0}
    assert all(
        c.passed for c in gate.checks(cfg, better, source="m", baseline=base, baseline_name="main")
    )
    worse = {"fid_1k": 41.0, "precision_1k": 0.785, "classes_covered": 9.0, "class_kl": 0.065}
    verdicts = {
        c.metric: c.passed
        for c in gate.checks(cfg, worse, source="m", baseline=base, baseline_name="main")
    }
    # FID +2.5% is within 5%; precision -0.015 within 0.02; one class lost; KL +0.015 > 0.01
    assert verdicts == {
        "fid_1k": True,
        "precision_1k": True,
        "classes_covered": False,
        "class_kl": False,
    }


def test_a_baseline_without_newer_metrics_compares_what_both_have() -> None:
    checks = gate.checks(
        GateConfig(), {"fid_1k": 40.0, "recall_1k": 0.1}, source="m", baseline={"fid_1k": 40.0}
    )
    assert [c.metric for c in checks] == ["fid_1k"]


def test_promotion_needs_a_tracked_run_and_a_registry_name(tmp_path: Path) -> None:
    from ganops import mlflow_run_file
    from ganops.config import TrackingConfig

    generator = tmp_path / "generator.pt"
    generator.write_bytes(b"weights")
    with pytest.raises(DataError, match=r"needs tracking\.enabled: true"):
        gate.promotion_target(TrackingConfig(registered_model=""), tmp_path, generator=generator)
    with pytest.raises(DataError, match="no tracked training run recorded"):
        gate.promotion_target(TrackingConfig(), tmp_path, generator=generator)
    mlflow_run_file.write(tmp_path, {}, generators=[generator])
    with pytest.raises(DataError, match="no tracked training run recorded"):
        gate.promotion_target(TrackingConfig(), tmp_path, generator=generator)
    mlflow_run_file.write(tmp_path, {"run_id": "abc", "uri": "u"}, generators=[generator])
    target = gate.promotion_target(TrackingConfig(), tmp_path, generator=generator)
    assert target.run_ref == {"run_id": "abc", "uri": "u"} and target.generator == generator


def test_a_run_reference_for_other_generator_bytes_is_refused(tmp_path: Path) -> None:
    """The interrupted-train case: a new generator.pt beside the previous run's reference
    must not be promoted (or scored) as that run."""
    from ganops import mlflow_run_file
    from ganops.config import TrackingConfig

    generator = tmp_path / "generator.pt"
    generator.write_bytes(b"old weights")
    mlflow_run_file.write(tmp_path, {"run_id": "old-run", "uri": "u"}, generators=[generator])
    generator.write_bytes(b"new weights")
    with pytest.raises(DataError, match="written for another generator"):
        gate.promotion_target(TrackingConfig(), tmp_path, generator=generator)
    with pytest.raises(DataError, match="written for another generator"):
        mlflow_run_file.read(tmp_path, generator)
    mlflow_run_file.clear(tmp_path)
    assert mlflow_run_file.read(tmp_path, generator) is None


def test_only_the_generator_the_run_logged_is_scored_into_or_promoted_as_it(
    tmp_path: Path,
) -> None:
    """train.keep switched from last to best after training: the run's model is the
    last generator, so the best one's metrics must not be logged to it, nor promoted."""
    import json

    from ganops import mlflow_run_file
    from ganops.config import TrackingConfig

    last, best = tmp_path / "generator.pt", tmp_path / "generator_best.pt"
    last.write_bytes(b"last weights")
    best.write_bytes(b"best weights")
    ref = {"run_id": "abc", "uri": "u"}
    mlflow_run_file.write(tmp_path, ref, generators=[last, best], model=last)
    assert mlflow_run_file.read(tmp_path, last) == ref
    with pytest.raises(DataError, match=r"logged generator\.pt as its model, so generator_best"):
        mlflow_run_file.read(tmp_path, best)
    with pytest.raises(DataError, match=r"train\.keep back"):
        gate.promotion_target(TrackingConfig(), tmp_path, generator=best)
    # Trained with 'best', whose file then went missing: 'best' falls back to the last.
    mlflow_run_file.write(tmp_path, ref, generators=[last, best], model=best)
    best.unlink()
    with pytest.raises(
        DataError, match=r"generator_best\.pt as its model, and that file is missing"
    ):
        mlflow_run_file.read(tmp_path, last)
    best.write_bytes(b"best weights")
    mlflow_run_file.write(tmp_path, ref, generators=[last, best], model=last)
    # A reference from before the model was recorded names no model: both still read.
    path = tmp_path / mlflow_run_file.FILE_NAME
    older = json.loads(path.read_text())
    del older["model"]
    path.write_text(json.dumps(older))
    assert mlflow_run_file.read(tmp_path, best) == ref


def test_a_summary_in_a_missing_directory_fails_before_any_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"fid_1k": 10.0}', encoding="utf-8")
    with pytest.raises(DataError, match="its directory does not exist"):
        gate.run(
            GateConfig(max_fid=20.0),
            metrics,
            baseline=None,
            repo=tmp_path,
            summary=tmp_path / "no" / "sum.md",
        )
    assert "fid_1k" not in capsys.readouterr().out


def test_a_metrics_file_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_bytes(b'{"fid_1k": \xff}')
    with pytest.raises(DataError, match="unreadable metrics file"):
        load_metrics(metrics)
