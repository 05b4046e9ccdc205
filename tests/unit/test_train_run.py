"""``ganops.training.run.train``: the training run as a library call, as a notebook makes it."""

from __future__ import annotations

import pytest
import torch

from ganops.config import params_from_dict
from ganops.errors import Interrupted
from ganops.training.loop import Hooks
from ganops.training.run import TrainData, new_gan, train

PARAMS = params_from_dict(
    {
        "model": {"arch": "mlp", "latent_dim": 8, "g_hidden": [16], "d_hidden": [16]},
        "train": {"epochs": 2, "batch_size": 10, "log_every": 1, "ema_decay": 0.9},
    }
)


def _data(count: int = 40) -> TrainData:
    images = torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return TrainData(images, torch.arange(count) % 10, "mnist", "0" * 64)


def test_train_needs_only_params_and_data() -> None:
    result = train(PARAMS, _data(), device=torch.device("cpu"), progress=False)
    assert result.state.step == 40 // 10 * 2
    assert len(result.state.history) == result.state.step  # log_every 1
    images = result.gan.sampler(torch.randn(3, 8))
    assert images.shape == (3, 1, 28, 28) and torch.isfinite(images).all()


def test_a_stop_request_checkpoints_then_ends_the_run() -> None:
    seen: list[int] = []
    hooks = Hooks(on_checkpoint=lambda state: seen.append(state.step), should_stop=lambda: True)
    with pytest.raises(Interrupted, match="step 1"):
        train(PARAMS, _data(), hooks=hooks, device=torch.device("cpu"), progress=False)
    assert seen == [1]  # saved after its first step, before stopping


def test_a_given_gan_and_state_continue_where_they_were() -> None:
    device = torch.device("cpu")
    first = train(PARAMS, _data(), device=device, progress=False)
    gan, _ = new_gan(PARAMS, device)
    gan.generator.load_state_dict(first.gan.generator.state_dict())
    more = dict(PARAMS.train.__dict__, epochs=3)
    params = params_from_dict({"model": PARAMS.model.__dict__, "train": more})
    result = train(params, _data(), gan=gan, state=first.state, device=device, progress=False)
    assert result.state.step == 40 // 10 * 3  # one more epoch, not three
