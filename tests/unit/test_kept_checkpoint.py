"""The interrupted run's checkpoint kept outside models/ (ganops.kept_checkpoint)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ganops import kept_checkpoint, outputs
from ganops.checkpoints import save_checkpoint
from ganops.config import Params, params_from_dict
from ganops.stages.train import _resume

PARAMS = params_from_dict({})


def _slot(tmp_path: Path, params: Params = PARAMS, models: str = "models") -> Path:
    return kept_checkpoint.slot_for(
        tmp_path / "resume", params, data_id="data-1", models_dir=tmp_path / models
    )


def _interrupted(path: Path, step: int = 7) -> None:
    """A checkpoint as training writes it (load_resumable checks every part restores)."""
    import torch

    from ganops.models import build_models
    from ganops.training.loop import LoopState
    from ganops.training.run import gan_state
    from ganops.training.step import build_gan

    gan = build_gan(*build_models(PARAMS.model), cfg=PARAMS.train, device=torch.device("cpu"))
    state = {**gan_state(gan), "loop": LoopState(step=step).state_dict(), "complete": False}
    save_checkpoint(state, PARAMS, data_id="data-1", path=path)


def test_the_slot_is_one_per_config_data_and_models_folder(tmp_path: Path) -> None:
    lr = params_from_dict({"train": {"lr_g": 1e-3}})
    device_only = params_from_dict({"train": {"device": "cpu", "checkpoint_every": 3}})
    assert _slot(tmp_path) == _slot(tmp_path, device_only)  # resume-free keys: the same run
    assert _slot(tmp_path) != _slot(tmp_path, lr)
    assert _slot(tmp_path) != _slot(tmp_path, models="models2")
    other_data = kept_checkpoint.slot_for(
        tmp_path / "resume", PARAMS, data_id="data-2", models_dir=tmp_path / "models"
    )
    assert _slot(tmp_path) != other_data


def test_put_back_replaces_what_dvc_restored_with_the_kept_run(tmp_path: Path) -> None:
    slot, models = _slot(tmp_path), tmp_path / "models"
    _interrupted(slot / outputs.CHECKPOINT, step=7)
    models.mkdir()
    (models / outputs.CHECKPOINT).write_bytes(b"the finished run's, from dvc.lock")
    (models / outputs.BEST_GENERATOR).write_bytes(b"the finished run's best")
    assert kept_checkpoint.put_back(slot, models)
    assert os.path.samefile(slot / outputs.CHECKPOINT, models / outputs.CHECKPOINT)
    # The slot holds no best: the finished run's must not pass for the resumed run's.
    assert not (models / outputs.BEST_GENERATOR).exists()
    assert not kept_checkpoint.put_back(slot, models)  # already in place: nothing to do


def test_put_back_brings_the_kept_best_generator_too(tmp_path: Path) -> None:
    slot, models = _slot(tmp_path), tmp_path / "models"
    _interrupted(slot / outputs.CHECKPOINT)
    (slot / outputs.BEST_GENERATOR).write_bytes(b"the interrupted run's best")
    assert kept_checkpoint.put_back(slot, models)
    assert (models / outputs.BEST_GENERATOR).read_bytes() == b"the interrupted run's best"
    assert not kept_checkpoint.put_back(tmp_path / "resume" / "none", models)  # no slot


def test_link_out_shares_each_checkpoint_and_keeps_the_best(tmp_path: Path) -> None:
    slot, models = _slot(tmp_path), tmp_path / "models"
    _interrupted(slot / outputs.CHECKPOINT)
    models.mkdir()
    (models / outputs.BEST_GENERATOR).write_bytes(b"best so far")
    kept_checkpoint.link_out(slot, models)
    for name in (outputs.CHECKPOINT, outputs.BEST_GENERATOR):
        assert os.path.samefile(slot / name, models / name)  # a hard link: no extra space
    _interrupted(slot / outputs.CHECKPOINT, step=9)  # a new file: the old link is untouched
    assert not os.path.samefile(slot / outputs.CHECKPOINT, models / outputs.CHECKPOINT)


def test_without_hard_links_it_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def cross_device(source: Path, target: Path) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    slot, models = _slot(tmp_path), tmp_path / "models"
    _interrupted(slot / outputs.CHECKPOINT)
    kept_checkpoint.link_out(slot, models)
    copied = (models / outputs.CHECKPOINT).read_bytes()
    assert copied == (slot / outputs.CHECKPOINT).read_bytes()
    assert [p.name for p in models.iterdir()] == [outputs.CHECKPOINT]  # no temporary left


def test_the_resume_folder_is_ignored_by_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    resume = tmp_path / ".ganops" / "resume"
    kept_checkpoint.ignore_in_git(resume)
    _interrupted(resume / "abc" / outputs.CHECKPOINT)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert status.stdout == ""


@pytest.mark.parametrize(
    ("cwd", "temporary"),
    [
        ("/work/project/.dvc/tmp/exps/tmpab12cd", True),
        ("/work/project/.dvc/tmp/exps/run/tmpab12cd/sub", True),
        ("/work/project", False),
        ("/work/project/.dvc/tmp", False),
    ],
)
def test_a_dvc_temporary_copy_is_recognised(cwd: str, temporary: bool) -> None:
    assert kept_checkpoint.in_dvc_temp_copy(Path(cwd)) is temporary


def test_other_configs_kept_runs_are_named_not_resumed(tmp_path: Path) -> None:
    slot = _slot(tmp_path)
    assert kept_checkpoint.others_note(slot) is None
    other = _slot(tmp_path, params_from_dict({"train": {"lr_g": 1e-3}}))
    _interrupted(other / outputs.CHECKPOINT)
    note = kept_checkpoint.others_note(slot)
    assert note is not None and note.startswith(
        f"note: 1 interrupted run(s) of other configs kept in {tmp_path / 'resume'} ("
    )
    models = tmp_path / "models"
    resumed = _resume(
        PARAMS, "data-1", slot=slot, models_dir=models, out_dir=tmp_path / "out", fresh=False,
        main=True,
    )  # fmt: skip
    assert resumed is None and not models.exists()  # another config's run is never taken


def test_fresh_removes_the_kept_checkpoint_and_starts_over(tmp_path: Path) -> None:
    slot, models = _slot(tmp_path), tmp_path / "models"
    _interrupted(slot / outputs.CHECKPOINT)
    kwargs = {"slot": slot, "models_dir": models, "out_dir": tmp_path / "out"}
    assert _resume(PARAMS, "data-1", fresh=False, main=False, **kwargs) is not None
    assert _resume(PARAMS, "data-1", fresh=True, main=True, **kwargs) is None
    assert not slot.exists()


def test_another_process_reads_the_slot_itself(tmp_path: Path) -> None:
    """Under DDP rank 0 puts the slot back while the others start: they read the slot."""
    slot, models = _slot(tmp_path), tmp_path / "models"
    _interrupted(slot / outputs.CHECKPOINT, step=11)
    resumed = _resume(
        PARAMS, "data-1", slot=slot, models_dir=models, out_dir=tmp_path / "out", fresh=False,
        main=False,
    )  # fmt: skip
    assert resumed is not None and resumed["loop"]["step"] == 11
    assert not models.exists()  # only rank 0 changes files
