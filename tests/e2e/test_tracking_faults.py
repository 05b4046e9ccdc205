"""The tracking server unreachable at start, lost mid-run, lost for good: a real `mlflow
server` behind a TCP relay the test can cut (a network partition), and a real `ganops train`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient

from tests.conftest import free_port, run_ganops, tiny_params, write_params


class Relay:
    """Forwards 127.0.0.1:<port> to the server; ``cut()`` refuses and drops every connection
    (as a partition or a dead server looks to a client), ``heal()`` restores the path."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port, self.port = upstream_port, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.heal()

    def heal(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            # shutdown wakes the accept() blocked in the other thread; close alone would not,
            # and one more connection could slip through and stay open (keep-alive).
            for sock in ([listener] if listener else []) + self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # shut down by cut()
                return
            with self._lock:
                if self._listener is not listener:  # accepted just as the cut came
                    client.close()
                    return
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture
def relay(mlflow_server: str) -> Iterator[Relay]:
    relay = Relay(int(mlflow_server.rsplit(":", 1)[1]))
    yield relay
    relay.cut()


def _project(tmp_path: Path, mnist: Path, uri: str, epochs: int, **tracking: Any) -> Path:
    raw = tiny_params(
        tmp_path,
        mnist,
        # 2,048 images = 32 steps an epoch: one sample grid (a slow, unbatched upload) per
        # 8 loss points, so a backlog drains within the logger's 30 s at exit even on a
        # loaded machine (with 8-step epochs it once did not, in CI).
        data={"train_subset": 2048},
        train={"epochs": epochs, "log_every": 4, "checkpoint_every": 8},
        tracking={"uri": uri, "experiment": tmp_path.name, **tracking},
    )
    write_params(tmp_path / "params.yaml", raw)
    for stage in ("download", "prepare"):
        done = run_ganops(stage, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return tmp_path


def _until(condition: Callable[[], Any], what: str, process: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + 300
    while not (value := condition()):
        assert process.poll() is None, f"training ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within 300 s"
        time.sleep(0.2)
    return value


def _train(cwd: Path) -> tuple[subprocess.Popen[str], Path]:
    log = cwd / "train.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ganops", "train"],
        cwd=cwd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, log


def _loss_steps(client: MlflowClient, experiment: str) -> tuple[str, list[int]]:
    """The run of ``experiment`` (via the server's REST API) and the steps of its loss_d."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    if not runs:
        return "", []
    run_id = runs[0].info.run_id
    return run_id, sorted(m.step for m in client.get_metric_history(run_id, "loss_d"))


def _checkpoint_step(path: Path) -> int:
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["loop"]["step"])


@pytest.mark.slow
def test_points_logged_while_the_server_is_away_arrive_when_it_is_back(
    tmp_path: Path, mnist_dir: Path, mlflow_server: str, relay: Relay
) -> None:
    cwd = _project(tmp_path, mnist_dir, relay.url, epochs=400)  # far more than the test waits
    client = MlflowClient(tracking_uri=mlflow_server)  # the test itself bypasses the relay
    process, log = _train(cwd)
    checkpoint = cwd / "models" / "checkpoint.pt"
    try:
        _until(lambda: len(_loss_steps(client, cwd.name)[1]) >= 2, "logged points", process)
        relay.cut()
        _until(lambda: "not sent" in log.read_text(), "a warning of the partition", process)
        step_at_cut = _checkpoint_step(checkpoint)
        # Training goes on while the server is away: checkpoints keep coming.
        _until(lambda: _checkpoint_step(checkpoint) >= step_at_cut + 40, "progress", process)
        relay.heal()
        _until(lambda: "reachable again" in log.read_text(), "reconnection", process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 130, log.read_text()
    finally:
        process.kill()
    output = log.read_text()
    assert "Traceback" not in output, output
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    expected = sorted(int(row["step"]) for row in blob["loop"]["history"])
    run_id, received = _loss_steps(client, cwd.name)
    assert len(expected) > 10
    assert received == expected, output  # nothing logged during the partition was lost
    assert client.get_run(run_id).info.status == "KILLED"


@pytest.mark.slow
def test_a_server_lost_for_good_costs_no_training_and_no_outputs(
    tmp_path: Path, mnist_dir: Path, mlflow_server: str, relay: Relay
) -> None:
    cwd = _project(tmp_path, mnist_dir, relay.url, epochs=8)  # 256 steps
    client = MlflowClient(tracking_uri=mlflow_server)
    process, log = _train(cwd)
    try:
        _until(lambda: _loss_steps(client, cwd.name)[1], "logged points", process)
        relay.cut()
        assert process.wait(600) == 0, log.read_text()
    finally:
        process.kill()
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "could not be sent to MLflow" in output
    assert "trained to step 256" in output
    blob = torch.load(cwd / "models" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert blob["complete"] and blob["loop"]["step"] == 256
    for output_file in ("models/generator.pt", "outputs/train/losses.csv"):
        assert (cwd / output_file).stat().st_size > 0
    assert len((cwd / "outputs/train/losses.csv").read_text().splitlines()) == 1 + 256 // 4


@pytest.mark.slow
def test_an_unreachable_server_at_start_is_one_clear_error_within_seconds(
    tmp_path: Path, mnist_dir: Path
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cwd = _project(tmp_path, mnist_dir, uri, epochs=1)
    started = time.monotonic()
    done = run_ganops("train", cwd=cwd)
    assert time.monotonic() - started < 60  # MLflow's own retries alone would take minutes
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: MLflow tracking server {uri} is unreachable ([Errno 111] Connection refused); "
        "start it, point tracking.uri or MLFLOW_TRACKING_URI at one that runs, or set "
        "tracking.required: false to go on without tracking"
    ]
    assert not list(cwd.glob("models/*")) and not list(cwd.glob("outputs/train/*"))


@pytest.mark.slow
def test_with_tracking_not_required_training_goes_on_without_it(
    tmp_path: Path, mnist_dir: Path
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    cwd = _project(tmp_path, mnist_dir, uri, epochs=1, required=False)
    done = run_ganops("train", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "unreachable" in done.stderr and "training without tracking" in done.stderr
    assert (cwd / "models" / "generator.pt").exists()
