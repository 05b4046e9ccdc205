"""Small helpers shared by the stage modules."""

from __future__ import annotations

import torch

from ganops.errors import DeviceError


def resolve_device(name: str, key: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{key} is 'cuda' but no CUDA GPU is available; set {key}: auto or cpu")
    return torch.device(name)
