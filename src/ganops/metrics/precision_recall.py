"""Improved precision and recall (Kynkäänniemi et al. 2019) from extracted features.

Each set's manifold is the union of balls around its points, each ball reaching the point's
k-th nearest neighbour in the same set. Precision: the share of generated points inside the
real manifold (are samples realistic?). Recall: the share of real points inside the generated
manifold (is the data's variety covered? mode collapse lowers it).
"""

from __future__ import annotations

import torch
from torch import Tensor

NEIGHBOURS = 3  # k in the paper


def precision_recall(
    fake: Tensor, real: Tensor, *, k: int = NEIGHBOURS, chunk: int = 1000
) -> tuple[float, float]:
    """(precision, recall) of feature sets ``fake`` and ``real``, (N, D) each with N > k."""
    if min(len(fake), len(real)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} images per side")
    fake, real = fake.float(), real.float()
    precision = _share_inside(fake, real, _knn_radii(real, k, chunk), chunk)
    recall = _share_inside(real, fake, _knn_radii(fake, k, chunk), chunk)
    return precision, recall


def _knn_radii(points: Tensor, k: int, chunk: int) -> Tensor:
    """Distance from each point to its k-th nearest other point, (N,)."""
    radii = [
        # k + 1 smallest: the first is the point itself (distance 0)
        torch.cdist(part, points).topk(k + 1, dim=1, largest=False).values[:, k]
        for part in points.split(chunk)
    ]
    return torch.cat(radii)


def _share_inside(queries: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> float:
    """Share of ``queries`` within ``radii`` of at least one of ``centres``."""
    inside = sum(
        int((torch.cdist(part, centres) <= radii).any(dim=1).sum()) for part in queries.split(chunk)
    )
    return inside / len(queries)
