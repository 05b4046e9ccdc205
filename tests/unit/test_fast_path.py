"""ganops' fast training path computes what the plain tutorial loop computes.

The fast path (``ganops.training.step``) differs from ``benchmarks.classic_loop`` only in how it computes:
logits + BCE-with-logits instead of Sigmoid + BCELoss, one D backward instead of two, D frozen
during the G step, data and noise on the device, no per-step host reads. For the same weights,
real batch and noise, one iteration of each must give the same losses and the same parameters
afterwards (so the same gradients, through Adam).

Dropout: the fast path scores the real and fake batch in one D forward pass (the reference in
two), so the two paths draw their random masks in different orders. For ``d_dropout=0.3`` the
test swaps dropout's random mask for one computed from each activation's value: identical
however the rows are batched, so the comparison stays exact with dropout layers in place.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from benchmarks.classic_loop import (
    ClassicGAN,
    build_classic_gan,
    classic_fit,
    classic_loader,
    reference_step,
)
from torch import Tensor, nn

import ganops.training.loop
from ganops.config import ModelConfig, TrainConfig
from ganops.idx_files import normalize
from ganops.models import Dropout, build_models
from ganops.training.loop import fit
from ganops.training.step import GAN, build_gan, train_iteration

CPU = torch.device("cpu")
TOL = 1e-5


def tiny_model(arch: str, d_dropout: float = 0.0) -> ModelConfig:
    return ModelConfig(
        arch=arch,
        latent_dim=8,
        g_hidden=(32, 64),
        d_hidden=(64, 32),
        d_dropout=d_dropout,
        dcgan_channels=4,
    )


def twin_gans(model_cfg: ModelConfig, cfg: TrainConfig) -> tuple[GAN, ClassicGAN]:
    """The same initial weights wrapped both ways."""
    torch.manual_seed(0)
    generator, discriminator = build_models(model_cfg)
    classic = build_classic_gan(copy.deepcopy(generator), copy.deepcopy(discriminator), cfg, CPU)
    return build_gan(generator, discriminator, cfg=cfg, device=CPU), classic


def assert_same_state(fast: nn.Module, plain: nn.Module) -> None:
    """Parameters and buffers (BatchNorm running statistics included) agree."""
    fast_state, plain_state = fast.state_dict(), plain.state_dict()
    assert fast_state.keys() == plain_state.keys()
    for name, value in fast_state.items():
        torch.testing.assert_close(value, plain_state[name], atol=TOL, rtol=0, msg=name)


def value_keyed_dropout(
    x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Dropout whose mask is a fixed function of each activation's value (a hash), not of
    the RNG: a row gets the same mask alone or within a larger batch."""
    if not training or p == 0:
        return x
    with torch.no_grad():
        keep = torch.frac(torch.sin(x * 12.9898) * 43758.5453).abs() >= p
    return x * keep / (1 - p)


def test_value_keyed_dropout_drops_about_p_and_keeps_rows_batch_independent() -> None:
    x = torch.randn(64, 512)
    out = value_keyed_dropout(x, 0.3)
    assert 0.25 < (out == 0).float().mean().item() < 0.35
    torch.testing.assert_close(value_keyed_dropout(x[:5], 0.3), out[:5])


@pytest.mark.parametrize(("spectral_norm", "expected"), [(False, True), (True, False)])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_one_d_forward_for_real_and_fake_only_without_spectral_norm(
    arch: str, spectral_norm: bool, expected: bool
) -> None:
    """Spectral norm's power iteration advances once per forward pass: batching real and
    fake into one pass would change how often it runs, so such a D keeps two passes."""
    model = dataclasses.replace(tiny_model(arch), spectral_norm=spectral_norm)
    gan, _ = twin_gans(model, TrainConfig())
    assert gan.d_rows_independent is expected


@pytest.fixture
def float64() -> Iterator[None]:
    """Double precision: a batch of 32 rows and one of 16 round differently in the matrix
    products; in float64 that never flips a value-keyed dropout mask bit."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize(
    ("arch", "d_dropout", "real_label"),
    [("mlp", 0.0, 1.0), ("mlp", 0.3, 1.0), ("mlp", 0.0, 0.9), ("dcgan", 0.0, 1.0)],
)
def test_fast_iteration_matches_reference_step(
    arch: str, d_dropout: float, real_label: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.nn.functional, "dropout", value_keyed_dropout)  # the reference's
    monkeypatch.setattr(
        Dropout, "forward", lambda self, x: value_keyed_dropout(x, self.p, self.training)
    )
    cfg = TrainConfig(device="cpu", real_label=real_label)  # non_saturating, Adam(0.5, 0.999)
    gan, classic = twin_gans(tiny_model(arch, d_dropout), cfg)
    batches = torch.Generator().manual_seed(1)
    # Three iterations: the later ones run Adam with non-zero moment estimates.
    for _ in range(3):
        real = torch.rand(16, 1, 28, 28, generator=batches) * 2 - 1
        z = torch.randn(16, 8, generator=batches)
        loss_d, loss_g, _, _ = train_iteration(
            gan, real, z=z, cfg=cfg, update_generator=True
        ).tolist()
        expected = reference_step(classic, real, z, real_label)
        assert loss_d == pytest.approx(expected.loss_d, abs=TOL)
        assert loss_g == pytest.approx(expected.loss_g, abs=TOL)
        assert_same_state(gan.generator, classic.generator)
        assert_same_state(gan.discriminator, classic.logits_discriminator)


def indexed_images(count: int) -> Tensor:
    """Image i is the constant i, so a batch tells which images it holds."""
    return torch.arange(count, dtype=torch.float32).view(count, 1, 1, 1).expand(-1, 1, 28, 28)


def test_ganops_epochs_are_permutations_cut_into_floor_n_over_b_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    num_images, batch_size, epochs = 100, 32, 20
    seen: list[list[int]] = []

    def record(
        gan: GAN,
        real: Tensor,
        *,
        z: Tensor,
        cfg: TrainConfig,
        update_generator: bool,
        labels: Tensor | None = None,
    ) -> Tensor:
        seen.append(real[:, 0, 0, 0].long().tolist())
        return torch.zeros(4)

    monkeypatch.setattr(ganops.training.loop, "train_iteration", record)
    cfg = TrainConfig(device="cpu", batch_size=batch_size, epochs=epochs, log_every=1000)
    gan, _ = twin_gans(tiny_model("mlp"), cfg)
    state = fit(
        gan, indexed_images(num_images), cfg=cfg, latent_dim=8, fixed_noise=torch.randn(4, 8)
    )
    per_epoch = num_images // batch_size
    assert state.step == len(seen) == per_epoch * epochs
    assert all(len(batch) == batch_size for batch in seen)
    epoch_indices = [
        [index for batch in seen[e * per_epoch : (e + 1) * per_epoch] for index in batch]
        for e in range(epochs)
    ]
    for indices in epoch_indices:
        assert len(set(indices)) == len(indices)  # no image twice within an epoch
    assert len({tuple(indices) for indices in epoch_indices}) == epochs  # a new order each time
    # The 4 images left out change from epoch to epoch, so over 20 epochs all are used.
    assert set().union(*epoch_indices) == set(range(num_images))


def test_classic_loader_matches_ganops_batching_and_pixels() -> None:
    num_images, batch_size = 100, 32
    raw = np.random.default_rng(0).integers(0, 256, size=(num_images, 28, 28), dtype=np.uint8)
    loader = classic_loader(raw, batch_size, labels=np.arange(num_images))
    expected_pixels = normalize(raw)
    for _epoch in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == num_images // batch_size
        indices = torch.cat([labels for _, labels in batches])
        assert len(indices) == len(set(indices.tolist())) == 3 * batch_size
        for images, labels in batches:
            assert images.shape == (batch_size, 1, 28, 28)
            # ToTensor + Normalize(0.5, 0.5) and ganops' normalize agree to float rounding.
            torch.testing.assert_close(images, expected_pixels[labels], atol=1e-6, rtol=0)


def test_classic_fit_takes_one_step_per_batch() -> None:
    cfg = TrainConfig(device="cpu", batch_size=16)
    _, classic = twin_gans(tiny_model("mlp", d_dropout=0.3), cfg)
    raw = np.random.default_rng(0).integers(0, 256, size=(70, 28, 28), dtype=np.uint8)
    history = classic_fit(classic, classic_loader(raw, 16), epochs=2, latent_dim=8)
    assert len(history) == 2 * (70 // 16)
    assert all(np.isfinite([s.loss_d, s.loss_g]).all() for s in history)
