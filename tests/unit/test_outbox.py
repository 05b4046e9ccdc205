"""The tracking outbox: in order, never blocking the caller, retried until the server is back."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganops.errors import TrackingError
from ganops.tracking.outbox import Item, Outbox
from ganops.tracking.store import check_reachable
from tests.conftest import free_port


class FlakyServer:
    """A send that fails while ``down`` is set, recording what arrived."""

    def __init__(self, down: bool = False) -> None:
        self.down = threading.Event()
        if down:
            self.down.set()
        self.received: list[int] = []
        self.attempts = self.calls_received = 0

    def send(self, items: list[Item]) -> None:
        self.attempts += 1
        if self.down.is_set():
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        self.received += [item.payload for item in items]
        self.calls_received += 1


def _items(n: int, batchable: bool = False) -> list[Item]:
    return [Item(f"metrics at step {i}", i, batchable) for i in range(n)]


def test_everything_arrives_in_order_after_the_server_comes_back() -> None:
    server, warnings = FlakyServer(down=True), []
    outbox = Outbox(server.send, first_backoff=0.01, max_backoff=0.02, warn=warnings.append)
    for item in _items(20):
        outbox.put(item)
    deadline = time.monotonic() + 10
    while server.attempts < 3:  # it keeps retrying while the server is away
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert server.received == []
    server.down.clear()
    assert outbox.close(timeout=10) == []
    assert server.received == list(range(20))
    assert len(warnings) == 2  # one when it went away (not one per attempt), one when back
    assert "metrics at step 0 not sent" in warnings[0] and "ConnectionRefusedError" in warnings[0]
    assert "reachable again" in warnings[1]


def test_put_never_waits_for_a_slow_server() -> None:
    release, received = threading.Event(), []

    def blocked_send(items: list[Item]) -> None:
        release.wait(10)
        received.extend(item.payload for item in items)

    outbox = Outbox(blocked_send)
    for item in _items(100):
        outbox.put(item)  # the first send is stuck; put must still return
    assert received == []
    release.set()
    assert outbox.close(timeout=10) == []
    assert received == list(range(100))


def test_close_returns_what_a_vanished_server_never_got_in_order() -> None:
    server = FlakyServer(down=True)
    outbox = Outbox(server.send, first_backoff=0.01, max_backoff=0.01, warn=lambda _: None)
    items = _items(5)
    for item in items:
        outbox.put(item)
    assert outbox.close(timeout=0.3) == items
    assert server.received == []


def test_a_backlog_drains_in_batches_that_never_cross_an_unbatchable_item() -> None:
    server = FlakyServer(down=True)
    outbox = Outbox(server.send, max_batch=100, first_backoff=0.01, warn=lambda _: None)
    items = [*_items(250, batchable=True), Item("sample grid", 250), *_items(3, batchable=True)]
    for item in items:
        outbox.put(item)
    server.down.clear()
    assert outbox.close(timeout=10) == []
    assert server.received == [item.payload for item in items]
    # 100 + 100 + 50 points, then the grid alone, then the last 3 points; one call more if
    # the worker formed a partial batch just before the server came back.
    assert server.calls_received in (5, 6)


@pytest.fixture
def answering_server() -> Iterator[str]:
    """An HTTP server that answers every request with 401, like an auth proxy."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_that_answers_at_all_counts_as_reachable(
    answering_server: str, tmp_path: Path
) -> None:
    check_reachable(answering_server)  # 401 from a proxy: the server is there
    check_reachable(f"sqlite:///{tmp_path}/mlflow.db")  # a file store: no server to probe


def test_nothing_listening_is_a_clear_error_naming_the_uri_and_the_way_out() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError) as caught:
        check_reachable(uri)
    message = str(caught.value)
    assert uri in message and "unreachable" in message and "tracking.required: false" in message
