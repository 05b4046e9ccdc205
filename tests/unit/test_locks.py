"""Two ganops commands never write the same output folder at once (ganops.locks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganops.cli import app
from ganops.errors import OutputError
from ganops.locks import exclusive

HOLDER = """
import sys, time
from pathlib import Path
from ganops.locks import exclusive
with exclusive(Path(sys.argv[1]), command="train"):
    Path(sys.argv[2]).write_text("held")
    time.sleep(60)
"""


@contextmanager
def _held_elsewhere(directory: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    ready = tmp_path / "ready"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, "holder did not start"
            time.sleep(0.05)
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    with _held_elsewhere(out, tmp_path) as holder:
        with (
            pytest.raises(
                OutputError, match=rf"another ganops command \(ganops train, pid {holder.pid}\)"
            ),
            exclusive(out, command="evaluate"),
        ):
            pass
        with exclusive(tmp_path / "elsewhere", command="evaluate"):  # other folders are free
            pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    with _held_elsewhere(out, tmp_path) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with exclusive(out, command="train"):  # the kernel released it with the process
            pass


def test_the_cli_refuses_to_write_a_folder_another_command_writes(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    (tmp_path / "params.yaml").write_text("data:\n  dataset: mnist\n", encoding="utf-8")
    with _held_elsewhere(out, tmp_path):
        args = ["prepare", "--raw", str(tmp_path / "raw"), "--out", str(out)]
        result = CliRunner().invoke(app, [*args, "-p", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    assert "is being written by another ganops command" in result.stderr
    assert not out.exists()
