"""``ganops sample``: pictures from a trained generator (a grid, single images, a latent walk)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import Tensor

from ganops.errors import CheckpointError, UsageError
from ganops.files import check_output_file
from ganops.generator_file import load_generator
from ganops.images import VIEW_SCALE, grid_array, save_png
from ganops.models import NUM_CLASSES
from ganops.models.sampling import NonFiniteSamples, sample_images
from ganops.stages.common import resolve_device
from ganops.tracking import registry


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between noise vectors ``a`` and ``b`` (D,) at fractions ``t``
    (T,) -> (T, D). Unlike a straight line, it keeps the norm a Gaussian sample would have,
    so intermediate points do not collapse towards the (atypical) origin."""
    a_unit, b_unit = a / a.norm(), b / b.norm()
    omega = torch.arccos((a_unit * b_unit).sum().clamp(-1.0, 1.0))
    t = t[:, None]
    if omega.abs() < 1e-6:  # (nearly) parallel: a straight line is the same path
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def _noise(seed: int, n: int, latent_dim: int) -> Tensor:
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def sample_inputs(
    latent_dim: int,
    conditional: bool,
    *,
    num: int,
    seed: int,
    digit: int | None = None,
    interpolate_to: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """The noise (num, latent_dim) and class labels (num,) or None for one picture.

    A latent walk goes from the first noise vector of ``seed`` to that of ``interpolate_to``
    in ``num`` steps. Class labels: ``digit`` for all, else 0..9 in reading order; an
    unconditional generator takes none, so ``digit`` is an error there. A conditional walk
    keeps one class (``digit``, else 0) so only the noise changes along it.
    """
    if digit is not None and not conditional:
        raise UsageError(
            f"--digit {digit} needs a generator trained with model.conditional: true; "
            "this one is unconditional (leave out --digit)"
        )
    if digit is not None and not 0 <= digit < NUM_CLASSES:
        raise UsageError(f"--digit is {digit}; expected a class from 0 to {NUM_CLASSES - 1}")
    if interpolate_to is None:
        z = _noise(seed, num, latent_dim)
    else:
        ends = _noise(seed, 1, latent_dim)[0], _noise(interpolate_to, 1, latent_dim)[0]
        z = slerp(*ends, torch.linspace(0.0, 1.0, num))
    if not conditional:
        return z, None
    if digit is not None or interpolate_to is not None:  # a walk keeps one class throughout
        return z, torch.full((num,), digit or 0, dtype=torch.long)
    return z, torch.arange(num) * NUM_CLASSES // num


MAX_IMAGES = 10_000  # one PNG grid; more is a job for `ganops evaluate`


def run(
    model_path: Path,
    out: Path,
    *,
    num: int,
    seed: int,
    digit: int | None,
    interpolate_to: int | None,
    images_dir: Path | None,
    device_name: str,
    tracking: str = "",
) -> Tensor:
    """Write the grid PNG ``out`` (and one PNG per image into ``images_dir``). ``model_path``
    is a generator file, or a registered version (``models:/NAME@champion``) fetched from
    the MLflow store at ``tracking``."""
    if not 1 <= num <= MAX_IMAGES:
        raise UsageError(f"--num is {num}; expected 1 to {MAX_IMAGES} images")
    for name, value in (("--seed", seed), ("--interpolate", interpolate_to)):
        if value is not None and not 0 <= value < 2**63:
            raise UsageError(f"{name} is {value}; expected a seed from 0 to 2**63 - 1")
    if device_name not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device is {device_name!r}; expected auto, cpu or cuda")
    device = resolve_device(device_name, "--device")
    check_output_file(out)  # a link or special file at OUT: refused before any work
    shown = model_path  # errors name what was asked for, not a downloaded copy
    with tempfile.TemporaryDirectory(prefix="ganops-sample-") as scratch:
        if registry.is_model_uri(str(model_path)):  # models:/NAME@champion: its file
            model_path = registry.download_generator(str(model_path), tracking, Path(scratch))
        generator, model_cfg = load_generator(model_path)
    z, labels = sample_inputs(
        model_cfg.latent_dim,
        model_cfg.conditional,
        num=num,
        seed=seed,
        digit=digit,
        interpolate_to=interpolate_to,
    )
    try:  # checked before anything is written: NaN pixels would save as a black PNG
        images = sample_images(
            generator.to(device),
            z.to(device),
            labels=None if labels is None else labels.to(device),
            checked=True,
        ).cpu()
    except NonFiniteSamples as error:
        raise CheckpointError(
            f"{shown}: {error}, so its images would be black or saturated; nothing was "
            "written. Train again, e.g. with a lower train.lr_g/train.lr_d"
        ) from None
    nrow = num if interpolate_to is not None else None  # a walk reads as one row
    save_png(grid_array(images, nrow=nrow, scale=VIEW_SCALE), out)
    if images_dir is not None:
        for i, image in enumerate(images):
            save_png(grid_array(image[None], nrow=1), images_dir / f"sample_{i:04d}.png")
    walk = interpolate_to is not None
    what = f"images of a latent walk from seed {seed} to {interpolate_to}" if walk else "samples"
    print(f"wrote {num} {what} to {out}" + (f" and {images_dir}/" if images_dir else ""))
    return images
