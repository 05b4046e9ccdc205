"""Past one machine: the pipeline against a shared `mlflow server` over HTTP, a DVC remote
that a fresh clone pulls from, and two queued experiments run in parallel.

The server is real (`mlflow server` on 127.0.0.1, SQLite store, served artifacts); every
check on it goes through its REST API, as a teammate's browser or client would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scripts.mlflow_screenshots import api

from tests.conftest import ROOT, tiny_params, write_params
from tests.e2e.test_pipeline import _env, sh

pytestmark = pytest.mark.slow


def _search_runs(server: str, experiment_id: str) -> list[dict[str, Any]]:
    body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode()
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/runs/search",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()).get("runs", [])  # type: ignore[no-any-return]


def _runs(server: str) -> list[dict[str, Any]]:
    experiment = api(server, "experiments/get-by-name", experiment_name="ganops")
    return _search_runs(server, experiment["experiment"]["experiment_id"])


def _fields(run: dict[str, Any], kind: str) -> dict[str, str]:
    return {item["key"]: item["value"] for item in run["data"].get(kind, [])}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path, mlflow_server: str) -> Path:
    """A git + DVC repo of this pipeline, tracking to the server, after one committed repro."""
    root = tmp_path_factory.mktemp("team") / "project"
    root.mkdir()
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", root)
    shutil.copy(ROOT / ".gitignore", root)
    write_params(
        root / "params.yaml", tiny_params(root, mnist_dir, tracking={"uri": mlflow_server})
    )
    sh("git", "init", "-q", cwd=root)
    sh("git", "config", "user.name", "t", cwd=root)
    sh("git", "config", "user.email", "t@t", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("dvc", "repro", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "pipeline run", cwd=root)
    return root


def test_a_run_over_http_lands_on_the_server_with_metrics_and_images(
    project: Path, mlflow_server: str
) -> None:
    run_id = json.loads((project / "outputs/train/mlflow_run.json").read_text())["run_id"]
    assert not (project / "mlflow.db").exists()  # nothing went to the local default store
    run = api(mlflow_server, "runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert _fields(run, "params")["train.batch_size"] == "64"
    metrics = _fields(run, "metrics")
    assert {"loss_d", "d_real", "d_fake", "fid_64", "kid_64", "class_kl"} <= set(metrics)
    history = api(mlflow_server, "metrics/get-history", run_id=run_id, metric_key="loss_g")
    assert sorted(m["step"] for m in history["metrics"]) == [2, 4, 6, 8]

    def artifacts(path: str = "") -> set[str]:
        listing = api(mlflow_server, "artifacts/list", run_id=run_id, path=path)
        return {f["path"] for f in listing.get("files", [])}

    assert {"samples.png", "losses.csv", "images"} <= artifacts()
    grids = [p for p in artifacts("images") if p.endswith(".png")]
    assert grids, artifacts("images")
    # The artifact bytes are served by the server (--serve-artifacts), not read from a disk.
    url = f"{mlflow_server}/get-artifact?" + urllib.parse.urlencode(
        {"path": "samples.png", "run_uuid": run_id}
    )
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_fresh_clone_pulls_data_and_models_from_the_remote_and_has_nothing_to_do(
    project: Path,
) -> None:
    remote = project.parent / "dvc-remote"
    sh("dvc", "remote", "add", "-d", "shared", str(remote), cwd=project)
    sh("git", "commit", "-qam", "DVC remote", cwd=project)
    sh("dvc", "push", cwd=project)

    clone = project.parent / "clone"
    sh("git", "clone", "-q", str(project), str(clone), cwd=project.parent)
    assert not (clone / "models").exists()
    sh("dvc", "pull", cwd=clone)
    for path in ("data/prepared/train.pt", "models/generator.pt", "outputs/classifier"):
        assert (clone / path).exists(), path
    assert (clone / "models/generator.pt").read_bytes() == (
        project / "models/generator.pt"
    ).read_bytes()
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=clone)
    output = sh("dvc", "repro", cwd=clone)
    assert "Running stage" not in output, output


def test_two_queued_experiments_run_in_parallel_into_the_one_server(
    project: Path, mlflow_server: str
) -> None:
    for batch in (16, 32):
        sh("dvc", "exp", "run", "--queue", "-n", f"q{batch}", "-S", f"train.batch_size={batch}",
           cwd=project)  # fmt: skip
    # Not through sh(): `dvc queue start` leaves a helper process holding its stdout and
    # stderr, so reading them as pipes can wait until the helper exits (seen hanging for
    # minutes after both experiments had succeeded). A file does not wait for anyone.
    with (project.parent / "queue-start.log").open("w") as log:
        started = subprocess.run(
            ["dvc", "queue", "start", "-j", "2"],
            cwd=project,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    assert started.returncode == 0, (project.parent / "queue-start.log").read_text()
    deadline = time.monotonic() + 900
    while True:
        status = sh("dvc", "queue", "status", cwd=project)
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") == 2, status
    logs = "".join(sh("dvc", "queue", "logs", f"q{b}", cwd=project) for b in (16, 32))
    assert "database is locked" not in logs

    runs = {_fields(r, "tags").get("dvc_exp_name"): r for r in _runs(mlflow_server)}
    for batch in (16, 32):
        run = runs[f"q{batch}"]
        assert run["info"]["status"] == "FINISHED"
        assert _fields(run, "params")["train.batch_size"] == str(batch)
        assert "fid_64" in _fields(run, "metrics")
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=project))
    assert json.dumps(shown).count('"q16"') and json.dumps(shown).count('"q32"')
