"""Progress reporting: a live bar on a terminal, plain periodic lines in CI logs."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from tqdm import tqdm


def clock(seconds: float) -> str:
    """``seconds`` as h:mm:ss (m:ss under an hour), as tqdm shows times."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts work units. On a TTY it draws a tqdm bar; elsewhere it prints a line at most
    every ``interval`` seconds (and at the end), so logs stay readable.

    With ``estimate_after`` (seconds, 0 = never), one line once that much time has passed
    gives the whole job's estimated wall time on this machine, from the rate so far: the
    figure a user plans with, before the first ETA has settled.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        interval: float = 10.0,
        initial: int = 0,
        estimate_after: float = 0.0,
    ) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.estimate_after = estimate_after
        self._estimated = False
        self.count = self.initial = initial
        self.postfix = ""
        self._bar = (
            tqdm(
                total=total or None,
                initial=initial,
                desc=desc,
                unit=unit,
                unit_scale=True,
                dynamic_ncols=True,
            )
            if sys.stderr.isatty()
            else None
        )
        self._start = self._last = time.monotonic()
        self._printed: int | None = None  # the count of the last line printed

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.count += n
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
        elif time.monotonic() - self._last >= self.interval:
            self._print_line()
        if self.estimate_after and not self._estimated:
            self._print_estimate()

    def skip(self, n: int) -> None:
        """Count ``n`` units found already done (e.g. read from a cache): they move the
        count towards the total but not the rate, which stays that of the work done here."""
        self.count += n
        self.initial += n
        if self._bar is not None:
            self._bar.initial += n  # tqdm's rates: (n - initial) / elapsed, and dn per update
            self._bar.n += n
            self._bar.last_print_n = self._bar.n
            self._bar.refresh()

    def _print_line(self) -> None:
        self._last, self._printed = time.monotonic(), self.count
        elapsed = self._last - self._start
        rate = (self.count - self.initial) / elapsed if elapsed > 0 else 0.0
        # An unknown total (a download without a size) shows the count alone, never "/0".
        done = (
            f"{self.count}/{self.total} {self.unit} " if self.total else f"{self.count} {self.unit}"
        )
        share = f"{100 * self.count / self.total:5.1f}%" if self.total else ""
        timing = f", {clock(elapsed)} elapsed"
        if self.total and rate > 0 and self.count < self.total:  # this machine's rate so far
            timing += f", ETA {clock((self.total - self.count) / rate)}"
        extra = f" {self.postfix}" if self.postfix else ""
        print(
            f"{self.desc}: {done}{share} ({rate:.1f} {self.unit}/s{timing}){extra}",
            file=sys.stderr,
            flush=True,
        )

    def _print_estimate(self) -> None:
        elapsed = time.monotonic() - self._start
        done = self.count - self.initial
        if elapsed < self.estimate_after or done <= 0 or not self.total:
            return
        self._estimated = True
        rate = done / elapsed
        todo = self.total - self.initial  # what this process has to do, resumed or not
        steps = f"the {todo} {self.unit}s left" if self.initial else f"{todo} {self.unit}s"
        line = (
            f"{self.desc}: estimated wall time on this machine {clock(todo / rate)} for "
            f"{steps} ({rate:.1f} {self.unit}/s over the first {clock(elapsed)}; the ETA in "
            "later lines follows the rate)"
        )
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self, failed: bool = False) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._printed == self.count:  # the last line already says where it ended
            return
        elif not failed or self.count > self.initial:  # no "0/0 B" line before an error
            self._print_line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc is not None)
