"""The prepared data (``data/prepared``): its splits, their metadata and digests, and the
training set as the training library takes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ganops import outputs
from ganops.errors import DataError
from ganops.files import file_sha256, read_json

if TYPE_CHECKING:
    from ganops.training.run import TrainData


META_FILE = outputs.META
_META_KEYS = ("dataset", "dataset_sha256")


def read_meta(data_dir: Path) -> dict[str, Any]:
    """``meta.json`` of a prepared directory; missing, unreadable or incomplete: DataError."""
    path = data_dir / META_FILE
    fix = "run `ganops prepare` (or `dvc repro`) again"
    try:
        meta = read_json(path, "prepared data's meta")
    except FileNotFoundError:
        raise DataError(f"{path}: not found; {fix}") from None
    except DataError as error:  # unreadable, not JSON, nested too deeply, huge integers
        raise DataError(f"{error}; {fix}") from None
    missing = [key for key in _META_KEYS if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)}; {fix}")
    return dict(meta)


def load_prepared(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a prepared split written by ``ganops prepare`` (safe: weights_only), checked
    against the SHA-256 that ``meta.json`` beside it recorded for it (when it has one)."""
    _check_prepared_digest(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        images, labels = blob["images"], blob["labels"]
    except FileNotFoundError:
        raise DataError(f"{path}: not found; run `ganops prepare` (or `dvc repro`) first") from None
    except Exception as error:  # unpickling errors come in many types
        raise DataError(f"{path}: not a prepared ganops split ({error})") from None
    if images.ndim != 4 or images.shape[1] != 1 or len(labels) != len(images):
        raise DataError(f"{path}: unexpected tensor shapes {tuple(images.shape)}")
    return images, labels


def require_images(images: torch.Tensor, count: int, *, key: str, path: Path) -> None:
    """A DataError naming ``key`` when the split at ``path`` holds fewer than ``count`` images."""
    if count > len(images):
        raise DataError(
            f"{key} is {count} but {path} has {len(images)} images; lower it (or raise "
            f"data.{path.stem}_subset)"
        )


def _check_prepared_digest(path: Path) -> None:
    meta_path = path.parent / META_FILE
    if not meta_path.is_file() or not path.is_file():
        return  # a missing split is reported by its loader; no meta: nothing to check against
    expected = read_meta(path.parent).get(f"{path.stem}_file_sha256")
    if expected is not None and expected != file_sha256(path):
        raise DataError(
            f"{path} changed since `ganops prepare` wrote it (its SHA-256 differs from "
            f"{meta_path}'s); run `ganops prepare` (or `dvc repro`) again"
        )


def load_training_set(data_dir: Path) -> TrainData:
    """``ganops prepare``'s training split, verified against its ``meta.json``, as the
    training library takes it."""
    from ganops.training.run import TrainData

    images, labels = load_prepared(data_dir / outputs.TRAIN_IMAGES)
    meta = read_meta(data_dir)
    return TrainData(images, labels, meta["dataset"], meta["dataset_sha256"])
