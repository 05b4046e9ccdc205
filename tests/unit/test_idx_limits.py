"""Decompression is bounded by what the IDX header promises (issue 17): a gzip bomb stops one
byte past the promise, and an absurd promise is refused before anything is allocated."""

from __future__ import annotations

import gzip
import json
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from ganops.config import DataConfig
from ganops.datasets import DATASETS
from ganops.errors import DataError
from ganops.idx_files import read_idx
from ganops.stages import prepare

T = TypeVar("T")
MiB = 1 << 20


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def bomb(path: Path, header: bytes, expands_to: int) -> Path:
    """``header`` then ``expands_to`` zero bytes, as concatenated gzip members (valid gzip;
    16 MiB of zeros compress to 16 kB, so 1 GiB takes about 1 MB on disk and no time)."""
    member = gzip.compress(bytes(16 * MiB), compresslevel=9)
    path.write_bytes(gzip.compress(header) + member * (expands_to // (16 * MiB)))
    return path


def peak_memory(call: Callable[[], T]) -> tuple[T | DataError, int]:
    """What ``call`` returned (or the DataError it raised) and the most it allocated."""
    tracemalloc.start()  # numpy's and zlib's buffers are traced too
    try:
        return call(), tracemalloc.get_traced_memory()[1]
    except DataError as error:
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_bomb_stops_one_byte_past_the_headers_promise(tmp_path: Path) -> None:
    path = bomb(tmp_path / "x-idx3-ubyte.gz", idx_header(3, 28, 28), expands_to=1 << 30)
    assert path.stat().st_size < 2 * MiB
    start = time.monotonic()
    error, peak = peak_memory(lambda: read_idx(path))
    assert isinstance(error, DataError)
    assert str(error) == (
        f"{path}: header says shape (3, 28, 28) (2,368 bytes) but the file has more (stopped there)"
    )
    assert peak < 4 * MiB and time.monotonic() - start < 1.0  # 1 GiB was never inflated


def test_prepare_refuses_a_bomb_within_the_promised_size(tmp_path: Path) -> None:
    """The issue's case: MNIST's real header, a .gz of ~2 MB that expands to 2 GiB."""
    raw = tmp_path / "raw"
    raw.mkdir()
    images = DATASETS["mnist"].file("train", "images")
    bomb(raw / images, idx_header(60_000, 28, 28), expands_to=2 << 30)
    (raw / "manifest.json").write_text(json.dumps({"dataset": "mnist", "sha256": "x"}))
    error, peak = peak_memory(
        lambda: prepare.run(DataConfig(dataset="mnist"), raw, out_dir=tmp_path / "prepared")
    )
    assert isinstance(error, DataError) and "but the file has more (stopped there)" in str(error)
    assert peak < 47_040_016 + 8 * MiB  # the promised array and a few MiB, not 2 GiB
    assert not (tmp_path / "prepared").exists()


def test_prepare_refuses_a_header_promising_more_than_the_datasets_file(tmp_path: Path) -> None:
    path = tmp_path / DATASETS["mnist"].file("test", "labels")
    path.write_bytes(gzip.compress(idx_header(10_001) + bytes(10_001)))
    with pytest.raises(DataError, match=re.escape("(10,009 bytes), more than the 10,008 allowed")):
        read_idx(path, max_bytes=DATASETS["mnist"].idx_size(path.name))


@pytest.mark.parametrize(
    ("dims", "why"),
    [
        ((2**32 - 1, 2**32 - 1, 2**32 - 1), "allowed"),  # 7.9e28 bytes: never allocated
        ((500, 1000, 1000), "-byte gzip can hold"),  # 500 MB from ~100 bytes: deflate's 1032:1
    ],
)
def test_an_absurd_promise_is_refused_before_allocating(
    tmp_path: Path, dims: tuple[int, ...], why: str
) -> None:
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(*dims) + bytes(100)))
    error, peak = peak_memory(lambda: read_idx(path))
    assert isinstance(error, DataError) and why in str(error) and "\n" not in str(error)
    assert str(error).startswith(f"{path}: header says shape {dims}")
    assert peak < MiB


def test_a_file_that_keeps_its_promise_reads_exactly(tmp_path: Path) -> None:
    array = np.arange(3 * 5 * 7, dtype=np.uint8).reshape(3, 5, 7)
    path = tmp_path / "ok-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(3, 5, 7) + array.tobytes()))
    assert np.array_equal(read_idx(path, max_bytes=16 + array.size), array)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "missing or unreadable (FileNotFoundError)"),
        (b"\xff\xfe", "missing or unreadable (UnicodeDecodeError)"),
        (b"[1, 2]", "incomplete"),
        (b'{"dataset": "mnist"}', "incomplete"),
    ],
)
def test_a_missing_or_damaged_manifest_is_one_error(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(DataError, match=re.escape(f"manifest.json: {says}")):
        prepare.read_manifest(tmp_path, "mnist")
