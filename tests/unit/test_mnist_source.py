from __future__ import annotations

from pathlib import Path

import pytest

from tests import mnist_source
from tests.mnist_source import ENV_VAR, FILES, resolve


def _fill(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in FILES:
        (directory / name).write_bytes(b"x")
    return directory


def _no_download(directory: Path) -> None:
    raise OSError("network is unreachable")


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A project root with room for a copy beside it and a user cache under a fake HOME."""
    root = tmp_path / "work" / "project"
    root.mkdir(parents=True)
    return {"root": root, "home": tmp_path / "home", "env_dir": tmp_path / "mine"}


def test_the_variable_wins_over_everything(layout: dict[str, Path]) -> None:
    mine = _fill(layout["env_dir"])
    _fill(layout["root"].parent / "shared" / "datasets" / "mnist")
    env = {ENV_VAR: str(mine), "HOME": str(layout["home"])}
    assert resolve(layout["root"], env, _no_download).directory == mine


def test_a_variable_naming_a_wrong_directory_is_reported_not_skipped_past(
    layout: dict[str, Path],
) -> None:
    _fill(layout["root"].parent / "shared" / "datasets" / "mnist")
    env = {ENV_VAR: str(layout["env_dir"]), "HOME": str(layout["home"])}
    found = resolve(layout["root"], env, _no_download)
    assert found.directory is None and ENV_VAR in found.origin


def test_then_the_copy_beside_the_project(layout: dict[str, Path]) -> None:
    beside = _fill(layout["root"].parent / "shared" / "datasets" / "mnist")
    found = resolve(layout["root"], {"HOME": str(layout["home"])}, _no_download)
    assert found.directory == beside


def test_then_the_user_cache_then_a_download_into_it(layout: dict[str, Path]) -> None:
    env = {"HOME": str(layout["home"])}
    cache = layout["home"] / ".cache" / "ganops" / "mnist"
    fetched: list[Path] = []
    found = resolve(layout["root"], env, lambda d: fetched.append(_fill(d)))
    assert found.directory == cache and fetched == [cache] and "downloaded" in found.origin
    # Filled once: the next resolution reads the cache without downloading.
    assert resolve(layout["root"], env, _no_download).directory == cache


def test_none_anywhere_says_why(layout: dict[str, Path]) -> None:
    found = resolve(layout["root"], {"HOME": str(layout["home"])}, _no_download)
    assert found.directory is None and "network is unreachable" in found.origin


def test_ci_flag() -> None:
    assert mnist_source.in_ci({"CI": "true"}) and not mnist_source.in_ci({})
