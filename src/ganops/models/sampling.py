"""Drawing images from a generator: a grid's worth at once, or many in batches."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from ganops.errors import CheckpointError


class NonFiniteSamples(CheckpointError):
    """A generator computed NaN or inf: its images would be black (NaN) or saturated
    (tanh of inf), never the pictures it was trained to draw."""


def sample_images(
    generator: nn.Module, z: Tensor, *, labels: Tensor | None = None, checked: bool = False
) -> Tensor:
    """Generate in eval mode (BatchNorm running statistics, no dropout), then restore.

    ``checked``: raise ``NonFiniteSamples`` if any layer's output holds NaN or inf, so
    weights that overflow (near the float limit) or a negative BatchNorm variance never
    pass for images, also where a final tanh turns the infinities into finite +-1.
    """
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode(), _finite_layers(generator, enabled=checked):
            return generator(z, labels)  # type: ignore[no-any-return]
    finally:
        generator.train(was_training)


@contextlib.contextmanager
def _finite_layers(generator: nn.Module, *, enabled: bool) -> Iterator[None]:
    """Watch every layer's output; one device-side flag, read once at the end (a read per
    layer would synchronise a GPU at every layer)."""
    if not enabled:
        yield
        return
    names: list[str] = []
    flags: list[Tensor] = []  # per layer call: True where its output is not all finite

    def watch(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, Tensor) and output.is_floating_point():
                names.append(name or "its output")
                flags.append(~torch.isfinite(output).all())

        return hook

    handles = [
        module.register_forward_hook(watch(name)) for name, module in generator.named_modules()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
    bad = torch.stack(flags) if flags else torch.zeros(1, dtype=torch.bool)
    if bool(bad.any()):
        first = names[int(bad.int().argmax())]
        raise NonFiniteSamples(f"the generator computes NaN or inf values (first in {first})")


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
    generator. One batch at a time: nothing holds all of them. A generator that computes NaN
    or inf raises ``NonFiniteSamples`` (see ``sample_images``)."""
    rng = torch.Generator(device=device).manual_seed(seed)
    for start in range(0, total, batch_size):
        n = min(batch_size, total - start)
        z = torch.randn(n, latent_dim, device=device, generator=rng)
        labels = None if classes is None else classes[start : start + n].to(device)
        yield sample_images(generator, z, labels=labels, checked=True)
