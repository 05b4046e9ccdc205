"""Drawing images from a generator: a grid's worth at once, or many in batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn


def sample_images(generator: nn.Module, z: Tensor, *, labels: Tensor | None = None) -> Tensor:
    """Generate in eval mode (BatchNorm running statistics, no dropout), then restore."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            return generator(z, labels)  # type: ignore[no-any-return]
    finally:
        generator.train(was_training)


def generated_batches(
    generator: nn.Module,
    latent_dim: int,
    *,
    total: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    classes: Tensor | None = None,
) -> Iterator[Tensor]:
    """``total`` images from ``generator`` (on ``device``, in eval mode) in batches,
    reproducible from ``seed``; of the given ``classes`` (one per image) for a conditional
    generator. One batch at a time: nothing holds all of them."""
    rng = torch.Generator(device=device).manual_seed(seed)
    for start in range(0, total, batch_size):
        n = min(batch_size, total - start)
        z = torch.randn(n, latent_dim, device=device, generator=rng)
        labels = None if classes is None else classes[start : start + n].to(device)
        yield sample_images(generator, z, labels=labels)
