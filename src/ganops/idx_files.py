"""IDX files (the MNIST format) decoded with bounds a crafted file cannot exceed, and a split
normalized to [-1, 1]."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ganops.datasets import DATASETS
from ganops.errors import DataError

if TYPE_CHECKING:
    pass


_IDX_DTYPES = {0x08: np.uint8}
MAX_IDX_BYTES = 1 << 30  # far above any dataset here (MNIST's largest file: 47 MB)


_DEFLATE_MAX_RATIO = 1032  # deflate never expands its input more than this


def read_idx(path: Path, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Decode a gzipped IDX file, checking its magic number and that its size matches.

    Streamed into an array of the size the header promises, which is refused first if over
    ``max_bytes`` or more than the compressed file could hold; decompression stops as soon as
    the file holds more than promised, so memory stays at the promised size.
    """
    try:
        with gzip.open(path, "rb") as stream:
            dims, header = _idx_header(stream, path)
            expected = header + math.prod(dims)
            _check_promise(path, dims, expected, max_bytes)
            payload = np.empty(expected - header, dtype=np.uint8)
            filled = _read_into(stream, payload)
            more = stream.read(1)  # one byte past the promise is enough to refuse the file
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot decompress ({error})") from None
    if filled < len(payload) or more:
        size = "more (stopped there)" if more else f"{header + filled:,} bytes"
        raise DataError(
            f"{path}: header says shape {dims} ({expected:,} bytes) but the file has {size}"
        )
    return payload.reshape(dims)


def _read_into(stream: gzip.GzipFile, out: np.ndarray) -> int:
    """Fill ``out`` from ``stream`` in 1 MiB pieces; return how many bytes there were."""
    filled = 0
    while filled < len(out) and (chunk := stream.read(min(1 << 20, len(out) - filled))):
        out[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        filled += len(chunk)
    return filled


def _idx_header(stream: gzip.GzipFile, path: Path) -> tuple[tuple[int, ...], int]:
    """The dims and header length of an IDX stream, positioned at its first data byte."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad IDX magic number {magic.hex()} (expected 0000080N)")
    ndim = magic[3]
    raw_dims = stream.read(4 * ndim)
    if ndim == 0 or len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: IDX header truncated ({4 + len(raw_dims)} bytes)")
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return dims, 4 + 4 * ndim


def _check_promise(path: Path, dims: tuple[int, ...], expected: int, max_bytes: int) -> None:
    """Refuse, before allocating, a header that promises more than allowed or possible."""
    compressed = path.stat().st_size
    if expected > max_bytes:
        why = f"the {max_bytes:,} allowed"
    elif expected > _DEFLATE_MAX_RATIO * compressed + (64 << 10):
        why = f"a {compressed:,}-byte gzip can hold"
    else:
        return
    raise DataError(f"{path}: header says shape {dims} ({expected:,} bytes), more than {why}")


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [-1, 1], with 0 -> -1 and 255 -> 1 exactly."""
    tensor = torch.from_numpy(images.astype(np.float32))
    return (tensor / 127.5 - 1.0).unsqueeze(1)


def load_split(
    raw_dir: Path, dataset: str, *, split: str, limit: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one split: (images (N,1,28,28) float32 in [-1,1], labels (N,) int64)."""
    spec = DATASETS[dataset]
    image_file, label_file = spec.file(split, "images"), spec.file(split, "labels")
    images = read_idx(raw_dir / image_file, max_bytes=spec.idx_size(image_file))
    labels = read_idx(raw_dir / label_file, max_bytes=spec.idx_size(label_file))
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
