"""Kernel Inception Distance (Bińkowski et al. 2018) from extracted features.

KID is the unbiased MMD² under the kernel k(x, y) = (x·y / D + 1)³, averaged over random
subsets of both sets, drawn as torchmetrics' ``KernelInceptionDistance`` draws them (so the
same seed picks the same subsets). What each subset needs are sums of the kernel over pairs
of its members, and those come from matrix products one block at a time: the products in the
features' dtype, the cube and all sums in float64 (KID is a small difference of large sums).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

SUBSET_SIZE = 1000  # the paper's and torchmetrics' default
SUBSETS = 100
CHUNK = 1000  # points per block of kernel values (float64: 8 MB at 1000 x 1000)


def kid_from_features(
    fake: Tensor,
    real: Tensor,
    *,
    seed: int,
    subsets: int = SUBSETS,
    subset_size: int = SUBSET_SIZE,
    chunk: int = CHUNK,
) -> tuple[float, float]:
    """KID mean and standard deviation over ``subsets`` random subsets of both feature sets.

    The subset size is ``subset_size`` or the smaller set's size if that is less (KID is
    unbiased, so small sets only widen the spread). Subsets are drawn from ``seed``.
    """
    size = min(subset_size, len(fake), len(real))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per side, got {len(fake)} and {len(real)}")
    fake, real = _as_float(fake), _as_float(real)
    real_members, fake_members = _draw_subsets(len(real), len(fake), subsets, size, seed)
    # Kernel values of all pairs once, or of each subset's pairs: whichever takes fewer
    # products (all pairs: half of each set's own, thanks to symmetry, and all cross pairs).
    if (len(real) + len(fake)) ** 2 / 2 <= 3 * subsets * size**2:
        real_in = _membership(real_members, len(real))  # (N_real, S)
        fake_in = _membership(fake_members, len(fake))
        real_pairs = _within_sums(real, real_in, chunk)
        fake_pairs = _within_sums(fake, fake_in, chunk)
        cross_pairs = _cross_sums(real, fake, real_in, fake_in, chunk)
    else:
        ones = torch.ones(size, 1, dtype=torch.float64)
        sums = [
            (
                _within_sums(real[r], ones, chunk),
                _within_sums(fake[f], ones, chunk),
                _cross_sums(real[r], fake[f], ones, ones, chunk),
            )
            for r, f in zip(real_members, fake_members, strict=True)
        ]
        real_pairs, fake_pairs, cross_pairs = (
            torch.cat(parts) for parts in zip(*sums, strict=True)
        )
    scores = (real_pairs + fake_pairs) / (size * (size - 1)) - 2 * cross_pairs / size**2  # (S,)
    if whole_sets(len(fake), len(real), subset_size):  # the scores differ only by summation order
        return float(scores.mean()), 0.0
    return float(scores.mean()), float(scores.std(unbiased=False))


def whole_sets(num_fake: int, num_real: int, subset_size: int = SUBSET_SIZE) -> bool:
    """Whether every KID subset is both whole sets (equal sets of at most ``subset_size``):
    then KID is one value and its spread is 0, not measured."""
    return num_fake == num_real <= subset_size


def _draw_subsets(
    num_real: int, num_fake: int, subsets: int, size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Member indices (S, size) of each real and fake subset, in torchmetrics' order of draws
    (a real then a fake permutation per subset), from a generator of their own."""
    generator = torch.Generator().manual_seed(seed)
    real, fake = [], []
    for _ in range(subsets):
        real.append(torch.randperm(num_real, generator=generator)[:size])
        fake.append(torch.randperm(num_fake, generator=generator)[:size])
    return torch.stack(real), torch.stack(fake)


def _membership(members: Tensor, count: int) -> Tensor:
    """(count, S) float64: 1 where point i is in subset s (no point twice in one subset)."""
    matrix = torch.zeros(count, len(members), dtype=torch.float64)
    matrix[members.T, torch.arange(len(members))] = 1
    return matrix


def _within_sums(points: Tensor, member: Tensor, chunk: int) -> Tensor:
    """Σ k(x_i, x_j) over pairs i != j of members of each subset, (S,) float64.

    The kernel matrix is symmetric: blocks above the diagonal are computed once, counted twice.
    """
    total = torch.zeros(member.shape[1], dtype=torch.float64)
    for rows, cols in _block_pairs(len(points), len(points), chunk, upper=True):
        kernel = _kernel(points[rows], points[cols])
        if rows == cols:
            kernel.fill_diagonal_(0)
        part = ((kernel @ member[cols]) * member[rows]).sum(dim=0)
        total += part if rows == cols else 2 * part
    return total


def _cross_sums(a: Tensor, b: Tensor, a_member: Tensor, b_member: Tensor, chunk: int) -> Tensor:
    """Σ k(a_i, b_j) over members i of each subset of ``a`` and j of the same subset of ``b``."""
    total = torch.zeros(a_member.shape[1], dtype=torch.float64)
    for rows, cols in _block_pairs(len(a), len(b), chunk, upper=False):
        kernel = _kernel(a[rows], b[cols])
        total += ((kernel @ b_member[cols]) * a_member[rows]).sum(dim=0)
    return total


def _kernel(a: Tensor, b: Tensor) -> Tensor:
    """(a·b / D + 1)³, (len(a), len(b)) float64: the product and the + 1 fused in the features'
    dtype (in float32 the products' rounding, about 1e-7, is the error that counts), the cube
    and everything after in float64."""
    return torch.addmm(torch.ones((), dtype=a.dtype), a, b.T, alpha=1 / a.shape[1]).double().pow_(3)


def _block_pairs(
    num_rows: int, num_cols: int, chunk: int, *, upper: bool
) -> Iterator[tuple[slice, slice]]:
    for row in range(0, num_rows, chunk):
        for col in range(row if upper else 0, num_cols, chunk):
            yield slice(row, min(row + chunk, num_rows)), slice(col, min(col + chunk, num_cols))


def _as_float(features: Tensor) -> Tensor:
    """Features on the CPU in float32, or float64 as given."""
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    return features.detach().to("cpu", dtype)
