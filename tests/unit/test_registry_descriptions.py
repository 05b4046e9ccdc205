"""MLflow runs and registry versions that describe themselves: a new training run lists its
training data among its inputs, a registered generator version carries a description and
tags, and an evaluation's FID is tagged on the run's versions. One SQLite store for the
module (creating one takes seconds)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ganops.config import params_from_dict
from ganops.models import build_models


def _params(name: str, **data: Any) -> Any:
    model = {"arch": "mlp", "g_hidden": [8], "d_hidden": [8], "latent_dim": 4}
    return params_from_dict(
        {
            "data": {"dataset": "fashion-mnist", **data},
            "model": model,
            "train": {"epochs": 3, "loss": "hinge"},
            "tracking": {"registered_model": name, "experiment": "described"},
        }
    )


@pytest.mark.parametrize(
    ("source", "source_type"),
    [("mirrors", "code"), ("https://example.org/mnist/", "http"), ("/data/mnist", "local")],
)
def test_a_new_training_run_lists_its_training_data_as_an_input(
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    source: str,
    source_type: str,
) -> None:
    import mlflow

    from ganops.tracking.runs import training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    params = _params("unused", source=source, train_subset=500)
    # One sha256 per source: MLflow keeps one dataset per (experiment, name, digest), with
    # the source it was first logged with.
    sha = hashlib.sha256(source.encode()).hexdigest()
    tags = {"dataset": "fashion-mnist", "dataset_sha256": sha}
    with training_run(params, tmp_path, tags=tags) as ref:
        pass
    assert "warning" not in capfd.readouterr().err
    inputs = mlflow.MlflowClient().get_run(ref["run_id"]).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == "fashion-mnist"
    assert dataset.digest == sha[:24] + ":500"  # the raw files' sha256 and the subset kept
    assert dataset.source_type == source_type
    assert source in dataset.source
    assert {tag.key: tag.value for tag in inputs[0].tags}["mlflow.data.context"] == "training"


def test_a_run_given_no_data_identity_still_lists_its_data(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the dataset_sha256 tag the digest comes from the data params: another subset,
    another digest."""
    import mlflow

    from ganops.tracking.runs import training_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    digests = []
    for subset in (0, 100):
        with training_run(_params("unused", train_subset=subset), tmp_path, tags={}) as ref:
            pass
        inputs = mlflow.MlflowClient().get_run(ref["run_id"]).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["fashion-mnist"]
        digests.append(inputs[0].dataset.digest)
    assert digests[0].endswith(":all") and digests[1].endswith(":100")
    assert len(set(digests)) == 2


def test_a_failed_input_log_only_warns(
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import mlflow

    from ganops.tracking.runs import training_run

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("store refused the input")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setattr(mlflow, "log_input", refuse)
    with training_run(_params("unused"), tmp_path, tags={}) as ref:
        pass
    assert mlflow.MlflowClient().get_run(ref["run_id"]).info.status == "FINISHED"
    err = capfd.readouterr().err
    assert "warning: tracking: could not log the training data" in err
    assert "store refused the input" in err


def test_a_registered_version_says_what_it_is(
    store: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from ganops.tracking.runs import CANDIDATE, log_training_outputs

    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lamb")
    params = _params("described-gen")
    generator = build_models(params.model)[0].eval()
    with mlflow.start_run(run_name="fmnist-mlp", tags={"git_commit": "0123456789abcdef"}):
        log_training_outputs([], 1.0, generator=lambda: generator, params=params)
    assert "warning" not in capfd.readouterr().err
    version = mlflow.MlflowClient().get_model_version_by_alias("described-gen", CANDIDATE)
    assert version.description == (
        "fashion-mnist, mlp, loss hinge, 3 epochs; run fmnist-mlp, commit 0123456789ab"
    )
    assert version.tags == {
        "dataset": "fashion-mnist",
        "arch": "mlp",
        "git_commit": "0123456789abcdef",
        "experiment": "described",
        "dvc_exp_name": "brisk-lamb",
    }


def test_a_registered_version_carries_its_sample_grid(
    store: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The run's samples.png travels in the version's own files: downloading the version
    (``models:/NAME/1``) brings the grid, byte for byte, and the description says where."""
    import mlflow

    from ganops.images import save_png
    from ganops.tracking.runs import log_training_outputs

    grid = tmp_path / "samples.png"
    save_png(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28), grid)
    params = _params("pictured-gen")
    generator = build_models(params.model)[0].eval()
    with mlflow.start_run():
        log_training_outputs([grid], 1.0, generator=lambda: generator, params=params)
    assert "warning" not in capfd.readouterr().err
    version = mlflow.MlflowClient().get_model_version("pictured-gen", "1")
    assert version.description.endswith("; sample grid: extra_files/samples.png in its files")
    files = Path(
        mlflow.artifacts.download_artifacts(
            "models:/pictured-gen/1", dst_path=str(tmp_path / "download")
        )
    )
    assert (files / "extra_files" / "samples.png").read_bytes() == grid.read_bytes()


def test_evaluation_tags_the_runs_versions_with_fid_only(store: str) -> None:
    import mlflow

    from ganops.tracking.runs import log_generator, log_to_run

    params = _params("scored-gen")
    generator = build_models(params.model)[0].eval()
    with mlflow.start_run() as run:
        log_generator(generator, params.model, registered_name="scored-gen")
    ref = {"run_id": run.info.run_id, "uri": store}
    log_to_run(ref, {"fid_10k": 12.5, "kid_10k": 0.01, "precision_10k": 0.7})
    version = mlflow.MlflowClient().get_model_version("scored-gen", "1")
    assert version.tags == {"fid_10k": "12.5"}


def test_a_failed_version_tag_only_warns_and_keeps_the_metrics(
    store: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from ganops.tracking.runs import log_to_run

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("registry is read-only")

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("Default")
    assert experiment is not None
    run_id = client.create_run(experiment.experiment_id).info.run_id
    monkeypatch.setattr(mlflow.MlflowClient, "search_model_versions", refuse)
    log_to_run({"run_id": run_id, "uri": store}, {"fid_1k": 40.0})
    assert client.get_run(run_id).data.metrics == {"fid_1k": 40.0}
    err = capfd.readouterr().err
    assert f"could not log FID on the model versions of run {run_id}" in err
    assert "registry is read-only" in err


def test_a_version_that_cannot_be_described_stays_registered(
    store: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A failed description is a warning of its own, not a model that failed to log: the
    version keeps @candidate and the run no model error."""
    import mlflow

    from ganops.tracking.runs import CANDIDATE, MODEL_ERROR_TAG, log_training_outputs

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("registry is read-only")

    monkeypatch.setattr(mlflow.MlflowClient, "update_model_version", refuse)
    params = _params("undescribed-gen")
    generator = build_models(params.model)[0].eval()
    with mlflow.start_run() as run:
        log_training_outputs([], 1.0, generator=lambda: generator, params=params)
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("undescribed-gen", CANDIDATE).run_id == (
        run.info.run_id
    )
    assert MODEL_ERROR_TAG not in client.get_run(run.info.run_id).data.tags
    err = capfd.readouterr().err
    assert "could not log the description of undescribed-gen version 1" in err
    assert "could not log the generator" not in err
