"""Sample grids: tensors in [-1, 1] to pictures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from ganops.files import atomic_path


def grid_array(images: torch.Tensor, nrow: int | None = None) -> np.ndarray:
    """(B, 1, H, W) in [-1, 1] -> a square-ish uint8 grid (H', W', 3), 2 px padding."""
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=-1.0)
    pixels = ((grid + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (3, H', W')
    return pixels.permute(1, 2, 0).numpy()


def save_png(array: np.ndarray, path: Path) -> None:
    """Write an (H, W, 3) uint8 array as a PNG, atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as stream:
        Image.fromarray(array).save(stream, format="PNG")
