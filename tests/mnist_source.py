"""Where the tests' real MNIST comes from: one place, one order.

1. ``$GANOPS_MNIST_DIR``: a directory holding the four original IDX .gz files;
2. the copy beside the project, ``../shared/datasets/mnist`` (as laid out on this project's CI
   machines);
3. a per-user cache (``$XDG_CACHE_HOME/ganops/mnist``, else ``~/.cache/ganops/mnist``), filled
   once by ganops' own verified download when the machine is online.

With none of them the data-dependent tests are skipped with the reason, except under
``CI=true``, where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "GANOPS_MNIST_DIR"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
HOW_TO = (
    f"set {ENV_VAR} to a directory holding the four MNIST IDX .gz files ({', '.join(FILES)}), "
    "or run the tests once online so ganops downloads them into its cache"
)


@dataclass(frozen=True)
class Resolved:
    directory: Path | None  # None: no data anywhere
    origin: str  # what was used, or why nothing could be


def has_mnist(directory: Path) -> bool:
    return all((directory / name).is_file() for name in FILES)


def user_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    return Path(base) / "ganops" / "mnist"


def download_into(directory: Path) -> None:
    """ganops' own download from the public mirrors, verified by content checksum."""
    from ganops.dataset_download import download

    download("mirrors", "mnist", out_dir=directory)


def resolve(
    root: Path,
    env: Mapping[str, str],
    fetch: Callable[[Path], None] = download_into,
) -> Resolved:
    """The MNIST directory the tests should read, trying each place in the documented order."""
    configured = env.get(ENV_VAR)
    if configured:
        directory = Path(configured).expanduser()
        if has_mnist(directory):
            return Resolved(directory, f"${ENV_VAR}")
        # Named but wrong is a mistake to report, not a reason to look elsewhere.
        return Resolved(None, f"${ENV_VAR} is {configured!r} but lacks the four IDX files")
    for beside in (
        root.parent / "datasets" / "mnist",
        root.parent / "shared" / "datasets" / "mnist",
    ):
        if has_mnist(beside):
            return Resolved(beside, f"the copy beside the project ({beside})")
    cache = user_cache_dir(env)
    if has_mnist(cache):
        return Resolved(cache, f"the user cache ({cache})")
    try:
        fetch(cache)
    except Exception as error:  # offline, a mirror down, a full disk: all mean "no data"
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return Resolved(
            None, f"no MNIST copy found and the download failed ({type(error).__name__}: {first})"
        )
    return Resolved(cache, f"downloaded into the user cache ({cache})")


def in_ci(env: Mapping[str, str]) -> bool:
    return env.get("CI", "").lower() in ("1", "true", "yes")


def environ() -> Mapping[str, str]:
    return os.environ
