"""The MLflow run store: where it is (``tracking.uri``, else the repo's ``mlflow.db``),
whether it can be used (a SQLite file, a server that answers), and the lock that serialises
a new SQLite store's first use."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganops.config import TrackingConfig
from ganops.errors import GanopsError, TrackingError
from ganops.locks import lock_dir

# MLflow's own HTTP client retries a failed call 7 times over about 4 minutes, blocking the
# caller. ganops retries in the background itself (``Outbox``), so each MLflow call gives
# up after a few seconds unless the user set these.
QUICK_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
PROBE_TIMEOUT_S = 5.0


def repo_root(start: Path) -> Path:
    """The project root, also from inside a DVC temporary workspace.

    ``dvc exp run --temp`` and ``--queue`` run the pipeline in a copy under
    ``<root>/.dvc/tmp/exps/``; resolving runs to the real root keeps them in one database.
    """
    start = start.resolve()
    parts = start.parts
    for i in range(len(parts) - 1):
        if parts[i] == ".dvc" and parts[i + 1] == "tmp":
            return Path(*parts[:i])
    # DVC sets DVC_ROOT for every stage it runs; for an experiment in a temporary copy it is
    # the parent repository's root (dvc.repo.experiments.queue.base), wherever the copy is.
    dvc_root = os.environ.get("DVC_ROOT")
    if dvc_root and Path(dvc_root).is_dir():
        return Path(dvc_root).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".dvc").is_dir() or (candidate / ".git").exists():
            return candidate
    return start


class StoreUriError(GanopsError):
    """``tracking.uri`` / ``$MLFLOW_TRACKING_URI`` names a store no run outlives (exit 2;
    not a ``TrackingError``, so ``tracking.required: false`` does not turn it into a warning)."""

    exit_code = 2


# sqlite://<nothing> or sqlite:///:memory: is a database in the process's memory: MLflow's
# every call opens its own, so nothing logged survives the call.
_IN_MEMORY = re.compile(r"^sqlite(\+\w+)?://(/:memory:)?(\?.*)?$")
_SQLITE_PATH = re.compile(r"^(?P<scheme>sqlite(\+\w+)?):///(?P<path>[^?]+)(?P<query>\?.*)?$")


def tracking_uri(cfg: TrackingConfig, cwd: Path) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else SQLite at the repo root.

    A relative SQLite path (``sqlite:///mlflow.db``) is taken from the repo root, not the
    current directory: under ``dvc exp run --temp`` that is a copy DVC deletes, with the runs
    in it. An in-memory SQLite store raises ``StoreUriError``.
    """
    key, uri = "tracking.uri", cfg.uri
    if not uri:
        key, uri = "MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        return f"sqlite:///{repo_root(cwd) / 'mlflow.db'}"
    if _IN_MEMORY.match(uri):
        raise StoreUriError(
            f"{key} {uri!r} is an in-memory SQLite database: MLflow opens a new, empty one "
            "for each call, so every run would be lost; name a file (sqlite:///mlflow.db, "
            "kept at the repo root) or unset it for the default"
        )
    found = _SQLITE_PATH.match(uri)
    if found is None or Path(found["path"]).is_absolute():
        return uri
    path = repo_root(cwd) / found["path"]
    return f"{found['scheme']}:///{path}{found['query'] or ''}"


def quick_http() -> None:
    for key, value in QUICK_HTTP.items():
        os.environ.setdefault(key, value)


def check_sqlite_store(uri: str) -> None:
    """Raise ``TrackingError`` at once when a ``sqlite:///`` store cannot work: the path is a
    directory, its folder is missing, or the file or its folder is read-only (SQLite writes
    a journal beside the file). MLflow itself retries such a store for minutes, then prints
    tracebacks."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///").split("?")[0]).absolute()
    fix = (
        "point tracking.uri or MLFLOW_TRACKING_URI at a writable file (a relative "
        "sqlite:///path is taken from the repo root), or unset both for <repo root>/mlflow.db"
    )
    if path.is_dir():
        raise TrackingError(f"MLflow store {uri}: {path} is a directory, not a file; {fix}")
    if not path.parent.is_dir():
        raise TrackingError(f"MLflow store {uri}: folder {path.parent} does not exist; {fix}")
    unwritable = [p for p in (path, path.parent) if p.exists() and not os.access(p, os.W_OK)]
    if unwritable:
        raise TrackingError(f"MLflow store {uri}: {unwritable[0]} is read-only; {fix}")


def check_reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``TrackingError`` within ``timeout`` seconds when an http(s) tracking server
    does not answer (any HTTP answer counts: a proxy's 401 is a server that is there), or at
    once when a SQLite store cannot work (``check_sqlite_store``)."""
    check_sqlite_store(uri)
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, point "
            "tracking.uri or MLFLOW_TRACKING_URI at one that runs, or set "
            "tracking.required: false to go on without tracking"
        ) from None


@contextmanager
def sqlite_store_lock(uri: str) -> Iterator[None]:
    """Hold, blocking, this machine's lock of the SQLite store at ``uri`` (none for another
    store). MLflow creates and migrates a new store's tables on first use without a lock of
    its own: two ``dvc exp run --temp`` started at once on a fresh clone both did, and failed
    ("table experiments already exists"). The first holder creates them; the others wait
    seconds, then find them."""
    found = _SQLITE_PATH.match(uri)
    if found is None:
        yield
        return
    folder = lock_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = hashlib.sha256(str(Path(found["path"]).absolute()).encode()).hexdigest()[:24]
    with open(folder / f"mlflow-store-{key}.lock", "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel however the holder ends
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
