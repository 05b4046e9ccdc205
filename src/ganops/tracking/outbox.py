"""An outbox for tracking calls: sent in order from a worker thread, retried with backoff.

Training must never wait on, or die with, a tracking server. The loop drops each logging
call into the outbox and goes on; a worker thread sends them in order. When a send fails
(server restarting, network gone), the worker keeps the call at the head of the queue and
tries again after a backoff that doubles up to ``max_backoff`` seconds, so nothing is lost
if the server comes back. Consecutive ``batchable`` items go out in one call (up to
``max_batch``), so a backlog built up while the server was away drains in a few requests.
``close`` gives the rest a last chance and returns what could not be sent, for the caller to
report.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ganops.errors import describe_error


@dataclass(frozen=True)
class Item:
    """One tracking call: ``what`` names it in messages (e.g. ``metrics at step 50``);
    ``batchable`` ones may be sent together with their batchable neighbours."""

    what: str
    payload: Any
    batchable: bool = False


class Outbox:
    def __init__(
        self,
        send: Callable[[list[Item]], None],
        *,
        max_batch: int = 100,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        warn: Callable[[str], None] = print,
    ) -> None:
        self._send, self._warn, self._max_batch = send, warn, max_batch
        self._first_backoff, self._max_backoff = first_backoff, max_backoff
        self._queue: deque[Item] = deque()
        self._cv = threading.Condition()
        self._closing = self._abandoned = False
        self._down = False
        self._thread = threading.Thread(target=self._work, name="ganops-outbox", daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        with self._cv:
            self._queue.append(item)
            self._cv.notify()

    def _work(self) -> None:
        backoff = self._first_backoff
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._queue) or self._closing)
                if not self._queue or self._abandoned:
                    return
                batch = self._head()
            try:
                self._send(batch)
            except Exception as error:  # any failure of the transport: keep the items, retry
                if not self._down:
                    self._warn(
                        f"warning: tracking: {batch[0].what} not sent ({describe_error(error)}); "
                        f"training goes on, retrying every {self._first_backoff:g}-"
                        f"{self._max_backoff:g} s"
                    )
                    self._down = True
                with self._cv:
                    # Closing: retry sooner, the caller is waiting for the rest.
                    wait = min(backoff, 1.0) if self._closing else backoff
                    if self._cv.wait_for(lambda: self._abandoned, timeout=wait):
                        return
                backoff = min(2 * backoff, self._max_backoff)
                continue
            with self._cv:  # only this thread removes items: the batch is still the head
                for _ in batch:
                    self._queue.popleft()
            if self._down:
                self._warn("tracking: reachable again; sending what was held back")
                self._down = False
            backoff = self._first_backoff

    def _head(self) -> list[Item]:
        """The next call to make: the head item, with the batchable items right behind it."""
        batch = [self._queue[0]]
        if batch[0].batchable:
            for item in itertools.islice(self._queue, 1, self._max_batch):
                if not item.batchable:
                    break
                batch.append(item)
        return batch

    def close(self, timeout: float = 30.0) -> list[Item]:
        """Wait up to ``timeout`` seconds for the queue to drain; return what was not sent."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        with self._cv:
            self._abandoned = True
            self._cv.notify_all()
            return list(self._queue)
