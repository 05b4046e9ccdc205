"""What the machine's hardware does natively, for the ``*.precision`` params."""

from __future__ import annotations

from pathlib import Path

import torch

# CPU flags (as /proc/cpuinfo names them) of native bf16 matrix products, with their names.
BF16_CPU_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}
BF16_CUDA_CAPABILITY = (8, 0)  # Ampere: the first GPUs whose tensor cores multiply bf16


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` does bf16 matrix products in hardware (AVX512-BF16/AMX, Ampere+);
    a CPU whose flags cannot be read counts as yes (no warning on a guess)."""
    if device.type == "cuda":
        return _cuda_capability(device) >= BF16_CUDA_CAPABILITY
    flags = _cpu_flags()
    return flags is None or bool(flags & set(BF16_CPU_FLAGS))


def resolve_precision(configured: str, device: torch.device) -> tuple[str, str]:
    """The precision to run in ('fp32' or 'bf16') for a ``*.precision`` value on ``device``,
    and a short reason for the log. 'auto' is bf16 where the hardware multiplies bf16
    natively (AVX512-BF16 or AMX on a CPU, compute capability 8.0 or more on a GPU), else
    fp32; a CPU whose flags cannot be read gets fp32 (no bf16 on a guess). 'fp32' and
    'bf16' are kept as they are."""
    if configured != "auto":
        return configured, f"{configured} (set explicitly)"
    if device.type == "cuda":
        major, minor = _cuda_capability(device)
        if (major, minor) >= BF16_CUDA_CAPABILITY:
            return "bf16", f"bf16 (auto: this GPU has compute capability {major}.{minor})"
        return (
            "fp32",
            f"fp32 (auto: no native bf16 on this GPU, compute capability {major}.{minor})",
        )
    flags = _cpu_flags()
    if flags is None:
        return "fp32", "fp32 (auto: this CPU's flags cannot be read)"
    found = [name for flag, name in BF16_CPU_FLAGS.items() if flag in flags]
    if found:
        return "bf16", f"bf16 (auto: this CPU has {' and '.join(found)})"
    return "fp32", "fp32 (auto: no native bf16 on this CPU)"


def resumed_precision_warning(saved: object, *, precision: str, reason: str) -> str | None:
    """A warning when a resumed run goes on in another precision than its checkpoint's
    (``saved``: the precision it recorded; None or anything else unreadable for checkpoints
    written before it was recorded, which warn about nothing). Only 'auto' can resolve
    differently between two sessions: an explicit change is refused as a config change."""
    if saved not in ("fp32", "bf16") or saved == precision:
        return None
    return (
        f"the interrupted run trained in {saved} until its checkpoint; it goes on in {reason} "
        "(train.precision 'auto' resolves by the hardware), so its losses may shift a little. "
        f"Set train.precision to '{saved}' to keep it"
    )


def same_precision(saved: object, current: str, *, trained: str | None, resolved: str) -> bool:
    """Whether a checkpoint's train.precision ``saved`` and this run's ``current`` train
    alike, for the resume check: equal, or 'auto' on one side and the other side's explicit
    value what 'auto' gave (``trained``: what the checkpoint ran in, ``resolved``: what this
    run resolves to). 'auto' on both sides is the same config even where it resolves
    otherwise here (``resumed_precision_warning`` says so)."""
    if saved == current:
        return True
    if current == "auto":
        return saved == resolved
    return saved == "auto" and current == trained


def _cuda_capability(device: torch.device) -> tuple[int, int]:
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


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
