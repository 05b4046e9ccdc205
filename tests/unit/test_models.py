from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ganops.config import ModelConfig
from ganops.models import build_models


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_shapes_and_output_range(arch: str, spectral_norm: bool) -> None:
    cfg = ModelConfig(arch=arch, latent_dim=16, dcgan_channels=8, spectral_norm=spectral_norm)
    generator, discriminator = build_models(cfg)
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (5,)


def test_classic_mlp_widths() -> None:
    generator, discriminator = build_models(ModelConfig())
    g_widths = [m.out_features for m in generator.modules() if isinstance(m, nn.Linear)]
    d_widths = [m.out_features for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert g_widths == [256, 512, 1024, 784]
    assert d_widths == [1024, 512, 256, 1]
    dropouts = [m.p for m in discriminator.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.3, 0.3, 0.3]


def test_batchnorm_momentum_is_set_by_keyword_not_eps() -> None:
    cfg = dataclasses.replace(ModelConfig(), g_batchnorm=True, bn_momentum=0.2)
    generator, _ = build_models(cfg)
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 3
    assert all(m.momentum == 0.2 and m.eps == 1e-5 for m in norms)


def test_dcgan_init_follows_the_paper() -> None:
    torch.manual_seed(0)
    generator, discriminator = build_models(ModelConfig(arch="dcgan"))
    conv = next(m for m in discriminator.modules() if isinstance(m, nn.Conv2d))
    assert abs(conv.weight.std().item() - 0.02) < 0.002
    norm = next(m for m in generator.modules() if isinstance(m, nn.BatchNorm2d))
    assert abs(norm.weight.mean().item() - 1.0) < 0.02


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_conditional_models_depend_on_the_label(arch: str) -> None:
    cfg = ModelConfig(arch=arch, latent_dim=16, dcgan_channels=8, conditional=True)
    torch.manual_seed(0)
    generator, discriminator = build_models(cfg)
    generator.eval()
    z = torch.randn(1, 16).expand(2, 16)  # the same noise, two different classes
    images = generator(z, torch.tensor([3, 7]))
    assert images.shape == (2, 1, 28, 28)
    assert not torch.allclose(images[0], images[1])
    discriminator.eval()
    same_image = images[:1].expand(2, -1, -1, -1)
    logits = discriminator(same_image, torch.tensor([3, 7]))
    assert logits.shape == (2,) and logits[0] != logits[1]


def test_conditional_model_without_labels_is_an_error() -> None:
    generator, _ = build_models(ModelConfig(latent_dim=4, g_hidden=(8,), conditional=True))
    with pytest.raises(ValueError, match="needs class labels"):
        generator(torch.randn(2, 4))
