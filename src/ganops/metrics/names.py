"""Metric names. Those that depend on the sample count carry it, as in ``fid_10k``."""

from __future__ import annotations

from ganops.metrics.registry import COUNTED


def sample_suffix(num_samples: int) -> str:
    """``10k`` for 10000, ``500`` for 500."""
    return f"{num_samples // 1000}k" if num_samples % 1000 == 0 else str(num_samples)


def metric_name(family: str, num_samples: int) -> str:
    """``fid_10k``, ``precision_500``: the family and the sample count. Only a counted
    metric of the registry has one (a new metric is declared there first)."""
    if family not in COUNTED:
        raise ValueError(f"{family!r} is not a counted metric of ganops.metrics.registry")
    return f"{family}_{sample_suffix(num_samples)}"


def _split(name: str) -> tuple[str, int] | None:
    """``fid_10k`` -> (``fid``, 10000); None for a name without a sample count."""
    head, _, tail = name.rpartition("_")
    if head not in COUNTED:
        return None
    if tail.isdigit():
        return head, int(tail)
    if tail.endswith("k") and tail[:-1].isdigit():
        return head, int(tail[:-1]) * 1000
    return None


def family_of(name: str) -> str:
    """``fid_10k`` -> ``fid``; a name without a sample count is its own family."""
    split = _split(name)
    return split[0] if split else name


def sample_count(name: str) -> int | None:
    """``fid_10k`` -> 10000, ``precision_500`` -> 500; None without a sample count."""
    split = _split(name)
    return split[1] if split else None
