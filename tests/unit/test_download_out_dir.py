"""``download`` replaces only the five files it owns in OUT (issue 31 item 6).

OUT may hold other datasets, ``data.source`` itself or other stages' folders (``--out data``);
those stay. A failed download leaves the previous five as they were, and a reader that sees
``manifest.json`` never sees it beside a mixed set. A tiny stand-in dataset keeps it fast.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganops import datasets
from ganops.cli import app
from ganops.dataset_download import download
from ganops.datasets import DatasetSpec
from ganops.errors import DataError, OutputError, UsageError
from tests.idx_files import tiny_dataset

MANIFEST = "manifest.json"


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the four .gz files of a tiny dataset registered as 'mnist' (so the
    CLI's params accept it), plus a README as real copies have."""
    contents = tiny_dataset()
    directory = tmp_path / "source"
    directory.mkdir()
    for name, content in contents.items():
        (directory / name).write_bytes(gzip.compress(content, compresslevel=9, mtime=0))
    (directory / "README.md").write_text("where these came from\n", encoding="utf-8")
    spec = DatasetSpec(
        name="mnist",
        mirrors=("http://127.0.0.1:9/",),
        sha256={name: hashlib.sha256(c).hexdigest() for name, c in contents.items()},
        counts=(3, 2),
    )
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    return directory


def owned() -> list[str]:
    return [*datasets.DATASETS["mnist"].sha256, MANIFEST]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative name -> bytes)."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def recompressed(source: Path, into: Path) -> Path:
    """The same content gzipped at level 0: other bytes, same checksums."""
    into.mkdir()
    for name in datasets.DATASETS["mnist"].sha256:
        content = gzip.decompress((source / name).read_bytes())
        (into / name).write_bytes(gzip.compress(content, compresslevel=0, mtime=0))
    return into


def test_other_entries_of_out_survive(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    (out / "fashion-mnist").mkdir(parents=True)
    (out / "fashion-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"another dataset")
    (out / "prepared").mkdir()
    (out / "prepared" / "train.pt").write_bytes(b"prepare's output")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "train-labels-idx1-ubyte.gz").write_bytes(b"an old copy: replaced")
    others = {k: v for k, v in snapshot(out).items() if "/" in k or k == "notes.txt"}
    download(str(source), "mnist", out_dir=out)
    after = snapshot(out)
    assert {k: after[k] for k in others} == others
    assert set(after) == set(others) | set(owned())
    for name in datasets.DATASETS["mnist"].sha256:
        assert after[name] == (source / name).read_bytes()
    assert json.loads(after[MANIFEST])["dataset"] == "mnist"


def test_out_may_be_the_source_folder_itself(source: Path) -> None:
    before = snapshot(source)
    download(str(source), "mnist", out_dir=source)
    after = snapshot(source)
    assert {k: after[k] for k in before} == before  # the README and the four .gz, unchanged
    assert set(after) == set(before) | {MANIFEST}


def test_out_may_contain_the_source_folder(source: Path, tmp_path: Path) -> None:
    """``--out`` the folder above data.source (e.g. ``--out data`` with data/mnist)."""
    before = snapshot(source)
    download(str(source), "mnist", out_dir=tmp_path)
    assert snapshot(source) == before
    assert all((tmp_path / name).is_file() for name in owned())


def test_cli_out_dot_writes_into_the_current_folder(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(
        f"data:\n  dataset: mnist\n  source: {source}\n", encoding="utf-8"
    )
    (work / "keep.txt").write_text("keep", encoding="utf-8")
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, ["download", "--out", ".", "-p", "params.yaml"])
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(work)) == sorted([*owned(), "keep.txt", "params.yaml"])
    assert (work / "keep.txt").read_text(encoding="utf-8") == "keep"


def test_a_failed_download_leaves_the_previous_files_as_they_were(
    source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    download(str(source), "mnist", out_dir=out)
    (out / "other.txt").write_text("x", encoding="utf-8")
    before = snapshot(out)
    tampered = recompressed(source, tmp_path / "tampered")
    (tampered / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00" * 10))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch"):
        download(str(tampered), "mnist", out_dir=out)
    assert snapshot(out) == before  # no staging directory left inside either
    assert sorted(os.listdir(out)) == sorted(before)


def test_a_failure_while_moving_in_puts_the_old_files_back(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "raw"
    download(str(recompressed(source, tmp_path / "level0")), "mnist", out_dir=out)
    before = snapshot(out)
    real_replace = os.replace
    calls = []

    def failing_third_move_in(src: str | Path, dst: str | Path) -> None:
        if Path(dst).parent == out:
            calls.append(dst)
            if len(calls) == 3:
                raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_third_move_in)
    with pytest.raises(OutputError, match="No space left on device"):
        download(str(source), "mnist", out_dir=out)
    monkeypatch.undo()
    assert snapshot(out) == before and sorted(os.listdir(out)) == sorted(before)


def test_the_manifest_is_never_beside_a_mixed_set(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every rename, a present manifest.json sits beside all old or all new files."""
    out = tmp_path / "raw"
    old_source = recompressed(source, tmp_path / "level0")
    download(str(old_source), "mnist", out_dir=out)
    gz = list(datasets.DATASETS["mnist"].sha256)
    old = {name: (old_source / name).read_bytes() for name in gz}
    new = {name: (source / name).read_bytes() for name in gz}
    real_replace = os.replace
    seen = []

    def observed(src: str | Path, dst: str | Path) -> None:
        real_replace(src, dst)
        if (out / MANIFEST).exists():
            present = {name: (out / name).read_bytes() for name in gz}
            seen.append(present in (old, new))

    monkeypatch.setattr(os, "replace", observed)
    download(str(source), "mnist", out_dir=out)
    monkeypatch.undo()
    assert seen and all(seen)
    assert {name: (out / name).read_bytes() for name in gz} == new


def test_out_that_is_a_file_is_one_clear_error(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    out.write_text("not a folder", encoding="utf-8")
    with pytest.raises(UsageError, match=r"raw: it is a file, not a directory"):
        download(str(source), "mnist", out_dir=out)
    assert out.read_text(encoding="utf-8") == "not a folder"


def test_out_may_be_a_symlink_to_a_folder(source: Path, tmp_path: Path) -> None:
    """data/raw linked to a bigger disk: the files go into the folder it points to."""
    disk = tmp_path / "big-disk"
    disk.mkdir()
    (disk / "other.txt").write_text("x", encoding="utf-8")
    link = tmp_path / "raw"
    link.symlink_to(disk)
    download(str(source), "mnist", out_dir=link)
    assert link.is_symlink() and sorted(os.listdir(disk)) == sorted([*owned(), "other.txt"])
