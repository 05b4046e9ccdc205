from __future__ import annotations

import dataclasses

import pytest
import torch
from benchmarks.classic_loop import build_classic_gan
from torch import nn

from ganops.config import ARCHS, ModelConfig, TrainConfig
from ganops.models import Dropout, build_models


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_shapes_and_output_range(arch: str, spectral_norm: bool) -> None:
    cfg = ModelConfig(
        arch=arch, latent_dim=16, dcgan_channels=8, res_channels=8, spectral_norm=spectral_norm
    )
    generator, discriminator = build_models(cfg)
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (5,)


def test_classic_mlp_widths() -> None:
    generator, discriminator = build_models(ModelConfig(arch="mlp"))
    g_widths = [m.out_features for m in generator.modules() if isinstance(m, nn.Linear)]
    d_widths = [m.out_features for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert g_widths == [256, 512, 1024, 784]
    assert d_widths == [1024, 512, 256, 1]
    dropouts = [m.p for m in discriminator.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.3, 0.3, 0.3]


def test_batchnorm_momentum_is_set_by_keyword_not_eps() -> None:
    cfg = dataclasses.replace(ModelConfig(arch="mlp"), g_batchnorm=True, bn_momentum=0.2)
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


@pytest.mark.parametrize("arch", ARCHS)
def test_conditional_models_depend_on_the_label(arch: str) -> None:
    cfg = ModelConfig(arch=arch, latent_dim=16, dcgan_channels=8, res_channels=8, conditional=True)
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
    generator, _ = build_models(
        ModelConfig(arch="mlp", latent_dim=4, g_hidden=(8,), conditional=True)
    )
    with pytest.raises(ValueError, match="needs class labels"):
        generator(torch.randn(2, 4))


def test_cpu_dropout_keeps_each_unit_with_probability_one_minus_p_and_rescales() -> None:
    torch.manual_seed(0)
    layer = Dropout(0.3)
    x = torch.full((400, 1000), 2.0, requires_grad=True)
    out = layer(x)
    kept = out != 0
    # 400,000 Bernoulli(0.7) draws: the share is 0.7 within +-0.005 (over 6 sigma).
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 2.0 / 0.7))
    out.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    # Independent across units: the two halves of a row do not share their mask.
    assert not torch.equal(kept[:, :500], kept[:, 500:])


def test_cpu_dropout_draws_fair_masks_under_bf16_autocast() -> None:
    """bf16 uniform draws are skewed; the mask is drawn in fp32 whatever the activations."""
    torch.manual_seed(0)
    x = torch.ones(2000, 2000, dtype=torch.bfloat16)
    kept = (Dropout(0.3)(x) != 0).float().mean().item()
    # 4,000,000 draws: sigma 0.00023; bf16 draws kept 0.6982 (8 sigma off).
    assert abs(kept - 0.7) < 0.001


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_dropout_is_the_identity_in_eval_mode_and_at_p_zero(p: float) -> None:
    layer = Dropout(p)
    x = torch.randn(8, 16)
    torch.testing.assert_close(layer.eval()(x), x)
    if p == 0:
        torch.testing.assert_close(layer.train()(x), x)


def test_the_classic_loop_uses_torchs_own_dropout() -> None:
    generator, discriminator = build_models(ModelConfig(arch="mlp"))
    classic = build_classic_gan(generator, discriminator, TrainConfig(), torch.device("cpu"))
    layers = [m for m in classic.discriminator.modules() if isinstance(m, nn.Dropout)]
    assert [type(m) for m in layers] == [nn.Dropout] * 3
    assert [m.p for m in layers] == [0.3, 0.3, 0.3]


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_tf_dcgan_is_the_tensorflow_tutorials_pair() -> None:
    """Parameter counts and layer shapes as the tutorial's `model.summary()` prints them: G
    2,305,472 trainable (dense 7x7x256, ConvT 128/64/1 with 5x5 kernels, no biases), D 212,865."""
    generator, discriminator = build_models(ModelConfig(arch="tf_dcgan"))
    assert _trainable(generator) == 2_305_472
    assert _trainable(discriminator) == 212_865
    convs = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.out_channels, m.stride[0], m.bias) for m in convs] == [
        (128, 1, None),
        (64, 2, None),
        (1, 2, None),
    ]
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert all(m.momentum == 0.01 and m.eps == 1e-3 for m in norms)  # Keras' defaults
    slopes = {m.negative_slope for m in generator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.3}
    dropouts = [m.p for m in discriminator.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.3, 0.3]


@pytest.mark.parametrize("blocks", [1, 3])
def test_resnet_width_and_depth_come_from_params(blocks: int) -> None:
    cfg = ModelConfig(arch="resnet", latent_dim=8, res_channels=12, res_blocks=blocks)
    generator, discriminator = build_models(cfg)
    g_convs = [
        m for m in generator.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    # Per block two 3x3 convs; 3 stages of `blocks` blocks with 2 upsampling ones, + the last.
    assert len(g_convs) == 2 * (3 * blocks - 1) + 1
    assert {m.out_channels for m in g_convs[:-1]} == {12}
    d_convs = [
        m for m in discriminator.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert len(d_convs) == 2 * (2 * blocks)
    images = generator(torch.randn(3, 8))
    assert images.shape == (3, 1, 28, 28) and discriminator(images).shape == (3,)


def test_glorot_init_for_the_keras_and_sngan_pairs() -> None:
    """xavier-uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), so std = a / sqrt(3)."""
    torch.manual_seed(0)
    _, discriminator = build_models(ModelConfig(arch="tf_dcgan"))
    conv = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)][1]  # 64 -> 128, 5x5
    bound = (6 / (64 * 25 + 128 * 25)) ** 0.5
    assert conv.weight.abs().max().item() <= bound
    assert conv.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.02)
    assert conv.bias is not None and not conv.bias.any()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    ("init", "spread"),
    [
        # std of each init for a layer's fans; uniform(-a, a) has std a / sqrt(3)
        ("xavier_uniform", lambda fi, fo: 5 / 3 * (2 / (fi + fo)) ** 0.5),
        ("xavier_normal", lambda fi, fo: 5 / 3 * (2 / (fi + fo)) ** 0.5),
        ("he_uniform", lambda fi, fo: (2 / (1 + 0.2**2) / fi) ** 0.5),
        ("he_normal", lambda fi, fo: (2 / (1 + 0.2**2) / fi) ** 0.5),
        ("dcgan", lambda fi, fo: 0.02),
        ("keras", lambda fi, fo: (2 / (fi + fo)) ** 0.5),  # glorot uniform, gain 1
    ],
)
def test_model_init_gives_each_layer_the_promised_spread(
    arch: str, init: str, spread: object
) -> None:
    """Every weight layer of both nets, whatever the pair, gets the chosen init's std."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, init=init, dcgan_channels=16, res_channels=16)
    for net in build_models(cfg):
        for layer in net.modules():
            if not isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                continue
            weight = layer.weight
            if weight.numel() < 2000:  # too few draws for a 10% check
                continue
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
            expected = spread(fan_in, fan_out)  # type: ignore[operator]
            assert weight.std().item() == pytest.approx(expected, rel=0.1), (arch, layer)
            assert layer.bias is None or not layer.bias.any()


def test_keras_conv_is_the_keras_maths_tutorials_pair() -> None:
    """By hand, with biases: G dense 100*128+128 = 12,928, dense 128*6272+6272 = 809,088,
    ConvT 128*128*25+128 = 409,728, 128*64*25+64 = 204,864, 64*25+1 = 1,601: 1,438,209.
    D conv 25*64+64 = 1,664, 64*128*25+128 = 204,928, dense 6272+1 = 6,273: 212,865."""
    generator, discriminator = build_models(ModelConfig(arch="keras_conv"))
    assert _trainable(generator) == 1_438_209
    assert _trainable(discriminator) == 212_865
    convs = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.out_channels, m.kernel_size, m.stride[0]) for m in convs] == [
        (128, (5, 5), 1),
        (64, (5, 5), 2),
        (1, (5, 5), 2),
    ]
    slopes = {m.negative_slope for m in discriminator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    assert not any(
        isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.Dropout)
        for net in (generator, discriminator)
        for m in net.modules()
    )


def test_keras_conv_maps_the_tutorials_sigmoid_onto_minus_one_to_one() -> None:
    """The last ConvT's output a becomes 2 * sigmoid(a) - 1: the tutorial's [0, 1] image
    x = sigmoid(a) as 2x - 1."""
    generator, _ = build_models(ModelConfig(arch="keras_conv", dcgan_channels=8, latent_dim=4))
    seen: list[torch.Tensor] = []
    last = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    last.register_forward_hook(lambda module, args, out: seen.append(out))
    images = generator(torch.randn(3, 4) * 30)  # large noise: saturated pixels too
    torch.testing.assert_close(images, 2 * torch.sigmoid(seen[0]) - 1)
    assert images.min() >= -1 and images.max() <= 1


def test_keras_conv_discriminator_reads_the_tutorials_zero_to_one_images() -> None:
    """D's first convolution gets (x + 1) / 2: a black pipeline pixel (-1) is the tutorial's
    0, a white one (1) its 1; so D(G(z)) is the tutorial's sigmoid image through its D."""
    cfg = ModelConfig(arch="keras_conv", dcgan_channels=4)
    _, discriminator = build_models(cfg)
    first = next(m for m in discriminator.modules() if isinstance(m, nn.Conv2d))
    seen: list[torch.Tensor] = []
    first.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    images[0, 0, 0, :2] = torch.tensor([-1.0, 1.0])
    discriminator(images)
    torch.testing.assert_close(seen[0], (images + 1) / 2)
    assert seen[0][0, 0, 0, :2].tolist() == [0.0, 1.0]


@pytest.mark.parametrize(("arch", "count"), [("mlp", 559_616), ("keras_conv", 1_431_616)])
def test_g_bias_false_drops_every_generator_bias(arch: str, count: int) -> None:
    """Keras' use_bias=False. By hand: the Keras MLP tutorial's G 100 -> 256 -> 512 -> 784
    has 100*256 + 256*512 + 512*784 = 558,080 weights and 2 * (256 + 512) = 1,536 BatchNorm
    scales and shifts (Keras' summary: the same trainable count); keras_conv loses its
    128 + 6,272 + 128 + 64 + 1 = 6,593 biases."""
    cfg = ModelConfig(arch=arch, g_hidden=(256, 512), g_batchnorm=True, g_bias=False)
    generator, discriminator = build_models(cfg)
    assert _trainable(generator) == count
    layers = [m for m in generator.modules() if isinstance(m, nn.Linear | nn.ConvTranspose2d)]
    assert layers and all(m.bias is None for m in layers)
    assert all(m.bias is not None for m in discriminator.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "keras_conv"])
def test_leaky_slope_sets_the_negative_slope(arch: str) -> None:
    """LeakyReLU(0.3) maps -1 to -0.3 and 2 to 2; tf_dcgan keeps its tutorial's 0.3."""
    generator, discriminator = build_models(ModelConfig(arch=arch, leaky_slope=0.3))
    nets = (generator, discriminator) if arch == "mlp" else (discriminator,)
    for net in nets:
        activations = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
        assert activations and {m.negative_slope for m in activations} == {0.3}
        assert activations[0](torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([-0.3, 2.0])
    _, tf_discriminator = build_models(ModelConfig(arch="tf_dcgan", leaky_slope=0.1))
    assert {
        m.negative_slope for m in tf_discriminator.modules() if isinstance(m, nn.LeakyReLU)
    } == {0.3}


def test_he_init_takes_the_gain_of_the_chosen_slope() -> None:
    """He: std = sqrt(2 / (1 + slope^2) / fan_in); slope 0.3 on the MLP D's 784 -> 1024."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="mlp", init="he_normal", leaky_slope=0.3)
    _, discriminator = build_models(cfg)
    first = next(m for m in discriminator.modules() if isinstance(m, nn.Linear))
    expected = (2 / (1 + 0.3**2) / 784) ** 0.5
    assert first.weight.std().item() == pytest.approx(expected, rel=0.02)
