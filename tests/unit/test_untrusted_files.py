"""Files a user hands to ganops are loaded so that they cannot execute code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from ganops.data import load_prepared
from ganops.errors import GanopsError
from ganops.generator_file import load_generator
from ganops.inception_weights import resolve_inception_weights


class RunsCodeOnLoad:
    """Unpickling this object calls ``Path.touch(marker)``: the classic pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "crafted.pt"
    path.write_bytes(pickle.dumps({"state_dict": RunsCodeOnLoad(marker)}))
    return path, marker


def test_crafted_generator_file_is_refused_without_running_it(
    crafted: tuple[Path, Path],
) -> None:
    path, marker = crafted
    with pytest.raises(GanopsError, match="not a loadable ganops model file"):
        load_generator(path)
    assert not marker.exists()


def test_crafted_prepared_split_is_refused(crafted: tuple[Path, Path]) -> None:
    path, marker = crafted
    with pytest.raises(GanopsError, match="not a prepared ganops split"):
        load_prepared(path)
    assert not marker.exists()


def test_crafted_inception_weights_are_refused_before_torch_fidelity_sees_them(
    crafted: tuple[Path, Path], tmp_path: Path
) -> None:
    path, marker = crafted
    with pytest.raises(GanopsError, match="could run code"):
        resolve_inception_weights(str(path), tmp_path / "cache")
    assert not marker.exists()
