"""A small residual pair in the SNGAN/BigGAN style (Miyato et al. 2018; Brock et al. 2019),
sized for 28x28: G grows 7 -> 14 -> 28 with upsampling blocks, D shrinks 28 -> 14 -> 7.

``model.res_channels`` is the width of every block, ``model.res_blocks`` the number of blocks
per resolution stage (the first of each stage resamples). Spectral norm (``model.spectral_norm``)
wraps every D layer, as in SNGAN.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ganops.config import ModelConfig
from ganops.models.classic import (
    NUM_CLASSES,
    maybe_spectral_norm,
    one_hot_labels,
    with_label_planes,
    with_labels,
)


class UpBlock(nn.Module):
    """BN-ReLU-(up)-conv3-BN-ReLU-conv3 plus a (up-)conv1 shortcut: (B, C, H, W) -> 2H if up."""

    def __init__(self, channels: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1, self.norm2 = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.shortcut = nn.Conv2d(channels, channels, 1) if upsample else nn.Identity()

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self._up(F.relu(self.norm1(x))))
        h = self.conv2(F.relu(self.norm2(h)))
        return h + self.shortcut(self._up(x))


class DownBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-(avgpool) plus a conv1-(avgpool) shortcut; the first block of
    D takes the raw image, so it starts with the conv (SNGAN's "optimized" block)."""

    def __init__(
        self, in_channels: int, channels: int, *, downsample: bool, first: bool, sn: bool
    ) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = maybe_spectral_norm(nn.Conv2d(in_channels, channels, 3, padding=1), sn)
        self.conv2 = maybe_spectral_norm(nn.Conv2d(channels, channels, 3, padding=1), sn)
        learnable = downsample or in_channels != channels
        self.shortcut = (
            maybe_spectral_norm(nn.Conv2d(in_channels, channels, 1), sn)
            if learnable
            else nn.Identity()
        )

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._down(self.conv2(F.relu(h)))
        if self.first:  # shortcut pools first: the same result, 4x fewer 1x1 MACs
            return h + self.shortcut(self._down(x))
        return h + self._down(self.shortcut(x))


class ResNetGenerator(nn.Module):
    """z -> dense 7x7xC -> blocks at 7 -> up 14 -> up 28 -> BN-ReLU-conv3 -> tanh."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, n = cfg.res_channels, cfg.res_blocks
        self.width, self.conditional = c, cfg.conditional
        self.project = nn.Linear(cfg.latent_dim + NUM_CLASSES * cfg.conditional, 7 * 7 * c)
        blocks = [UpBlock(c, upsample=False) for _ in range(n - 1)]  # (B, C, 7, 7)
        for _ in range(2):  # (B, C, 14, 14), then (B, C, 28, 28)
            blocks += [UpBlock(c, upsample=True)] + [
                UpBlock(c, upsample=False) for _ in range(n - 1)
            ]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Sequential(
            nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 1, 3, padding=1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_labels(z, one_hot_labels(labels, self.conditional))
        h = self.project(z).view(-1, self.width, 7, 7)  # (B, C, 7, 7)
        return self.out(self.blocks(h))  # (B, 1, 28, 28)


class ResNetDiscriminator(nn.Module):
    """images -> down 14 -> down 7 -> blocks at 7 -> ReLU -> sum over space -> linear logit."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, n, sn = cfg.res_channels, cfg.res_blocks, cfg.spectral_norm
        self.conditional = cfg.conditional
        in_channels = 1 + NUM_CLASSES * cfg.conditional
        blocks = [DownBlock(in_channels, c, downsample=True, first=True, sn=sn)]  # (B, C, 14, 14)
        blocks += [DownBlock(c, c, downsample=False, first=False, sn=sn) for _ in range(n - 1)]
        blocks += [DownBlock(c, c, downsample=True, first=False, sn=sn)]  # (B, C, 7, 7)
        blocks += [DownBlock(c, c, downsample=False, first=False, sn=sn) for _ in range(n - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = maybe_spectral_norm(nn.Linear(c, 1), sn)

    def features(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """ReLU'd last block summed over space (B, C): feature matching's f(x)."""
        h = self.blocks(with_label_planes(images, labels, self.conditional))
        return F.relu(h).sum(dim=(2, 3))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(self.features(images, labels)).squeeze(1)  # (B, C) -> (B,)
