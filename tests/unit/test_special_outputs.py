"""Outputs never replace a FIFO, a device or a symlink (issue 31 item 7).

Every output is renamed over its path, which would swap the thing itself for a regular file
(as root even ``/dev/null``). Such a destination is refused, in one line and before anything
is written; symlinked *parent* folders stay fine. ``/dev/null`` is never written here: the
writes are guarded so that even a regression fails the test instead of replacing it.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganops.cli import app
from ganops.config import params_from_dict
from ganops.errors import UsageError
from ganops.files import (
    atomic_path,
    ensure_writable,
    replace_dir,
    replace_files,
    staging_dir,
    write_json,
)
from ganops.generator_file import save_generator
from ganops.models import build_models

DEV_NULL = Path("/dev/null")


@pytest.fixture(autouse=True)
def never_write_in_dev(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail, instead of writing, any temporary file or rename in /dev; and fail a test that
    blocks (opening a FIFO waits for its other end) instead of hanging the suite."""
    real_mkstemp, real_replace = tempfile.mkstemp, os.replace

    def mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        assert not str(kwargs.get("dir", "")).startswith("/dev"), "a write in /dev began"
        return real_mkstemp(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    def replace(src: str | Path, dst: str | Path) -> None:
        assert not os.path.realpath(dst).startswith("/dev"), f"{dst} was about to be replaced"
        real_replace(src, dst)

    def blocked(signum: int, frame: object) -> None:
        pytest.fail("blocked, e.g. opening a FIFO")

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "replace", replace)
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def dev_null_untouched() -> bool:
    return stat.S_ISCHR(os.lstat(DEV_NULL).st_mode)


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def one_line(error: pytest.ExceptionInfo[UsageError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "cannot write" in message
    return message


def write_through_atomic_path(path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("output", encoding="utf-8")


Make = Callable[[Path], Path]
SPECIAL: dict[str, tuple[Make, str]] = {
    "fifo": (lambda d: fifo(d / "out.json"), "a named pipe"),
    "symlink to a file": (
        lambda d: link(d / "out.json", d / "target.txt"),
        "a symbolic link (to ",
    ),
    "symlink to a folder": (lambda d: link(d / "out.json", d / "folder"), "a symbolic link"),
    "dangling symlink": (lambda d: link(d / "out.json", d / "missing"), "a symbolic link"),
    "symlink to /dev/null": (lambda d: link(d / "out.json", DEV_NULL), "(to /dev/null)"),
    "folder": (lambda d: d / "folder", "a directory"),
}


@pytest.fixture
def place(tmp_path: Path) -> Path:
    (tmp_path / "target.txt").write_text("someone else's", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside.txt").write_text("kept", encoding="utf-8")
    return tmp_path


def untouched(place: Path) -> bool:
    return (
        (place / "target.txt").read_text(encoding="utf-8") == "someone else's"
        and (place / "folder" / "inside.txt").read_text(encoding="utf-8") == "kept"
        and dev_null_untouched()
        and not [p for p in place.iterdir() if ".ganops-" in p.name]  # no temporary left
    )


@pytest.mark.parametrize("case", list(SPECIAL))
def test_atomic_path_refuses_what_is_not_a_regular_file(place: Path, case: str) -> None:
    make, kind = SPECIAL[case]
    path = make(place)
    before = os.lstat(path)
    with pytest.raises(UsageError) as error:
        write_through_atomic_path(path)
    assert kind in one_line(error) and str(path) in str(error.value)
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)  # the same thing
    assert untouched(place)


def test_dev_null_itself_is_refused_before_any_write() -> None:
    with pytest.raises(UsageError, match=r"/dev/null: it is a character device, not a regular"):
        write_json({"a": 1}, DEV_NULL)
    assert dev_null_untouched()


def test_symlinked_parent_folders_are_fine(tmp_path: Path) -> None:
    """data/ linked to a bigger disk is common: only the last component must be real."""
    disk = tmp_path / "disk"
    disk.mkdir()
    write_json({"a": 1}, link(tmp_path / "data", disk) / "meta.json")
    assert (disk / "meta.json").is_file() and not (disk / "meta.json").is_symlink()


def test_a_regular_file_is_still_replaced(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old", encoding="utf-8")
    write_through_atomic_path(path)
    assert path.read_text(encoding="utf-8") == "output"


@pytest.mark.parametrize("case", ["symlink to a folder", "fifo", "symlink to a file"])
def test_replace_dir_refuses_what_is_not_a_real_folder(place: Path, case: str) -> None:
    final = SPECIAL[case][0](place)
    with staging_dir(final) as staging:
        (staging / "new.txt").write_text("new", encoding="utf-8")
        with pytest.raises(UsageError, match="not a directory") as error:
            replace_dir(staging, final)
    one_line(error)
    assert os.path.lexists(final) and untouched(place)


def test_replace_dir_refuses_a_folder_without_a_name_of_its_own(tmp_path: Path) -> None:
    with staging_dir(tmp_path / "x") as staging, pytest.raises(UsageError, match="of its own"):
        replace_dir(staging, Path("."))


def test_replace_files_refuses_special_names_before_the_work(place: Path) -> None:
    fifo(place / "manifest.json")
    with (
        pytest.raises(UsageError, match=r"manifest\.json: it is a named pipe"),
        replace_files(place, ["a.gz", "manifest.json"]),
    ):
        pytest.fail("the block ran")
    assert stat.S_ISFIFO(os.lstat(place / "manifest.json").st_mode) and untouched(place)


def test_ensure_writable_checks_the_output_files_up_front(place: Path) -> None:
    with pytest.raises(UsageError, match="a symbolic link"):
        ensure_writable(place, files=[place / "plain.json", link(place / "m.pt", DEV_NULL)])
    assert dev_null_untouched()


def generator_file(tmp_path: Path) -> Path:
    params = params_from_dict(
        {"model": {"arch": "mlp", "latent_dim": 8, "g_hidden": [16], "d_hidden": [16]}}
    )
    path = tmp_path / "generator.pt"
    save_generator(build_models(params.model)[0], params.model, path=path)
    return path


@pytest.mark.parametrize("case", ["fifo", "symlink to a file", "symlink to /dev/null", "/dev/null"])
def test_cli_sample_refuses_a_special_out_with_exit_2(place: Path, case: str) -> None:
    out = DEV_NULL if case == "/dev/null" else SPECIAL[case][0](place)
    args = ["sample", "--model", str(generator_file(place)), "--out", str(out), "-n", "4"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}: it is ")
    assert untouched(place)


def test_cli_download_refuses_a_special_owned_file_before_fetching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ganops import dataset_download

    def no_fetch(*args: object) -> None:
        pytest.fail("fetched before checking the destination")

    monkeypatch.setattr(dataset_download, "_fetch_one", no_fetch)
    out = tmp_path / "raw"
    out.mkdir()
    link(out / "manifest.json", DEV_NULL)
    (tmp_path / "params.yaml").write_text(f"data:\n  source: {tmp_path}\n", encoding="utf-8")
    args = ["download", "--out", str(out), "-p", str(tmp_path / "params.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot write {out / 'manifest.json'}: it is a sym")
    assert len(result.stderr.strip().splitlines()) == 1
    assert (out / "manifest.json").is_symlink() and os.listdir(out) == ["manifest.json"]
    assert dev_null_untouched()
