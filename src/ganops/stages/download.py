"""Stage ``download``: fetch the four IDX files and verify them."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from ganops import outputs
from ganops.config import DataConfig
from ganops.dataset_download import download
from ganops.datasets import DATASETS, dataset_manifest
from ganops.progress import Progress

MANIFEST = outputs.MANIFEST


def run(cfg: DataConfig, out_dir: Path) -> dict[str, object]:
    """Download ``cfg.dataset`` from ``cfg.source`` into ``out_dir`` with its manifest;
    return the manifest. Only those files of ``out_dir`` are replaced (``dataset_download.download``)."""
    with (
        sigterm_unwinds(),
        Progress(total=0, desc=f"download {cfg.dataset}", unit="B", interval=5.0) as bar,
    ):
        download(cfg.source, cfg.dataset, out_dir=out_dir, on_bytes=bar.update)
    print(
        f"downloaded and verified {len(DATASETS[cfg.dataset].sha256)} files of {cfg.dataset} "
        f"into {out_dir}"
    )
    return dataset_manifest(cfg.dataset)


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM (``timeout``, a cancelled job) unwinds like Ctrl-C, so the
    download's staging directory is removed on the way out; a ``kill -9``'s is removed by
    the next download."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
