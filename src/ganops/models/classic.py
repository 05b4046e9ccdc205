"""The classic pairs: the MLP GAN of the original tutorials and the small PyTorch-DCGAN pair,
plus the helpers every family shares (labels, spectral norm, dropout, initialisation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganops.config import ModelConfig

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = 28 * 28
NUM_CLASSES = 10  # MNIST digits and Fashion-MNIST classes alike


def one_hot_labels(labels: torch.Tensor | None, conditional: bool) -> torch.Tensor | None:
    """Class labels (B,) as float one-hot (B, 10) for a conditional net; None otherwise.

    Conditioning by concatenating a one-hot label is the cGAN of Mirza & Osindero (2014).
    """
    if not conditional:
        return None
    if labels is None:
        raise ValueError("a conditional model needs class labels")
    return nn.functional.one_hot(labels, NUM_CLASSES).float()


def with_labels(inputs: torch.Tensor, one_hot: torch.Tensor | None) -> torch.Tensor:
    return inputs if one_hot is None else torch.cat([inputs, one_hot], dim=1)


def with_label_planes(
    images: torch.Tensor, labels: torch.Tensor | None, conditional: bool
) -> torch.Tensor:
    """A conv discriminator's input: the one-hot label as 10 constant planes beside the image."""
    one_hot = one_hot_labels(labels, conditional)
    if one_hot is None:
        return images
    planes = one_hot[:, :, None, None].expand(-1, -1, *images.shape[2:])
    return torch.cat([images, planes], dim=1)  # (B, 1 + 10, H, W)


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(layer) if enabled else layer


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU: ``rand >= p`` there costs less than
    ``bernoulli_`` (measured in benchmarks/RESULTS.md). Same distribution: each unit kept with
    probability 1 - p and scaled by 1 / (1 - p). Elsewhere (CUDA's fused dropout kernel) it is nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        # Uniform draws in fp32 whatever x is: bf16 ones (under autocast) are skewed.
        keep = (torch.rand_like(x, dtype=torch.float32) >= self.p).to(x.dtype)
        return x * keep.mul_(1 / (1 - self.p))


class HeadedDiscriminator(nn.Module):
    """A discriminator whose ``net`` ends in its logit layer. ``features`` is everything
    before that layer (feature matching's f(x): the last hidden activations), ``forward`` the
    logits (B,). Subclasses build ``net`` and may change how images and labels enter it."""

    net: nn.Sequential
    conditional: bool

    def inputs(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """What ``net`` reads: the images, with the label as constant planes if conditional."""
        return with_label_planes(images, labels, self.conditional)

    def features(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net[:-1](self.inputs(images, labels))  # type: ignore[no-any-return]

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net[-1](self.features(images, labels)).squeeze(1)  # (B,)


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, 1, 28, 28) in [-1, 1]: Linear (+BatchNorm) + LeakyReLU
    stack, tanh. ``model.g_bias: false`` drops every Linear's bias (Keras' use_bias=False)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conditional = cfg.conditional
        layers: list[nn.Module] = []
        width = cfg.latent_dim + NUM_CLASSES * cfg.conditional
        for hidden in cfg.g_hidden:
            layers.append(nn.Linear(width, hidden, bias=cfg.g_bias))
            if cfg.g_batchnorm:
                # Keyword, never positional: BatchNorm1d's second positional argument is eps.
                layers.append(nn.BatchNorm1d(hidden, momentum=cfg.bn_momentum))
            layers.append(nn.LeakyReLU(cfg.leaky_slope))
            width = hidden
        layers += [nn.Linear(width, IMAGE_SIZE, bias=cfg.g_bias), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_labels(z, one_hot_labels(labels, self.conditional))
        return self.net(z).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)


class MLPDiscriminator(HeadedDiscriminator):
    """images (B, 1, 28, 28) -> logits (B,): Linear+LeakyReLU+Dropout stack."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conditional = cfg.conditional
        layers: list[nn.Module] = []
        width = IMAGE_SIZE + NUM_CLASSES * cfg.conditional
        for hidden in cfg.d_hidden:
            layers += [
                maybe_spectral_norm(nn.Linear(width, hidden), cfg.spectral_norm),
                nn.LeakyReLU(cfg.leaky_slope),
            ]
            if cfg.d_dropout > 0:
                layers.append(Dropout(cfg.d_dropout))
            width = hidden
        layers.append(maybe_spectral_norm(nn.Linear(width, 1), cfg.spectral_norm))
        self.net = nn.Sequential(*layers)

    def inputs(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return with_labels(images.flatten(1), one_hot_labels(labels, self.conditional))


class DCGANGenerator(nn.Module):
    """z -> dense 7x7x(2c) -> ConvTranspose 14x14x(c) -> ConvTranspose 28x28x1, tanh."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.dcgan_channels
        self.width, self.conditional = 2 * c, cfg.conditional
        self.project = nn.Sequential(
            nn.Linear(
                cfg.latent_dim + NUM_CLASSES * cfg.conditional, self.width * 7 * 7, bias=False
            ),
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

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = with_labels(z, one_hot_labels(labels, self.conditional))
        return self.net(self.project(z).view(-1, self.width, 7, 7))  # (B, 2c, 7, 7) in


class DCGANDiscriminator(HeadedDiscriminator):
    """images -> strided convs 28 -> 14 -> 7 with LeakyReLU (0.2 by default) -> linear logit.

    Conditional: the one-hot label enters as 10 constant 28x28 planes beside the image.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, sn, slope = cfg.dcgan_channels, cfg.spectral_norm, cfg.leaky_slope
        self.conditional = cfg.conditional
        in_channels = 1 + NUM_CLASSES * cfg.conditional
        self.net = nn.Sequential(
            maybe_spectral_norm(nn.Conv2d(in_channels, c, kernel_size=4, stride=2, padding=1), sn),
            nn.LeakyReLU(slope),  # (B, c, 14, 14)
            maybe_spectral_norm(nn.Conv2d(c, 2 * c, kernel_size=4, stride=2, padding=1), sn),
            nn.LeakyReLU(slope),  # (B, 2c, 7, 7)
            nn.Flatten(),
            maybe_spectral_norm(nn.Linear(2 * c * 7 * 7, 1), sn),
        )


def dcgan_init(module: nn.Module) -> None:
    """DCGAN paper init: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02) and bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(_stored_weight(module), 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _stored_weight(module: nn.Module) -> torch.Tensor:
    """The tensor to initialise: under spectral norm ``weight`` is computed, so the original."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original  # type: ignore[union-attr,return-value]
    return module.weight  # type: ignore[return-value]


def weights_init(fill: Callable[[torch.Tensor], object]) -> Callable[[nn.Module], None]:
    """An init for ``nn.Module.apply``: ``fill`` on each conv/linear weight, zero biases."""

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            fill(_stored_weight(module))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    return init


# Keras' default (and SNGAN's) init: glorot/xavier-uniform weights, zero biases.
glorot_init = weights_init(nn.init.xavier_uniform_)


def chosen_init(name: str, leaky_slope: float = 0.2) -> Callable[[nn.Module], None]:
    """The init ``model.init`` names, for ``nn.Module.apply`` (not 'default'); the he_* gains
    are those of LeakyReLU(``leaky_slope``), the hidden activation of every pair's D."""
    if name == "dcgan":
        return dcgan_init
    if name == "keras":
        return glorot_init
    tanh_gain = nn.init.calculate_gain("tanh")  # 5/3: what Glorot's derivation assumed
    fills: dict[str, Callable[[torch.Tensor], object]] = {
        "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, gain=tanh_gain),
        "xavier_normal": lambda w: nn.init.xavier_normal_(w, gain=tanh_gain),
        "he_uniform": lambda w: nn.init.kaiming_uniform_(
            w, a=leaky_slope, nonlinearity="leaky_relu"
        ),
        "he_normal": lambda w: nn.init.kaiming_normal_(w, a=leaky_slope, nonlinearity="leaky_relu"),
    }
    return weights_init(fills[name])
