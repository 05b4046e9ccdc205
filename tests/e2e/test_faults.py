"""Faults injected into a real `ganops train` process: kill -9 and SIGTERM.

Each test trains the classic MLP on a small real-MNIST subset with frequent checkpoints, hits
the process, and checks that what is on disk still loads and that running the stage again
resumes and finishes with the full step count.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_params, write_params

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH, EPOCHS = 512 // 64, 40  # 320 steps: long enough to hit mid-run


def _train(cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ganops", "train"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def project(tmp_path: Path, mnist_dir: Path) -> Path:
    raw = tiny_params(
        tmp_path,
        mnist_dir,
        model={"g_hidden": [256, 512, 1024], "d_hidden": [1024, 512, 256]},
        train={"epochs": EPOCHS, "checkpoint_every": 5, "log_every": 5},
        tracking={"enabled": False},
    )
    write_params(tmp_path / "params.yaml", raw)
    for stage in ("download", "prepare"):
        done = subprocess.run(
            [sys.executable, "-m", "ganops", stage], cwd=tmp_path, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
    return tmp_path


def _wait_for_new_checkpoint(path: Path, process: subprocess.Popen[str]) -> None:
    """Until this process has written a checkpoint (so it is past start-up, mid-training)."""
    before = path.stat().st_mtime_ns if path.exists() else None
    deadline = time.monotonic() + 300
    while not path.exists() or path.stat().st_mtime_ns == before:
        assert process.poll() is None, "training ended before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)


def _checkpoint_step(path: Path) -> int:
    blob = torch.load(path, map_location="cpu", weights_only=True)  # must always load
    return int(blob["loop"]["step"])


def _checkpoint_seconds(path: Path) -> float:
    return float(torch.load(path, map_location="cpu", weights_only=True)["seconds"])


def test_kill_9_at_random_moments_never_leaves_a_broken_checkpoint(project: Path) -> None:
    checkpoint = project / "models" / "checkpoint.pt"
    rng = random.Random(0)
    steps = []
    for _ in range(3):
        process = _train(project)
        _wait_for_new_checkpoint(checkpoint, process)
        time.sleep(rng.uniform(0.2, 1.5))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        steps.append(_checkpoint_step(checkpoint))
    # Each kill landed mid-training, later than the one before (each run resumed).
    assert steps == sorted(set(steps)) and 0 < steps[-1] < STEPS_PER_EPOCH * EPOCHS
    finish = _train(project)
    output, _ = finish.communicate(timeout=900)
    assert finish.returncode == 0, output
    assert f"resuming the interrupted run from step {steps[-1]}" in output
    assert _checkpoint_step(checkpoint) == STEPS_PER_EPOCH * EPOCHS
    # A kill during a write can leave a temporary file; the next run removes it.
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["checkpoint.pt", "generator.pt"]


def test_sigterm_saves_the_last_completed_step_and_resume_finishes(project: Path) -> None:
    checkpoint = project / "models" / "checkpoint.pt"
    process = _train(project)
    _wait_for_new_checkpoint(checkpoint, process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    stopped_at = _checkpoint_step(checkpoint)
    assert f"error: interrupted at step {stopped_at}; checkpoint saved" in output
    assert "Traceback" not in output
    # Also kept outside models/ (which `dvc exp run` restores from dvc.lock), until it ends.
    (kept,) = (project / ".ganops" / "resume").glob("*/checkpoint.pt")
    assert os.path.samefile(kept, checkpoint)
    assert f"checkpoint saved (kept in {kept.parent.relative_to(project)})" in output
    before = _checkpoint_seconds(checkpoint)
    assert before > 0
    finish = _train(project)
    output, _ = finish.communicate(timeout=900)
    assert finish.returncode == 0, output
    assert f"resuming the interrupted run from step {stopped_at}" in output
    assert _checkpoint_step(checkpoint) == STEPS_PER_EPOCH * EPOCHS
    # The run's training time counts both sessions (MLflow's train_seconds too).
    assert f"{before:.1f} s of it before the resume" in output
    assert _checkpoint_seconds(checkpoint) > before
    assert os.path.getsize(project / "models" / "generator.pt") > 0
    assert not kept.parent.exists()  # finished: nothing is left to resume


def test_kill_9_between_checkpoints_names_the_steps_trained_again(
    tmp_path: Path, project: Path
) -> None:
    """Tracked, with a checkpoint every 100 steps and a loss reading every 5: a kill -9 after
    step 100 leaves MLflow points beyond the checkpoint, which the resumed session trains
    again; the run is tagged with exactly those steps."""
    import mlflow
    import yaml

    from ganops.tracking.runs import REPLAYED_TAG

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["checkpoint_every"] = 100
    params["tracking"] = {"enabled": True, "uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    write_params(project / "params.yaml", params)
    checkpoint = project / "models" / "checkpoint.pt"
    client = mlflow.MlflowClient(params["tracking"]["uri"])
    process = _train(project)
    _wait_for_new_checkpoint(checkpoint, process)
    run_id = str(torch.load(checkpoint, map_location="cpu", weights_only=True)["run_id"])
    deadline = time.monotonic() + 120
    later: list[int] = []
    while not later:  # until points past the checkpoint have reached the store
        assert time.monotonic() < deadline and process.poll() is None
        later = [m.step for m in client.get_metric_history(run_id, "loss_d") if m.step > 100]
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert _checkpoint_step(checkpoint) == 100
    last = max(m.step for m in client.get_metric_history(run_id, "loss_d"))
    finish = _train(project)
    output, _ = finish.communicate(timeout=900)
    assert finish.returncode == 0, output
    assert f"points of steps 101-{last}" in output
    assert client.get_run(run_id).data.tags[REPLAYED_TAG] == f"101-{last}"
