"""`ganops ui` says where the UI is only once its server answers, and points at the runs table."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ganops.tracking.ui import announce_ui, local_address, serve_ui, wait_until_answers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *_args: object) -> None:  # quiet
        pass


@contextmanager
def _serve_later(port: int, delay: float) -> Iterator[None]:
    """A stand-in for `mlflow ui`: it starts answering /health only after ``delay`` seconds."""
    started = threading.Event()
    servers: list[http.server.HTTPServer] = []

    def run() -> None:
        time.sleep(delay)
        servers.append(http.server.HTTPServer(("127.0.0.1", port), _Health))
        started.set()
        servers[0].serve_forever(poll_interval=0.05)

    threading.Thread(target=run, daemon=True).start()
    yield
    if started.wait(5):
        servers[0].shutdown()
        servers[0].server_close()


@pytest.fixture
def late_server() -> Iterator[tuple[int, float]]:
    port, delay = _free_port(), 0.6
    with _serve_later(port, delay):
        yield port, delay


def test_wildcard_hosts_are_polled_on_loopback() -> None:
    assert local_address("0.0.0.0") == "127.0.0.1"
    assert local_address("::") == "[::1]"
    assert local_address("localhost") == "localhost"


def test_wait_until_answers_waits_for_the_server(late_server: tuple[int, float]) -> None:
    port, delay = late_server
    began = time.monotonic()
    assert wait_until_answers(f"http://127.0.0.1:{port}/health", timeout=10, interval=0.05)
    assert time.monotonic() - began >= delay * 0.9


def test_wait_until_answers_gives_up_after_the_timeout() -> None:
    assert not wait_until_answers(
        f"http://127.0.0.1:{_free_port()}/health", timeout=0.3, interval=0.05
    )


def test_runs_table_url_is_printed_only_once_the_server_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    port, uri = _free_port(), f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = mlflow.MlflowClient(tracking_uri=uri).create_experiment("ganops-test")
    announce = announce_ui(host="0.0.0.0", port=port, uri=uri, experiment="ganops-test", timeout=10)
    with _serve_later(port, delay=1.0):
        printer = threading.Thread(target=announce)
        printer.start()
        time.sleep(0.5)  # the server is not up yet: nothing may claim it is
        assert "MLflow UI on" not in capsys.readouterr().out
        printer.join(15)
    out = capsys.readouterr().out
    table = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
    assert (
        f"MLflow UI on http://127.0.0.1:{port} for {uri}: runs of 'ganops-test' at {table}" in out
    )


def test_a_store_without_the_experiment_gets_the_root_page(
    tmp_path: Path, late_server: tuple[int, float], capsys: pytest.CaptureFixture[str]
) -> None:
    port, _ = late_server
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    announce_ui(host="127.0.0.1", port=port, uri=uri, experiment="absent", timeout=10)()
    out = capsys.readouterr().out
    assert f"MLflow UI on http://127.0.0.1:{port} for {uri}: no run of experiment 'absent'" in out
    assert "#/experiments" not in out


def test_a_server_that_never_answers_gets_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    announce_ui(host="127.0.0.1", port=port, uri="sqlite:///x.db", experiment="e", timeout=0.3)()
    captured = capsys.readouterr()
    assert f"warning: the MLflow UI on http://127.0.0.1:{port} did not answer within 0 s" in (
        captured.err
    )
    assert "MLflow UI on" not in captured.out


def test_serve_ui_runs_the_callback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    called = threading.Event()
    code = serve_ui(
        [sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.exit(3)"],
        {},
        on_started=called.set,
    )
    assert code == 3
    assert called.wait(2)
