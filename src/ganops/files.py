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
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch

from ganops.errors import DataError, UsageError, output_error

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
    writers of ``final`` are removed first (``remove_stale_temps``). A ``final`` that exists
    and is not a regular file (a symlink, FIFO, device, directory) is refused with a
    ``UsageError`` before anything is written, and again just before the rename.
    """
    check_output_file(final)
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
        check_output_file(final)  # one may have appeared meanwhile
        os.replace(tmp, final)
    except OSError as error:
        raise output_error(final, error) from None
    finally:
        tmp.unlink(missing_ok=True)
        _IN_USE.discard(tmp.name)


# What an output path must not be: ``os.replace`` over it would swap the thing itself (a
# FIFO another program reads, ``/dev/null`` when run as root, a symlink someone relies on)
# for a regular file. Parent directories may be symlinks (data/ on a bigger disk); the last
# component may not, so nothing is written through a link, nor a link replaced.
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISREG, "a file"),
)


def _kind(path: Path, mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "of an unknown kind")
    if stat.S_ISLNK(mode):
        kind += f" (to {os.readlink(path)})"
    return kind


def _refuse(path: Path, kind: str, expected: str) -> UsageError:
    return UsageError(
        f"cannot write {os.fspath(path)}: it is {kind}, not {expected}; ganops replaces "
        "only what it wrote itself, never a link or special file: remove it or write elsewhere"
    )


def check_output_file(path: Path) -> None:
    """Refuse (``UsageError``, exit 2) an output file ``path`` that exists and is not a
    regular file. A missing ``path`` is fine; so are symlinks among its parents."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:  # e.g. a parent that is a file (ENOTDIR)
        raise output_error(path, error) from None
    if not stat.S_ISREG(mode):
        raise _refuse(path, _kind(path, mode), "a regular file")


def check_output_dir(path: Path, *, link_ok: bool) -> None:
    """Refuse (``UsageError``) an output directory ``path`` that exists and is not a
    directory; ``link_ok``: a symlink to a directory is fine (files are written *into* it),
    else refused (``replace_dir`` would replace the link itself)."""
    try:
        mode = os.lstat(path).st_mode
        if link_ok and stat.S_ISLNK(mode):
            mode = os.stat(path).st_mode  # a dangling link raises FileNotFoundError here
    except FileNotFoundError:
        if os.path.islink(path):
            kind = _kind(path, stat.S_IFLNK) + ", which is missing"
            raise _refuse(path, kind, "a directory") from None
        return
    except OSError as error:
        raise output_error(path, error) from None
    if not stat.S_ISDIR(mode):
        raise _refuse(path, _kind(path, mode), "a directory")


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
    moved aside first and removed only once the new one is in place (restored if not). A
    ``final`` that exists and is not a real directory (a symlink too) is refused
    (``UsageError``), and so is one without a name of its own (``.``, ``..``, ``/``)."""
    if final.name in ("", ".", "..") or os.path.abspath(final) == "/":
        raise UsageError(
            f"cannot replace {os.fspath(final)} as a whole directory; name a folder of its own"
        )
    check_output_dir(final, link_ok=False)
    if not os.path.lexists(final):
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


@contextmanager
def replace_files(directory: Path, names: Sequence[str]) -> Iterator[Path]:
    """Yield an empty staging directory to write each of ``names`` into; once the block
    succeeds, those files replace the ones of the same names in ``directory``, whose other
    entries are left alone. The last name (a manifest) is the one readers check.

    All or nothing, as far as renames allow: a missing ``directory`` is the staging
    directory renamed into place in one step. In an existing one (a symlink to a directory is
    fine) the staging directory lives inside it (same file system, so each move is a rename);
    the old files are moved aside last name first, the new ones moved in last name last, and
    on a failure the old ones are moved back. So an error, in the block or while moving,
    leaves the old files as they were, and a reader that sees the last name sees the whole
    new set beside it; ``kill -9`` mid-move leaves the last name missing (and the old files
    in a stale staging directory that the next call removes). Existing names that are not
    regular files are refused (``UsageError``) before the block runs.
    """
    check_output_dir(directory, link_ok=True)
    for name in names:
        check_output_file(directory / name)
    if not os.path.lexists(directory):
        final = Path(os.path.abspath(directory))  # a name of its own, e.g. for "new/.."
        with staging_dir(final) as staging:
            yield staging
            _sync(staging, names)
            try:
                os.replace(staging, final)
            except OSError as error:
                raise output_error(directory, error) from None
        return
    with staging_dir(directory / names[-1]) as staging:
        yield staging
        _sync(staging, names)
        for name in names:  # one may have appeared meanwhile
            check_output_file(directory / name)
        try:
            _swap_in(staging, directory, names)
        except OSError as error:
            raise output_error(error.filename or directory, error) from None


def _sync(staging: Path, names: Sequence[str]) -> None:
    """Each staged file on disk before it is renamed into place (a power cut after the
    rename must not leave an empty file)."""
    for name in names:
        with (staging / name).open("rb") as stream:
            os.fsync(stream.fileno())


def _swap_in(staging: Path, directory: Path, names: Sequence[str]) -> None:
    previous = staging / ".previous"  # the old files, until the new ones are all in place
    previous.mkdir()
    aside: list[str] = []
    placed: list[str] = []
    try:
        for name in reversed(names):  # the manifest leaves first ...
            if os.path.lexists(directory / name):
                os.replace(directory / name, previous / name)
                aside.append(name)
        for name in names:  # ... and arrives last
            os.replace(staging / name, directory / name)
            placed.append(name)
    except OSError:
        for name in reversed(placed):
            with suppress(OSError):
                os.replace(directory / name, staging / name)
        for name in aside:
            with suppress(OSError):
                os.replace(previous / name, directory / name)
        raise


def ensure_writable(*directories: Path, files: Sequence[Path] = ()) -> None:
    """Prove each directory can take files before long work starts, without creating it: a
    missing one is proved by its nearest existing parent taking a folder (the writes create
    it later), so a command that fails leaves no empty folders behind. Each of ``files``
    (the outputs to come) must be missing or a regular file (``check_output_file``)."""
    for path in files:
        check_output_file(path)
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


def write_json(obj: Any, final: Path, *, sort_keys: bool = True) -> None:
    """Write pretty JSON to ``final`` atomically (keys sorted, or in ``obj``'s order)."""
    with atomic_path(final) as tmp:
        text = json.dumps(obj, indent=2, sort_keys=sort_keys)
        tmp.write_text(text + "\n", encoding="utf-8")


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
