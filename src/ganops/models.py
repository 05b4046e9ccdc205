"""Generators and discriminators. Discriminators return raw logits (no Sigmoid): every loss
in ``ganops.losses`` is computed from logits, which is numerically stable."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganops.config import ModelConfig

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = 28 * 28


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(layer) if enabled else layer


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, 1, 28, 28) in [-1, 1]: Linear+LeakyReLU(0.2) stack, tanh."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.latent_dim
        for hidden in cfg.g_hidden:
            layers.append(nn.Linear(width, hidden))
            if cfg.g_batchnorm:
                # Keyword, never positional: BatchNorm1d's second positional argument is eps.
                layers.append(nn.BatchNorm1d(hidden, momentum=cfg.bn_momentum))
            layers.append(nn.LeakyReLU(0.2))
            width = hidden
        layers += [nn.Linear(width, IMAGE_SIZE), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)


class MLPDiscriminator(nn.Module):
    """images (B, 1, 28, 28) -> logits (B,): Linear+LeakyReLU(0.2)+Dropout stack."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = IMAGE_SIZE
        for hidden in cfg.d_hidden:
            layers += [_maybe_sn(nn.Linear(width, hidden), cfg.spectral_norm), nn.LeakyReLU(0.2)]
            if cfg.d_dropout > 0:
                layers.append(nn.Dropout(cfg.d_dropout))
            width = hidden
        layers.append(_maybe_sn(nn.Linear(width, 1), cfg.spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.flatten(1)).squeeze(1)  # (B,)


class DCGANGenerator(nn.Module):
    """z -> dense 7x7x(2c) -> ConvTranspose 14x14x(c) -> ConvTranspose 28x28x1, tanh."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.dcgan_channels
        self.width = 2 * c
        self.project = nn.Sequential(
            nn.Linear(cfg.latent_dim, self.width * 7 * 7, bias=False),
            nn.BatchNorm1d(self.width * 7 * 7, momentum=0.1),
            nn.ReLU(),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(self.width, c, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c, momentum=0.1),
            nn.ReLU(),  # (B, c, 14, 14)
            nn.ConvTranspose2d(c, 1, kernel_size=4, stride=2, padding=1),
            nn.Tanh(),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, self.width, 7, 7))  # (B, 2c, 7, 7) in


class DCGANDiscriminator(nn.Module):
    """images -> strided convs 28 -> 14 -> 7 with LeakyReLU(0.2) -> linear logit."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, sn = cfg.dcgan_channels, cfg.spectral_norm
        self.net = nn.Sequential(
            _maybe_sn(nn.Conv2d(1, c, kernel_size=4, stride=2, padding=1), sn),
            nn.LeakyReLU(0.2),  # (B, c, 14, 14)
            _maybe_sn(nn.Conv2d(c, 2 * c, kernel_size=4, stride=2, padding=1), sn),
            nn.LeakyReLU(0.2),  # (B, 2c, 7, 7)
            nn.Flatten(),
            _maybe_sn(nn.Linear(2 * c * 7 * 7, 1), sn),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).squeeze(1)  # (B,)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN paper init: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02) and bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        # Under spectral norm, ``weight`` is computed; initialise the stored original instead.
        weight: torch.Tensor = module.weight  # type: ignore[assignment]
        if parametrize.is_parametrized(module, "weight"):
            weight = module.parametrizations.weight.original  # type: ignore[union-attr,assignment]
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for ``cfg.arch``, freshly initialised on the CPU."""
    if cfg.arch == "mlp":
        return MLPGenerator(cfg), MLPDiscriminator(cfg)
    generator, discriminator = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    generator.apply(dcgan_init)
    discriminator.apply(dcgan_init)
    return generator, discriminator
