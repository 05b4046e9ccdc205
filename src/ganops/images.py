"""Sample grids: tensors in [-1, 1] to pictures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from ganops.files import atomic_path

# Grids for people to look at (samples.png, MLflow's per-epoch series, `ganops sample`) are
# drawn at twice the pixels, each pixel a 2x2 block: MLflow's image card and DVC's plots page
# show a 28 px digit too small to read, and nearest-neighbour keeps every pixel as it was.
VIEW_SCALE = 2


def grid_array(images: torch.Tensor, nrow: int | None = None, scale: int = 1) -> np.ndarray:
    """(B, 1, H, W) in [-1, 1] -> a square-ish uint8 grid (H', W', 3), 2 px padding, each
    pixel repeated ``scale`` times in both directions."""
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=-1.0)
    pixels = ((grid + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (3, H', W')
    if scale > 1:  # (3, scale * H', scale * W')
        pixels = pixels.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return pixels.permute(1, 2, 0).numpy()


def save_png(array: np.ndarray, path: Path) -> None:
    """Write an (H, W, 3) uint8 array as a PNG, atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as stream:
        Image.fromarray(array).save(stream, format="PNG")
