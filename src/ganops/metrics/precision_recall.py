"""Improved precision and recall (Kynkäänniemi et al. 2019) from extracted features.

Each set's manifold is the union of balls around its points, each ball reaching the point's
k-th nearest neighbour in the same set. Precision: the share of generated points inside the
real manifold (are samples realistic?). Recall: the share of real points inside the generated
manifold (is the data's variety covered? mode collapse lowers it).

All pairwise distances come from matrix products, block by block (memory stays flat in N):
||a - b||² = ||a||² + ||b||² - 2 a·b in the features' dtype (float32, or float64 as given).
Squared distances are compared throughout (the same order as distances).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

NEIGHBOURS = 3  # k in the paper
CHUNK = 1000  # points per block: a 1000 x 1000 block of float32 distances is 4 MB


def precision_recall(
    fake: Tensor, real: Tensor, *, k: int = NEIGHBOURS, chunk: int = CHUNK
) -> tuple[float, float]:
    """(precision, recall) of feature sets ``fake`` and ``real``, (N, D) each with N > k."""
    if min(len(fake), len(real)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} images per side")
    fake, real = _as_float(fake), _as_float(real)
    fake_norms, real_norms = _squared_norms(fake), _squared_norms(real)
    fake_radii = _kth_neighbour(fake, fake_norms, k, chunk)  # (N_fake,) squared
    real_radii = _kth_neighbour(real, real_norms, k, chunk)
    fake_inside = torch.zeros(len(fake), dtype=torch.bool)
    real_inside = torch.zeros(len(real), dtype=torch.bool)
    # One pass over the fake x real distances answers both questions.
    for rows, cols, distances in _blocks(fake, real, fake_norms, real_norms, chunk):
        fake_inside[rows] |= (distances <= real_radii[cols]).any(dim=1)
        real_inside[cols] |= (distances <= fake_radii[rows, None]).any(dim=0)
    return float(fake_inside.double().mean()), float(real_inside.double().mean())


def _kth_neighbour(points: Tensor, norms: Tensor, k: int, chunk: int) -> Tensor:
    """Squared distance from each point to its k-th nearest other point, (N,).

    Distances are symmetric: only blocks on or above the diagonal are computed, each feeding
    the running k nearest of its rows and (transposed) of its columns.
    """
    nearest = torch.full((len(points), k), torch.inf, dtype=points.dtype)
    for rows, cols, distances in _blocks(points, points, norms, norms, chunk, upper=True):
        if rows == cols:
            distances.fill_diagonal_(torch.inf)  # a point is not its own neighbour
        nearest[rows] = _k_smallest(nearest[rows], distances, k)
        if rows != cols:
            nearest[cols] = _k_smallest(nearest[cols], distances.T, k)
    return nearest[:, k - 1]


def _k_smallest(best: Tensor, candidates: Tensor, k: int) -> Tensor:
    """The k smallest of each row of ``best`` (R, k) and ``candidates`` (R, C), sorted."""
    merged = torch.cat((best, candidates), dim=1)
    return merged.topk(k, dim=1, largest=False, sorted=True).values


def _blocks(
    a: Tensor, b: Tensor, a_norms: Tensor, b_norms: Tensor, chunk: int, *, upper: bool = False
) -> Iterator[tuple[slice, slice, Tensor]]:
    """Squared distances of ``a`` x ``b`` in (rows, cols, block) pieces, one block at a time;
    ``upper``: only blocks whose first row is at or before their first column (``a`` is ``b``)."""
    for rows in _slices(len(a), chunk):
        for cols in _slices(len(b), chunk):
            if not upper or rows.start <= cols.start:
                yield rows, cols, _squared_distances(a[rows], b[cols], a_norms[rows], b_norms[cols])


def _squared_distances(a: Tensor, b: Tensor, a_norms: Tensor, b_norms: Tensor) -> Tensor:
    """||a_i - b_j||², (len(a), len(b)), clamped at 0 (rounding can take a near-zero distance
    below it). One fused product-and-add in the features' dtype: in float32 the rounding of the
    products themselves (about 1e-7 of ||a|| ||b||) outweighs that of the sums."""
    distances = torch.addmm(b_norms[None, :], a, b.T, alpha=-2).add_(a_norms[:, None])
    return distances.clamp_(min=0)


def _squared_norms(points: Tensor) -> Tensor:
    """||x||² in float64, rounded once to the features' dtype."""
    return points.double().square().sum(dim=1).to(points.dtype)


def _slices(length: int, chunk: int) -> list[slice]:
    return [slice(start, min(start + chunk, length)) for start in range(0, length, chunk)]


def _as_float(features: Tensor) -> Tensor:
    """Features on the CPU in float32, or float64 as given."""
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    return features.detach().to("cpu", dtype)
