"""Differentiable augmentation (DiffAugment; Zhao et al. 2020), pure functions.

The same random transform family is applied to every image D sees, real and generated, in
both the D and the G step; being differentiable, G's gradient passes through it. D then
cannot memorise the training set as easily, which matters most with little data or long
training. Translation and cutout are the policy the paper uses on small grey images (its
colour ops change little on one channel). Ported from the authors' DiffAugment_pytorch.py,
with the empty pixels set to the background's -1 rather than 0 (this pipeline's images are in
[-1, 1], the authors' had 0 as black).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

BACKGROUND = -1.0  # the pixel value of empty space in [-1, 1] images


def translation(images: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, filling with background."""
    batch, _, height, width = images.shape
    max_y, max_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = images.device
    shift_y = torch.randint(-max_y, max_y + 1, (batch, 1, 1), device=device)
    shift_x = torch.randint(-max_x, max_x + 1, (batch, 1, 1), device=device)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    # Index into a copy padded by one pixel of background all round: out-of-range -> pad.
    src_y = (rows + shift_y + 1).clamp(0, height + 1).expand(batch, height, width)
    src_x = (cols + shift_x + 1).clamp(0, width + 1).expand(batch, height, width)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), value=BACKGROUND)
    flat = padded.flatten(2)  # (B, C, (H+2)*(W+2))
    index = (src_y * (width + 2) + src_x).flatten(1)  # (B, H*W)
    gathered = flat.gather(2, index.unsqueeze(1).expand(-1, images.shape[1], -1))
    return gathered.view_as(images)


def cutout(images: Tensor, ratio: float = 0.5) -> Tensor:
    """Set one random square of ``ratio`` x the image size per image to the background."""
    batch, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = images.device
    top = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1), device=device)
    left = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1), device=device)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside_y = (rows >= top - size_y // 2) & (rows < top - size_y // 2 + size_y)
    inside_x = (cols >= left - size_x // 2) & (cols < left - size_x // 2 + size_x)
    hole = (inside_y & inside_x).unsqueeze(1)  # (B, 1, H, W)
    return images.masked_fill(hole, BACKGROUND)


POLICIES: dict[str, Callable[[Tensor], Tensor]] = {"translation": translation, "cutout": cutout}


@functools.lru_cache(maxsize=8)  # called with the same config string every training step
def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ("translation", "cutout"); "" -> (). Unknown names: ValueError."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; known: {', '.join(POLICIES)}")
    return names


def diff_augment(images: Tensor, policy: tuple[str, ...]) -> Tensor:
    """``images`` through each transform of ``policy`` in order (identity when empty)."""
    for name in policy:
        images = POLICIES[name](images)
    return images
