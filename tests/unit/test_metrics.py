"""KID, precision/recall, class metrics and metric names, on features made up for the test."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.spatial.distance
import torch
from torch import Tensor

from ganops.metrics.classes import class_report, expected_class_share, real_class_share
from ganops.metrics.kid import kid_from_features
from ganops.metrics.names import family_of, metric_name, sample_count
from ganops.metrics.precision_recall import precision_recall


class Precomputed(torch.nn.Module):
    """An identity "feature extractor", so torchmetrics' KID (the reference here) takes
    features extracted once."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


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
    assert std == 0.0  # every "subset" is the whole set, reordered: no rounding noise
    # Unequal sets: subsets of the larger one differ, so there is a spread.
    _, spread = kid_from_features(gaussian(80, 8, seed=1), real, seed=0, subsets=3)
    assert spread > 0


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


def naive_kid(fake: np.ndarray, real: np.ndarray, subsets: int, size: int, seed: int) -> float:
    """KID written out: a loop over subsets drawn in torchmetrics' order (a real then a fake
    permutation each), each scored by ``unbiased_poly_mmd`` in float64."""
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        real_members = torch.randperm(len(real), generator=generator)[:size].numpy()
        fake_members = torch.randperm(len(fake), generator=generator)[:size].numpy()
        scores.append(unbiased_poly_mmd(real[real_members], fake[fake_members]))
    return float(np.mean(scores))


@pytest.mark.parametrize(
    ("num_fake", "subsets", "size", "chunk"),
    [
        (70, 20, 20, 1000),  # every pair's kernel once, one block
        (70, 20, 20, 7),  # the same in 7 x 7 blocks
        (70, 4, 20, 1000),  # each subset's pairs, one block per subset
        (70, 4, 20, 6),  # the same in blocks
        (60, 3, 1000, 16),  # subsets as large as the sets
    ],
)
def test_kid_matches_a_naive_float64_loop(
    num_fake: int, subsets: int, size: int, chunk: int
) -> None:
    fake = gaussian(num_fake, 8, seed=21, shift=0.4).double()
    real = gaussian(60, 8, seed=22).double()
    mean, _ = kid_from_features(fake, real, seed=5, subsets=subsets, subset_size=size, chunk=chunk)
    size = min(size, 60)
    expected = naive_kid(fake.numpy(), real.numpy(), subsets, size, seed=5)
    assert mean == pytest.approx(expected, rel=1e-10)


def test_kid_draws_torchmetrics_subsets_and_matches_it_on_float64_features() -> None:
    from torchmetrics.image.kid import KernelInceptionDistance  # the reference implementation

    fake, real = gaussian(90, 12, seed=23, shift=0.3).double(), gaussian(80, 12, seed=24).double()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(feature=Precomputed(12), subsets=7, subset_size=30)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(9)  # torchmetrics draws from the global generator
        expected = [float(value) for value in metric.compute()]
    got = kid_from_features(fake, real, seed=9, subsets=7, subset_size=30)
    assert got == pytest.approx(expected, rel=1e-10)


def test_kid_of_float32_features_is_within_5e_6_of_float64() -> None:
    """Products in float32 (the features' dtype), cubes and sums in float64; KID is a small
    difference of large sums, so this is the tolerance that matters. The float32 products'
    rounding depends on the CPU's matrix-product kernel: 1.3e-6 on an Intel Xeon with AMX
    (1 or 2 threads), within 1e-6 on the AMD EPYC VM before, so the bound is 5e-6."""
    real = gaussian(600, 256, seed=25).abs()
    fake = gaussian(600, 256, seed=26).abs() * 1.02 + 0.01
    kid32, std32 = kid_from_features(fake, real, seed=1, subsets=10, subset_size=200)
    kid64, std64 = kid_from_features(
        fake.double(), real.double(), seed=1, subsets=10, subset_size=200
    )
    assert 0 < kid64 < 0.05  # a small KID, where cancellation would show
    assert kid32 == pytest.approx(kid64, rel=5e-6) and std32 == pytest.approx(std64, rel=1e-4)


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


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_precision_recall_match_scipy_with_ties_and_float64(chunk: int) -> None:
    """Duplicated points (distance 0, several equal radii) and blocks of any size."""
    real = gaussian(50, 5, seed=31).double()
    real = torch.cat([real, real[:10]])  # 10 points twice: each has a neighbour at distance 0
    fake = torch.cat([gaussian(40, 5, seed=32, shift=0.3).double(), real[:5]])
    got = precision_recall(fake, real, k=3, chunk=chunk)
    assert got == reference_precision_recall(fake.numpy(), real.numpy(), k=3)


def test_precision_recall_of_float32_inception_sized_features_match_float64() -> None:
    real = gaussian(300, 2048, seed=33).abs()
    fake = gaussian(300, 2048, seed=34).abs() + 0.02
    got = precision_recall(fake, real, chunk=128)
    assert got == reference_precision_recall(fake.double().numpy(), real.double().numpy(), k=3)
    assert 0 < got[0] < 1 and 0 < got[1] < 1  # neither all in nor all out


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
    for uncounted in ("classes_covered", "class_kl", "num_samples", "fid_num_samples", "fid_k"):
        assert family_of(uncounted) == uncounted and sample_count(uncounted) is None
    assert sample_count("fid_10k") == 10000 and sample_count("kid_std_500") == 500


def test_classes_csv_gives_each_class_its_generated_and_real_share() -> None:
    from ganops.metrics.classes import classes_csv

    csv = classes_csv([3, 1, 0], torch.tensor([0.5, 0.25, 0.25]))
    assert csv == "class,generated,real\n0,0.7500,0.5000\n1,0.2500,0.2500\n2,0.0000,0.2500\n"


def test_expected_class_share_is_the_training_set_s_or_the_asked_classes_with_a_prior() -> None:
    train = torch.tensor([0, 0, 1, 2])  # shares 0.5, 0.25, 0.25
    assert torch.equal(expected_class_share(train, 3), real_class_share(train, 3))
    asked = torch.tensor([1, 1, 1])  # a conditional generator asked for three 1s
    share = expected_class_share(train, 3, asked=asked)
    # (counts 0, 3, 0 plus the training shares as one image) / 4
    expected = torch.tensor([0.5, 3.25, 0.25], dtype=torch.float64) / 4
    assert torch.allclose(share, expected) and float(share.sum()) == pytest.approx(1.0)
