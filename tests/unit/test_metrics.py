"""KID, precision/recall, class metrics and metric names, on features made up for the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.spatial.distance
import torch
from torch import Tensor

from ganops.metrics.classes import class_report, real_class_share
from ganops.metrics.kid import kid_from_features
from ganops.metrics.names import family_of, metric_name
from ganops.metrics.precision_recall import precision_recall


def gaussian(n: int, dim: int, seed: int, shift: float = 0.0) -> Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


# --- KID ---------------------------------------------------------------------------------------


def unbiased_poly_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """MMD² with the KID kernel (x·y/d + 1)³, diagonal terms left out (Bińkowski et al.)."""
    d, m = x.shape[1], len(x)
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(same - 2 * kxy.sum() / m**2)


def test_kid_with_whole_sets_as_subsets_is_the_unbiased_mmd() -> None:
    fake, real = gaussian(60, 8, seed=1, shift=0.5), gaussian(60, 8, seed=2)
    mean, std = kid_from_features(fake, real, seed=0, subsets=3, subset_size=1000)
    expected = unbiased_poly_mmd(fake.double().numpy(), real.double().numpy())
    assert mean == pytest.approx(expected, rel=1e-4)
    assert std == pytest.approx(0, abs=1e-6)  # every "subset" is the whole set, reordered


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift() -> None:
    real = gaussian(400, 16, seed=3)
    same, _ = kid_from_features(gaussian(400, 16, seed=4), real, seed=0, subset_size=100)
    near, _ = kid_from_features(gaussian(400, 16, seed=5, shift=0.3), real, seed=0, subset_size=100)
    far, _ = kid_from_features(gaussian(400, 16, seed=6, shift=1.0), real, seed=0, subset_size=100)
    assert abs(same) < near < far


def test_kid_subsets_come_from_the_seed_and_leave_the_global_rng_alone() -> None:
    fake, real = gaussian(300, 8, seed=7, shift=0.2), gaussian(300, 8, seed=8)
    before = torch.get_rng_state()
    first = kid_from_features(fake, real, seed=11, subsets=5, subset_size=50)
    assert torch.equal(torch.get_rng_state(), before)
    assert kid_from_features(fake, real, seed=11, subsets=5, subset_size=50) == first
    assert kid_from_features(fake, real, seed=12, subsets=5, subset_size=50) != first


# --- precision and recall ----------------------------------------------------------------------


def reference_precision_recall(fake: np.ndarray, real: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019, written out with scipy: the k-NN balls of each set."""

    def radii(points: np.ndarray) -> np.ndarray:
        return np.sort(scipy.spatial.distance.cdist(points, points), axis=1)[:, k]

    def share_inside(queries: np.ndarray, centres: np.ndarray) -> float:
        distances = scipy.spatial.distance.cdist(queries, centres)
        return float((distances <= radii(centres)[None, :]).any(axis=1).mean())

    return share_inside(fake, real), share_inside(real, fake)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_a_scipy_reference(k: int) -> None:
    fake, real = gaussian(70, 6, seed=9, shift=0.4), gaussian(90, 6, seed=10)
    got = precision_recall(fake, real, k=k, chunk=16)  # chunks must not change the answer
    expected = reference_precision_recall(fake.double().numpy(), real.double().numpy(), k)
    assert got == pytest.approx(expected, abs=1e-9)


def test_precision_recall_separate_quality_from_coverage() -> None:
    """Dropping a mode keeps precision and halves recall; samples off the data lose both."""
    real = torch.cat([gaussian(200, 4, seed=11, shift=-10), gaussian(200, 4, seed=12, shift=10)])
    one_mode = gaussian(400, 4, seed=13, shift=-10)
    precision, recall = precision_recall(one_mode, real)
    assert precision > 0.9 and 0.4 < recall < 0.6
    assert precision_recall(real.clone(), real) == (1.0, 1.0)
    assert precision_recall(gaussian(400, 4, seed=14, shift=50), real) == (0.0, 0.0)


def test_precision_recall_need_more_images_than_neighbours() -> None:
    with pytest.raises(ValueError, match="more than 3 images"):
        precision_recall(gaussian(3, 2, seed=0), gaussian(10, 2, seed=1))


# --- class metrics -----------------------------------------------------------------------------


def one_hot_probabilities(classes: list[int], num_classes: int, confidence: float) -> Tensor:
    rest = (1 - confidence) / (num_classes - 1)
    probabilities = torch.full((len(classes), num_classes), rest)
    probabilities[torch.arange(len(classes)), torch.tensor(classes)] = confidence
    return probabilities


def test_class_report_by_hand() -> None:
    real = real_class_share(torch.tensor([0, 0, 1, 2]), num_classes=3)  # 0.5, 0.25, 0.25
    assert real.tolist() == [0.5, 0.25, 0.25]
    report = class_report(one_hot_probabilities([0] * 6 + [1] * 4, 3, confidence=0.8), real)
    assert report.counts == [6, 4, 0]
    # KL(generated || real) = 0.6 ln(0.6 / 0.5) + 0.4 ln(0.4 / 0.25); class 2 is not covered
    assert report.class_kl == pytest.approx(0.6 * math.log(1.2) + 0.4 * math.log(1.6))
    assert report.classes_covered == 2
    assert report.class_confidence == pytest.approx(0.8)


def test_a_collapsed_generator_covers_one_class_and_a_balanced_one_all() -> None:
    real = torch.full((10,), 0.1, dtype=torch.float64)
    collapsed = class_report(one_hot_probabilities([7] * 100, 10, confidence=0.99), real)
    assert collapsed.classes_covered == 1 and collapsed.class_kl == pytest.approx(math.log(10))
    balanced = class_report(one_hot_probabilities(list(range(10)) * 10, 10, 0.99), real)
    assert balanced.classes_covered == 10 and balanced.class_kl == pytest.approx(0, abs=1e-12)
    # A stray 0.5% of samples in a class does not make it covered (10% of its 10% share).
    stray = class_report(one_hot_probabilities([3] * 199 + [4], 10, confidence=0.99), real)
    assert stray.classes_covered == 1


# --- names -------------------------------------------------------------------------------------


def test_metric_names_carry_the_sample_count_and_parse_back() -> None:
    assert metric_name("fid", 10000) == "fid_10k" and metric_name("kid_std", 500) == "kid_std_500"
    assert family_of("fid_10k") == "fid" and family_of("kid_std_500") == "kid_std"
    assert family_of("precision_2k") == "precision" and family_of("fcd_64") == "fcd"
    for uncounted in ("classes_covered", "class_kl", "num_samples", "fid_num_samples"):
        assert family_of(uncounted) == uncounted
