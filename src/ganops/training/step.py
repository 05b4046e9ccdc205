"""One GAN training iteration: the networks, their optimizers and the D and G updates.

The loop around it (schedule, logging, checkpoints) is in ``ganops.training.loop``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ganops.augment import diff_augment, parse_policy
from ganops.config import TrainConfig
from ganops.devices import resolve_precision
from ganops.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    real_probability,
)
from ganops.training.distributed import global_mean


@dataclass
class GAN:
    """Both networks, their optimizers and the optional generator EMA."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: AveragedModel | None = None
    # DistributedDataParallel wrappers of (generator, discriminator) under torchrun: the
    # training step calls these, so gradients are averaged across processes.
    wrapped: tuple[nn.Module, nn.Module] | None = None
    # Discriminator updates so far (checkpointed): lazy R1 runs on every r1_every-th.
    d_updates: int = 0
    # The forward passes' precision, 'fp32' or 'bf16': train.precision with 'auto' resolved
    # for the device (``ganops.devices.resolve_precision``); checkpoints record it.
    precision: str = "fp32"

    @property
    def train_modules(self) -> tuple[nn.Module, nn.Module]:
        """The (G, D) the training step calls: the DDP wrappers, else the networks."""
        return self.wrapped or (self.generator, self.discriminator)

    @functools.cached_property
    def d_rows_independent(self) -> bool:
        """Whether D scores each image on its own: no BatchNorm mixing the batch, no spectral
        norm (whose power iteration advances once per forward). Then D may score the real
        and fake batches in one forward pass with the same result."""
        return not any(
            isinstance(module, nn.modules.batchnorm._BatchNorm)
            or parametrize.is_parametrized(module)
            for module in self.discriminator.modules()
        )

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples and evaluation: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.generator


def make_optimizer(
    params: list[nn.Parameter], cfg: TrainConfig, *, lr: float, device: torch.device
) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":  # alpha is Keras' rho (0.9 there, 0.99 in torch)
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg.rmsprop_alpha)
    # The fused kernel updates all tensors in one pass instead of one op per tensor: on CUDA
    # one launch; on the CPU (torch >= 2.4) faster steps too (figures: benchmarks/RESULTS.md).
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def build_gan(
    generator: nn.Module, discriminator: nn.Module, *, cfg: TrainConfig, device: torch.device
) -> GAN:
    generator, discriminator = generator.to(device), discriminator.to(device)
    ema = None
    if cfg.ema_kimg > 0:
        average = ema_in_images(
            half_life=cfg.ema_kimg * 1000,
            rampup=cfg.ema_rampup,
            images_per_update=cfg.batch_size * cfg.d_steps,  # real images D saw per G step
            warmup=cfg.ema_warmup,
        )
        ema = AveragedModel(generator, multi_avg_fn=average, use_buffers=True)
    elif cfg.ema_decay > 0:
        average = (ema_with_warmup if cfg.ema_warmup else get_ema_multi_avg_fn)(cfg.ema_decay)
        ema = AveragedModel(generator, multi_avg_fn=average, use_buffers=True)
    return GAN(
        generator=generator,
        discriminator=discriminator,
        opt_g=make_optimizer(list(generator.parameters()), cfg, lr=cfg.lr_g, device=device),
        opt_d=make_optimizer(list(discriminator.parameters()), cfg, lr=cfg.lr_d, device=device),
        ema=ema,
        precision=resolve_precision(cfg.precision, device)[0],
    )


TensorList = tuple[Tensor, ...] | list[Tensor]


def ema_with_warmup(decay: float) -> Callable[[TensorList, TensorList, Tensor | int], None]:
    """An ``AveragedModel`` multi_avg_fn whose decay ramps up as min(decay, (1 + n) / (10 + n))
    over its ``n`` earlier updates (TensorFlow's ExponentialMovingAverage with num_updates):
    0.18 at the second update, 0.9 at the 81st, ``decay`` from then on for 0.999 by 8,991.

    A tensor ``n`` is read on its device, never on the host: a CUDA graph that counts it up
    on the GPU (``ganops.training.cuda_graphs``) replays the whole warm-up.
    """

    @torch.no_grad()
    def average(ema: TensorList, current: TensorList, num_averaged: Tensor | int) -> None:
        if not ema[0].is_floating_point():  # BatchNorm's step counters: take the latest
            torch._foreach_copy_(ema, current)
            return
        if not isinstance(num_averaged, Tensor):
            n = float(num_averaged)
            torch._foreach_lerp_(ema, current, 1 - min(decay, (1 + n) / (10 + n)))
            return
        n_dev = num_averaged.to(ema[0].device, torch.float32)
        _move_towards(ema, current, 1 - torch.clamp((1 + n_dev) / (10 + n_dev), max=decay))

    return average


def _move_towards(ema: TensorList, current: TensorList, weight: Tensor) -> None:
    """ema += weight * (current - ema), with a tensor ``weight`` read on its device."""
    step = torch._foreach_sub(list(current), list(ema))
    torch._foreach_mul_(step, weight)
    torch._foreach_add_(ema, step)


def ema_in_images(
    *, half_life: float, rampup: float, images_per_update: int, warmup: bool
) -> Callable[[TensorList, TensorList, Tensor | int], None]:
    """An ``AveragedModel`` multi_avg_fn with StyleGAN2-ADA's EMA: after ``n`` earlier
    updates (one per generator step, ``images_per_update`` real images each) the decay is
    0.5 ** (images_per_update / h), h = ``half_life`` images, or with ``rampup`` at most
    ``rampup`` times the (n + 1) * images_per_update images seen so far; with ``warmup`` it is
    also capped by (1 + n) / (10 + n), as ``ema_with_warmup``. A tensor ``n`` stays on its
    device (CUDA graphs replay the ramp)."""

    def decay(n: Tensor) -> Tensor:  # n: float32, on the weights' device
        images = torch.full_like(n, half_life)
        if rampup > 0:
            images = torch.minimum(images, (n + 1) * (images_per_update * rampup))
        value = torch.exp2(-images_per_update / images)
        return torch.minimum(value, (1 + n) / (10 + n)) if warmup else value

    @torch.no_grad()
    def average(ema: TensorList, current: TensorList, num_averaged: Tensor | int) -> None:
        if not ema[0].is_floating_point():  # BatchNorm's step counters: take the latest
            torch._foreach_copy_(ema, current)
            return
        n = torch.as_tensor(num_averaged, dtype=torch.float32).to(ema[0].device)
        _move_towards(ema, current, 1 - decay(n))

    return average


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The learning rate at ``step`` (0-based) of ``total_steps``, as a fraction of the base."""
    progress = min(step / max(total_steps, 1), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def varies_learning_rate(cfg: TrainConfig) -> bool:
    return cfg.lr_schedule != "constant" or cfg.lr_decay > 0


def set_learning_rates(gan: GAN, cfg: TrainConfig, *, step: int, total_steps: int) -> None:
    """Both optimizers' learning rates for ``step`` (0-based) under ``train.lr_schedule`` and
    Keras' inverse-time ``train.lr_decay``, whose t counts each optimizer's own updates so far
    (D updates every step, G every ``d_steps``-th)."""
    factor = lr_factor(cfg.lr_schedule, step, total_steps)
    updates = ((gan.opt_g, cfg.lr_g, step // cfg.d_steps), (gan.opt_d, cfg.lr_d, step))
    for optimizer, base, done in updates:
        for group in optimizer.param_groups:
            group["lr"] = base * factor / (1 + cfg.lr_decay * done)


def forward_precision(gan: GAN, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The context for forward passes: bf16 autocast when ``gan.precision`` (``train.precision``
    resolved for the device) says so.

    The weight-cast cache is off: CUDA graphs cannot capture it (and each weight is cast
    about once per forward pass here anyway).
    """
    if gan.precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def _full(logits: Tensor) -> Tensor:
    """Logits for the losses in at least fp32 (autocast's bf16 ones cast up)."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def loss_input(logits: Tensor, cfg: TrainConfig) -> Tensor:
    """What the losses read as D's logits: the logits themselves, or with
    ``train.sigmoid_before_bce`` the sigmoid of them, the probability the Keras MLP tutorial
    handed to ``BinaryCrossentropy(from_logits=True)`` (a bug reproduced on purpose)."""
    return torch.sigmoid(logits) if cfg.sigmoid_before_bce else logits


def _clip_grad(module: nn.Module, cfg: TrainConfig) -> None:
    if cfg.grad_clip_value > 0:  # Keras' clipvalue: element-wise, before any norm clipping
        nn.utils.clip_grad_value_(module.parameters(), cfg.grad_clip_value)
    if cfg.grad_clip_norm > 0:
        nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip_norm)


def discriminator_step(
    gan: GAN, real: Tensor, *, fake: Tensor, cfg: TrainConfig, labels: Tensor | None = None
) -> Tensor:
    """One D update on (real, fake); returns detached [loss_d, D(x), D(G(z))] means.

    D(x) and D(G(z)) are read from D's own logits, also under ``train.sigmoid_before_bce``.

    ``labels`` (conditional models only) are the classes of both the real and fake batch.
    """
    fake = fake.detach()  # D's update must not reach into G's graph
    discriminator = gan.train_modules[1]
    policy = parse_policy(cfg.diffaugment)
    lazy_due = gan.d_updates % cfg.r1_every == 0
    r1_due, r2_due = cfg.r1_gamma > 0 and lazy_due, cfg.r2_gamma > 0 and lazy_due
    if r1_due:  # the penalty differentiates D(x) with respect to the real images x
        real = real.detach().requires_grad_(True)
    if r2_due:  # and R2 D(G(z)) with respect to the generated ones (G is not reached)
        fake = fake.requires_grad_(True)
    with forward_precision(gan, real.device):
        if gan.d_rows_independent:  # one forward (and backward) pass instead of two
            both = None if labels is None else torch.cat([labels, labels])
            logits = _full(discriminator(diff_augment(torch.cat([real, fake]), policy), both))
            real_logits, fake_logits = logits.split(len(real))
        else:
            real_logits = _full(discriminator(diff_augment(real, policy), labels))
            fake_logits = _full(discriminator(diff_augment(fake, policy), labels))
        loss = discriminator_loss(
            cfg.loss, loss_input(real_logits, cfg), loss_input(fake_logits, cfg), cfg.real_label
        )
    if r1_due:  # lazy: every r1_every-th step, scaled by the interval (StyleGAN2)
        weight = cfg.r1_gamma / 2 * cfg.r1_every
        loss = loss + weight * r1_penalty(real_logits, real)
    if r2_due:  # R2 is R1's penalty taken on the generated images (R3GAN)
        weight = cfg.r2_gamma / 2 * cfg.r1_every
        loss = loss + weight * r1_penalty(fake_logits, fake)
    gan.d_updates += 1
    if cfg.loss == "wgan_gp" and cfg.gp_weight > 0:

        def critic(images: Tensor) -> Tensor:
            # Only the forward pass in bf16: the penalty's autograd.grad runs outside
            # autocast, as PyTorch's AMP gradient-penalty recipe does.
            with forward_precision(gan, images.device):
                return _full(discriminator(images, labels))

        loss = loss + cfg.gp_weight * gradient_penalty(critic, real, fake)
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


def _d_features(gan: GAN, images: Tensor, labels: Tensor | None) -> Tensor:
    """D's intermediate features f(x) (every ganops discriminator has ``features``)."""
    features: Callable[[Tensor, Tensor | None], Tensor] = gan.discriminator.features  # type: ignore[assignment]
    return _full(features(images, labels))


def generator_step(
    gan: GAN,
    fake: Tensor,
    *,
    cfg: TrainConfig,
    labels: Tensor | None = None,
    real: Tensor | None = None,
) -> Tensor:
    """One G update through the (just updated) D on ``fake``; returns the detached loss.

    ``real`` (the D step's batch) is needed by ``train.loss: feature_matching`` only.
    D is called unwrapped even under DDP: it is frozen here, so it has no gradients to share.
    """
    gan.discriminator.requires_grad_(False)  # no D parameter gradients in the G step
    policy = parse_policy(cfg.diffaugment)
    try:
        with forward_precision(gan, fake.device):
            augmented = diff_augment(fake, policy)
            if cfg.loss == "feature_matching":
                if real is None:
                    raise ValueError("feature matching needs the real batch")
                with torch.no_grad():
                    target = _d_features(gan, diff_augment(real, policy), labels)
                matched = _d_features(gan, augmented, labels)
                loss = feature_matching_loss(target, matched, mean=global_mean)
            else:
                logits = _full(gan.discriminator(augmented, labels))
                loss = generator_loss(cfg.loss, loss_input(logits, cfg))
    finally:
        gan.discriminator.requires_grad_(True)
    gan.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    _clip_grad(gan.generator, cfg)
    gan.opt_g.step()
    return loss.detach()


def train_iteration(
    gan: GAN,
    real: Tensor,
    *,
    z: Tensor,
    cfg: TrainConfig,
    update_generator: bool,
    labels: Tensor | None = None,
    update_ema: bool = True,
) -> Tensor:
    """One iteration: a D step, then a G step (and the EMA update) if ``update_generator``.

    The fake batch is generated once and reused by the G step, as in the classic PyTorch
    DCGAN loop, which saves a generator forward pass per iteration; ``train.g_resample``
    gives the G step its own batch from fresh noise (of the same classes), as the PyTorch
    MLP tutorial and Keras' stacked-model loops do. A conditional GAN
    generates fakes of the real batch's classes (``labels``), so both halves of D's batch
    share one class distribution.
    ``update_ema=False`` leaves the EMA to the caller (``ganops.training.cuda_graphs``: its update reads a
    counter on the host, which a CUDA graph cannot capture).
    Returns device tensor [loss_d, loss_g (0 if no G step), D(x), D(G(z))].
    """
    generator = gan.train_modules[0]
    reuse = update_generator and not cfg.g_resample
    with torch.set_grad_enabled(reuse), forward_precision(gan, z.device):
        fake = generator(z, labels)
    d_stats = discriminator_step(gan, real, fake=fake, cfg=cfg, labels=labels)
    if update_generator and cfg.g_resample:  # the second forward pass, on new noise
        with forward_precision(gan, z.device):
            fake = generator(torch.randn_like(z), labels)
    loss_g = (
        generator_step(gan, fake, cfg=cfg, labels=labels, real=real)
        if update_generator
        else torch.zeros_like(d_stats[0])
    )
    if update_generator and update_ema and gan.ema is not None:
        gan.ema.update_parameters(gan.generator)
    return torch.stack([d_stats[0], loss_g, d_stats[1], d_stats[2]])
