"""A full disk and a read-only output directory, on real small file systems (tmpfs mounts).

Each test runs a stage once so there are earlier outputs, takes the space (or the write
permission) away, runs it again, and checks for one clear error and unchanged earlier outputs.
"""

from __future__ import annotations

import errno
import hashlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_ganops, tiny_params, write_params

pytestmark = pytest.mark.slow


def _mount(target: Path, options: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def small_fs() -> Iterator[Callable[[Path, str], None]]:
    """Mount a tmpfs of a given size on a directory (unmounted afterwards)."""
    mounted: list[Path] = []

    def mount(target: Path, size: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        try:
            _mount(target, f"size={size}")
        except (OSError, subprocess.CalledProcessError) as error:
            pytest.skip(f"cannot mount a small tmpfs here (needs root and mount): {error}")
        mounted.append(target)

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def _fill(directory: Path) -> None:
    """Write a filler file until the file system is full."""
    with (directory / "filler").open("wb") as stream:
        try:
            while True:
                stream.write(b"\0" * (1 << 16))
                stream.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture
def project(tmp_path: Path, mnist_dir: Path) -> Path:
    raw = tiny_params(tmp_path, mnist_dir, tracking={"enabled": False})
    write_params(tmp_path / "params.yaml", raw)
    return tmp_path


def _trained_on_small_fs(project: Path, small_fs: Callable[[Path, str], None]) -> Path:
    """Mount an 8 MB tmpfs on models/, run the pipeline up to a trained model there."""
    models = project / "models"
    small_fs(models, "8m")
    for stage in ("download", "prepare", "train"):
        done = run_ganops(stage, cwd=project)
        assert done.returncode == 0, done.stderr
    return models


def test_full_disk_at_the_checkpoint_keeps_the_previous_models(
    project: Path, small_fs: Callable[[Path, str], None]
) -> None:
    models = _trained_on_small_fs(project, small_fs)
    before = _digests(models)
    _fill(models)
    line = _one_error_line(run_ganops("train", "--fresh", cwd=project))
    assert line == (
        "error: cannot write models/checkpoint.pt: No space left on device (ENOSPC); free space "
        "on that file system (or write elsewhere) and run again. Outputs written before are "
        "unchanged"
    )
    (models / "filler").unlink()
    assert _digests(models) == before  # the earlier checkpoint and generator, untouched
    assert not list(models.glob(".*.tmp"))  # no half-written file left behind
    assert run_ganops("train", "--fresh", cwd=project).returncode == 0  # space back: works


def test_read_only_output_directory_fails_before_training(
    project: Path, small_fs: Callable[[Path, str], None]
) -> None:
    models = _trained_on_small_fs(project, small_fs)
    before = _digests(models)
    subprocess.run(["mount", "-o", "remount,ro", str(models)], check=True)
    done = run_ganops("train", "--fresh", cwd=project)
    line = _one_error_line(done)
    assert line == (
        "error: cannot write models: Read-only file system (EROFS); the file system is "
        "read-only: write elsewhere. Outputs written before are unchanged"
    )
    assert "train (cpu)" not in done.stderr + done.stdout  # refused before any training step
    assert _digests(models) == before


def test_full_disk_during_download_keeps_the_previous_raw_data(
    project: Path, small_fs: Callable[[Path, str], None]
) -> None:
    data = project / "data"
    small_fs(data, "16m")  # one copy of MNIST's .gz files (11 MB) fits, two do not
    assert run_ganops("download", cwd=project).returncode == 0
    before = _digests(data / "raw")
    line = _one_error_line(run_ganops("download", cwd=project))
    assert "No space left on device (ENOSPC)" in line, line
    assert _digests(data / "raw") == before
    assert sorted(p.name for p in data.iterdir()) == ["raw"]  # no staging directory left
