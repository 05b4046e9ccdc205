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
