"""`ganops train` under torchrun: 2 processes on the CPU (gloo), real MNIST subset.

The 2-process run must be the single-process run with the work split: one MLflow run, one
checkpoint, the same step and optimizer-step counts, identical weights on both ranks, and
(for an MLP without dropout or BatchNorm, where splitting a batch changes nothing but the
order of float additions) the same weights as one process training alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import run_ganops, tiny_params, write_params

pytestmark = pytest.mark.slow

STEPS = 512 // 64  # tiny_params: 512 training images, global batch 64, one epoch


def _torchrun(*args: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "ganops", "train", *args,
    ]  # fmt: skip


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    raw = tiny_params(root, mnist_dir, model={"d_dropout": 0.0})
    write_params(root / "params.yaml", raw)
    for stage in ("download", "prepare"):
        done = run_ganops(stage, cwd=root)
        assert done.returncode == 0, done.stderr
    return root


def _weights(models: Path) -> dict[str, dict[str, torch.Tensor]]:
    blob = torch.load(models / "checkpoint.pt", weights_only=True)
    return {"generator": blob["generator"], "discriminator": blob["discriminator"], "all": blob}


def test_two_processes_train_one_run_with_the_single_process_result(project: Path) -> None:
    output = _run(_torchrun("--models", "ddp", "--out", "out-ddp"), cwd=project)
    assert "2 processes (DDP) ended with identical weights" in output  # checked across ranks
    assert output.count("trained to step 8") == 1  # rank 0 reports, rank 1 stays quiet
    assert sorted(p.name for p in (project / "ddp").iterdir()) == ["checkpoint.pt", "generator.pt"]

    alone = run_ganops("train", "--models", "alone", "--out", "out-alone", cwd=project)
    assert alone.returncode == 0, alone.stderr
    ddp, single = _weights(project / "ddp"), _weights(project / "alone")
    assert ddp["all"]["loop"]["step"] == single["all"]["loop"]["step"] == STEPS
    for opt in ("opt_g", "opt_d"):  # Adam's own step counters: the same number of updates
        counts = {int(s["step"]) for s in ddp["all"][opt]["state"].values()}
        assert counts == {STEPS}
    for net in ("generator", "discriminator"):
        for name, value in single[net].items():
            torch.testing.assert_close(ddp[net][name], value, rtol=1e-4, atol=1e-5)

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganops")
    runs = client.search_runs([experiment.experiment_id])
    # One run per training, not one per process; each tagged with its process count.
    assert sorted(r.data.tags["processes"] for r in runs) == ["1", "2"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_sigterm_stops_every_rank_at_one_step_and_all_resume_from_its_checkpoint(
    project: Path,
) -> None:
    """SIGTERM to one worker only (as when a node's job is stopped): every process stops at
    one agreed step, rank 0 saves it, and a second launch resumes there on both ranks."""
    args = ("--models", "stopped", "--out", "out-stopped", "--params", "long.yaml")
    raw = tiny_params(
        project,
        project.parent,  # data is prepared already; download is not run again
        model={"d_dropout": 0.0},
        train={"epochs": 30, "checkpoint_every": 4, "batch_size": 32},
        tracking={"enabled": False},
    )
    write_params(project / "long.yaml", raw)
    process = subprocess.Popen(
        _torchrun(*args), cwd=project, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    checkpoint = project / "stopped" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    workers = psutil.Process(process.pid).children()
    assert len(workers) == 2, workers
    workers[-1].send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output
    stopped_at = int(torch.load(checkpoint, weights_only=True)["loop"]["step"])
    total = 512 // 32 * 30
    assert 0 < stopped_at < total, output
    # Both ranks stopped at that step (one reported it): none hung in a collective.
    assert output.count(f"interrupted at step {stopped_at}; checkpoint saved") == 2, output

    output = _run(_torchrun(*args), cwd=project)
    assert f"resuming the interrupted run from step {stopped_at}" in output
    assert "2 processes (DDP) ended with identical weights" in output
    assert torch.load(checkpoint, weights_only=True)["loop"]["step"] == total


def test_feature_matching_under_two_processes_is_the_single_process_objective(
    project: Path,
) -> None:
    """G matches D's feature means over the global batch: each process's slice means are
    averaged across processes before the squared distance (per-slice means would give
    another objective, whose gradients differed about ninefold in a 2-rank check)."""
    raw = tiny_params(
        project,
        project.parent,
        model={"d_dropout": 0.0},
        train={"loss": "feature_matching"},
        tracking={"enabled": False},
    )
    write_params(project / "fm.yaml", raw)
    _run(_torchrun("--models", "fm-ddp", "--out", "out-fm-ddp", "--params", "fm.yaml"), project)
    alone = run_ganops(
        "train", "--models", "fm-alone", "--out", "out-fm-alone", "--params", "fm.yaml",
        cwd=project,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    ddp, single = _weights(project / "fm-ddp"), _weights(project / "fm-alone")
    for name, value in single["generator"].items():
        torch.testing.assert_close(ddp["generator"][name], value, rtol=1e-4, atol=1e-5)


def test_the_dcgan_with_batchnorm_gradient_penalty_ema_and_classes_trains_in_step(
    project: Path,
) -> None:
    """The harder paths under DDP: BatchNorm in G, the WGAN-GP critic's double backward,
    k = 2, an EMA generator and class-conditional nets; the ranks must still agree."""
    raw = tiny_params(
        project,
        project.parent,
        model={"arch": "dcgan", "dcgan_channels": 16, "conditional": True},
        train={"loss": "wgan_gp", "d_steps": 2, "ema_decay": 0.9},
        tracking={"enabled": False},
    )
    write_params(project / "hard.yaml", raw)
    output = _run(_torchrun("--models", "hard", "--out", "out-hard", "--params", "hard.yaml"),
                  cwd=project)  # fmt: skip
    assert "2 processes (DDP) ended with identical weights" in output
    assert "the generator has BatchNorm and PyTorch has no SyncBatchNorm on the CPU" in output
    blob = torch.load(project / "hard" / "checkpoint.pt", weights_only=True)
    assert blob["loop"]["step"] == STEPS and blob["ema"] is not None
    assert {int(s["step"]) for s in blob["opt_g"]["state"].values()} == {STEPS // 2}


def test_a_batch_that_does_not_split_over_the_processes_is_one_clear_error(
    project: Path,
) -> None:
    raw = tiny_params(project, project.parent, train={"batch_size": 63})
    write_params(project / "odd.yaml", raw)
    done = subprocess.run(
        _torchrun("--models", "odd", "--params", "odd.yaml"),
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "train.batch_size 63 does not split evenly over 2 processes" in done.stderr
    assert "ganops/stages" not in done.stderr  # no ganops traceback (torchrun prints its own)
    assert not (project / "odd").exists()
