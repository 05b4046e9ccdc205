"""The download stage's fetching: a dataset's four files from the mirrors, a URL or a local
folder, within byte and time budgets, each verified by its checksum before any replaces the old."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ganops import outputs
from ganops.datasets import DATASETS, DatasetSpec, dataset_manifest
from ganops.errors import DataError, output_error
from ganops.files import replace_files, write_json

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class DownloadLimits:
    """Time limits of one file's download (its byte cap is ``DatasetSpec.max_download_bytes``)."""

    # All tries of all mirrors of one file: MNIST's largest (9.9 MB) at 16 KB/s.
    deadline_s: float = 600.0
    read_timeout_s: float = 30.0  # the longest wait for the next bytes before a retry
    retries: int = 3  # tries per URL


DEFAULT_LIMITS = DownloadLimits()


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
