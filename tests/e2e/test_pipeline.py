"""`dvc repro` of the real pipeline on a small real-MNIST subset, in a copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ganops.params_file import load_params
from tests.conftest import ROOT, tiny_params, write_params

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"  # so a seconds-long run gets samples
    return env


def sh(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """A fresh git + DVC repo holding this project's pipeline, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", root)
    shutil.copy(ROOT / ".gitignore", root)
    write_params(root / "params.yaml", tiny_params(root, mnist_dir, tracking={"uri": ""}))
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("dvc", "repro", cwd=root)
    return root


def test_outputs_of_every_stage(project: Path) -> None:
    train = torch.load(project / "data/prepared/train.pt", weights_only=True)
    assert train["images"].shape == (512, 1, 28, 28)
    assert train["images"].min() == -1.0 and train["images"].max() == 1.0
    checkpoint = torch.load(project / "models/checkpoint.pt", weights_only=True)
    assert (
        checkpoint["loop"]["step"] == 512 // 64
        and checkpoint["complete"]
        and set(checkpoint) >= {"generator", "opt_d"}
    )
    metrics = json.loads((project / "outputs/evaluate/metrics.json").read_text())
    assert metrics["num_samples"] == 64
    assert 0 < metrics["fid_64"] < 1000 and metrics["fcd_64"] > 0
    assert 0 <= metrics["precision_64"] <= 1 and 0 <= metrics["recall_64"] <= 1
    assert metrics["kid_64"] > 0 and 0 <= metrics["classes_covered"] <= 10
    assert metrics["class_kl"] >= 0 and 0.1 <= metrics["class_confidence"] <= 1
    losses = (project / "outputs/train/losses.csv").read_text().splitlines()
    assert losses[0] == "step,epoch,loss_d,loss_g,d_real,d_fake" and len(losses) == 1 + 4
    quality = (project / "outputs/train/quality.csv").read_text().splitlines()
    assert quality[0] == "step,epoch,fcd,classes_covered,class_kl,class_confidence"
    assert len(quality) == 1 + 1 and quality[1].startswith("8,1,")  # one epoch, scored at its end
    classes = (project / "outputs/evaluate/classes.csv").read_text().splitlines()
    assert classes[0] == "class,generated,real" and len(classes) == 1 + 10
    accuracy = json.loads((project / "outputs/classifier/metrics.json").read_text())
    assert 0.5 < accuracy["test_accuracy"] <= 1  # 512 images, one epoch: well above chance


def test_floor_scores_real_images_beside_the_model_without_touching_its_metrics(
    project: Path,
) -> None:
    metrics_file = project / "outputs/evaluate/metrics.json"
    before = metrics_file.read_bytes()
    classifier = "outputs/classifier/classifier.pt"
    out = sh("ganops", "evaluate", "--floor", "--classifier", classifier, cwd=project)
    assert "real training vs 64 real test images" in out
    assert "kid_std_64         0 (one subset: the whole set)" in out  # not a measured 0
    floor = json.loads((project / "outputs/evaluate/floor.json").read_text())
    model = json.loads(before)
    assert metrics_file.read_bytes() == before  # the pipeline's metrics are not the floor's
    assert set(floor) == set(model)
    # Real digits against real digits: far better than a 1-epoch model on every lens.
    assert floor["fid_64"] < model["fid_64"] and floor["fcd_64"] < model["fcd_64"]
    assert floor["classes_covered"] >= model["classes_covered"] and floor["classes_covered"] >= 8


def test_one_mlflow_run_holds_params_curves_images_model_and_fid(project: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganops")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["train.lr_g"] == "0.0002"
    assert run.data.params["data.train_subset"] == "512"
    assert run.data.tags["dataset"] == "mnist" and len(run.data.tags["dataset_sha256"]) == 64
    assert "git_commit" in run.data.tags  # and where MLflow's UI shows it:
    assert run.data.tags["mlflow.source.git.commit"] == run.data.tags["git_commit"]
    history = client.get_metric_history(run.info.run_id, "loss_d")
    assert [m.step for m in history] == [2, 4, 6, 8]
    assert {"d_fake", "fid_64", "kid_64", "precision_64", "class_kl"} <= set(run.data.metrics)
    # What the evaluation that wrote fid_64 used (a later one with other evaluate.* retags).
    assert run.data.tags["evaluated_with.evaluate.num_samples"] == "64"
    assert run.data.tags["evaluated_with.device"] == "cpu"
    seed = load_params(project / "params.yaml").evaluate.seed  # a default: not in the file
    assert run.data.tags["evaluated_with.evaluate.seed"] == str(seed)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/fcd")] == [8]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"losses.csv", "quality.csv", "samples.png", "images"} <= artifacts
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("samples" in path for path in images)
    assert (project / "mlartifacts").is_dir()  # artifacts pinned to the repo root


def test_second_repro_does_nothing_and_epochs_rerun_only_train_and_evaluate(
    project: Path,
) -> None:
    assert "Data and pipelines are up to date" in sh("dvc", "repro", cwd=project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 2
    write_params(project / "params.yaml", params)
    log = sh("dvc", "repro", cwd=project)
    assert "Running stage 'train'" in log and "Running stage 'evaluate'" in log
    for stage in ("download", "prepare", "classifier"):
        assert f"Running stage '{stage}'" not in log
    checkpoint = torch.load(project / "models/checkpoint.pt", weights_only=True)
    assert checkpoint["loop"]["step"] == 2 * (512 // 64)


def test_registered_generator_loads_back_and_a_passing_gate_promotes_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pytorch
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # undone after the test, unlike set_tracking_uri
    generator = mlflow.pytorch.load_model("models:/ganops-generator@candidate")
    images = generator(torch.randn(5, 100))
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1.0

    params = yaml.safe_load((project / "params.yaml").read_text())
    write_params(project / "params.yaml", {**params, "gate": {"max_fid": 1e6}})
    assert "promoted ganops-generator version" in sh("ganops", "gate", "--promote", cwd=project)
    run_id = json.loads((project / "outputs/train/mlflow_run.json").read_text())["run_id"]
    champion = MlflowClient(tracking_uri=uri).get_model_version_by_alias(
        "ganops-generator", "champion"
    )
    assert champion.run_id == run_id
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.tags["mlflow.note.content"].startswith("Changed from defaults: data.source=")
    assert any(key.startswith("system/") for key in run.data.metrics)


def test_a_typo_in_params_loses_no_curves_dvc_checkout_restores_them(project: Path) -> None:
    """DVC removes a stage's outputs before running it, so a bad value costs the last run's
    files; all of them are in the DVC cache, so `dvc checkout` with the params restored brings
    them back without retraining."""
    params = project / "params.yaml"
    good = params.read_text(encoding="utf-8")
    before = {
        name: (project / "outputs/train" / name).read_bytes()
        for name in ("losses.csv", "quality.csv")
    }
    typo = yaml.safe_load(good)
    typo["train"]["epochs"] = -1
    params.write_text(yaml.safe_dump(typo, sort_keys=False), encoding="utf-8")
    failed = subprocess.run(
        ["dvc", "repro"], cwd=project, env=_env(), capture_output=True, text=True, timeout=900
    )
    assert failed.returncode != 0 and "train.epochs" in failed.stdout + failed.stderr
    params.write_text(good, encoding="utf-8")
    sh("dvc", "checkout", cwd=project)
    for name, content in before.items():
        assert (project / "outputs/train" / name).read_bytes() == content
    assert "up to date" in sh("dvc", "status", cwd=project)


def test_two_experiments_at_once_never_leave_outputs_that_disagree_with_dvc_lock(
    project: Path,
) -> None:
    """Two `dvc exp run` in one workspace: DVC's lock refuses the second, naming the PID that
    holds it. DVC (3.x) lets the refused run's clean-up remove the first one's experiment
    info, so the first may fail too (README: use --temp or --queue to run in parallel).
    Whatever DVC does, the outputs on disk must still match dvc.lock."""
    sh("git", "add", "-A", cwd=project)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base", cwd=project)
    processes = []
    for batch in (16, 32):
        processes.append(
            subprocess.Popen(
                ["dvc", "exp", "run", "-n", f"batch-{batch}", "-S", f"train.batch_size={batch}"],
                cwd=project,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        time.sleep(3)  # the first is past its start when the second comes
    results = [(p.communicate(timeout=900)[0], p.returncode) for p in processes]
    refused = [out for out, code in results if code != 0 and "is busy, it is being blocked" in out]
    assert len(refused) == 1, results
    assert "Traceback" not in refused[0] and "(PID " in refused[0]
    for output, code in results:
        assert code == 0 or "Failed to reproduce" in output or output in refused, output
    assert "up to date" in sh("dvc", "status", cwd=project)  # outputs match dvc.lock
    json.loads((project / "outputs/evaluate/metrics.json").read_text())  # whole, not torn
    torch.load(project / "models/checkpoint.pt", weights_only=True)
