"""Temporary files and staging directories: recognisable, owned, and removed once stale."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from ganops.errors import OutputError
from ganops.files import atomic_path, remove_stale_temps, staging_dir, write_text

TEMP = re.compile(r"\.(?P<final>.+)\.ganops-(?P<pid>\d+)-[a-z0-9_]+\.tmp")


def killed_mid_write(final: Path) -> Path:
    """What ``kill -9`` leaves when it hits a writer of ``final`` (a forked child) mid-write."""
    child = os.fork()
    if child == 0:  # the child: start the write, then die the hard way
        try:
            with atomic_path(final) as tmp:
                tmp.write_bytes(b"x" * 1000)
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)  # never run the rest of pytest in the child
    os.waitpid(child, 0)
    (left,) = [p for p in final.parent.iterdir() if p.name.startswith(f".{final.name}.")]
    match = TEMP.fullmatch(left.name)
    assert match is not None and match["final"] == final.name and int(match["pid"]) == child
    return left


def test_atomic_path_names_its_temp_file_and_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "a.json"
    with atomic_path(final) as tmp:
        match = TEMP.fullmatch(tmp.name)
        assert match is not None and match["final"] == "a.json"
        assert int(match["pid"]) == os.getpid()
        tmp.write_text("{}")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and final.read_text() == "{}"


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    final = tmp_path / "weights.pth"
    stale = killed_mid_write(final)
    live = tmp_path / f".weights.pth.ganops-{os.getppid()}-abc.tmp"  # another writer at work
    live.write_bytes(b"in progress")
    write_text("done", final)
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([final.name, live.name])


def test_remove_stale_temps_touches_only_dead_owners_ganops_temporaries(tmp_path: Path) -> None:
    stale = killed_mid_write(tmp_path / "real_features_64.pt")
    dead_pid = TEMP.fullmatch(stale.name)["pid"]  # type: ignore[index]
    stale_dir = tmp_path / f".raw.ganops-{dead_pid}-xyz.tmp"  # a killed download's
    stale_dir.mkdir()
    (stale_dir / "half.gz").write_bytes(b"x")
    others = [tmp_path / ".someone.else.tmp", tmp_path / "real_features_64.pt"]
    for path in others:
        path.write_bytes(b"keep")
    assert remove_stale_temps(tmp_path, "other.pt") == []  # only those for that name
    assert sorted(remove_stale_temps(tmp_path)) == sorted([stale, stale_dir])
    assert sorted(tmp_path.iterdir()) == sorted(others)
    assert remove_stale_temps(tmp_path / "missing") == []


def test_a_leftover_with_our_own_pid_but_not_ours_is_stale(tmp_path: Path) -> None:
    """In a container the next run often gets the killed one's PID."""
    leftover = tmp_path / f".m.pt.ganops-{os.getpid()}-old123.tmp"
    leftover.write_bytes(b"x")
    with atomic_path(tmp_path / "other.pt") as tmp:
        tmp.write_bytes(b"y")
        assert remove_stale_temps(tmp_path) == [leftover]  # ours in use is kept
        assert tmp.exists()


def test_staging_dir_is_removed_on_error_and_named_like_a_temp(tmp_path: Path) -> None:
    with pytest.raises(OutputError), staging_dir(tmp_path / "raw") as staging:
        assert TEMP.fullmatch(staging.name) is not None
        (staging / "part.gz").write_bytes(b"x")
        raise OutputError("disk full")
    assert list(tmp_path.iterdir()) == []
