"""Atomic file writes: a reader (or a crash) never sees a half-written output."""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ganops.errors import DataError, output_error

# A file ganops wrote is a few KiB; anything far bigger was not written by it.
MAX_JSON_BYTES = 16 << 20


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Every temporary file or staging directory ganops makes is named
# ``.<final name>.ganops-<pid>-<random>.tmp``: recognisable (DVC, readers and the clean-up below
# can tell it from an output) and owned (a leftover whose process is gone is stale).
_TEMP_NAME = re.compile(r"\.(?P<final>.+)\.ganops-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp")
# This process's temporaries still in use: a leftover that carries our PID but is not here
# comes from an earlier process that had the same PID (common in containers).
_IN_USE: set[str] = set()


def temp_prefix(final_name: str) -> str:
    """The start of this process's temporary names for ``final_name`` (``suffix=".tmp"``)."""
    return f".{final_name}.ganops-{os.getpid()}-"


def remove_stale_temps(directory: Path, final_name: str | None = None) -> list[Path]:
    """Remove the temporary files and staging directories in ``directory`` (only those for
    ``final_name`` if given) whose process no longer runs: writes cut short by ``kill -9``.

    Those of live processes (another writer at work) are kept. Best effort: what cannot be
    listed or removed is left. Returns what was removed.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or (final_name is not None and match["final"] != final_name):
            continue
        if not _stale(entry.name, int(match["pid"])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _stale(name: str, pid: int) -> bool:
    """Whether no running process will finish the temporary ``name`` made by process ``pid``."""
    if pid == os.getpid():
        return name not in _IN_USE  # an earlier process that had our PID left it
    if pid <= 0:
        return True  # not a name ganops makes
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except (ProcessLookupError, OverflowError):
        return True
    except PermissionError:
        return False  # it exists: another user's
    return False


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place only if the block succeeds.

    The temporary file lives in the same directory so ``os.replace`` is a same-filesystem
    rename, which POSIX guarantees to be atomic; it is synced to disk first, so a power cut
    cannot leave a renamed but empty file. A write that fails (full disk, read-only or
    unwritable directory) raises ``OutputError`` naming ``final``; the old file is unchanged.
    The temporary name is ``temp_prefix(final.name) + <random> + ".tmp"``; leftovers of killed
    writers of ``final`` are removed first (``remove_stale_temps``).
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final.parent, final.name)
        handle, name = tempfile.mkstemp(
            prefix=temp_prefix(final.name), suffix=".tmp", dir=final.parent
        )
    except OSError as error:
        raise output_error(final, error) from None
    os.close(handle)
    tmp = Path(name)
    _IN_USE.add(tmp.name)
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
        _IN_USE.discard(tmp.name)


@contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """Yield a new empty directory beside ``final`` (named like ``atomic_path``'s temporaries),
    to fill and then move into place with ``replace_dir``; whatever is left of it is removed
    on the way out, error or not."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final.parent, final.name)
        staging = Path(
            tempfile.mkdtemp(prefix=temp_prefix(final.name), suffix=".tmp", dir=final.parent)
        )
    except OSError as error:
        raise output_error(final, error) from None
    _IN_USE.add(staging.name)
    try:
        staging.chmod(0o777 & ~current_umask())  # mkdtemp creates 0700
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _IN_USE.discard(staging.name)


def replace_dir(staging: Path, final: Path) -> None:
    """Move the finished directory ``staging`` into place as ``final``. An old ``final`` is
    moved aside first and removed only once the new one is in place (restored if not)."""
    if not final.exists():
        os.replace(staging, final)
        return
    old = final.with_name(temp_prefix(final.name) + "old.tmp")
    _IN_USE.add(old.name)
    try:
        os.replace(final, old)
        try:
            os.replace(staging, final)
        except OSError:
            os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        _IN_USE.discard(old.name)


def ensure_writable(*directories: Path) -> None:
    """Prove each directory can take files before long work starts, without creating it: a
    missing one is proved by its nearest existing parent taking a folder (the writes create
    it later), so a command that fails leaves no empty folders behind."""
    for directory in directories:
        existing = directory
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        try:
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(existing))
            if existing == directory:
                with tempfile.TemporaryFile(dir=directory):
                    pass
            else:
                with tempfile.TemporaryDirectory(dir=existing):
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


def write_csv(rows: list[dict[str, Any]], columns: list[str], *, final: Path) -> None:
    """Write ``rows`` as CSV with a header of ``columns``, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(buffer.getvalue(), final)


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


def parse_json(text: str, source: str) -> Any:
    """``text`` parsed as JSON, or one ``DataError`` naming ``source``: every file read back
    is untrusted, so invalid JSON, nesting deep enough to exhaust the parser's recursion and
    integers past Python's digit limit are each one line, never a traceback."""
    if len(text) > MAX_JSON_BYTES:
        raise DataError(f"{source}: {len(text)} characters, more than any file ganops writes")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise DataError(f"{source}: JSON nested too deeply to be a file ganops wrote") from None
    except ValueError as error:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise DataError(f"{source}: unreadable JSON ({str(error).splitlines()[0]})") from None


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path`` (``what`` names it in errors, e.g. "run reference"); a missing
    file raises ``FileNotFoundError`` for the caller to explain, other faults ``DataError``."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_JSON_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable {what} ({type(error).__name__})") from None
    return parse_json(text, f"{path} ({what})")
