"""The classic GAN training loop of the PyTorch/Keras tutorials, kept as a yardstick.

It lives in ``benchmarks/``, outside the installed package: nothing in the pipeline trains
with it. It exists so that ``benchmarks/bench_train.py`` can time ganops' loop
(``ganops.training.step``) against the loop most people write first, and so that
``tests/unit/test_fast_path.py`` can check that ganops' fast path computes the same update as
the plain one. It is written the way the tutorials write it (pytorch/examples ``dcgan``,
PyTorch-GAN ``gan.py``), on purpose:

- a ``Dataset`` of raw uint8 images, each turned into a PIL image and passed through
  ``ToTensor()`` + ``Normalize((0.5,), (0.5,))`` one at a time, batched by a shuffling
  ``DataLoader`` (``drop_last=True``: ``floor(N / B)`` batches per epoch, like ganops);
- ``nn.Sigmoid()`` appended to the discriminator and ``nn.BCELoss`` against label tensors
  built every step;
- noise drawn on the CPU and copied to the device;
- separate backward passes for D on real and on fake images, then the G step on the same fake
  batch through the whole discriminator (its parameter gradients are computed and discarded);
- ``.item()`` on both losses every step, which waits for the device each time;
- ``torch.nn.Dropout`` layers (ganops' own draw their masks more cheaply on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ganops.config import TrainConfig
from ganops.models import Dropout

FAKE_LABEL = 0.0


class RawMNIST(Dataset[tuple[Tensor, int]]):
    """uint8 images (N, 28, 28) and labels, transformed per image as torchvision's MNIST does."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.images = images
        self.labels = labels if labels is not None else np.zeros(len(images), dtype=np.int64)
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        # torchvision.datasets.MNIST hands the transform a PIL image; so do we. A 2-D uint8
        # array becomes a mode "L" image (Pillow deprecated passing ``mode``).
        image = Image.fromarray(self.images[index])
        return self.transform(image), int(self.labels[index])  # (1, 28, 28) in [-1, 1]


def classic_loader(
    images: np.ndarray,
    batch_size: int,
    *,
    labels: np.ndarray | None = None,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader[tuple[Tensor, int]]:
    """The tutorials' ``DataLoader``: shuffled each epoch, last partial batch dropped."""
    return DataLoader(
        RawMNIST(images, labels),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )


@dataclass
class ClassicGAN:
    """The tutorial's objects: D ends in a Sigmoid, one ``BCELoss`` for both networks."""

    generator: nn.Module
    discriminator: nn.Module  # outputs probabilities in (0, 1)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    criterion: nn.BCELoss

    @property
    def logits_discriminator(self) -> nn.Module:
        """ganops' discriminator inside the Sigmoid wrapper (the same parameters)."""
        return cast(nn.Sequential, self.discriminator)[0]


def build_classic_gan(
    generator: nn.Module, discriminator: nn.Module, cfg: TrainConfig, device: torch.device
) -> ClassicGAN:
    """Wrap ganops' modules (``discriminator`` returns logits) the tutorial way, on ``device``."""
    generator = generator.to(device)
    _use_torch_dropout(discriminator)
    discriminator = nn.Sequential(discriminator, nn.Sigmoid()).to(device)
    return ClassicGAN(
        generator=generator,
        discriminator=discriminator,
        # Default Adam (no ``fused``): what the tutorials construct.
        opt_g=torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2)),
        opt_d=torch.optim.Adam(
            discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2)
        ),
        criterion=nn.BCELoss(),
    )


def _use_torch_dropout(module: nn.Module) -> None:
    """Swap ganops' ``Dropout`` layers for the ``nn.Dropout`` the tutorials use (in place)."""
    for name, child in module.named_children():
        if isinstance(child, Dropout):
            setattr(module, name, nn.Dropout(child.p))
        else:
            _use_torch_dropout(child)


@dataclass(frozen=True)
class ReferenceStats:
    loss_d: float
    loss_g: float


def reference_step(
    gan: ClassicGAN, real: Tensor, z: Tensor, real_label: float = 1.0
) -> ReferenceStats:
    """One D update then one G update on ``real`` and ``z``, the plain way.

    The objective is ganops' ``non_saturating`` loss: D minimises
    BCE(D(x), real_label) + BCE(D(G(z)), 0) and G minimises BCE(D(G(z)), 1).
    Dropout draws its masks in the order D(real), D(fake), D(fake) again for G, which is
    the order ``ganops.training.step.train_iteration`` uses too.
    """
    batch = real.size(0)
    # (1) D: maximise log D(x) + log(1 - D(G(z))), one backward pass per term.
    gan.discriminator.zero_grad()
    label = torch.full((batch,), real_label, dtype=real.dtype, device=real.device)
    loss_d_real = gan.criterion(gan.discriminator(real).view(-1), label)
    loss_d_real.backward()
    fake = gan.generator(z)
    label.fill_(FAKE_LABEL)
    loss_d_fake = gan.criterion(gan.discriminator(fake.detach()).view(-1), label)
    loss_d_fake.backward()
    gan.opt_d.step()
    # (2) G: maximise log D(G(z)) on the same fake batch, through the updated D.
    gan.generator.zero_grad()
    label = torch.full((batch,), 1.0, dtype=real.dtype, device=real.device)
    loss_g = gan.criterion(gan.discriminator(fake).view(-1), label)
    loss_g.backward()
    gan.opt_g.step()
    return ReferenceStats(loss_d=(loss_d_real + loss_d_fake).item(), loss_g=loss_g.item())


def classic_fit(
    gan: ClassicGAN,
    loader: DataLoader[tuple[Tensor, int]],
    *,
    epochs: int,
    latent_dim: int,
    real_label: float = 1.0,
    on_step: Callable[[ReferenceStats], None] = lambda stats: None,
) -> list[ReferenceStats]:
    """The tutorial loop: ``epochs`` passes over ``loader``, one D and one G update per batch.

    Only the tutorials' setting exists here: the ``non_saturating`` objective, ``d_steps=1``.
    """
    device = next(gan.generator.parameters()).device
    history: list[ReferenceStats] = []
    for _ in range(epochs):
        for real_cpu, _labels in loader:
            real = real_cpu.to(device)
            z = torch.randn(real.size(0), latent_dim).to(device)  # drawn on the CPU, then copied
            stats = reference_step(gan, real, z, real_label)
            history.append(stats)
            on_step(stats)
    return history
