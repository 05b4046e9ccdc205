"""Generators and discriminators, one family a module, and ``build_models`` to pick a pair.

Discriminators return raw logits (no Sigmoid): every loss in ``ganops.losses`` is computed
from logits, which is numerically stable.

- ``classic``: the MLP pair of the original GAN tutorials and the small PyTorch-DCGAN pair;
- ``tf_dcgan``: the TensorFlow DCGAN tutorial's pair, layer for layer;
- ``keras_conv``: the Keras GAN-maths tutorial's convolutional pair;
- ``resnet``: a small SNGAN/BigGAN-style residual pair (width and depth in params).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ganops.config import ModelConfig
from ganops.models.classic import (
    IMAGE_SHAPE,
    IMAGE_SIZE,
    NUM_CLASSES,
    DCGANDiscriminator,
    DCGANGenerator,
    Dropout,
    MLPDiscriminator,
    MLPGenerator,
    chosen_init,
    dcgan_init,
    glorot_init,
)
from ganops.models.keras_conv import KerasConvDiscriminator, KerasConvGenerator
from ganops.models.resnet import ResNetDiscriminator, ResNetGenerator
from ganops.models.tf_dcgan import TFDCGANDiscriminator, TFDCGANGenerator

__all__ = ["IMAGE_SHAPE", "IMAGE_SIZE", "NUM_CLASSES", "Dropout", "build_models", "dcgan_init"]


def build_models(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for ``cfg.arch``, freshly initialised on the CPU."""
    pair: tuple[nn.Module, nn.Module]
    init: Callable[[nn.Module], None]
    if cfg.arch == "mlp":  # PyTorch's own init unless model.init names one
        pair, init = (MLPGenerator(cfg), MLPDiscriminator(cfg)), lambda module: None
    elif cfg.arch == "tf_dcgan":  # Keras' default glorot_uniform kernels, as in the tutorial
        pair, init = (TFDCGANGenerator(cfg), TFDCGANDiscriminator(cfg)), glorot_init
    elif cfg.arch == "keras_conv":  # Keras' default init too
        pair, init = (KerasConvGenerator(cfg), KerasConvDiscriminator(cfg)), glorot_init
    elif cfg.arch == "resnet":  # SNGAN's init: xavier (= glorot) uniform, zero biases
        pair, init = (ResNetGenerator(cfg), ResNetDiscriminator(cfg)), glorot_init
    else:
        pair, init = (DCGANGenerator(cfg), DCGANDiscriminator(cfg)), dcgan_init
    if cfg.init != "default":
        init = chosen_init(cfg.init, cfg.leaky_slope)
    for module in pair:
        module.apply(init)
    return pair
