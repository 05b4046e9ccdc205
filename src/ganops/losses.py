"""GAN objectives, all computed from raw discriminator logits.

Working in logit space avoids ``log(sigmoid(x))`` underflow: ``log D(x) = -softplus(-x)`` and
``log(1 - D(x)) = -softplus(x)`` are exact and stable for any logit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(
    loss: str, real_logits: Tensor, fake_logits: Tensor, real_label: float = 1.0
) -> Tensor:
    """The discriminator's (or critic's) loss to minimise, averaged over the batch."""
    if loss in ("minimax", "non_saturating", "feature_matching"):
        # -[log D(x) + log(1 - D(G(z)))] (Goodfellow et al. 2014), with optional
        # one-sided label smoothing on the real term.
        real_target = torch.full_like(real_logits, real_label)
        return F.binary_cross_entropy_with_logits(
            real_logits, real_target
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if loss in ("wgan", "wgan_gp"):
        return fake_logits.mean() - real_logits.mean()
    if loss == "lsgan":
        return 0.5 * ((real_logits - real_label) ** 2).mean() + 0.5 * (fake_logits**2).mean()
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"unknown loss {loss!r}")


def generator_loss(loss: str, fake_logits: Tensor) -> Tensor:
    """The generator's loss to minimise, averaged over the batch (for ``feature_matching``,
    whose G loss needs D's features, see ``feature_matching_loss``)."""
    if loss == "minimax":
        # Minimise log(1 - D(G(z))): saturates (vanishing gradient) when D rejects fakes.
        return (-F.softplus(fake_logits)).mean()
    if loss == "non_saturating":
        # Minimise -log D(G(z)): the "-log D trick", strong gradients early in training.
        return F.softplus(-fake_logits).mean()
    if loss in ("wgan", "wgan_gp", "hinge"):
        return -fake_logits.mean()
    if loss == "lsgan":
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()
    raise ValueError(f"unknown loss {loss!r}")


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad critic(x_hat)||_2 - 1)^2] on random
    interpolates between real and fake images."""
    alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def real_probability(loss: str, logits: Tensor) -> Tensor:
    """What the D(x)/D(G(z)) curves show: sigmoid(logit) for the probabilistic losses, the raw
    critic score for the others (a WGAN critic output is not a probability)."""
    probabilistic = loss in ("minimax", "non_saturating", "feature_matching")
    return torch.sigmoid(logits) if probabilistic else logits


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real images, without the gamma / 2.

    ``real`` must require grad and ``real_logits`` come from it: the gradient is taken through
    D's forward pass (create_graph, so the penalty itself is trained on).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(dim=1).mean()


def feature_matching_loss(
    real_features: Tensor,
    fake_features: Tensor,
    *,
    mean: Callable[[Tensor], Tensor] = lambda batch: batch.mean(dim=0),
) -> Tensor:
    """Feature matching (Salimans et al. 2016, section 3.1): ||E f(x) - E f(G(z))||_2^2 over
    an intermediate layer f of D, the batch means standing in for the expectations
    (``mean``: over the global batch under torchrun, ``distributed.global_mean``)."""
    return (mean(real_features) - mean(fake_features)).square().sum()
