"""What a training leaves in MLflow: a conditional generator logged and registered as
@candidate, a failed model log that leaves no stale @candidate behind, and an evaluation
that adds metrics to a run without changing its status. One SQLite store for the module
(creating one takes seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ganops.config import ModelConfig, params_from_dict
from ganops.models import build_models


def _params(name: str) -> Any:
    model = {"arch": "mlp", "g_hidden": [8], "d_hidden": [8], "latent_dim": 4}
    return params_from_dict(
        {"model": {**model, "conditional": True}, "tracking": {"registered_model": name}}
    )


def test_a_conditional_generator_is_logged_registered_and_generates_per_class(
    store: str, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from ganops.tracking.runs import CANDIDATE, log_training_outputs

    params = _params("cond-gen")
    generator = build_models(params.model)[0].eval()
    with mlflow.start_run() as run:
        log_training_outputs([], 1.0, generator=lambda: generator, params=params)
    assert "warning" not in capfd.readouterr().err
    client = mlflow.MlflowClient()
    candidate = client.get_model_version_by_alias("cond-gen", CANDIDATE)
    assert candidate.run_id == run.info.run_id
    loaded = mlflow.pytorch.load_model(f"models:/cond-gen@{CANDIDATE}")
    z, labels = torch.randn(3, 4), torch.tensor([0, 5, 9])
    torch.testing.assert_close(loaded(z, labels), generator(z, labels))
    other = torch.tensor([1, 1, 1])  # the labels matter: another class, other images
    assert not torch.allclose(loaded(z, other), loaded(z, labels))


def test_a_model_that_cannot_be_logged_leaves_no_stale_candidate(
    store: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """@candidate of an earlier run must not pass for this run's; the warning is one line,
    and the run records why, for gate --promote to say."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ganops.tracking.runs import (
        CANDIDATE,
        MODEL_ERROR_TAG,
        log_generator,
        log_training_outputs,
        unregistered_reason,
    )

    params = _params("stale-gen")
    generator = build_models(params.model)[0]
    with mlflow.start_run() as earlier:
        log_generator(generator, params.model, registered_name="stale-gen")

    def refuse(*args: object, **kwargs: object) -> None:
        raise MlflowException("torch.export failed")

    monkeypatch.setattr(mlflow.pytorch, "log_model", refuse)
    capfd.readouterr()
    with mlflow.start_run() as run:
        log_training_outputs([], 1.0, generator=lambda: generator, params=params)
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "could not log the generator as an MLflow model (" in lines[0]
    assert "torch.export failed" in lines[0]
    assert f"removed stale-gen@{CANDIDATE}" in lines[0] and earlier.info.run_id in lines[0]
    client = mlflow.MlflowClient()
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("stale-gen", CANDIDATE)
    assert "torch.export failed" in client.get_run(run.info.run_id).data.tags[MODEL_ERROR_TAG]
    reason = unregistered_reason(run.info.run_id, store)
    assert reason.startswith("its training could not log the generator as a model (")
    assert "torch.export failed" in reason
    assert unregistered_reason(earlier.info.run_id, store) == ""


@pytest.mark.parametrize("status", ["RUNNING", "KILLED", "FINISHED"])
def test_evaluate_logs_into_a_run_without_changing_its_status(store: str, status: str) -> None:
    """A killed training's run (RUNNING after kill -9, KILLED once swept) stays so."""
    import mlflow

    from ganops.tracking.runs import log_to_run

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("Default")
    assert experiment is not None
    run_id = client.create_run(experiment.experiment_id).info.run_id
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    tags = {f"evaluated_with.k{i}": i for i in range(150)}  # over MLflow's 100 per batch
    log_to_run({"run_id": run_id, "uri": store}, {"fid": 12.5, "kid": 0.01}, tags=tags)
    run = client.get_run(run_id)
    assert run.info.status == status
    assert run.data.metrics == {"fid": 12.5, "kid": 0.01}
    assert run.data.tags["evaluated_with.k149"] == "149"
    assert mlflow.active_run() is None


def test_an_unconditional_generator_still_takes_noise_alone(store: str) -> None:
    import mlflow

    from ganops.tracking.runs import log_generator

    cfg = ModelConfig(arch="mlp", g_hidden=(8,), d_hidden=(8,), latent_dim=4)
    generator = build_models(cfg)[0].eval()
    with mlflow.start_run() as run:
        log_generator(generator, cfg, registered_name="")
    loaded = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/generator")
    z = torch.randn(5, 4)
    torch.testing.assert_close(loaded(z), generator(z))


def test_ganops_sample_draws_the_champion_by_its_model_uri(
    store: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`ganops sample --model models:/NAME@champion` (and /VERSION): the registered version's
    own generator file, conditional included; a name without that alias is one line."""
    import mlflow
    from typer.testing import CliRunner

    from ganops.cli import app
    from ganops.generator_file import save_generator
    from ganops.tracking.runs import CHAMPION, log_training_outputs

    params = _params("sampled-gen")
    generator = build_models(params.model)[0].eval()
    path = tmp_path / "models" / "generator.pt"
    save_generator(generator, params.model, path=path)
    with mlflow.start_run():
        log_training_outputs([path], 1.0, generator=lambda: generator, params=params)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("sampled-gen", "candidate").version
    client.set_registered_model_alias("sampled-gen", CHAMPION, version)
    (tmp_path / "params.yaml").write_text(f"tracking:\n  uri: {store}\n", encoding="utf-8")
    runner = CliRunner()
    for uri in (f"models:/sampled-gen@{CHAMPION}", f"models:/sampled-gen/{version}"):
        out = tmp_path / f"grid-{uri[-3:].strip('/@')}.png"
        result = runner.invoke(
            app, ["sample", "--model", uri, "--out", str(out), "--num", "10",
                  "--params", str(tmp_path / "params.yaml"), "--device", "cpu"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 0
    missing = runner.invoke(
        app, ["sample", "--model", "models:/sampled-gen@nobody", "--out", str(out),
              "--params", str(tmp_path / "params.yaml")],
    )  # fmt: skip
    assert missing.exit_code == 2 and "models:/sampled-gen@nobody: not found" in missing.stderr
