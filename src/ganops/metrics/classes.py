"""Class metrics of generated images, from a classifier trained on the real data.

Mode collapse shows here first: a generator that drops digits loses classes and its class
histogram drifts from the data's, long before FID says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# A class counts as covered when it gets at least this share of its real share (0.1: a digit
# that is 10% of the data must be at least 1% of the samples). Misclassified noise scatters a
# few samples over every class, so "predicted at least once" would call everything covered.
COVERED_SHARE = 0.1


@dataclass(frozen=True)
class ClassReport:
    counts: list[int]  # generated images predicted as each class
    classes_covered: int
    class_kl: float  # KL(generated class distribution || real class distribution), nats
    class_confidence: float  # mean top softmax probability

    def metrics(self) -> dict[str, float]:
        return {
            "classes_covered": float(self.classes_covered),
            "class_kl": self.class_kl,
            "class_confidence": self.class_confidence,
        }


def real_class_share(labels: Tensor, num_classes: int) -> Tensor:
    """Each class's share of ``labels`` (float64, sums to 1)."""
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).double()
    return counts / counts.sum()


def expected_class_share(
    train_labels: Tensor, num_classes: int, *, asked: Tensor | None = None
) -> Tensor:
    """The class shares generated samples should have: the training set's, or for a
    conditional generator asked for the classes ``asked``, theirs, with the training set's
    shares added as one more image (a class none of a few asked labels has, e.g. no 3 among
    the first 16 test digits, keeps a small share, so a sample of it gives a large but
    finite KL)."""
    train_share = real_class_share(train_labels, num_classes)
    if asked is None:
        return train_share
    counts = torch.bincount(asked.long().cpu(), minlength=num_classes).double()
    return (counts + train_share) / (len(asked) + 1)


def class_report(probabilities: Tensor, real_share: Tensor) -> ClassReport:
    """Class metrics of generated images from their softmax ``probabilities`` (N, C).

    KL runs from the generated distribution to the real one (as in Metz et al. 2017's mode
    counting): it is finite when the generator misses classes, and grows as samples pile up
    on a few; a class absent from the real data but predicted here makes it infinite.
    """
    num_classes = probabilities.shape[1]
    if real_share.shape != (num_classes,):
        raise ValueError(
            f"real_share has {tuple(real_share.shape)} entries, expected {num_classes}"
        )
    predicted = probabilities.argmax(dim=1)
    counts = torch.bincount(predicted, minlength=num_classes)
    generated = counts.double() / counts.sum()
    present = generated > 0
    kl = (generated[present] * (generated[present] / real_share.double()[present]).log()).sum()
    covered = int((generated >= COVERED_SHARE * real_share.double()).logical_and(present).sum())
    return ClassReport(
        counts=counts.tolist(),
        classes_covered=covered,
        class_kl=float(kl),
        class_confidence=float(probabilities.max(dim=1).values.double().mean()),
    )


def classes_csv(counts: list[int], real_share: Tensor) -> str:
    """One row per class: its share of the generated and of the real images (a DVC plot)."""
    total = sum(counts) or 1
    rows = ["class,generated,real"]
    shares = zip(counts, real_share.tolist(), strict=True)
    rows += [f"{c},{n / total:.4f},{r:.4f}" for c, (n, r) in enumerate(shares)]
    return "\n".join(rows) + "\n"
