"""One writer per output folder at a time.

Two ganops commands writing the same folders at once (two shells, a script and ``dvc repro``)
would each write atomically, file by file, and leave a mix: the generator of one run beside
the curves and run reference of the other. Each stage command holds an exclusive lock on
its output folders for its whole run; a second one fails at once, naming the first. The locks
are advisory ``flock`` locks on files in the system's temp folder (keyed by the folders'
resolved paths, so nothing is added to the project), released by the kernel when the
holder exits, however it exits: a ``kill -9`` leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from ganops.errors import OutputError


def lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"ganops-locks-{os.getuid()}"


@contextmanager
def exclusive(*directories: Path, command: str, enabled: bool = True) -> Iterator[None]:
    """Hold the write lock of each of ``directories`` (``command`` names the holder in the
    error another process gets); ``enabled=False`` takes none (e.g. DDP's other ranks)."""
    with ExitStack() as stack:
        if enabled:
            for directory in sorted({d.resolve() for d in directories}):
                stack.enter_context(_locked(directory, command))
        yield


@contextmanager
def _locked(directory: Path, command: str) -> Iterator[None]:
    folder = lock_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = hashlib.sha256(str(directory).encode()).hexdigest()[:24] + ".lock"
    with open(folder / name, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"{directory} is being written by another ganops command "
                f"({_holder(handle)}); wait for it to finish, or write elsewhere"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"ganops {command}, pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read(200).strip() or "unknown"
