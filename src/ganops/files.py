"""Atomic file writes: a reader (or a crash) never sees a half-written output."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ganops.errors import output_error


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place only if the block succeeds.

    The temporary file lives in the same directory so ``os.replace`` is a same-filesystem
    rename, which POSIX guarantees to be atomic; it is synced to disk first, so a power cut
    cannot leave a renamed but empty file. A write that fails (full disk, read-only or
    unwritable directory) raises ``OutputError`` naming ``final``; the old file is unchanged.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as error:
        raise output_error(final, error) from None
    os.close(handle)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; match a normal open()
        yield tmp
        with tmp.open("rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, final)
    except OSError as error:
        raise output_error(final, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(staging: Path, final: Path) -> None:
    """Move the finished directory ``staging`` into place as ``final``. An old ``final`` is
    moved aside first and removed only once the new one is in place (restored if not)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}") if final.exists() else None
    if old is not None:
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def ensure_writable(*directories: Path) -> None:
    """Create each directory and prove a file can be made there, before long work starts."""
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as error:
            raise output_error(directory, error) from None


def save_torch(obj: Any, final: Path) -> None:
    """``torch.save`` to ``final`` atomically.

    Serialized in memory first: torch's file writer reports a full disk as a bare
    RuntimeError, a plain write raises the OSError that names the cause.
    """
    with atomic_path(final) as tmp:
        tmp.write_bytes(torch_bytes(obj))


def torch_bytes(obj: Any) -> bytes:
    """What ``torch.save`` would write, in memory."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def write_json(obj: Any, final: Path) -> None:
    """Write pretty JSON to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(text: str, final: Path) -> None:
    """Write ``text`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex; read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
