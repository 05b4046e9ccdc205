from __future__ import annotations

import math

import pytest
import torch

from ganops.config import LOSSES
from ganops.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# Each expected value written out from the loss's definition, by hand.
D_EXPECTED = {
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f)
    "minimax": mean([softplus(-r) for r in REAL]) + mean([softplus(f) for f in FAKE]),
    "non_saturating": mean([softplus(-r) for r in REAL]) + mean([softplus(f) for f in FAKE]),
    "wgan": mean(FAKE) - mean(REAL),
    "wgan_gp": mean(FAKE) - mean(REAL),
    "lsgan": 0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([f**2 for f in FAKE]),
    "hinge": mean([max(0, 1 - r) for r in REAL]) + mean([max(0, 1 + f) for f in FAKE]),
}
G_EXPECTED = {
    "minimax": mean([-softplus(f) for f in FAKE]),  # log(1 - sigmoid(f))
    "non_saturating": mean([softplus(-f) for f in FAKE]),  # -log sigmoid(f)
    "wgan": -mean(FAKE),
    "wgan_gp": -mean(FAKE),
    "lsgan": 0.5 * mean([(f - 1) ** 2 for f in FAKE]),
    "hinge": -mean(FAKE),
}


# Objectives whose G loss is a function of D's logits (feature matching's is of its features).
LOGIT_LOSSES = tuple(loss for loss in LOSSES if loss != "feature_matching")


@pytest.mark.parametrize("loss", LOGIT_LOSSES)
def test_losses_match_hand_computed_values(loss: str) -> None:
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    assert discriminator_loss(loss, real, fake).item() == pytest.approx(D_EXPECTED[loss], 1e-6)
    assert generator_loss(loss, fake).item() == pytest.approx(G_EXPECTED[loss], 1e-6)


def test_label_smoothing_changes_only_the_real_term() -> None:
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    smoothed = discriminator_loss("non_saturating", real, fake, real_label=0.9).item()
    # BCE with target t: t * softplus(-r) + (1 - t) * softplus(r)
    expected = mean([0.9 * softplus(-r) + 0.1 * softplus(r) for r in REAL]) + mean(
        [softplus(f) for f in FAKE]
    )
    assert smoothed == pytest.approx(expected, 1e-6)


def test_losses_are_stable_for_extreme_logits() -> None:
    logits = torch.tensor([-200.0, 200.0], requires_grad=True)
    for loss in LOGIT_LOSSES:
        value = discriminator_loss(loss, logits, logits) + generator_loss(loss, logits)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), loss


def test_minimax_generator_gradient_vanishes_when_d_rejects_fakes() -> None:
    """Why the non-saturating loss exists (Goodfellow et al. 2014, section 3)."""
    confident_reject = torch.full((8,), -10.0)  # D(G(z)) = sigmoid(-10) ~ 4.5e-5
    grads = {}
    for loss in ("minimax", "non_saturating"):
        logits = confident_reject.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(generator_loss(loss, logits), logits)
        grads[loss] = grad.abs().sum().item()
    assert grads["minimax"] < 1e-4
    assert grads["non_saturating"] > 0.99


def test_gradient_penalty_is_zero_for_a_unit_norm_critic_and_one_for_norm_two() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(16, 1, 4, 4), torch.randn(16, 1, 4, 4)
    direction = torch.randn(16)
    direction /= direction.norm()
    for scale, expected in ((1.0, 0.0), (2.0, 1.0)):
        weight = scale * direction

        def critic(x: torch.Tensor, w: torch.Tensor = weight) -> torch.Tensor:
            return x.flatten(1) @ w

        assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected, abs=1e-5)


def test_r1_is_the_squared_input_gradient_of_d_on_reals() -> None:
    """For a linear D(x) = <w, x> + b the input gradient is w for every image: R1 = ||w||^2."""
    torch.manual_seed(0)
    weight = torch.randn(1, 1, 4, 4)
    real = torch.randn(3, 1, 4, 4, requires_grad=True)
    logits = (real * weight).sum(dim=(1, 2, 3)) + 0.5
    assert r1_penalty(logits, real).item() == pytest.approx(weight.square().sum().item(), 1e-6)


def test_r1_penalty_is_trained_on() -> None:
    """The penalty keeps its graph (create_graph), so D's weights get its gradient."""
    weight = torch.tensor([[2.0, -1.0]], requires_grad=True)
    real = torch.randn(5, 2, requires_grad=True)
    penalty = r1_penalty((real @ weight.T).squeeze(1), real)  # ||w||^2 = 5
    (grad,) = torch.autograd.grad(penalty, weight)
    assert grad[0].tolist() == pytest.approx([4.0, -2.0])  # d||w||^2 / dw = 2w


def test_feature_matching_is_the_squared_distance_of_the_feature_means() -> None:
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 1.0], [1.0, 2.0]])  # mean (1, 1)
    assert feature_matching_loss(real, fake).item() == pytest.approx((2 - 1) ** 2 + (3 - 1) ** 2)
    # D's side of feature matching is the standard GAN discriminator.
    r, f = torch.tensor(REAL), torch.tensor(FAKE)
    assert discriminator_loss("feature_matching", r, f).item() == pytest.approx(
        D_EXPECTED["non_saturating"], 1e-6
    )
