from __future__ import annotations

import gzip
import re
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from ganops import dataset_download
from ganops.data import require_images
from ganops.dataset_download import download
from ganops.datasets import DATASETS
from ganops.errors import DataError
from ganops.idx_files import load_split, normalize, read_idx
from tests.idx_files import idx_bytes

MNIST = DATASETS["mnist"]


def write_gz(path: Path, payload: bytes, level: int = 9) -> Path:
    with gzip.open(path, "wb", compresslevel=level) as stream:
        stream.write(payload)
    return path


def test_reads_real_mnist_test_images_and_labels(mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def test_bad_magic_number_is_named(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "x.gz", b"\x00\x00\x0d\x03" + bytes(12))
    with pytest.raises(DataError, match=r"x\.gz: bad IDX magic"):
        read_idx(path)


def test_header_that_disagrees_with_size_is_named(tmp_path: Path) -> None:
    payload = idx_bytes(np.zeros((3, 28, 28)))[:-10]
    with pytest.raises(DataError, match=r"bad\.gz: header says shape \(3, 28, 28\)"):
        read_idx(write_gz(tmp_path / "bad.gz", payload))


def test_truncated_gzip_is_named(tmp_path: Path, mnist_dir: Path) -> None:
    blob = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=re.escape("t10k-labels-idx1-ubyte.gz")):
        read_idx(path)


def test_normalization_is_exact_at_both_ends() -> None:
    pixels = np.array([[[0, 255], [127, 128]]], dtype=np.uint8)
    out = normalize(pixels)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    assert out[0, 0, 0, 0].item() == -1.0 and out[0, 0, 0, 1].item() == 1.0
    assert out.min() >= -1 and out.max() <= 1


def test_download_from_local_dir_verifies_all_four(mnist_dir: Path, tmp_path: Path) -> None:
    files = download(str(mnist_dir), "mnist", out_dir=tmp_path / "raw")
    assert files == MNIST.sha256
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        [*MNIST.sha256, "manifest.json"]
    )
    images, labels = load_split(tmp_path / "raw", "mnist", split="test", limit=10)
    assert images.shape == (10, 1, 28, 28) and labels.shape == (10,)


def test_original_and_recompressed_gz_both_pass(mnist_dir: Path, tmp_path: Path) -> None:
    """Verification is on decompressed content, so any gzip of the same bytes is accepted."""
    source = tmp_path / "recompressed"
    shutil.copytree(mnist_dir, source, ignore=shutil.ignore_patterns("*.md"))
    name = "t10k-labels-idx1-ubyte.gz"
    original = (source / name).read_bytes()
    write_gz(source / name, gzip.decompress(original), level=1)
    assert (source / name).read_bytes() != original
    assert download(source.as_uri(), "mnist", out_dir=tmp_path / "raw") == MNIST.sha256


def test_checksum_mismatch_names_the_file_and_keeps_previous_output(
    mnist_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    download(str(mnist_dir), "mnist", out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    source = tmp_path / "tampered"
    shutil.copytree(mnist_dir, source)
    labels = bytearray(gzip.decompress((source / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10
    write_gz(source / "train-labels-idx1-ubyte.gz", bytes(labels))
    with pytest.raises(DataError, match=re.escape("train-labels-idx1-ubyte.gz: checksum mismatch")):
        download(str(source), "mnist", out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".raw")] == []


def test_missing_file_in_source_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=re.escape("train-images-idx3-ubyte.gz: not found in data.source")
    ):
        download(str(tmp_path), "mnist", out_dir=tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_source_that_is_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=re.escape("neither 'mirrors', a URL, nor an existing directory")
    ):
        download(str(tmp_path / "nope"), "mnist", out_dir=tmp_path / "raw")


def test_offline_mirrors_say_how_to_use_a_local_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def offline(url: str, timeout: float) -> None:
        calls.append(url)
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(dataset_download.urllib.request, "urlopen", offline)
    monkeypatch.setattr(dataset_download.time, "sleep", lambda seconds: None)
    with pytest.raises(DataError) as info:
        download("mirrors", "mnist", out_dir=tmp_path / "raw")
    message = str(info.value)
    assert "Offline?" in message and "data.source" in message
    # Every mirror torchvision lists, each retried three times.
    assert len(calls) == 3 * len(MNIST.mirrors)
    assert all(url.endswith("train-images-idx3-ubyte.gz") for url in calls)
    assert not (tmp_path / "raw").exists()


def test_meta_json_missing_or_incomplete_is_one_error(tmp_path: Path) -> None:
    from ganops.data import read_meta

    with pytest.raises(DataError, match=r"meta\.json: not found; run `ganops prepare`"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{"dataset": "mnist"}', encoding="utf-8")
    with pytest.raises(DataError, match="lacks dataset_sha256"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="unreadable"):
        read_meta(tmp_path)


@pytest.mark.parametrize(
    ("text", "why"),
    [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("1" * 5000, "unreadable JSON")],
)
def test_meta_json_too_deep_or_with_a_huge_integer_is_one_error(
    tmp_path: Path, text: str, why: str
) -> None:
    from ganops.data import read_meta

    (tmp_path / "meta.json").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=why) as error:
        read_meta(tmp_path)
    message = str(error.value)
    assert "\n" not in message and message.endswith("run `ganops prepare` (or `dvc repro`) again")


def test_a_prepared_split_changed_after_prepare_is_refused(tmp_path: Path) -> None:
    """Same count, same meta.json, other images: caught by the digest prepare recorded."""
    import json

    import torch

    from ganops.data import load_prepared
    from ganops.files import file_sha256

    split = tmp_path / "test.pt"
    torch.save(
        {"images": torch.zeros(4, 1, 28, 28), "labels": torch.zeros(4, dtype=torch.long)}, split
    )
    meta = {"dataset": "mnist", "dataset_sha256": "x", "test_file_sha256": file_sha256(split)}
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert load_prepared(split)[0].shape == (4, 1, 28, 28)
    torch.save(
        {"images": torch.ones(4, 1, 28, 28), "labels": torch.zeros(4, dtype=torch.long)}, split
    )
    with pytest.raises(DataError, match="changed since `ganops prepare` wrote it"):
        load_prepared(split)


def test_require_images_names_the_key_the_file_and_the_fix() -> None:
    images, path = torch.zeros(5, 1, 28, 28), Path("data/prepared/test.pt")
    require_images(images, 5, key="evaluate.num_samples", path=path)  # exactly enough
    message = (
        "evaluate.num_samples is 6 but data/prepared/test.pt has 5 images; lower it "
        "(or raise data.test_subset)"
    )
    with pytest.raises(DataError, match=re.escape(message)):
        require_images(images, 6, key="evaluate.num_samples", path=path)
