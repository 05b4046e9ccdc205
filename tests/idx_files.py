"""IDX bytes for tests: the format of the four MNIST files, and a tiny stand-in dataset."""

from __future__ import annotations

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` as an uncompressed IDX file of unsigned bytes (magic 0x08)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def tiny_dataset() -> dict[str, bytes]:
    """The four uncompressed IDX files of a 3-train, 2-test dataset, by their .gz names."""
    rng = np.random.default_rng(0)
    contents = {}
    for prefix, count in (("train", 3), ("t10k", 2)):
        contents[f"{prefix}-images-idx3-ubyte.gz"] = idx_bytes(
            rng.integers(0, 256, (count, 28, 28))
        )
        contents[f"{prefix}-labels-idx1-ubyte.gz"] = idx_bytes(rng.integers(0, 10, count))
    return contents
