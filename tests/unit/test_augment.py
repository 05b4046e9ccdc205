from __future__ import annotations

import pytest
import torch

from ganops.augment import BACKGROUND, cutout, diff_augment, parse_policy, translation


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_translation_shifts_each_image_by_at_most_an_eighth(images: torch.Tensor) -> None:
    torch.manual_seed(1)
    shifted = translation(images)
    for original, moved in zip(images, shifted, strict=True):
        # Some shift (dy, dx) with |d| <= 4 reproduces the image exactly, background outside.
        matches = []
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                padded = torch.nn.functional.pad(original, (5, 5, 5, 5), value=BACKGROUND)
                window = padded[:, 5 + dy : 33 + dy, 5 + dx : 33 + dx]
                matches.append(torch.equal(window, moved))
        assert any(matches)


def test_translation_by_zero_ratio_is_the_identity(images: torch.Tensor) -> None:
    assert torch.equal(translation(images, ratio=0.0), images)


def test_cutout_blanks_one_square_of_half_the_side(images: torch.Tensor) -> None:
    torch.manual_seed(2)
    cut = cutout(images)
    changed = (cut != images).squeeze(1)  # (B, 28, 28)
    assert torch.all(cut[cut != images] == BACKGROUND)
    for mask in changed:
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        if len(rows):  # a square of side 14, clipped at the border
            assert rows.max() - rows.min() < 14 and cols.max() - cols.min() < 14
    assert changed.flatten(1).sum(dim=1).float().mean() > 100  # most squares mostly inside


def test_augmentation_is_differentiable(images: torch.Tensor) -> None:
    source = images.clone().requires_grad_(True)
    diff_augment(source, ("translation", "cutout")).sum().backward()
    assert source.grad is not None
    # Each output pixel comes from at most one input pixel: gradients are 0 or 1.
    assert set(source.grad.unique().tolist()) <= {0.0, 1.0}
    assert source.grad.sum() > 0


def test_policy_parsing() -> None:
    assert parse_policy("") == ()
    assert parse_policy("translation, cutout") == ("translation", "cutout")
    with pytest.raises(ValueError, match="'color'"):
        parse_policy("translation,color")
