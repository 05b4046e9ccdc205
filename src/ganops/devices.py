"""What the machine's hardware does natively, for the ``*.precision`` params."""

from __future__ import annotations

from pathlib import Path

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` does bf16 matrix products in hardware (AVX512-BF16/AMX, Ampere+);
    a CPU whose flags cannot be read counts as yes (no warning on a guess)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    flags = _cpu_flags()
    return flags is None or bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> set[str] | None:
    """The CPU feature flags Linux reports, or None where /proc/cpuinfo is unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def precision_warning(key: str, precision: str, *, device: torch.device) -> str | None:
    """A warning when ``key`` (a ``*.precision`` param) is 'bf16' where bf16 would be slow."""
    if precision != "bf16" or native_bf16(device):
        return None
    return (
        f"{key} is 'bf16' but this {device.type} has no native bf16 matrix products "
        "(AVX512-BF16/AMX on CPUs, Ampere or newer GPUs): it will be slower than in fp32; "
        f"set {key} to 'fp32'"
    )
