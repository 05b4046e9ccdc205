"""Downloads are bounded in time and bytes, and leave nothing behind when they fail (issue 17).

A tiny stand-in dataset (3 + 2 images) keeps every byte cap small; a local threaded HTTP
server plays a source that trickles, never ends or lies about its length. No network.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ganops import datasets
from ganops.config import DataConfig
from ganops.dataset_download import DownloadLimits, download
from ganops.datasets import DatasetSpec
from ganops.errors import DataError
from ganops.stages import download as download_stage
from tests.idx_files import tiny_dataset

FAST = DownloadLimits(deadline_s=1.0, read_timeout_s=0.5, retries=2)
Behaviour = Callable[[BaseHTTPRequestHandler, Path], None]


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DatasetSpec, Path]:
    """A 'tiny' dataset registered like MNIST, and a directory holding its four .gz files
    (stored, level 0: the largest gzip its content can have)."""
    contents = tiny_dataset()
    source = tmp_path / "source"
    source.mkdir()
    for name, content in contents.items():
        (source / name).write_bytes(gzip.compress(content, compresslevel=0))
    spec = DatasetSpec(
        name="tiny",
        mirrors=("http://127.0.0.1:9/",),
        sha256={name: hashlib.sha256(c).hexdigest() for name, c in contents.items()},
        counts=(3, 2),
    )
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    return spec, source


@pytest.fixture
def serve(tiny: tuple[DatasetSpec, Path]) -> Iterator[Callable[[Behaviour], str]]:
    """``serve(behaviour)`` starts a server on 127.0.0.1 answering every GET with
    ``behaviour(handler, source_dir)`` and returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # The client hanging up is what these tests want.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    behaviour(self, tiny[1])

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def files_from(handler: BaseHTTPRequestHandler, source: Path) -> None:
    body = (source / handler.path.lstrip("/")).read_bytes()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def trickle(handler: BaseHTTPRequestHandler, source: Path) -> None:
    """One byte every 0.2 s of a promised 2 kB (the issue's one byte per 10 s, faster)."""
    handler.send_response(200)
    handler.send_header("Content-Length", "2000")
    handler.end_headers()
    for _ in range(50):  # ends by itself after 10 s at most
        handler.wfile.write(b"\x1f")
        handler.wfile.flush()
        time.sleep(0.2)


def endless(handler: BaseHTTPRequestHandler, source: Path) -> None:
    """Zeros with no Content-Length, until the client hangs up (or 1 GB)."""
    handler.send_response(200)
    handler.end_headers()
    block = bytes(1 << 16)
    for _ in range(1 << 14):
        handler.wfile.write(block)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def one_line(error: pytest.ExceptionInfo[DataError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_tiny_dataset_downloads_over_http_within_its_caps(
    serve: Callable[[Behaviour], str], tmp_path: Path
) -> None:
    """The caps admit a level-0 gzip: the largest any copy of the content can be."""
    files = download(serve(files_from), "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert files == datasets.DATASETS["tiny"].sha256
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*files, "manifest.json"])
    assert leftovers(tmp_path) == []


def test_a_trickling_source_fails_at_the_deadline_naming_url_and_limit(
    serve: Callable[[Behaviour], str], tmp_path: Path
) -> None:
    url = serve(trickle)
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        download(url, "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert time.monotonic() - start < 2.0  # the deadline, a byte's wait and slack
    message = one_line(error)
    assert message.startswith(f"{url}/train-images-idx3-ubyte.gz: not downloaded within the 1 s")
    assert "bytes had arrived" in message
    assert not (tmp_path / "raw").exists() and leftovers(tmp_path) == []


def test_a_silent_source_fails_at_the_deadline_too(
    serve: Callable[[Behaviour], str], tmp_path: Path
) -> None:
    """Headers, then nothing: read timeouts are retried only until the deadline."""

    def silent(handler: BaseHTTPRequestHandler, source: Path) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        time.sleep(5)

    url = serve(silent)
    start = time.monotonic()
    with pytest.raises(DataError, match=r"not downloaded within the 1 s limit"):
        download(url, "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert time.monotonic() - start < 2.0
    assert leftovers(tmp_path) == []


def test_an_endless_body_stops_at_the_byte_cap(
    serve: Callable[[Behaviour], str], tmp_path: Path
) -> None:
    cap = datasets.DATASETS["tiny"].max_download_bytes("train-images-idx3-ubyte.gz")
    with pytest.raises(DataError) as error:
        download(serve(endless), "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert f"more than {cap:,} bytes" in one_line(error)
    assert not (tmp_path / "raw").exists() and leftovers(tmp_path) == []


def test_a_declared_length_over_the_cap_is_refused_before_reading(
    serve: Callable[[Behaviour], str], tmp_path: Path
) -> None:
    def huge(handler: BaseHTTPRequestHandler, source: Path) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(1 << 40))
        handler.end_headers()
        handler.wfile.write(bytes(1 << 16))

    with pytest.raises(DataError, match=r"more than [\d,]+ bytes, more than any gzip"):
        download(serve(huge), "tiny", out_dir=tmp_path / "raw", limits=FAST)


def test_a_file_url_to_an_endless_file_stops_at_the_byte_cap(
    tiny: tuple[DatasetSpec, Path], tmp_path: Path
) -> None:
    endless_dir = tmp_path / "endless"
    endless_dir.mkdir()
    for name in tiny[0].sha256:
        (endless_dir / name).symlink_to("/dev/zero")
    with pytest.raises(DataError) as error:
        download(endless_dir.as_uri(), "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert one_line(error).startswith(f"{endless_dir.as_uri()}/train-images-idx3-ubyte.gz: more")
    assert leftovers(tmp_path) == []


def test_a_huge_file_in_a_source_directory_is_capped_too(
    tiny: tuple[DatasetSpec, Path], tmp_path: Path
) -> None:
    with (tiny[1] / "train-images-idx3-ubyte.gz").open("r+b") as stream:
        stream.truncate(1 << 30)  # sparse: 1 GiB that takes no disk
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: more than"):
        download(str(tiny[1]), "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert leftovers(tmp_path) == []


def test_mnist_caps_admit_any_gzip_of_the_data_and_little_more() -> None:
    mnist = datasets.DATASETS["mnist"]
    assert mnist.idx_size("train-images-idx3-ubyte.gz") == 16 + 60_000 * 28 * 28
    assert mnist.idx_size("t10k-labels-idx1-ubyte.gz") == 8 + 10_000
    for name in mnist.sha256:
        size = mnist.idx_size(name)
        stored = len(gzip.compress(bytes(size), compresslevel=0))  # the largest gzip of it
        assert stored <= mnist.max_download_bytes(name) <= 1.01 * size + (64 << 10)


def test_a_killed_downloads_staging_dir_is_removed_by_the_next(
    tiny: tuple[DatasetSpec, Path], tmp_path: Path
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    stale = tmp_path / f".raw.ganops-{int(dead.stdout)}-abc123.tmp"
    live = tmp_path / f".raw.ganops-{os.getppid()}-def456.tmp"  # another download at work
    for staging in (stale, live):
        staging.mkdir()
        (staging / "train-images-idx3-ubyte.gz").write_bytes(b"half")
    download(str(tiny[1]), "tiny", out_dir=tmp_path / "raw", limits=FAST)
    assert not stale.exists() and live.exists()


def test_sigterm_during_a_download_removes_its_staging_dir(
    serve: Callable[[Behaviour], str], tmp_path: Path
) -> None:
    """SIGTERM (``timeout``, a cancelled job) unwinds like Ctrl-C (the CLI: exit 130)."""

    def ignore(signum: int, frame: object) -> None:  # pytest survives if the stage's is missing
        pass

    previous = signal.signal(signal.SIGTERM, ignore)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    cfg = DataConfig(dataset="tiny", source=serve(trickle))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            download_stage.run(cfg, tmp_path / "raw")
        assert signal.getsignal(signal.SIGTERM) is ignore  # restored afterwards
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "raw").exists() and leftovers(tmp_path) == []
