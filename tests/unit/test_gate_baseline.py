"""``gate --baseline``: a git revision or a DVC experiment name, refused when it was scored on
another dataset, sample count or Inception weights."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ganops import gate
from ganops.config import GateConfig
from ganops.errors import DataError

SCORED = {
    "generator_sha256": "a" * 64,
    "run_id": None,
    "dataset": "mnist",
    "inception_weights": "f91d46f51c1d",
    "precision": "fp32",
}


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True, input=stdin
    ).stdout.strip()


def _document(fid: float, **scored: Any) -> str:
    return json.dumps({"fid_1k": fid, "num_samples": 1000, "scored": {**SCORED, **scored}})


def _repo(tmp_path: Path, baseline: str) -> Path:
    """A git repository whose HEAD commits ``baseline`` as metrics.json."""
    _git(tmp_path, "init", "-q")
    path = tmp_path / "metrics.json"
    path.write_text(baseline, encoding="utf-8")
    _git(tmp_path, "add", "metrics.json")
    _git(tmp_path, "commit", "-q", "-m", "base")
    return path


def _experiment(repo: Path, name: str, text: str, *, baseline: str = "HEAD") -> str:
    """What `dvc exp run -n NAME` leaves: a commit (off ``baseline``) holding the metrics,
    as the ref refs/exps/<sha[:2]>/<sha[2:]>/NAME (dvc.repo.experiments.refs.ExpRefInfo)."""
    base = _git(repo, "rev-parse", baseline)
    blob = _git(repo, "hash-object", "-w", "--stdin", stdin=text)
    tree = _git(repo, "mktree", stdin=f"100644 blob {blob}\tmetrics.json\n")
    commit = _git(repo, "commit-tree", tree, "-p", base, "-m", f"dvc: commit experiment {name}")
    _git(repo, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", commit)
    return commit


def test_an_experiment_name_is_a_baseline(tmp_path: Path, capsys: Any) -> None:
    path = _repo(tmp_path, _document(50.0))
    commit = _experiment(tmp_path, "quick", _document(40.0))
    _git(tmp_path, "update-ref", "refs/exps/exec/EXEC_HEAD", commit)  # DVC's own: not a name
    path.write_text(_document(41.0), encoding="utf-8")
    (check,) = gate.run(GateConfig(), path, baseline="quick", repo=tmp_path)
    assert check.passed and check.limit == "<= 42 (baseline quick: 40 +5%)"
    assert f"baseline quick (experiment, {commit[:7]}): mnist, fp32" in capsys.readouterr().out
    with pytest.raises(DataError, match="or DVC experiment whose commit holds"):
        gate.run(GateConfig(), path, baseline="nosuch", repo=tmp_path)


def test_a_git_revision_wins_over_an_experiment_of_the_same_name(tmp_path: Path) -> None:
    path = _repo(tmp_path, _document(50.0))
    _experiment(tmp_path, "quick", _document(40.0))
    _git(tmp_path, "branch", "quick")  # the branch holds fid 50
    path.write_text(_document(41.0), encoding="utf-8")
    (check,) = gate.run(GateConfig(), path, baseline="quick", repo=tmp_path)
    assert check.limit == "<= 52.5 (baseline quick: 50 +5%)"


def test_an_experiment_name_of_several_baselines_prefers_head_s(tmp_path: Path) -> None:
    path = _repo(tmp_path, _document(50.0))
    first = _git(tmp_path, "rev-parse", "HEAD")
    _experiment(tmp_path, "quick", _document(30.0))
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "next")
    _experiment(tmp_path, "quick", _document(40.0))  # based on the new HEAD
    path.write_text(_document(41.0), encoding="utf-8")
    (check,) = gate.run(GateConfig(), path, baseline="quick", repo=tmp_path)
    assert check.limit.startswith("<= 42 (baseline quick: 40")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "later")  # HEAD is neither's base
    with pytest.raises(DataError, match=rf"several baseline commits \(.*{first[:7]}"):
        gate.run(GateConfig(), path, baseline="quick", repo=tmp_path)


@pytest.mark.parametrize(
    ("theirs", "message"),
    [
        ({"dataset": "fashion-mnist"}, "scored on dataset fashion-mnist, this run on mnist"),
        ({"inception_weights": "0123456789ab"}, "Inception weights 0123456789ab, this run on"),
    ],
)
def test_a_baseline_scored_another_way_is_refused(
    tmp_path: Path, theirs: dict[str, str], message: str
) -> None:
    path = _repo(tmp_path, _document(50.0, **theirs))
    path.write_text(_document(41.0), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        gate.run(GateConfig(), path, baseline="HEAD", repo=tmp_path)


def test_a_baseline_of_another_sample_count_is_refused(tmp_path: Path) -> None:
    base = json.loads(_document(50.0))
    path = _repo(tmp_path, json.dumps({**base, "num_samples": 500}))
    path.write_text(_document(41.0), encoding="utf-8")
    with pytest.raises(DataError, match=r"num_samples 500, this run 1000; .* not comparable"):
        gate.run(GateConfig(), path, baseline="HEAD", repo=tmp_path)


def test_both_sides_precision_is_shown_and_a_difference_warned(tmp_path: Path, capsys: Any) -> None:
    path = _repo(tmp_path, _document(50.0, precision="bf16"))
    path.write_text(_document(41.0), encoding="utf-8")
    gate.run(GateConfig(), path, baseline="HEAD", repo=tmp_path)
    captured = capsys.readouterr()
    line = "baseline HEAD: mnist, bf16, Inception f91d46f51c1d; this run: mnist, fp32, Inception"
    assert line in captured.out
    assert "different evaluate.precision" in captured.err


def test_a_baseline_from_before_provenance_still_gates_with_a_warning(
    tmp_path: Path, capsys: Any
) -> None:
    path = _repo(tmp_path, json.dumps({"fid_1k": 50.0, "num_samples": 1000}))
    path.write_text(_document(41.0), encoding="utf-8")
    (check,) = gate.run(GateConfig(), path, baseline="HEAD", repo=tmp_path)
    assert check.passed and check.limit.startswith("<= 52.5 (baseline HEAD: 50")
    err = capsys.readouterr().err
    assert "HEAD:metrics.json records no dataset or Inception weights" in err
    assert err.count("\n") == 1


def test_a_baseline_with_an_impossible_value_is_one_error(tmp_path: Path) -> None:
    path = _repo(tmp_path, json.dumps({"fid_1k": -1.0, "precision_1k": 0.5}))
    path.write_text(_document(41.0), encoding="utf-8")
    with pytest.raises(DataError, match=r"HEAD:metrics\.json: fid_1k is -1\.0, outside"):
        gate.run(GateConfig(), path, baseline="HEAD", repo=tmp_path)
