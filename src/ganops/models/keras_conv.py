"""The convolutional pair of the Keras GAN-maths tutorial (issue 20, recipe 2), with its widths
scaled by ``model.dcgan_channels`` (64 = the tutorial's 128/64).

The tutorial's images are in [0, 1] and its generator ends in a sigmoid; the pipeline's are
in [-1, 1]. So G's output is ``2 * sigmoid(a) - 1`` (= tanh(a / 2)) and D reads every image,
real or generated, as ``(x + 1) / 2``: D sees exactly the tutorial's [0, 1] images (black
background 0, zero padding black), and D(G(z)) is the tutorial's composite, so the same init
and optimizer follow the same dynamics. (Feeding D the [-1, 1] images instead is an affine
change its first convolution could absorb, but not at init: a background of -1 instead of 0
adds a large constant input to every first-layer unit.)
Keras' defaults carried over: 'same' padding, biases on (``model.g_bias``), glorot-uniform
kernels (``glorot_init``); no BatchNorm, no dropout.
"""

from __future__ import annotations

import torch
from torch import nn

from ganops.config import ModelConfig
from ganops.models.classic import (
    NUM_CLASSES,
    HeadedDiscriminator,
    one_hot_labels,
    with_labels,
)
from ganops.models.tf_dcgan import keras_conv_transpose, keras_discriminator_net


class KerasConvGenerator(nn.Module):
    """z -> dense 2c ReLU -> dense 7x7x2c ReLU -> ConvT 2c s1 ReLU -> ConvT c s2 ReLU ->
    ConvT 1 s2 -> 2 * sigmoid - 1 (5x5 kernels). The tutorial names no activation after the
    second dense layer and the hidden ConvTs; ReLU, its first layer's, is assumed."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, bias = cfg.dcgan_channels, cfg.g_bias
        self.width, self.conditional = 2 * c, cfg.conditional
        self.project = nn.Sequential(
            nn.Linear(cfg.latent_dim + NUM_CLASSES * cfg.conditional, 2 * c, bias=bias),
            nn.ReLU(),  # (B, 2c)
            nn.Linear(2 * c, 7 * 7 * self.width, bias=bias),
            nn.ReLU(),  # (B, 7*7*2c)
        )
        self.net = nn.Sequential(
            keras_conv_transpose(self.width, 2 * c, stride=1, bias=bias),
            nn.ReLU(),  # (B, 2c, 7, 7)
            keras_conv_transpose(2 * c, c, stride=2, bias=bias),
            nn.ReLU(),  # (B, c, 14, 14)
            keras_conv_transpose(c, 1, stride=2, bias=bias),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_labels(z, one_hot_labels(labels, self.conditional))
        pre = self.net(self.project(z).view(-1, self.width, 7, 7))  # (B, 2c, 7, 7) in
        return 2 * torch.sigmoid(pre) - 1  # the tutorial's [0, 1] sigmoid, mapped to [-1, 1]


class KerasConvDiscriminator(HeadedDiscriminator):
    """images -> conv c 5x5 s2 -> LeakyReLU -> conv 2c 5x5 s2 -> LeakyReLU -> dense logit
    (``model.leaky_slope``: the tutorial's 0.2)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conditional = cfg.conditional
        self.net = keras_discriminator_net(cfg, slope=cfg.leaky_slope, dropout=None)

    def inputs(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The tutorial's [0, 1] images, (x + 1) / 2 of the pipeline's, with any label planes."""
        return super().inputs((images + 1) / 2, labels)
