"""``ganops ui``: the MLflow UI of the run store, as one process group that stops with
ganops, announced once it answers, at the address of the experiment's runs table."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ganops.errors import TrackingError, UsageError, describe_error, warn
from ganops.tracking import quality_view
from ganops.tracking.store import check_reachable, check_sqlite_store, quick_http

# MLflow's server imports starlette.middleware.wsgi, which warns on import in every worker
# process; the warning is for MLflow's developers, not for someone opening the UI.
UI_QUIET_WARNINGS = "ignore:starlette.middleware.wsgi is deprecated"


def ui_command(uri: str, *, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow ui`` command line (and its environment) that shows the store at ``uri``:
    one worker (the UI of one person's store needs no more, and each would print its start-up
    lines), MLflow's own deprecation warnings silenced."""
    check_sqlite_store(uri)
    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    argv += ["--host", host, "--port", str(port), "--workers", "1"]
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), UI_QUIET_WARNINGS]))
    return argv, env


def check_port_free(host: str, port: int) -> None:
    """Fail before starting the UI when ``host:port`` cannot be listened on: MLflow's own
    server prints the bind error among its start-up lines and exits 0."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use (another `ganops ui` or `mlflow ui`?); stop "
                f"it, or pick another with --port {port + 1}"
            ) from None
        raise UsageError(
            f"cannot listen on {host}:{port} ({describe_error(error)}); fix --host or --port"
        ) from None


def serve_ui(
    argv: list[str],
    env: dict[str, str],
    *,
    grace: float = 15.0,
    on_started: Callable[[], object] | None = None,
) -> int:
    """Run the UI command until it ends or ganops gets SIGINT (Ctrl-C), SIGTERM or SIGHUP,
    which stop its whole process group (MLflow's server and its workers), so nothing keeps
    serving after ganops is gone. ``on_started`` runs in a daemon thread once the command has
    started (to wait for the server and say where it is). Returns its exit code: 0 after
    Ctrl-C, 128 + N after signal N."""
    import threading

    child = subprocess.Popen(argv, env=env, start_new_session=True)
    if on_started is not None:
        threading.Thread(target=on_started, name="ganops-ui-ready", daemon=True).start()
    received: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        received.append(signum)
        _signal_group(child.pid, signal.SIGTERM)

    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in stopping}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _end_group(child, grace)
    if received:
        return 0 if received[0] == signal.SIGINT else 128 + received[0]
    return code


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to a process group; False when none of it is left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _end_group(child: subprocess.Popen[bytes], grace: float) -> None:
    """Stop what is left of ``child``'s process group (workers outlive their parent): SIGTERM,
    then SIGKILL after ``grace`` seconds."""
    import time

    if child.poll() is None:
        _signal_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _signal_group(child.pid, 0):
        if time.monotonic() > deadline:
            _signal_group(child.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    child.wait()


def local_address(host: str) -> str:
    """The address this machine reaches a server on that listens on ``host``: a wildcard
    (0.0.0.0, ::) is not an address to connect to, its loopback is."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(
        host, f"[{host}]" if ":" in host else host
    )


def wait_until_answers(url: str, *, timeout: float, interval: float = 0.5) -> bool:
    """Poll ``url`` until it answers HTTP 200 (True) or ``timeout`` seconds pass (False)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(interval, 1.0)) as response:
                if response.status == 200:
                    return True
        except (OSError, ValueError):  # refused, reset, HTTP error, timeout: not up yet
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def runs_table_url(base: str, uri: str, experiment: str) -> str | None:
    """The MLflow UI page of ``experiment``'s runs table on the server at ``base``, or None
    when the store at ``uri`` has no such experiment (no run logged yet). The route is
    MLflow 3's ``experimentPageTabRuns`` (/experiments/:experimentId/runs, hash router),
    opened on the quality view once an evaluation has set it (``quality_view``)."""
    import mlflow

    try:
        found = mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except Exception:  # an unreadable store: the UI still shows its root page
        return None
    if found is None:
        return None
    view = quality_view.query(found.tags)
    return f"{base}/#/experiments/{found.experiment_id}/runs{view}"


def server_runs_table(uri: str, experiment: str) -> str:
    """The runs table of ``experiment`` on the tracking server at ``uri`` (which serves its
    own UI), or the server's address when it does not answer or has no such experiment."""
    try:
        check_reachable(uri)
    except TrackingError:
        return uri
    quick_http()
    return runs_table_url(uri.rstrip("/"), uri, experiment) or uri


def announce_ui(
    *, host: str, port: int, uri: str, experiment: str, timeout: float = 90.0
) -> Callable[[], None]:
    """A ``serve_ui`` ``on_started`` callback: wait until the UI at ``host:port`` answers,
    then print the address of ``experiment``'s runs table (the root page if it has none)."""
    base = f"http://{local_address(host)}:{port}"

    def announce() -> None:
        if not wait_until_answers(f"{base}/health", timeout=timeout):
            warn(
                f"the MLflow UI on {base} did not answer within {timeout:.0f} s; "
                "it is still starting or failed (its own lines above say which; Ctrl-C stops it)"
            )
            return
        table = runs_table_url(base, uri, experiment)
        where = (
            f"no run of experiment {experiment!r} logged yet"
            if table is None
            else f"runs of {experiment!r} at {table}"
        )
        print(f"MLflow UI on {base} for {uri}: {where} (Ctrl-C stops it)", flush=True)

    return announce
