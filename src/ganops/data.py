"""Datasets: where the IDX files come from, how they are verified, decoded and normalized."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ganops import outputs
from ganops.errors import DataError, output_error
from ganops.files import file_sha256, read_json, replace_files, write_json

if TYPE_CHECKING:
    from ganops.training.run import TrainData

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
    counts: tuple[int, int] = (60_000, 10_000)  # 28x28 images (and labels) in train, test

    def file(self, split: str, kind: str) -> str:
        prefix = "train" if split == "train" else "t10k"
        return f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"

    def idx_size(self, name: str) -> int:
        """Bytes of file ``name`` decompressed: its IDX header, then one byte per pixel/label."""
        count = self.counts[0 if name.startswith("train") else 1]
        return 16 + count * 28 * 28 if "-images-" in name else 8 + count

    def max_download_bytes(self, name: str) -> int:
        """The most bytes any gzip of file ``name`` takes, with a margin: even uncompressed
        (level 0) deflate adds only 5 bytes per 64 KiB, gzip a header and trailer. Bounded by
        the content, not the mirrors' .gz, since any recompressed copy is accepted."""
        size = self.idx_size(name)
        return size + size // 256 + (64 << 10)


@dataclass(frozen=True)
class DownloadLimits:
    """Time limits of one file's download (its byte cap is ``DatasetSpec.max_download_bytes``)."""

    # All tries of all mirrors of one file: MNIST's largest (9.9 MB) at 16 KB/s.
    deadline_s: float = 600.0
    read_timeout_s: float = 30.0  # the longest wait for the next bytes before a retry
    retries: int = 3  # tries per URL


DEFAULT_LIMITS = DownloadLimits()


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


def gunzip_sha256(path: Path, max_bytes: int | None = None) -> str:
    """SHA-256 of the decompressed content; a truncated or corrupt gzip, or one that
    decompresses to more than ``max_bytes`` (it stops there), is a ``DataError``."""
    digest, total = hashlib.sha256(), 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise DataError(
                        f"{path.name}: decompresses to more than the {max_bytes:,} bytes "
                        "expected (stopped there); the file is corrupt or not the dataset's"
                    )
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path.name}: not a valid gzip file ({error}); delete it and "
            "download again, or fix data.source"
        ) from None
    return digest.hexdigest()


# Fetch errors worth another try (HTTPException: a body cut short mid-chunk).
_TRANSIENT = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


@dataclass(frozen=True)
class _Budget:
    """What fetching one file may take, over all its mirrors and tries."""

    max_bytes: int
    deadline: float  # a time.monotonic() value
    limits: DownloadLimits
    on_bytes: Callable[[int], None]

    def check_time(self, source: str, received: int = 0) -> None:
        if time.monotonic() >= self.deadline:
            got = f"; {received:,} bytes had arrived" if received else ""
            raise DataError(
                f"{source}: not downloaded within the {self.limits.deadline_s:g} s limit per "
                f"file{got}; on a slow network fetch the four .gz files another way and set "
                "data.source to their directory"
            )


def _retrieve(url: str, dest: Path, budget: _Budget) -> None:
    """Fetch ``url`` into ``dest`` (file:// or http(s)://), retrying transient failures
    until the budget's deadline passes."""
    retries = budget.limits.retries
    for attempt in range(1, retries + 1):
        try:
            left = budget.deadline - time.monotonic()
            timeout = max(0.01, min(budget.limits.read_timeout_s, left))
            with urllib.request.urlopen(url, timeout=timeout) as response:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > budget.max_bytes:
                    raise _too_big(url, budget.max_bytes)
                size = _copy_capped(response, dest, url, budget)
            if declared.isdigit() and 0 < int(declared) != size:
                raise ConnectionError(f"connection closed after {size} of {declared} bytes")
            return
        except urllib.error.HTTPError as error:
            budget.check_time(url)
            if error.code == 404 or attempt == retries:
                raise
        except _TRANSIENT:
            budget.check_time(url)
            if attempt == retries:
                raise
        time.sleep(min(2 ** (attempt - 1), max(0.0, budget.deadline - time.monotonic())))


def _copy_capped(stream: io.BufferedIOBase, dest: Path, source: str, budget: _Budget) -> int:
    """Copy ``stream`` to ``dest``; a ``DataError`` once it exceeds the budget's bytes or
    deadline, checked after each read (which waits ``read_timeout_s`` at most)."""
    received = 0
    with dest.open("wb") as out:
        # read1: what has arrived (up to 64 KiB), so a trickle still reaches the checks.
        while chunk := stream.read1(1 << 16):
            received += len(chunk)
            if received > budget.max_bytes:
                raise _too_big(source, budget.max_bytes)
            out.write(chunk)
            budget.on_bytes(len(chunk))
            budget.check_time(source, received)
    return received


def _too_big(source: str, max_bytes: int) -> DataError:
    return DataError(
        f"{source}: more than {max_bytes:,} bytes, more than any gzip of the expected file "
        "takes (stopped there); check data.source"
    )


def _candidate_urls(source: str, spec: DatasetSpec, name: str) -> list[str]:
    if source == "mirrors":
        return [mirror + name for mirror in spec.mirrors]
    if urllib.parse.urlparse(source).scheme in ("http", "https", "file"):
        return [source.rstrip("/") + "/" + name]
    return []  # a local directory: handled by copying


def _fetch_one(
    source: str,
    spec: DatasetSpec,
    name: str,
    dest: Path,
    on_bytes: Callable[[int], None],
    limits: DownloadLimits,
) -> None:
    deadline = time.monotonic() + limits.deadline_s
    budget = _Budget(spec.max_download_bytes(name), deadline, limits, on_bytes)
    urls = _candidate_urls(source, spec, name)
    if not urls:
        local = Path(source) / name
        if not local.is_file():
            raise DataError(
                f"{name}: not found in data.source directory {Path(source).resolve()}"
                "; it must hold the four IDX .gz files"
            )
        with local.open("rb") as stream:
            _copy_capped(stream, dest, str(local), budget)
        return
    errors = []
    for url in urls:
        try:
            _retrieve(url, dest, budget)
            return
        except (*_TRANSIENT, OSError) as error:
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
    hint = (
        "set data.source in params.yaml to a local directory (or file:// URL) holding "
        "the four .gz files, e.g. `dvc exp run -S data.source=../shared/datasets/mnist`"
    )
    raise DataError(f"{name}: could not download ({'; '.join(errors)}). Offline? {hint}")


def download(
    source: str,
    dataset: str,
    *,
    out_dir: Path,
    on_bytes: Callable[[int], None] = lambda n: None,
    limits: DownloadLimits = DEFAULT_LIMITS,
) -> dict[str, str]:
    """Fetch and verify the four files of ``dataset`` into ``out_dir``, with their
    ``manifest.json`` (``dataset_manifest``); return name -> sha256.

    Only those five files of ``out_dir`` are replaced; anything else in it (other datasets,
    ``data.source`` itself) stays. They are staged and moved into place only when all four
    pass verification, manifest last (``replace_files``): a failure leaves the previous ones
    as they were. Each file must arrive within ``limits`` and ``max_download_bytes``.
    """
    spec = DATASETS[dataset]
    if source != "mirrors" and not _candidate_urls(source, spec, "") and not Path(source).is_dir():
        raise DataError(
            f"data.source {source!r} is neither 'mirrors', a URL, nor an existing "
            f"directory (resolved to {Path(source).resolve()})"
        )
    names = [*spec.sha256, outputs.MANIFEST]
    try:
        with replace_files(out_dir, names) as staging:  # also removes those of killed downloads
            for name, expected in spec.sha256.items():
                _fetch_one(source, spec, name, staging / name, on_bytes, limits)
                actual = gunzip_sha256(staging / name, max_bytes=spec.idx_size(name))
                if actual != expected:
                    raise DataError(
                        f"{name}: checksum mismatch (sha256 of decompressed content is "
                        f"{actual}, expected {expected}); the file is corrupt or not "
                        f"{dataset}"
                    )
            write_json(dataset_manifest(dataset), staging / outputs.MANIFEST)
    except OSError as error:
        raise output_error(error.filename or out_dir, error) from None
    return dict(spec.sha256)


def dataset_manifest(dataset: str) -> dict[str, object]:
    """What ``download`` writes to ``manifest.json`` beside the verified files."""
    files = dict(DATASETS[dataset].sha256)
    return {"dataset": dataset, "sha256": dataset_checksum(files), "files": files}


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


def dataset_checksum(file_sha256: dict[str, str]) -> str:
    """One SHA-256 naming the whole dataset (for MLflow tags and cache keys)."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_sha256.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


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
