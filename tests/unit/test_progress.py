from __future__ import annotations

import pytest

from ganops import progress
from ganops.progress import Progress


@pytest.fixture(autouse=True)
def plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print plain lines (as on a non-terminal), every update."""
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)


def test_an_unknown_total_shows_the_count_alone(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(total=0, desc="download mnist", unit="B", interval=0.0) as bar:
        bar.update(11401738)
    err = capsys.readouterr().err
    assert "download mnist: 11401738 B" in err and "/0" not in err


def test_nothing_is_printed_for_a_failure_before_any_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(OSError), Progress(total=0, desc="download mnist", unit="B"):
        raise OSError("unreachable")
    assert capsys.readouterr().err == ""


def test_the_end_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(total=400, desc="Inception features", unit="img", interval=0.0) as bar:
        bar.update(200)
        bar.update(200)  # prints the 400/400 line; closing must not print it again
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" img")[0] for line in lines] == [
        "Inception features: 200/400",
        "Inception features: 400/400",
    ]


def test_the_end_is_printed_when_the_last_update_was_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Progress(total=10, desc="train", unit="step", interval=3600.0) as bar:
        bar.update(10)  # within the interval: no line yet
    assert capsys.readouterr().err.startswith("train: 10/10 step")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A clock the test moves (``clock.now += seconds``), as Progress's time.monotonic."""
    fake = FakeClock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def test_skipped_work_counts_towards_the_total_but_not_the_rate(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with Progress(total=2000, desc="Inception features", unit="img", interval=0.0) as bar:
        bar.skip(1000)  # the real images' features, read from the cache
        clock.now += 10.0
        bar.update(100)  # 100 generated images in 10 s
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("Inception features: 1100/2000 img  55.0%")
    assert "(10.0 img/s, 0:10 elapsed, ETA 1:30)" in line  # not 110: the cache took no time


def test_skipped_work_leaves_the_terminal_bar_s_rate_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    with Progress(total=2000, desc="Inception features", unit="img") as bar:
        assert bar._bar is not None
        bar.skip(1000)
        bar._bar.start_t -= 10.0  # as if the next 100 images took ten seconds
        bar._bar.last_print_t -= 10.0
        bar.update(100)
        shown = str(bar._bar)
    # 10 img/s, and 900 images left at that rate: 1 min 30 s (not 110 img/s and 8 s)
    assert "1.10k/2.00k [00:10<01:30, 10.0img/s]" in shown


def test_lines_say_elapsed_time_and_the_eta_at_this_machine_s_rate(
    capsys: pytest.CaptureFixture[str], clock: FakeClock
) -> None:
    with Progress(total=1000, desc="train (cpu)", unit="step", interval=0.0) as bar:
        clock.now += 50.0
        bar.update(100, "epoch 1/30 loss_d=1.300")
        clock.now += 4000.0
        bar.update(900)
    first, last = capsys.readouterr().err.splitlines()
    assert "(2.0 step/s, 0:50 elapsed, ETA 7:30) epoch 1/30 loss_d=1.300" in first
    assert "1000/1000 step" in last and "1:07:30 elapsed" in last and "ETA" not in last


def test_one_line_estimates_the_whole_run_s_wall_time_once_the_first_seconds_have_passed(
    capsys: pytest.CaptureFixture[str], clock: FakeClock
) -> None:
    with Progress(
        total=3000, desc="train (cpu)", unit="step", interval=3600.0, estimate_after=30.0
    ) as bar:
        clock.now += 20.0
        bar.update(200)  # too early: no estimate yet
        assert capsys.readouterr().err == ""
        clock.now += 10.0
        bar.update(100)  # 300 steps in 30 s: 3000 steps take 5 min
        clock.now += 10.0
        bar.update(100)  # printed once only
        estimate = capsys.readouterr().err.splitlines()
        bar.update(2600)
    assert estimate == [
        "train (cpu): estimated wall time on this machine 5:00 for 3000 steps (10.0 step/s "
        "over the first 0:30; the ETA in later lines follows the rate)"
    ]


def test_a_resumed_run_s_estimate_counts_only_the_steps_left(
    capsys: pytest.CaptureFixture[str], clock: FakeClock
) -> None:
    with Progress(
        total=3000,
        desc="train (cpu)",
        unit="step",
        interval=3600.0,
        initial=2000,
        estimate_after=30.0,
    ) as bar:
        clock.now += 40.0
        bar.update(400)  # 10 step/s: the 1000 steps left take 1:40, not 5:00
        assert "1:40 for the 1000 steps left (10.0 step/s over the first 0:40" in (
            capsys.readouterr().err
        )


def test_no_estimate_unless_asked(capsys: pytest.CaptureFixture[str], clock: FakeClock) -> None:
    with Progress(total=3000, desc="Inception features", unit="img", interval=3600.0) as bar:
        clock.now += 60.0
        bar.update(600)
    assert "estimated" not in capsys.readouterr().err
