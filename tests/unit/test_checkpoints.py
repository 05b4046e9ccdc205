from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ganops.checkpoints import load_resumable, save_checkpoint
from ganops.config import Params, params_from_dict
from ganops.errors import CheckpointError
from ganops.generator_file import load_generator, save_generator
from ganops.models import build_models
from ganops.training.loop import LoopState
from ganops.training.run import gan_state
from ganops.training.step import build_gan


def restorable_state(params: Params, loop: LoopState) -> dict[str, Any]:
    """What training saves in a checkpoint (``gan_state``), for a fresh GAN of ``params``."""
    generator, discriminator = build_models(params.model)
    gan = build_gan(generator, discriminator, cfg=params.train, device=torch.device("cpu"))
    return {**gan_state(gan), "loop": loop.state_dict()}


def _interrupted(path: Path, complete: bool = False) -> None:
    params = params_from_dict({})
    state = {**restorable_state(params, LoopState(step=7)), "complete": complete}
    save_checkpoint(state, params, data_id="sha:60000", path=path)


def test_an_interrupted_run_resumes_when_only_free_keys_changed(tmp_path: Path) -> None:
    _interrupted(tmp_path / "c.pt")
    changed = params_from_dict({"train": {"log_every": 7, "device": "cpu", "grid_size": 16}})
    blob = load_resumable(tmp_path / "c.pt", changed, data_id="sha:60000")
    assert blob is not None and blob["loop"]["step"] == 7


def test_a_changed_config_or_dataset_is_refused_naming_what_changed(tmp_path: Path) -> None:
    _interrupted(tmp_path / "c.pt")
    changed = params_from_dict({"train": {"lr_g": 0.001}, "model": {"arch": "dcgan"}})
    with pytest.raises(CheckpointError) as error:
        load_resumable(tmp_path / "c.pt", changed, data_id="sha:60000")
    message = str(error.value)
    assert "interrupted run (step 7)" in message and "--fresh" in message
    assert "model.arch 'mlp' -> 'dcgan'" in message and "train.lr_g 0.0002 -> 0.001" in message
    with pytest.raises(CheckpointError, match="the prepared training data"):
        load_resumable(tmp_path / "c.pt", params_from_dict({}), data_id="other:1000")


def test_a_changed_per_epoch_sample_count_is_refused_once_epochs_were_scored(
    tmp_path: Path,
) -> None:
    scored = params_from_dict({"train": {"score_every": 1, "score_samples": 1000}})
    path = tmp_path / "c.pt"
    for rows in ([], [{"step": 5, "epoch": 1, "fcd": 40.0}]):
        state = {**restorable_state(scored, LoopState(step=7, quality=rows)), "complete": False}
        save_checkpoint(state, scored, data_id="sha:60000", path=path)
        for scoring in (
            {"score_every": 1, "score_samples": 500},
            {"score_every": 0, "score_samples": 500},
        ):
            fewer = params_from_dict({"train": scoring})
            if not rows:  # nothing scored yet: nothing to compare with
                assert load_resumable(path, fewer, data_id="sha:60000") is not None
                continue
            # Scored at 1000: any other count is refused, also for a session that scores
            # nothing (a later one would compare again).
            with pytest.raises(
                CheckpointError, match=r"train.score_samples 1000 -> 500 \(the best"
            ):
                load_resumable(path, fewer, data_id="sha:60000")
    # The same count, with another scoring interval or scoring off, still resumes.
    for scoring in ({"score_every": 2, "score_samples": 1000}, {"score_every": 0}):
        same = params_from_dict({"train": scoring})
        assert load_resumable(path, same, data_id="sha:60000") is not None


def test_a_finished_run_is_not_resumed(tmp_path: Path) -> None:
    _interrupted(tmp_path / "c.pt", complete=True)
    assert load_resumable(tmp_path / "c.pt", params_from_dict({}), data_id="sha:60000") is None
    assert (
        load_resumable(tmp_path / "missing.pt", params_from_dict({}), data_id="sha:60000") is None
    )


def test_weights_of_another_architecture_are_named_with_the_stored_one(tmp_path: Path) -> None:
    """A generator file whose weights are a DCGAN's but whose config says MLP."""
    dcgan = params_from_dict({"model": {"arch": "dcgan", "dcgan_channels": 8}})
    path = tmp_path / "generator.pt"
    save_generator(build_models(dcgan.model)[0], dcgan.model, path=path)
    blob = torch.load(path, weights_only=True)
    blob["model"]["arch"] = "mlp"
    torch.save(blob, path)
    with pytest.raises(CheckpointError) as caught:
        load_generator(path)
    assert str(caught.value).startswith(
        f"{path}: its weights are a 'dcgan' generator but its stored config says model.arch='mlp'"
    )


def test_a_generator_of_another_architecture_than_params_yaml_loads_as_saved(
    tmp_path: Path,
) -> None:
    """sample/evaluate rebuild the network from the file, not from params.yaml."""
    dcgan = params_from_dict({"model": {"arch": "dcgan", "dcgan_channels": 8}})
    path = tmp_path / "generator.pt"
    save_generator(build_models(dcgan.model)[0], dcgan.model, path=path)
    generator, model_cfg = load_generator(path)
    assert model_cfg.arch == "dcgan"
    assert generator(torch.randn(3, model_cfg.latent_dim)).shape == (3, 1, 28, 28)


def test_a_training_checkpoint_is_not_taken_for_a_generator(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    _interrupted(path)
    with pytest.raises(CheckpointError, match=r"format 'ganops-checkpoint/1', expected"):
        load_generator(path)


def test_a_generator_with_nan_weights_is_refused(tmp_path: Path) -> None:
    """NaN pixels become 0 in the uint8 cast: such a generator would get a finite FID."""
    params = params_from_dict({"model": {"arch": "dcgan", "dcgan_channels": 8}})
    generator, _ = build_models(params.model)
    with torch.no_grad():
        next(generator.parameters())[0] = float("nan")
    path = tmp_path / "generator.pt"
    save_generator(generator, params.model, path=path)
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_generator(path)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, 0.0),
        (12.5, 12.5),
        (30, 30.0),
        (float("nan"), 0.0),
        (float("inf"), 0.0),
        (-4.0, 0.0),
        ("12", 0.0),
        ([1.0], 0.0),
    ],
)
def test_a_resumed_run_s_earlier_time_is_taken_only_as_a_finite_count_of_seconds(
    stored: object, expected: float
) -> None:
    from ganops.stages.train_files import earlier_seconds

    assert earlier_seconds(None) == 0.0  # a new run
    assert earlier_seconds({"loop": {}, "seconds": stored}) == expected
