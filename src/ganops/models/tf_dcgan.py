"""The TensorFlow DCGAN tutorial's pair (tensorflow.org/tutorials/generative/dcgan), layer for
layer, with its widths scaled by ``model.dcgan_channels`` (64 = the tutorial's 256/128/64).

Keras defaults carried over: LeakyReLU slope 0.3, BatchNormalization momentum 0.99 (PyTorch
momentum 0.01) and epsilon 1e-3, 'same' padding, glorot-uniform kernels (``glorot_init``).
"""

from __future__ import annotations

import torch
from torch import nn

from ganops.config import ModelConfig
from ganops.models.classic import (
    NUM_CLASSES,
    HeadedDiscriminator,
    maybe_spectral_norm,
    one_hot_labels,
    with_labels,
)

KERAS_LEAKY_SLOPE = 0.3  # tf.keras.layers.LeakyReLU() default alpha


def _keras_bn(channels: int, dims: int = 2) -> nn.Module:
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return norm(channels, momentum=0.01, eps=1e-3)


def keras_conv_transpose(
    in_channels: int, out_channels: int, stride: int, *, bias: bool = False
) -> nn.ConvTranspose2d:
    """Conv2DTranspose(kernel 5, padding='same', use_bias=bias): H -> H * stride."""
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size=5,
        stride=stride,
        padding=2,
        output_padding=stride - 1,
        bias=bias,
    )


class TFDCGANGenerator(nn.Module):
    """z -> Dense 7x7x4c + BN + LeakyReLU -> ConvT 2c s1 -> ConvT c s2 -> ConvT 1 s2, tanh."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.dcgan_channels
        self.width, self.conditional = 4 * c, cfg.conditional
        self.project = nn.Sequential(
            nn.Linear(
                cfg.latent_dim + NUM_CLASSES * cfg.conditional, 7 * 7 * self.width, bias=False
            ),
            _keras_bn(7 * 7 * self.width, dims=1),
            nn.LeakyReLU(KERAS_LEAKY_SLOPE),
        )
        self.net = nn.Sequential(
            keras_conv_transpose(self.width, 2 * c, stride=1),
            _keras_bn(2 * c),
            nn.LeakyReLU(KERAS_LEAKY_SLOPE),  # (B, 2c, 7, 7)
            keras_conv_transpose(2 * c, c, stride=2),
            _keras_bn(c),
            nn.LeakyReLU(KERAS_LEAKY_SLOPE),  # (B, c, 14, 14)
            keras_conv_transpose(c, 1, stride=2),
            nn.Tanh(),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_labels(z, one_hot_labels(labels, self.conditional))
        return self.net(self.project(z).view(-1, self.width, 7, 7))  # (B, 4c, 7, 7) in


class TFDCGANDiscriminator(HeadedDiscriminator):
    """images -> conv c s2 -> LeakyReLU -> Dropout 0.3 -> conv 2c s2 -> LeakyReLU -> Dropout
    -> dense logit. ``model.d_dropout`` sets the dropout (the tutorial's 0.3 by default)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conditional = cfg.conditional
        self.net = keras_discriminator_net(cfg, slope=KERAS_LEAKY_SLOPE, dropout=cfg.d_dropout)


def keras_discriminator_net(
    cfg: ModelConfig, *, slope: float, dropout: float | None
) -> nn.Sequential:
    """The Keras tutorials' discriminator: conv c 5x5 s2 -> LeakyReLU(slope) [-> Dropout] ->
    conv 2c 5x5 s2 -> LeakyReLU [-> Dropout] -> dense logit, 'same' padding; ``dropout``
    None: no Dropout layers at all (the GAN-maths tutorial's), else the TF DCGAN tutorial's."""
    c, sn = cfg.dcgan_channels, cfg.spectral_norm
    in_channels = 1 + NUM_CLASSES * cfg.conditional

    def block(conv: nn.Conv2d) -> list[nn.Module]:
        extra = [] if dropout is None else [nn.Dropout(dropout)]
        return [maybe_spectral_norm(conv, sn), nn.LeakyReLU(slope), *extra]

    return nn.Sequential(
        *block(nn.Conv2d(in_channels, c, 5, stride=2, padding=2)),  # (B, c, 14, 14)
        *block(nn.Conv2d(c, 2 * c, 5, stride=2, padding=2)),  # (B, 2c, 7, 7)
        nn.Flatten(),
        maybe_spectral_norm(nn.Linear(2 * c * 7 * 7, 1), sn),
    )
