from __future__ import annotations

import dataclasses

import pytest
import torch

from ganops.config import LOSSES, ModelConfig, TrainConfig
from ganops.errors import GanopsError
from ganops.models import build_models
from ganops.training import NullLogger, TrainResult, build_gan, fit

MODEL = ModelConfig(latent_dim=8, g_hidden=(32,), d_hidden=(32,))


class RecordingLogger(NullLogger):
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.sample_epochs: list[int] = []

    def log_stats(self, stats: dict[str, float], step: int, epoch: int) -> None:
        self.steps.append(step)

    def log_samples(self, images: torch.Tensor, epoch: int) -> None:
        assert images.shape[1:] == (1, 28, 28)
        self.sample_epochs.append(epoch)


def run(
    cfg: TrainConfig,
    images: torch.Tensor,
    model: ModelConfig = MODEL,
    logger: NullLogger | None = None,
) -> tuple[TrainResult, torch.nn.Module]:
    torch.manual_seed(cfg.seed)
    generator, discriminator = build_models(model)
    gan = build_gan(generator, discriminator, cfg, torch.device("cpu"))
    result = fit(
        gan,
        images,
        cfg,
        latent_dim=model.latent_dim,
        fixed_noise=torch.randn(4, model.latent_dim),
        logger=logger or NullLogger(),
    )
    return result, gan.generator


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_step_count_is_floor_of_dataset_over_batch_times_epochs(images: torch.Tensor) -> None:
    logger = RecordingLogger()
    cfg = TrainConfig(epochs=3, batch_size=32, log_every=2)
    result, _ = run(cfg, images, logger=logger)
    assert result.steps == (100 // 32) * 3 == 9
    assert logger.steps == [2, 4, 6, 8, 9]  # every log_every steps, and the last one
    assert logger.sample_epochs == [1, 2, 3]
    assert [row["epoch"] for row in result.history] == [1, 2, 2, 3, 3]


def test_same_seed_same_weights_different_seed_different(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=20)
    _, first = run(cfg, images)
    _, again = run(cfg, images)
    _, other = run(dataclasses.replace(cfg, seed=7), images)
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not all(
        torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True)
    )


def test_k_discriminator_steps_per_generator_step(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=10, d_steps=5)
    torch.manual_seed(0)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg, torch.device("cpu"))
    fit(gan, images, cfg, latent_dim=8, fixed_noise=torch.randn(2, 8), logger=NullLogger())
    d_steps = gan.opt_d.state_dict()["state"][0]["step"].item()
    g_steps = gan.opt_g.state_dict()["state"][0]["step"].item()
    assert (d_steps, g_steps) == (10, 2)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_objective_trains_without_nan(loss: str, images: torch.Tensor) -> None:
    optimizer = "rmsprop" if loss == "wgan" else "adam"
    cfg = TrainConfig(epochs=1, batch_size=25, loss=loss, optimizer=optimizer, ema_decay=0.9)
    result, _ = run(cfg, images)
    assert result.steps == 4
    assert all(all(v == v for v in row.values()) for row in result.history)


def test_wgan_clips_critic_weights(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=25, loss="wgan", optimizer="rmsprop", clip_value=0.01)
    torch.manual_seed(0)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg, torch.device("cpu"))
    fit(gan, images, cfg, latent_dim=8, fixed_noise=torch.randn(2, 8), logger=NullLogger())
    assert max(p.abs().max().item() for p in gan.discriminator.parameters()) <= 0.01


def test_divergence_stops_with_the_step(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=25, lr_d=1e30, lr_g=1e30, log_every=1)
    with pytest.raises(GanopsError, match=r"not finite at step \d+"):
        run(cfg, images)
