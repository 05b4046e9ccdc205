from __future__ import annotations

from pathlib import Path

import pytest

from ganops.config import Params, TrackingConfig, params_from_dict
from ganops.errors import TrackingError
from ganops.tracking.runs import describe_changes
from ganops.tracking.store import repo_root, tracking_uri


@pytest.fixture(autouse=True)
def restore_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri (here and inside training_run) sets a process-wide value that
    outranks $MLFLOW_TRACKING_URI: put it back after each test, or later tests in the same
    process read another store."""
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)


def test_description_lists_exactly_the_changed_keys() -> None:
    assert describe_changes(Params()) == "Changed from defaults: nothing"
    params = params_from_dict({"train": {"loss": "hinge", "epochs": 3}})
    assert describe_changes(params) == "Changed from defaults: train.epochs=3, train.loss=hinge"


def test_runs_from_dvc_temp_workspaces_land_in_the_root_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    workspace = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    workspace.mkdir(parents=True)
    assert repo_root(workspace) == tmp_path.resolve()
    assert tracking_uri(TrackingConfig(), workspace) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(TrackingConfig(), workspace) == "http://127.0.0.1:5000"
    relative = TrackingConfig(uri="sqlite:///x.db")  # from the root, not the temp copy
    assert tracking_uri(relative, workspace) == f"sqlite:///{tmp_path.resolve()}/x.db"


def test_an_unusable_sqlite_store_is_one_clear_error_at_once(tmp_path: Path) -> None:
    from ganops.tracking.store import check_reachable

    with pytest.raises(TrackingError, match="is a directory"):
        check_reachable(f"sqlite:///{tmp_path}")
    with pytest.raises(TrackingError, match="does not exist"):
        check_reachable(f"sqlite:///{tmp_path}/missing/mlflow.db")
    check_reachable(f"sqlite:///{tmp_path}/mlflow.db")  # a new file in a writable folder


def test_a_read_only_sqlite_store_is_refused(tmp_path: Path) -> None:
    import os

    from ganops.tracking.store import check_reachable

    if os.geteuid() == 0:
        pytest.skip("root writes read-only files, so SQLite would too")
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"")
    store.chmod(0o444)
    with pytest.raises(TrackingError, match="read-only"):
        check_reachable(f"sqlite:///{store}")


@pytest.mark.slow
def test_runs_whose_process_is_gone_are_ended_as_killed(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    import mlflow

    from ganops.tracking.runs import HOST_TAG, PID_TAG, end_orphaned_runs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("orphans")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = socket.gethostname()

    def running(pid: str, owner_host: str = host) -> str:
        return client.create_run(experiment, tags={HOST_TAG: owner_host, PID_TAG: pid}).info.run_id

    gone_pid = gone.stdout.strip()
    dead, alive = running(gone_pid), running(str(os.getpid()))
    resumed = running(gone_pid)  # gone too, but about to be resumed
    elsewhere = running(gone_pid, owner_host="another-host")  # not ours to judge
    assert end_orphaned_runs(experiment, keep=resumed) == [dead]
    status = {run: client.get_run(run).info.status for run in (dead, alive, resumed, elsewhere)}
    assert status == {dead: "KILLED", alive: "RUNNING", resumed: "RUNNING", elsewhere: "RUNNING"}


def test_opening_a_run_prints_no_mlflow_info_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from ganops.tracking.runs import training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/fresh.db")  # new tables
    with training_run(Params(), tmp_path, tags={}) as run:
        assert run["run_id"]
    assert " INFO " not in capfd.readouterr().err


def test_a_resumed_run_tags_this_sessions_setup_and_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A run interrupted on the CPU and resumed on another device with another
    train.keep: its tags say the session now, each changed param is tagged
    resumed.<key> (params are write-once), and a warning names the change."""
    import dataclasses

    import mlflow

    from ganops.tracking.runs import training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    start = Params()
    with (
        pytest.raises(KeyboardInterrupt),
        training_run(start, tmp_path, tags={"device": "cpu", "processes": "1"}) as first,
    ):
        raise KeyboardInterrupt
    resumed = dataclasses.replace(
        start,
        train=dataclasses.replace(start.train, device="cuda", keep="best"),
    )
    capfd.readouterr()
    with training_run(
        resumed, tmp_path, tags={"device": "cuda:0", "processes": "2"}, run_id=first["run_id"]
    ) as again:
        assert again["run_id"] == first["run_id"]
    run = mlflow.MlflowClient().get_run(first["run_id"])
    assert (run.data.tags["device"], run.data.tags["processes"]) == ("cuda:0", "2")
    assert run.data.params["train.keep"] == "last"  # the start's, write-once
    changed = {k: v for k, v in run.data.tags.items() if k.startswith("resumed.")}
    assert changed == {"resumed.train.device": "cuda", "resumed.train.keep": "best"}
    assert "train.keep=best (was last)" in capfd.readouterr().err
    # Resumed once more with the start's params: the earlier resume's tags go.
    with training_run(start, tmp_path, tags={"device": "cpu"}, run_id=first["run_id"]):
        pass
    tags = mlflow.MlflowClient().get_run(first["run_id"]).data.tags
    assert tags["device"] == "cpu" and not [k for k in tags if k.startswith("resumed.")]


def test_a_run_deleted_in_mlflow_is_not_resumed_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A deleted run cannot be reopened: the resumed training opens a new run, with a
    warning, instead of failing with a hint about tracking.uri."""
    import mlflow

    from ganops.tracking.runs import training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with training_run(Params(), tmp_path, tags={}) as first:
        pass
    mlflow.MlflowClient().delete_run(first["run_id"])
    capfd.readouterr()
    with training_run(Params(), tmp_path, tags={}, run_id=first["run_id"]) as again:
        assert again["run_id"] != first["run_id"]
    assert (
        f"run {first['run_id']} of the interrupted training was deleted" in capfd.readouterr().err
    )


def test_steps_logged_after_the_last_checkpoint_are_named_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A session killed at step 20 after checkpointing step 10 left points 15 and 20 in its
    run; the resumed session trains them again, and MLflow cannot delete the old ones, so a
    tag and a warning name the steps. A resume with nothing beyond its checkpoint says
    nothing."""
    import mlflow

    from ganops.tracking.runs import REPLAYED_TAG, training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with training_run(Params(), tmp_path, tags={}) as first:
        for step in (5, 10, 15, 20):
            mlflow.log_metric("loss_d", 1.0, step=step)
    run_id = first["run_id"]
    capfd.readouterr()
    with training_run(Params(), tmp_path, tags={}, run_id=run_id, resumed_step=20):
        pass
    assert REPLAYED_TAG not in mlflow.MlflowClient().get_run(run_id).data.tags
    assert "killed" not in capfd.readouterr().err
    with training_run(Params(), tmp_path, tags={}, run_id=run_id, resumed_step=10):
        pass
    assert mlflow.MlflowClient().get_run(run_id).data.tags[REPLAYED_TAG] == "11-20"
    assert "points of steps 11-20" in capfd.readouterr().err
    with training_run(Params(), tmp_path, tags={}, run_id=run_id, resumed_step=15):
        pass  # killed again after a checkpoint at 15: both spans stay named
    assert mlflow.MlflowClient().get_run(run_id).data.tags[REPLAYED_TAG] == "11-20,16-20"


def test_a_resumed_run_goes_on_sampling_system_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU and memory curves continue in the resumed session, from the step after the
    first session's last sample, instead of stopping at the interruption."""
    import time

    import mlflow

    from ganops.tracking.runs import training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    client = mlflow.MlflowClient()
    key = "system/cpu_utilization_percentage"

    def steps_after(run_id: str, after: int) -> list[int]:
        """The sampled steps beyond ``after``, polled for up to 20 s."""
        for _ in range(200):
            steps = [m.step for m in client.get_metric_history(run_id, key) if m.step > after]
            if steps:
                return steps
            time.sleep(0.1)
        return []

    with training_run(Params(), tmp_path, tags={}) as first:
        assert steps_after(first["run_id"], -1)
    last = max(m.step for m in client.get_metric_history(first["run_id"], key))
    with training_run(Params(), tmp_path, tags={}, run_id=first["run_id"]):
        assert steps_after(first["run_id"], last)
    steps = [m.step for m in client.get_metric_history(first["run_id"], key)]
    assert len(steps) == len(set(steps))  # continued, not restarted at 0


def test_ui_command_shows_the_store_with_one_quiet_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ganops.tracking.ui import UI_QUIET_WARNINGS, ui_command

    monkeypatch.setenv("PYTHONWARNINGS", "error::ResourceWarning")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    argv, env = ui_command(uri, host="127.0.0.1", port=5123)
    assert argv[1:4] == ["-m", "mlflow", "ui"]
    assert argv[argv.index("--backend-store-uri") + 1] == uri
    assert argv[argv.index("--port") + 1] == "5123" and argv[argv.index("--workers") + 1] == "1"
    # The user's own warning filters are kept; MLflow's import-time one is added.
    assert env["PYTHONWARNINGS"] == f"error::ResourceWarning,{UI_QUIET_WARNINGS}"
    with pytest.raises(TrackingError, match="does not exist"):
        ui_command(f"sqlite:///{tmp_path}/missing/mlflow.db", host="127.0.0.1", port=5123)


def test_ui_on_a_port_in_use_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's server would print its bind error among its start-up lines and exit 0."""
    import socket

    from typer.testing import CliRunner

    from ganops.cli import app

    (tmp_path / "params.yaml").write_text(f"tracking:\n  uri: sqlite:///{tmp_path}/mlflow.db\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.output
    assert f"--port {port + 1}" in result.output and "MLflow UI on" not in result.output


def test_ui_for_a_tracking_server_prints_its_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ganops.cli import app

    (tmp_path / "params.yaml").write_text("tracking:\n  uri: http://mlflow.example:5000\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 0
    assert "tracking server http://mlflow.example:5000" in result.output


@pytest.mark.slow
def test_the_logged_generator_names_its_requirements_and_loads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No requirement inference (a child process that reloads the model: seconds per run);
    the requirements MLflow writes still pin torch and mlflow, and the model generates."""
    import mlflow
    import mlflow.models
    import torch

    from ganops.config import ModelConfig
    from ganops.models import build_models
    from ganops.tracking.runs import log_generator

    def no_inference(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("requirements were inferred")

    monkeypatch.setattr(mlflow.models, "infer_pip_requirements", no_inference)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    cfg = ModelConfig(arch="mlp", g_hidden=(8,), d_hidden=(8,), latent_dim=4, g_batchnorm=True)
    generator = build_models(cfg)[0]  # in training mode, as the training loop leaves it
    with mlflow.start_run() as run:
        log_generator(generator, cfg, registered_name="")
    assert generator.training  # the caller's module is left as it was
    generator.eval()  # the logged copy was exported in eval mode: BatchNorm's running stats
    uri = f"runs:/{run.info.run_id}/generator"
    requirements = Path(mlflow.artifacts.download_artifacts(f"{uri}/requirements.txt"))
    pinned = {line.split("==")[0] for line in requirements.read_text().split()}
    assert {"torch", "mlflow", "cloudpickle", "numpy"} <= pinned
    z = torch.randn(3, 4)
    torch.testing.assert_close(mlflow.pytorch.load_model(uri)(z), generator(z))
