"""The gate never passes or promotes on a wrong basis: stale or foreign metrics, numbers a
metrics file cannot hold, baselines scored another way, an unhealthy tracking server."""

from __future__ import annotations

import http.server
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ganops import gate, mlflow_run_file
from ganops.cli import app
from ganops.config import GateConfig
from ganops.errors import DataError
from ganops.files import file_sha256
from ganops.metrics_file import parse_metrics, read_metrics

SCORED = {"dataset": "mnist", "inception_weights": "f91d46f51c1d", "precision": "fp32"}


def _project(tmp_path: Path, *, uri: str = "", run_id: str = "run-1") -> dict[str, Path]:
    """A generator file, its run reference and params asking for promotion: by hand."""
    generator = tmp_path / "models" / "generator.pt"
    generator.parent.mkdir()
    generator.write_bytes(b"new weights")
    train = tmp_path / "train"
    train.mkdir()
    uri = uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_run_file.write(train, {"run_id": run_id, "uri": uri}, generators=[generator])
    params = tmp_path / "params.yaml"
    params.write_text("gate:\n  max_fid: 50\n", encoding="utf-8")
    return {"generator": generator, "train": train, "params": params}


def _metrics(path: Path, *, generator_sha256: str | None, run_id: str | None, fid: float) -> Path:
    scored = {**SCORED, "generator_sha256": generator_sha256, "run_id": run_id}
    path.write_text(json.dumps({"fid_1k": fid, "num_samples": 1000, "scored": scored}))
    return path


def _gate_promote(tmp_path: Path, files: dict[str, Path], metrics: Path) -> Any:
    args = ["gate", "--promote", "--metrics", str(metrics), "-p", str(files["params"])]
    args += ["--train-out", str(files["train"]), "--models", str(files["generator"].parent)]
    return CliRunner().invoke(app, args)


@pytest.fixture
def promoted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The run references ``runs.promote`` was asked to promote (it promotes nothing)."""
    from ganops.tracking import runs

    calls: list[dict[str, str]] = []
    monkeypatch.setattr(runs, "promote", lambda ref, name: calls.append(ref) or "7")
    return calls


def test_promote_refuses_metrics_of_the_previous_generator(
    tmp_path: Path, promoted: list[dict[str, str]]
) -> None:
    """`ganops train` then `gate --promote` without an evaluate: metrics.json is the previous
    model's, which must not promote the new, unscored one."""
    files = _project(tmp_path)
    metrics = _metrics(
        tmp_path / "metrics.json", generator_sha256="0" * 64, run_id="run-1", fid=10.0
    )
    result = _gate_promote(tmp_path, files, metrics)
    assert result.exit_code == 2 and not promoted
    assert "holds the metrics of another generator" in result.stderr
    assert "run `ganops evaluate` (or `dvc repro evaluate`)" in result.stderr
    assert result.stderr.count("\n") == 1 and "| fid_1k |" not in result.stdout
    # A metrics file from before ganops recorded the generator cannot promote either.
    metrics.write_text('{"fid_1k": 10.0, "num_samples": 1000}')
    result = _gate_promote(tmp_path, files, metrics)
    assert result.exit_code == 2 and "does not record which generator" in result.stderr
    assert not promoted


def test_promote_refuses_metrics_scored_for_another_run(
    tmp_path: Path, promoted: list[dict[str, str]]
) -> None:
    """An edited run reference (or metrics of an untracked evaluation) names another run."""
    files = _project(tmp_path, run_id="edited-run")
    sha = file_sha256(files["generator"])
    for run_id in ("run-1", None):
        metrics = _metrics(tmp_path / "m.json", generator_sha256=sha, run_id=run_id, fid=10.0)
        result = _gate_promote(tmp_path, files, metrics)
        assert result.exit_code == 2 and not promoted
        assert f"was scored for MLflow run {run_id}, but" in result.stderr
        assert "names run edited-run" in result.stderr


def test_promote_goes_ahead_on_the_generator_s_own_metrics(
    tmp_path: Path, promoted: list[dict[str, str]]
) -> None:
    files = _project(tmp_path)
    sha = file_sha256(files["generator"])
    metrics = _metrics(tmp_path / "m.json", generator_sha256=sha, run_id="run-1", fid=10.0)
    result = _gate_promote(tmp_path, files, metrics)
    assert result.exit_code == 0, result.output
    assert "| fid_1k | 10.000 | <= 50 | pass |" in result.stdout
    assert "promoted ganops-generator version 7 to @champion" in result.stdout
    assert [ref["run_id"] for ref in promoted] == ["run-1"]
    metrics = _metrics(tmp_path / "m.json", generator_sha256=sha, run_id="run-1", fid=60.0)
    assert _gate_promote(tmp_path, files, metrics).exit_code == 1 and len(promoted) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("fid_1k", -1.0),
        ("fid_1k", True),  # isinstance(True, int): once read as 1.0, which passes max_fid
        ("fid_1k", "10"),
        ("fid_1k", {"value": 10}),
        ("fid_1k", [10]),
        ("fid_1k", math.nan),
        ("fid_1k", math.inf),
        ("fid_1k", 10**400),  # a valid JSON integer no float can hold
        ("kid_1k", -2.0),
        ("kid_std_1k", -0.1),
        ("precision_1k", 1.5),
        ("recall_1k", -0.01),
        ("class_confidence", 2.0),
        ("classes_covered", 9.5),
        ("classes_covered", -1),
        ("num_samples", -1000),
        ("class_kl", -0.5),
        ("fcd_1k", -3.0),
        ("some_new_metric", math.nan),
    ],
)
def test_a_metric_of_the_wrong_type_or_out_of_range_is_one_error(name: str, value: Any) -> None:
    text = json.dumps({"fid_1k": 10.0, name: value}, allow_nan=True)
    with pytest.raises(DataError, match=rf"^m\.json: {name} is .*(not a|outside)") as error:
        read_metrics(text, "m.json")
    assert error.value.exit_code == 2 and "\n" not in str(error.value)


def test_what_a_metrics_file_can_really_hold_still_reads() -> None:
    text = json.dumps(
        {
            "fid_1k": 0.0,
            "kid_1k": -0.0004,  # the unbiased estimate, below 0 by its noise
            "precision_1k": 1.0,
            "classes_covered": 10.0,
            "num_samples": 1000,
            "note": "a user's comment",
            "flag": True,
            "scored": {"dataset": "mnist", "extra": None},
        }
    )
    metrics = parse_metrics(text, "m.json")
    assert metrics.metrics == {
        "fid_1k": 0.0,
        "kid_1k": -0.0004,
        "precision_1k": 1.0,
        "classes_covered": 10.0,
        "num_samples": 1000.0,
    }
    assert metrics.scored_value("dataset") == "mnist" and metrics.scored_value("run_id") is None
    with pytest.raises(DataError, match="scored is 3, not an object of strings"):
        parse_metrics('{"fid_1k": 1, "scored": 3}', "m.json")
    with pytest.raises(DataError, match="nested too deeply"):
        parse_metrics("[" * 100_000 + "]" * 100_000, "m.json")


def test_a_gate_on_a_negative_fid_is_bad_input_not_a_pass(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"fid_1k": -5.0}')
    with pytest.raises(DataError, match=r"fid_1k is -5\.0, outside what it can be"):
        gate.run(GateConfig(max_fid=50.0), path, baseline=None, repo=tmp_path)


class _Failing(http.server.BaseHTTPRequestHandler):
    """A tracking server that answers every request with HTTP 500."""

    def _fail(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_DELETE = _fail

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def quick_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's HTTP retries, and the probe, kept to what a test can wait for."""
    from ganops.tracking import store

    monkeypatch.setattr(store, "PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")


def test_promote_on_a_server_that_never_answers_is_exit_2_before_any_verdict(
    tmp_path: Path, silent_server: str, quick_mlflow: None
) -> None:
    files = _project(tmp_path, uri=silent_server)
    sha = file_sha256(files["generator"])
    metrics = _metrics(tmp_path / "m.json", generator_sha256=sha, run_id="run-1", fid=10.0)
    start = time.monotonic()
    result = _gate_promote(tmp_path, files, metrics)
    assert time.monotonic() - start < 10
    assert result.exit_code == 2, result.output
    assert "| fid_1k |" not in result.stdout  # no 'pass' printed before the hang
    assert result.stderr.startswith(f"error: --promote: MLflow tracking server {silent_server}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_promote_on_a_server_failing_with_500_is_one_line_and_exit_2(
    tmp_path: Path, failing_server: str, quick_mlflow: None
) -> None:
    files = _project(tmp_path, uri=failing_server)
    sha = file_sha256(files["generator"])
    metrics = _metrics(tmp_path / "m.json", generator_sha256=sha, run_id="run-1", fid=10.0)
    start = time.monotonic()
    result = _gate_promote(tmp_path, files, metrics)
    assert time.monotonic() - start < 20
    assert result.exit_code == 2, result.output  # an error, never the gate's 'fail'
    assert result.stderr.startswith("error: the gate passed, but could not read the versions")
    assert "@champion is unchanged" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
