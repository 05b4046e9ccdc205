"""The real images' Inception features, cached on disk (``data/fid_cache``): written
atomically, tagged with what made them (the images' digest, the weights, the precision) and
their own digest, and recomputed when any of that differs or the file is unreadable. Then
the generated images' features, through the same network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor

from ganops.errors import describe_error, warn
from ganops.files import save_torch
from ganops.inception_weights import build_inception
from ganops.metrics.features import (
    FEATURE_DIM,
    CompiledInception,
    extract_features,
    tensor_digest,
)

_CACHE_FORMAT = "ganops-real-features-v3"


def save_real_features(path: Path, key: str, features: Tensor) -> None:
    """Write real-image features to ``path`` atomically, tagged with ``key`` and their digest."""
    features = features.float().cpu()
    save_torch(
        {
            "format": _CACHE_FORMAT,
            "key": key,
            "features": features,
            "features_sha256": tensor_digest(features),
        },
        path,
    )


def load_real_features(path: Path, key: str, expected_count: int) -> Tensor | None:
    """The features cached at ``path`` if they were made for ``key`` and ``expected_count`` images.

    None (recompute) when the file is missing, stale or unreadable: a corrupt cache is only
    logged, since the features can always be extracted again from the real images.
    """
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        features = data["features"]
        fits = data["format"] == _CACHE_FORMAT and features.shape[1:] == (FEATURE_DIM,)
        intact = fits and data["features_sha256"] == tensor_digest(features)
    except Exception as error:  # any unreadable file just means "recompute"
        warn(f"ignoring unreadable feature cache {path} ({describe_error(error)}); recomputing")
        return None
    if not fits:
        warn(f"ignoring feature cache {path} in an unknown layout; recomputing")
        return None
    if not intact:
        warn(f"ignoring feature cache {path}: its features do not match its digest")
        return None
    return features if data["key"] == key and len(features) == expected_count else None


def real_and_fake_features(
    fake_batches: Iterable[Tensor],
    real_images: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    weights: Path | None,
    cache: Path | None,
    cache_key: str,
    bf16: bool = False,
    compiled: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    skipped: Callable[[int], None] = lambda n: None,
) -> tuple[Tensor, Tensor]:
    """Inception features of the generated and the real images (both in [-1, 1], (B, 1, H, W)).

    The generated images must number exactly ``len(real_images)``. Real features are read from
    ``cache`` when it was written for ``cache_key`` (the caller folds the dataset, sample count
    and weights into it), else extracted and cached there. ``bf16``: Inception under bf16
    autocast, for both sets (a separate cache entry); ``compiled``: through
    ``CompiledInception``. ``progress`` gets each extracted batch's size and ``skipped`` the
    number of real images whose features came from the cache, so the two add up to
    ``2 * len(real_images)``.
    """
    num_real = len(real_images)
    eager = build_inception(weights, device)
    # No compiled/eager mark in the cache key: their features agree to float rounding.
    network = CompiledInception(eager, min(batch_size, num_real)) if compiled else eager
    cache_key += ":bf16" if bf16 else ""
    extract = functools.partial(
        extract_features, network, chunk=batch_size, device=device, limit=num_real, bf16=bf16
    )
    real = load_real_features(cache, cache_key, num_real) if cache is not None else None
    if real is not None:
        skipped(num_real)
    else:
        real = extract([real_images], report=progress)
        if cache is not None:
            save_real_features(cache, cache_key, real)
    fake = extract(fake_batches, report=progress)
    if len(fake) != num_real:
        raise ValueError(f"got {len(fake)} generated images for {num_real} real ones")
    return fake, real
