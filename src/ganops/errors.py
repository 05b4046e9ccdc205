"""User-facing errors: each one becomes a single line on stderr and a non-zero exit code;
and ``warn``, the one channel of warnings (a line on stderr that does not stop the command)."""

from __future__ import annotations

import difflib
import errno
import os
import sys
from pathlib import Path
from typing import Any


def say(line: str) -> None:
    """One line on stderr, at once (not on stdout: a command's output stays clean)."""
    print(line, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """The one warning channel: ``warning: <message>`` as one stderr line."""
    say(f"warning: {message}")


class GanopsError(Exception):
    """An error caused by the user's input or environment, not by a bug in ganops.

    The CLI prints ``str(error)`` without a traceback and exits with ``exit_code``.
    """

    exit_code = 1


class Interrupted(GanopsError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint (exit 130, as a shell's)."""

    exit_code = 130


class ConfigError(GanopsError):
    """A params.yaml value (or the file itself) is not acceptable."""

    exit_code = 2

    def __init__(
        self,
        key: str,
        value: Any,
        allowed: str,
        *,
        kind: str = "invalid value",
        options: tuple[str, ...] = (),
    ) -> None:
        """``options``: the valid names, when ``value`` (or the key's last part, for an
        unknown key) should have been one of them; the closest is suggested."""
        self.key, self.value, self.allowed, self.kind = key, value, allowed, kind
        self.options = options
        typed = key.rsplit(".", 1)[-1] if kind.startswith("unknown") else str(value)
        close = difflib.get_close_matches(typed, options, n=1, cutoff=0.6) if options else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        super().__init__(f"params: {kind} for {key}: {value!r}; {hint}expected {allowed}")

    def with_note(self, note: str) -> ConfigError:
        """The same error with ``note`` appended to its one line."""
        error = ConfigError(
            self.key, self.value, self.allowed, kind=self.kind, options=self.options
        )
        error.args = (f"{self}. {note}",)
        return error


class DataError(GanopsError):
    """A data file is missing, corrupt or fails verification."""

    exit_code = 2


class CheckpointError(GanopsError):
    """A checkpoint or model file cannot be used."""

    exit_code = 2


class UsageError(GanopsError):
    """A command-line option is not acceptable (params.yaml values raise ``ConfigError``)."""

    exit_code = 2


class TrackingError(GanopsError):
    """The MLflow tracking server or store cannot be used."""


class OutputError(GanopsError):
    """An output cannot be written: full disk, read-only or permission-denied directory."""


_WRITE_HINTS = {
    errno.ENOSPC: "free space on that file system (or write elsewhere) and run again",
    errno.EDQUOT: "free space within your quota (or write elsewhere) and run again",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "make the directory writable for this user (or write elsewhere)",
    errno.EPERM: "make the directory writable for this user (or write elsewhere)",
}
WRITE_ERRNOS = frozenset(_WRITE_HINTS)


def output_error(path: Path | str, error: OSError) -> OutputError:
    """A one-line ``OutputError`` for ``error`` raised while writing ``path``."""
    reason = error.strerror or str(error)
    number = error.errno or 0
    code = f" ({errno.errorcode[number]})" if number in errno.errorcode else ""
    hint = _WRITE_HINTS.get(number, "check the path and run again")
    return OutputError(
        f"cannot write {os.fspath(path)}: {reason}{code}; {hint}. Outputs written before "
        "are unchanged"
    )


class DeviceError(GanopsError):
    """The configured device is not available on this machine (a setting to change)."""

    exit_code = 2


def describe_error(error: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters of it), for one-line
    user errors and warnings: torch's and MLflow's messages run over many lines."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__
