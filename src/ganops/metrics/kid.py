"""Kernel Inception Distance (Bińkowski et al. 2018) from extracted features, by torchmetrics."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchmetrics.image.kid import KernelInceptionDistance

from ganops.metrics.features import Precomputed

SUBSET_SIZE = 1000  # the paper's and torchmetrics' default
SUBSETS = 100


def kid_from_features(
    fake: Tensor, real: Tensor, *, seed: int, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE
) -> tuple[float, float]:
    """KID mean and standard deviation over ``subsets`` random subsets of both feature sets.

    The subset size is ``subset_size`` or the smaller set's size if that is less (KID is
    unbiased, so small sets only widen the spread). Subsets are drawn from ``seed``.
    """
    size = min(subset_size, len(fake), len(real))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per side, got {len(fake)} and {len(real)}")
    with warnings.catch_warnings():
        # "will save all extracted features in buffer": features are in memory already.
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=Precomputed(real.shape[1]), subsets=subsets, subset_size=size
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)
