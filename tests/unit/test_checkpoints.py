from __future__ import annotations

from pathlib import Path

import pytest

from ganops.checkpoints import load_resumable, save_checkpoint
from ganops.config import params_from_dict
from ganops.errors import CheckpointError
from ganops.loop import LoopState


def _interrupted(path: Path, complete: bool = False) -> None:
    params = params_from_dict({})
    state = {"loop": LoopState(step=7).state_dict(), "complete": complete}
    save_checkpoint(state, params, "sha:60000", path)


def test_an_interrupted_run_resumes_when_only_free_keys_changed(tmp_path: Path) -> None:
    _interrupted(tmp_path / "c.pt")
    changed = params_from_dict({"train": {"log_every": 7, "device": "cpu", "grid_size": 16}})
    blob = load_resumable(tmp_path / "c.pt", changed, "sha:60000")
    assert blob is not None and blob["loop"]["step"] == 7


def test_a_changed_config_or_dataset_is_refused_naming_what_changed(tmp_path: Path) -> None:
    _interrupted(tmp_path / "c.pt")
    changed = params_from_dict({"train": {"lr_g": 0.001}, "model": {"arch": "dcgan"}})
    with pytest.raises(CheckpointError) as error:
        load_resumable(tmp_path / "c.pt", changed, "sha:60000")
    message = str(error.value)
    assert "interrupted run (step 7)" in message and "--fresh" in message
    assert "model.arch 'mlp' -> 'dcgan'" in message and "train.lr_g 0.0002 -> 0.001" in message
    with pytest.raises(CheckpointError, match="the prepared training data"):
        load_resumable(tmp_path / "c.pt", params_from_dict({}), "other:1000")


def test_a_finished_run_is_not_resumed(tmp_path: Path) -> None:
    _interrupted(tmp_path / "c.pt", complete=True)
    assert load_resumable(tmp_path / "c.pt", params_from_dict({}), "sha:60000") is None
    assert load_resumable(tmp_path / "missing.pt", params_from_dict({}), "sha:60000") is None
