"""Ctrl-C during `dvc exp run` in the workspace, then the same `dvc exp run`: it resumes.

`dvc exp run` restores every stage's outputs from dvc.lock before running, which replaces an
interrupted run's models/checkpoint.pt with the last finished run's (`dvc repro` does not);
the checkpoint kept in .ganops/resume is put back. Only the train stage is targeted, to keep
the test short: the restore is the same for the whole pipeline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, tiny_params, write_params

pytestmark = pytest.mark.slow

EPOCHS = 20
TOTAL = 512 // 64 * EPOCHS  # tiny_params: 512 images, batch 64
EXP_RUN = ("dvc", "exp", "run", "-n", "long", "-S", f"train.epochs={EPOCHS}", "train")


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def sh(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def project(tmp_path: Path, mnist_dir: Path) -> Path:
    """A git + DVC repo of the pipeline whose train stage has run once (2 epochs) and is
    committed, so dvc.lock records a finished models/ for `dvc exp run` to restore."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, tmp_path)
    raw = tiny_params(
        tmp_path,
        mnist_dir,
        model={"g_hidden": [256, 512, 1024], "d_hidden": [1024, 512, 256]},  # slow enough
        train={"epochs": 2, "checkpoint_every": 5, "log_every": 5},
        tracking={"enabled": False},
    )
    write_params(tmp_path / "params.yaml", raw)
    sh("git", "init", "-q", cwd=tmp_path)
    sh("git", "config", "user.name", "ganops test", cwd=tmp_path)
    sh("git", "config", "user.email", "test@ganops.invalid", cwd=tmp_path)
    sh("dvc", "init", "-q", cwd=tmp_path)
    sh("dvc", "repro", "train", cwd=tmp_path)
    sh("git", "add", "-A", cwd=tmp_path)
    sh("git", "commit", "-q", "-m", "pipeline", cwd=tmp_path)
    return tmp_path


def _interrupted_step(path: Path) -> int | None:
    """The step of an interrupted run's checkpoint at ``path`` (None: none, or finished)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not there yet, or mid-write (DVC checks it out in place of ours)
        return None
    return None if blob["complete"] else int(blob["loop"]["step"])


def _ctrl_c_after_a_checkpoint(project: Path) -> tuple[int, str]:
    """Run EXP_RUN; once training has checkpointed, Ctrl-C (SIGINT to the process group, as
    a terminal sends it). The interrupted step, and the output."""
    process = subprocess.Popen(
        EXP_RUN, cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (_interrupted_step(project / "models" / "checkpoint.pt") or 0) >= 10:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output
    step = _interrupted_step(project / "models" / "checkpoint.pt")
    assert step is not None and 0 < step < TOTAL, output
    return step, output


def test_the_same_dvc_exp_run_after_ctrl_c_resumes_and_finishes(project: Path) -> None:
    stopped_at, output = _ctrl_c_after_a_checkpoint(project)
    assert f"interrupted at step {stopped_at}; checkpoint saved (kept in .ganops/resume/" in output
    assert "dvc exp run with the same -S values" in output

    output = sh(*EXP_RUN, cwd=project)
    assert "put back the interrupted run's checkpoint kept in .ganops/resume/" in output
    assert f"resuming the interrupted run from step {stopped_at}" in output
    assert f"trained to step {TOTAL} " in output
    blob = torch.load(project / "models" / "checkpoint.pt", weights_only=True)
    assert blob["complete"] and blob["loop"]["step"] == TOTAL
    # The finished run leaves nothing to resume, and git (so the experiment) never saw it.
    assert [p.name for p in (project / ".ganops" / "resume").iterdir()] == [".gitignore"]
    assert ".ganops" not in sh("git", "status", "--porcelain", "--ignored=no", cwd=project)
