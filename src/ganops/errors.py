"""User-facing errors: each one becomes a single line on stderr and a non-zero exit code."""

from __future__ import annotations

from typing import Any


class GanopsError(Exception):
    """An error caused by the user's input or environment, not by a bug in ganops.

    The CLI prints ``str(error)`` without a traceback and exits with ``exit_code``.
    """

    exit_code = 1


class ConfigError(GanopsError):
    """A params.yaml value (or the file itself) is not acceptable."""

    exit_code = 2

    def __init__(self, key: str, value: Any, allowed: str, *, kind: str = "invalid value") -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"params: {kind} for {key}: {value!r}; expected {allowed}")


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
