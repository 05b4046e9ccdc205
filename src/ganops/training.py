"""The GAN training loop: pure of files and MLflow (those arrive through ``TrainLogger``).

Vocabulary used in logs and plots:
- an *iteration* (``step``) is one real batch: one discriminator update on it. Every
  ``d_steps``-th iteration is followed by one generator update (Goodfellow et al. 2014,
  Algorithm 1, with k = ``d_steps``).
- an *epoch* is one random permutation of the training set cut into
  ``floor(N / batch_size)`` batches, so ``total steps = batches_per_epoch * epochs``.

Speed on small models is overhead, not arithmetic, so the loop keeps the training set on the
device, draws batch indices and noise there, and never synchronises with the host inside an
iteration: statistics are summed on the device and read every ``log_every`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ganops.config import TrainConfig
from ganops.errors import GanopsError
from ganops.losses import discriminator_loss, generator_loss, gradient_penalty, real_probability

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake")


class TrainLogger(Protocol):
    """Where the loop reports; MLflow in production, a list in tests."""

    def log_stats(self, stats: dict[str, float], step: int, epoch: int) -> None: ...

    def log_samples(self, images: Tensor, epoch: int) -> None: ...


class NullLogger:
    def log_stats(self, stats: dict[str, float], step: int, epoch: int) -> None:
        pass

    def log_samples(self, images: Tensor, epoch: int) -> None:
        pass


@dataclass
class GAN:
    """Both networks, their optimizers and the optional generator EMA."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: AveragedModel | None = None

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples and evaluation: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.generator


def make_optimizer(
    params: list[nn.Parameter], cfg: TrainConfig, lr: float, device: torch.device
) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    # The fused CUDA kernel updates all tensors in one launch instead of one per tensor.
    return torch.optim.Adam(
        params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda"
    )


def build_gan(
    generator: nn.Module, discriminator: nn.Module, cfg: TrainConfig, device: torch.device
) -> GAN:
    generator, discriminator = generator.to(device), discriminator.to(device)
    ema = None
    if cfg.ema_decay > 0:
        ema = AveragedModel(
            generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    return GAN(
        generator=generator,
        discriminator=discriminator,
        opt_g=make_optimizer(list(generator.parameters()), cfg, cfg.lr_g, device),
        opt_d=make_optimizer(list(discriminator.parameters()), cfg, cfg.lr_d, device),
        ema=ema,
    )


def _clip_grad(module: nn.Module, cfg: TrainConfig) -> None:
    if cfg.grad_clip_norm > 0:
        nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip_norm)


def discriminator_step(gan: GAN, real: Tensor, fake: Tensor, cfg: TrainConfig) -> Tensor:
    """One D update on (real, fake); returns detached [loss_d, D(x), D(G(z))] means."""
    fake = fake.detach()  # D's update must not reach into G's graph
    real_logits, fake_logits = gan.discriminator(real), gan.discriminator(fake)
    loss = discriminator_loss(cfg.loss, real_logits, fake_logits, cfg.real_label)
    if cfg.loss == "wgan_gp" and cfg.gp_weight > 0:
        loss = loss + cfg.gp_weight * gradient_penalty(gan.discriminator, real, fake)
    gan.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    _clip_grad(gan.discriminator, cfg)
    gan.opt_d.step()
    if cfg.loss == "wgan":
        with torch.no_grad():
            for param in gan.discriminator.parameters():
                param.clamp_(-cfg.clip_value, cfg.clip_value)
    with torch.no_grad():
        return torch.stack(
            [
                loss.detach(),
                real_probability(cfg.loss, real_logits.detach()).mean(),
                real_probability(cfg.loss, fake_logits.detach()).mean(),
            ]
        )


def generator_step(gan: GAN, fake: Tensor, cfg: TrainConfig) -> Tensor:
    """One G update through the (just updated) D on ``fake``; returns the detached loss."""
    gan.discriminator.requires_grad_(False)  # no D parameter gradients in the G step
    try:
        loss = generator_loss(cfg.loss, gan.discriminator(fake))
    finally:
        gan.discriminator.requires_grad_(True)
    gan.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    _clip_grad(gan.generator, cfg)
    gan.opt_g.step()
    if gan.ema is not None:
        gan.ema.update_parameters(gan.generator)
    return loss.detach()


def train_iteration(
    gan: GAN, real: Tensor, z: Tensor, cfg: TrainConfig, update_generator: bool
) -> Tensor:
    """One iteration: a D step, then a G step if ``update_generator``.

    The fake batch is generated once and reused by the G step, as in the classic PyTorch
    DCGAN loop, which saves a generator forward pass per iteration.
    Returns device tensor [loss_d, loss_g (0 if no G step), D(x), D(G(z))].
    """
    with torch.set_grad_enabled(update_generator):
        fake = gan.generator(z)
    d_stats = discriminator_step(gan, real, fake, cfg)
    loss_g = generator_step(gan, fake, cfg) if update_generator else torch.zeros_like(d_stats[0])
    return torch.stack([d_stats[0], loss_g, d_stats[1], d_stats[2]])


@dataclass
class Schedule:
    num_images: int
    batch_size: int
    epochs: int
    batches_per_epoch: int = field(init=False)

    def __post_init__(self) -> None:
        self.batches_per_epoch = self.num_images // self.batch_size
        if self.batches_per_epoch == 0:
            raise GanopsError(
                f"train.batch_size {self.batch_size} is larger than the training "
                f"set ({self.num_images} images); lower it or use more data"
            )

    @property
    def total_steps(self) -> int:
        return self.batches_per_epoch * self.epochs


@dataclass
class TrainResult:
    steps: int
    history: list[dict[str, float]]  # one row per log interval: step, epoch and STAT_NAMES


def sample_images(generator: nn.Module, z: Tensor) -> Tensor:
    """Generate in eval mode (BatchNorm running statistics, no dropout), then restore."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            return generator(z)
    finally:
        generator.train(was_training)


def _read_interval(sums: Tensor, iterations: int, g_updates: int, step: int) -> dict[str, float]:
    """The one host synchronisation per log interval; stops training on non-finite losses."""
    loss_d, loss_g, d_real, d_fake = sums.tolist()
    stats = {
        "loss_d": loss_d / iterations,
        "loss_g": loss_g / max(g_updates, 1),
        "d_real": d_real / iterations,
        "d_fake": d_fake / iterations,
    }
    bad = [name for name, value in stats.items() if not math.isfinite(value)]
    if bad:
        raise GanopsError(
            f"training diverged: {', '.join(bad)} not finite at step {step}; "
            "lower train.lr_g/train.lr_d or change train.loss"
        )
    return stats


def fit(
    gan: GAN,
    images: Tensor,
    cfg: TrainConfig,
    *,
    latent_dim: int,
    fixed_noise: Tensor,
    logger: TrainLogger,
    on_step: Callable[[str], None] = lambda postfix: None,
) -> TrainResult:
    """Train ``gan`` on ``images`` (N, 1, 28, 28), already on the training device."""
    device = images.device
    schedule = Schedule(len(images), cfg.batch_size, cfg.epochs)
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    sums, iterations, g_updates, step, postfix = torch.zeros(4, device=device), 0, 0, 0, ""
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(images), device=device, generator=rng)
        for batch in range(schedule.batches_per_epoch):
            real = images[order[batch * cfg.batch_size : (batch + 1) * cfg.batch_size]]
            z = torch.randn(cfg.batch_size, latent_dim, device=device, generator=rng)
            step += 1
            update_generator = step % cfg.d_steps == 0
            sums += train_iteration(gan, real, z, cfg, update_generator)
            iterations, g_updates = iterations + 1, g_updates + update_generator
            if step % cfg.log_every == 0 or step == schedule.total_steps:
                stats = _read_interval(sums, iterations, g_updates, step)
                history.append({"step": step, "epoch": epoch, **stats})
                logger.log_stats(stats, step=step, epoch=epoch)
                postfix = " ".join(f"{k}={v:.3f}" for k, v in stats.items())
                sums.zero_()
                iterations = g_updates = 0
            on_step(postfix)
        logger.log_samples(sample_images(gan.sampler, fixed_noise), epoch=epoch)
    return TrainResult(steps=step, history=history)
