"""Datasets: where the IDX files come from, how they are verified, decoded and normalized."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganops.errors import DataError, output_error
from ganops.files import current_umask, file_sha256, replace_dir

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """The four IDX files of a dataset, keyed by the SHA-256 of their decompressed content.

    Verifying the decompressed bytes (not the .gz) accepts both the mirrors' originals and a
    recompressed copy of the same data (see shared/datasets/mnist/README.md).
    """

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]  # file name -> sha256 of the decompressed IDX

    def file(self, split: str, kind: str) -> str:
        prefix = "train" if split == "train" else "t10k"
        return f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        # The mirrors torchvision's MNIST lists, in its order.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # Decompressed content of Debian's dataset-fashion-mnist (same 60k/10k IDX files).
        sha256={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
}


def gunzip_sha256(path: Path) -> str:
    """SHA-256 of the decompressed content; a truncated or corrupt gzip is a ``DataError``."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path.name}: not a valid gzip file ({error}); delete it and "
            "download again, or fix data.source"
        ) from None
    return digest.hexdigest()


def _retrieve(url: str, dest: Path, on_bytes: Callable[[int], None], retries: int = 3) -> None:
    """Fetch ``url`` into ``dest`` (file:// or http(s)://), retrying transient failures."""
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=30) as response, dest.open("wb") as out:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    on_bytes(len(chunk))
            return
        except urllib.error.HTTPError as error:
            if error.code == 404 or attempt == retries:
                raise
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt == retries:
                raise
        time.sleep(2 ** (attempt - 1))  # back off: 1 s, 2 s


def _candidate_urls(source: str, spec: DatasetSpec, name: str) -> list[str]:
    if source == "mirrors":
        return [mirror + name for mirror in spec.mirrors]
    if urllib.parse.urlparse(source).scheme in ("http", "https", "file"):
        return [source.rstrip("/") + "/" + name]
    return []  # a local directory: handled by copying


def _fetch_one(
    source: str, spec: DatasetSpec, name: str, dest: Path, on_bytes: Callable[[int], None]
) -> None:
    urls = _candidate_urls(source, spec, name)
    if not urls:
        local = Path(source) / name
        if not local.is_file():
            raise DataError(
                f"{name}: not found in data.source directory {Path(source).resolve()}"
                "; it must hold the four IDX .gz files"
            )
        shutil.copyfile(local, dest)
        on_bytes(dest.stat().st_size)
        return
    errors = []
    for url in urls:
        try:
            _retrieve(url, dest, on_bytes)
            return
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
    hint = (
        "set data.source in params.yaml to a local directory (or file:// URL) holding "
        "the four .gz files, e.g. `dvc exp run -S data.source=../shared/datasets/mnist`"
    )
    raise DataError(f"{name}: could not download ({'; '.join(errors)}). Offline? {hint}")


def download(
    source: str, dataset: str, out_dir: Path, on_bytes: Callable[[int], None] = lambda n: None
) -> dict[str, str]:
    """Fetch and verify the four files of ``dataset`` into ``out_dir``; return name -> sha256.

    Files are staged in a temporary sibling directory and moved into place only when all four
    pass verification, so a failure never leaves a partial ``out_dir`` behind.
    """
    spec = DATASETS[dataset]
    if source != "mirrors" and not _candidate_urls(source, spec, "") and not Path(source).is_dir():
        raise DataError(
            f"data.source {source!r} is neither 'mirrors', a URL, nor an existing "
            f"directory (resolved to {Path(source).resolve()})"
        )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as error:
        raise output_error(out_dir, error) from None
    staging.chmod(0o777 & ~current_umask())  # mkdtemp creates 0700
    try:
        for name, expected in spec.sha256.items():
            _fetch_one(source, spec, name, staging / name, on_bytes)
            actual = gunzip_sha256(staging / name)
            if actual != expected:
                raise DataError(
                    f"{name}: checksum mismatch (sha256 of decompressed content is "
                    f"{actual}, expected {expected}); the file is corrupt or not "
                    f"{dataset}"
                )
        replace_dir(staging, out_dir)
    except OSError as error:
        raise output_error(error.filename or out_dir, error) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dict(spec.sha256)


_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Decode a gzipped IDX file, checking its magic number and that its size matches."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot decompress ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex()} (expected 0000080N)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header truncated ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(
            f"{path}: header says shape {dims} ({expected} bytes) but the file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [-1, 1], with 0 -> -1 and 255 -> 1 exactly."""
    tensor = torch.from_numpy(images.astype(np.float32))
    return (tensor / 127.5 - 1.0).unsqueeze(1)


def load_split(
    raw_dir: Path, dataset: str, split: str, limit: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one split: (images (N,1,28,28) float32 in [-1,1], labels (N,) int64)."""
    spec = DATASETS[dataset]
    images = read_idx(raw_dir / spec.file(split, "images"))
    labels = read_idx(raw_dir / spec.file(split, "labels"))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{spec.file(split, 'images')}: expected (N, 28, 28) images, got shape {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{spec.file(split, 'labels')}: {labels.shape} labels for {len(images)} images"
        )
    if limit:
        images, labels = images[:limit], labels[:limit]
    return normalize(images), torch.from_numpy(labels.astype(np.int64))


def dataset_checksum(file_sha256: dict[str, str]) -> str:
    """One SHA-256 naming the whole dataset (for MLflow tags and cache keys)."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_sha256.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


META_FILE = "meta.json"
_META_KEYS = ("dataset", "dataset_sha256")


def read_meta(data_dir: Path) -> dict[str, Any]:
    """``meta.json`` of a prepared directory; missing, unreadable or incomplete: DataError."""
    path = data_dir / META_FILE
    fix = "run `ganops prepare` (or `dvc repro`) again"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable ({type(error).__name__}); {fix}") from None
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
