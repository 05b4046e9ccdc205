from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganops.config import params_from_dict
from ganops.errors import UsageError
from ganops.generator_file import save_generator
from ganops.models import build_models
from ganops.stages import sample
from ganops.stages.sample import sample_inputs, slerp


def test_slerp_ends_at_both_points_and_keeps_the_norm_of_orthogonal_unit_vectors() -> None:
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), torch.ones(5), atol=1e-6)
    # A straight line would pass through norm 1/sqrt(2) half-way.
    assert torch.allclose(path[2], torch.tensor([0.5**0.5, 0.5**0.5, 0.0]), atol=1e-6)


def test_walk_starts_and_ends_at_the_noise_of_each_seed() -> None:
    z, labels = sample_inputs(8, conditional=False, num=6, seed=1, interpolate_to=2)
    start, _ = sample_inputs(8, conditional=False, num=1, seed=1)
    end, _ = sample_inputs(8, conditional=False, num=1, seed=2)
    assert labels is None and z.shape == (6, 8)
    assert torch.allclose(z[0], start[0], atol=1e-5) and torch.allclose(z[-1], end[0], atol=1e-5)


def test_conditional_labels_run_through_the_classes_or_fix_one_digit() -> None:
    _, labels = sample_inputs(4, conditional=True, num=20, seed=0)
    assert labels is not None and labels.tolist() == [i // 2 for i in range(20)]
    _, labels = sample_inputs(4, conditional=True, num=5, seed=0, digit=7)
    assert labels is not None and labels.tolist() == [7] * 5


def test_digit_is_refused_for_an_unconditional_model_and_out_of_range() -> None:
    with pytest.raises(UsageError, match=r"--digit 3 needs .*conditional"):
        sample_inputs(4, conditional=False, num=5, seed=0, digit=3)
    with pytest.raises(UsageError, match="--digit is 10; expected a class from 0 to 9"):
        sample_inputs(4, conditional=True, num=5, seed=0, digit=10)


def _generator_file(tmp_path: Path, conditional: bool) -> Path:
    params = params_from_dict(
        {
            "model": {
                "arch": "mlp",
                "latent_dim": 8,
                "g_hidden": [16],
                "d_hidden": [16],
                "conditional": conditional,
            }
        }
    )
    path = tmp_path / "generator.pt"
    save_generator(build_models(params.model)[0], params.model, path=path)
    return path


def test_grid_and_single_images_are_written(tmp_path: Path) -> None:
    model = _generator_file(tmp_path, conditional=True)
    images = sample.run(
        model,
        tmp_path / "grid.png",
        num=10,
        seed=0,
        digit=4,
        interpolate_to=None,
        images_dir=tmp_path / "each",
        device_name="cpu",
    )
    assert images.shape == (10, 1, 28, 28)
    grid = Image.open(tmp_path / "grid.png")
    # ceil(sqrt(10)) = 4 columns, 2 px padding, drawn at twice the pixels
    assert grid.size == (2 * (4 * 30 + 2), 2 * (3 * 30 + 2))
    singles = sorted((tmp_path / "each").iterdir())
    assert len(singles) == 10 and Image.open(singles[0]).size == (28, 28)


def test_a_walk_is_one_row(tmp_path: Path) -> None:
    model = _generator_file(tmp_path, conditional=False)
    sample.run(
        model,
        tmp_path / "walk.png",
        num=7,
        seed=0,
        digit=None,
        interpolate_to=5,
        images_dir=None,
        device_name="cpu",
    )
    assert Image.open(tmp_path / "walk.png").size == (2 * (7 * 30 + 2), 2 * 32)  # twice the pixels


@pytest.mark.parametrize(
    ("num", "seed", "fragment"),
    [
        (1_000_000_000, 0, "--num is 1000000000; expected 1 to 10000"),
        (4, 10**22, "--seed is 10000000000000000000000; expected a seed from 0"),
        (4, -1, "--seed is -1"),
    ],
)
def test_sample_options_out_of_range_are_one_usage_error(
    num: int, seed: int, fragment: str, tmp_path: Path
) -> None:
    from ganops.stages import sample

    model = _generator_file(tmp_path, conditional=False)
    with pytest.raises(UsageError, match=re.escape(fragment)):
        sample.run(
            model,
            tmp_path / "s.png",
            num=num,
            seed=seed,
            digit=None,
            interpolate_to=None,
            images_dir=None,
            device_name="cpu",
        )
    assert not (tmp_path / "s.png").exists()


def test_a_scaled_grid_repeats_each_pixel_in_a_block_and_changes_none() -> None:
    from ganops.images import grid_array

    images = torch.rand(5, 1, 28, 28) * 2 - 1
    plain, scaled = grid_array(images), grid_array(images, scale=3)
    assert scaled.shape == (3 * plain.shape[0], 3 * plain.shape[1], 3)
    for dy in range(3):
        for dx in range(3):
            assert (scaled[dy::3, dx::3] == plain).all()
