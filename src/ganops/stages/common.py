"""Small helpers shared by the stage modules."""

from __future__ import annotations

import torch

from ganops.devices import precision_warning, resolve_precision
from ganops.errors import DeviceError, warn


def resolve_device(name: str, key: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{key} is 'cuda' but no CUDA GPU is available; set {key}: auto or cpu")
    return torch.device(name)


def resolved_precision(
    key: str, configured: str, *, device: torch.device, show: bool = True
) -> tuple[str, str]:
    """The precision ('fp32' or 'bf16') a stage runs ``key`` (a ``*.precision`` param) in on
    ``device`` and why; ``show``: printed as one line (``train.precision: bf16 (auto: this
    CPU has AMX-BF16)``), with a warning on stderr where an explicit 'bf16' will be slow."""
    precision, reason = resolve_precision(configured, device)
    if show:
        print(f"{key}: {reason}")
        if slow := precision_warning(key, precision, device=device):
            warn(slow)
    return precision, reason
