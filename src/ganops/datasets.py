"""The datasets ganops knows (MNIST, Fashion-MNIST): their four IDX files, where they are
published and the SHA-256 of each file's decompressed content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """The four IDX files of a dataset, keyed by the SHA-256 of their decompressed content.

    Verifying the decompressed bytes (not the .gz) accepts both the mirrors' originals and a
    recompressed copy of the same data (see shared/datasets/mnist/README.md).
    """

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]  # file name -> sha256 of the decompressed IDX
    counts: tuple[int, int] = (60_000, 10_000)  # 28x28 images (and labels) in train, test

    def file(self, split: str, kind: str) -> str:
        prefix = "train" if split == "train" else "t10k"
        return f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"

    def idx_size(self, name: str) -> int:
        """Bytes of file ``name`` decompressed: its IDX header, then one byte per pixel/label."""
        count = self.counts[0 if name.startswith("train") else 1]
        return 16 + count * 28 * 28 if "-images-" in name else 8 + count

    def max_download_bytes(self, name: str) -> int:
        """The most bytes any gzip of file ``name`` takes, with a margin: even uncompressed
        (level 0) deflate adds only 5 bytes per 64 KiB, gzip a header and trailer. Bounded by
        the content, not the mirrors' .gz, since any recompressed copy is accepted."""
        size = self.idx_size(name)
        return size + size // 256 + (64 << 10)


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        # The mirrors torchvision's MNIST lists, in its order.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # Decompressed content of Debian's dataset-fashion-mnist (same 60k/10k IDX files).
        sha256={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
}


def dataset_manifest(dataset: str) -> dict[str, object]:
    """What ``download`` writes to ``manifest.json`` beside the verified files."""
    files = dict(DATASETS[dataset].sha256)
    return {"dataset": dataset, "sha256": dataset_checksum(files), "files": files}


def dataset_checksum(file_sha256: dict[str, str]) -> str:
    """One SHA-256 naming the whole dataset (for MLflow tags and cache keys)."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_sha256.items()))
    return hashlib.sha256(lines.encode()).hexdigest()
