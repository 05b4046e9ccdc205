"""The training loop: schedule, logging, checkpoints and resume. No files, no MLflow here:
those arrive through ``TrainLogger`` and the ``on_checkpoint`` callback.

Vocabulary used in logs and plots:
- a *step* is one iteration on one real batch: one discriminator update. Every
  ``d_steps``-th step also updates the generator (Goodfellow et al. 2014, Algorithm 1,
  k = ``d_steps``).
- an *epoch* is one random permutation of the training set cut into
  ``floor(N / batch_size)`` batches, so ``total steps = batches_per_epoch * epochs``. With
  ``train.batch_sampling: random`` each batch is drawn with replacement instead (the Keras
  tutorials' loops); an epoch is then just ``floor(N / batch_size)`` such batches.

Speed on small models is overhead, not arithmetic: the training set stays on the device,
batch indices and noise are drawn there, and the host synchronises only once per log
interval (statistics are summed on the device in between). On a single GPU each iteration
is replayed from a CUDA graph (``ganops.training.cuda_graphs``, ``train.cuda_graph``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ganops.config import TrainConfig
from ganops.devices import resolve_precision
from ganops.errors import CheckpointError, GanopsError, Interrupted, warn
from ganops.models.sampling import sample_images
from ganops.training.cuda_graphs import GraphedIteration, set_capturable, use_cuda_graph
from ganops.training.distributed import Replicas
from ganops.training.step import GAN, set_learning_rates, train_iteration, varies_learning_rate

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


def batches_per_epoch(num_images: int, batch_size: int) -> int:
    if num_images < batch_size:
        raise GanopsError(
            f"train.batch_size {batch_size} is larger than the training set "
            f"({num_images} images); lower it or use more data"
        )
    return num_images // batch_size


@dataclass
class LoopState:
    """Where the loop stands; saved in checkpoints so a resumed run continues exactly."""

    step: int = 0  # steps completed
    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of this epoch completed
    order: Tensor | None = None  # this epoch's permutation, drawn at its start (or None)
    rng_state: Tensor | None = None  # the loop's generator (batch order, noise)
    sums: Tensor | None = None  # statistics summed since the last log line
    iterations: int = 0
    g_updates: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    quality: list[dict[str, float]] = field(default_factory=list)  # per scored epoch

    def state_dict(self) -> dict[str, Any]:
        tensors = {k: getattr(self, k) for k in ("order", "rng_state", "sums")}
        return {
            **{k: v.cpu() if v is not None else None for k, v in tensors.items()},
            **{k: getattr(self, k) for k in ("step", "epoch", "batch", "iterations")},
            "g_updates": self.g_updates,
            "history": list(self.history),
            "quality": list(self.quality),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> LoopState:
        """The state ``state_dict`` wrote; entries it never writes (a crafted or foreign
        checkpoint) are one ``CheckpointError``, not a TypeError."""
        unknown = sorted(str(key) for key in set(state) - {f.name for f in fields(cls)})
        if unknown:
            raise CheckpointError(
                f"the checkpoint's loop state holds entries this ganops never writes "
                f"({', '.join(unknown[:5])}); run `ganops train --fresh` to start over"
            )
        return cls(**state)


def _read_interval(state: LoopState, replicas: Replicas) -> dict[str, float]:
    """The one host synchronisation per log interval (averaged over the processes under
    torchrun); stops training on non-finite losses. An interval without a generator update
    (``log_every`` below ``d_steps``, or the last short interval) has no G loss: NaN, which
    the CSV, MLflow and the curves show as a gap, never a made-up 0."""
    assert state.sums is not None
    loss_d, loss_g, d_real, d_fake = replicas.mean(state.sums).tolist()
    n = state.iterations
    stats = {
        "loss_d": loss_d / n,
        "loss_g": loss_g / state.g_updates if state.g_updates else math.nan,
        "d_real": d_real / n,
        "d_fake": d_fake / n,
    }
    measured = {name: value for name, value in stats.items() if name != "loss_g" or state.g_updates}
    _stop_if_diverged([name for name, value in measured.items() if not math.isfinite(value)], state)
    state.sums.zero_()
    state.iterations = state.g_updates = 0
    return stats


def _stop_if_diverged(bad: list[str], state: LoopState) -> None:
    if bad:
        raise GanopsError(
            f"training diverged: {', '.join(bad)} not finite at step {state.step}; the last "
            "good checkpoint is kept. Lower train.lr_g/train.lr_d or change train.loss"
        )


def _restore_rng(rng: torch.Generator, state: LoopState, cfg: TrainConfig) -> None:
    """Continue the loop's random stream (batch order, noise) from a checkpoint. A CPU and a
    CUDA generator keep different states, so a run resumed on the other kind of device
    (``train.device`` may change on resume) reseeds from (seed, step) instead, and says so:
    the run goes on, but its later batches and noise are not those an uninterrupted run on
    one device would have drawn."""
    assert state.rng_state is not None
    try:
        rng.set_state(state.rng_state.cpu())
    except RuntimeError:
        rng.manual_seed(hash((cfg.seed, state.step)) % 2**63)
        warn(
            f"the checkpoint's random state is not a {rng.device.type} generator's "
            f"(it was saved on another kind of device); the loop's random stream restarts "
            f"from seed {cfg.seed} and step {state.step}"
        )


def batch_indices(
    state: LoopState, cfg: TrainConfig, *, num_images: int, rng: torch.Generator
) -> Tensor:
    """The images of the next batch (batch_size,): the next slice of this epoch's permutation,
    or under ``train.batch_sampling: random`` indices drawn uniformly with replacement."""
    if cfg.batch_sampling == "random":
        return torch.randint(num_images, (cfg.batch_size,), device=rng.device, generator=rng)
    if state.order is None:
        state.order = torch.randperm(num_images, device=rng.device, generator=rng)
    state.order = state.order.to(rng.device)
    start = state.batch * cfg.batch_size
    return state.order[start : start + cfg.batch_size]


@dataclass
class Hooks:
    """What the loop calls out to; every hook is optional."""

    logger: TrainLogger = field(default_factory=NullLogger)
    on_step: Callable[[str], None] = lambda postfix: None  # progress bar
    on_checkpoint: Callable[[LoopState], None] = lambda state: None
    should_stop: Callable[[], bool] = lambda: False  # set by a signal handler
    # Sample-quality metrics of the generator at the end of an epoch ({}: not this epoch).
    evaluate_epoch: Callable[[nn.Module, int], dict[str, float]] = lambda generator, epoch: {}


Iteration = Callable[[Tensor, Tensor, bool, Tensor | None], Tensor]


def iteration_for(
    gan: GAN, cfg: TrainConfig, *, device: torch.device, replicas: Replicas
) -> Iteration:
    """One training iteration (real, z, update_generator, labels) -> stats: replayed from
    CUDA graphs where ``train.cuda_graph`` allows it, else eager ``train_iteration``."""
    if use_cuda_graph(cfg, device, replicas=replicas):
        return GraphedIteration(gan, cfg)
    for optimizer in (gan.opt_g, gan.opt_d):  # a graphed run's checkpoint may have set it
        set_capturable(optimizer, False)

    def eager(real: Tensor, z: Tensor, update_generator: bool, labels: Tensor | None) -> Tensor:
        return train_iteration(
            gan, real, z=z, cfg=cfg, update_generator=update_generator, labels=labels
        )

    return eager


def fit(
    gan: GAN,
    images: Tensor,
    *,
    cfg: TrainConfig,
    latent_dim: int,
    fixed_noise: Tensor,
    labels: Tensor | None = None,
    fixed_labels: Tensor | None = None,
    hooks: Hooks | None = None,
    state: LoopState | None = None,
    replicas: Replicas | None = None,
) -> LoopState:
    """Train ``gan`` on ``images`` (N, 1, 28, 28), already on the device, from ``state``.

    ``labels`` (N,) and ``fixed_labels`` (for the sample grid) only for conditional models.
    Under torchrun (``replicas``), every process draws the same permutation and noise and
    trains on its own slice of each global batch of ``cfg.batch_size``.
    """
    hooks, state, replicas = hooks or Hooks(), state or LoopState(), replicas or Replicas()
    shard = replicas.shard(cfg.batch_size)
    device, per_epoch = images.device, batches_per_epoch(len(images), cfg.batch_size)
    # This cfg's train.precision ('auto' resolved for the device) is what the forward passes
    # run in, whatever the GAN was built with; the GAN's checkpoints record it.
    gan.precision = resolve_precision(cfg.precision, device)[0]
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    if state.rng_state is not None:
        _restore_rng(rng, state, cfg)
    state.sums = torch.zeros(4, device=device) if state.sums is None else state.sums.to(device)
    iterate = iteration_for(gan, cfg, device=device, replicas=replicas)
    total_steps = per_epoch * cfg.epochs
    postfix = ""
    while state.epoch <= cfg.epochs:
        while state.batch < per_epoch:
            index = batch_indices(state, cfg, num_images=len(images), rng=rng)[shard]
            real, y = images[index], None if labels is None else labels[index]
            z = torch.randn(cfg.batch_size, latent_dim, device=device, generator=rng)[shard]
            update_generator = (state.step + 1) % cfg.d_steps == 0
            if varies_learning_rate(cfg):
                set_learning_rates(gan, cfg, step=state.step, total_steps=total_steps)
            state.sums += iterate(real, z, update_generator, y)
            state.step, state.batch = state.step + 1, state.batch + 1
            state.iterations += 1
            state.g_updates += update_generator
            if state.step % cfg.log_every == 0 or state.step == total_steps:
                stats = _read_interval(state, replicas)
                state.history.append({"step": state.step, "epoch": state.epoch, **stats})
                hooks.logger.log_stats(stats, step=state.step, epoch=state.epoch)
                postfix = f"epoch {state.epoch}/{cfg.epochs} " + " ".join(
                    f"{k}={v:.3f}" for k, v in stats.items()
                )
            hooks.on_step(postfix)
            stop = hooks.should_stop()
            if replicas.distributed:  # all ranks agree on the step; one collective per interval
                stop = state.step % cfg.log_every == 0 and replicas.any(stop, device)
            if stop or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0):
                # Never save a diverged state, whatever log_every is (one sync per checkpoint).
                finite = torch.isfinite(replicas.mean(state.sums)).tolist()
                _stop_if_diverged(
                    [n for n, ok in zip(STAT_NAMES, finite, strict=True) if not ok], state
                )
                state.rng_state = rng.get_state()
                hooks.on_checkpoint(state)
            if stop:
                raise Interrupted(f"interrupted at step {state.step}; checkpoint saved")
        grid = sample_images(gan.sampler, fixed_noise, labels=fixed_labels)
        hooks.logger.log_samples(grid, epoch=state.epoch)
        quality = hooks.evaluate_epoch(gan.sampler, state.epoch)
        if quality:
            state.quality.append({"step": state.step, "epoch": state.epoch, **quality})
            named = {f"epoch/{name}": value for name, value in quality.items()}
            hooks.logger.log_stats(named, step=state.step, epoch=state.epoch)
        state.epoch, state.batch, state.order = state.epoch + 1, 0, None
    state.rng_state = rng.get_state()
    return state
