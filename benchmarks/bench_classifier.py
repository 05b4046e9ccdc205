"""Wall time and test accuracy of the class-metrics classifier's training (``ganops classifier``).

Trains ``ganops.models.classifier.Classifier`` with ``train_classifier`` on the first ``--images``
MNIST training images (default: all 60,000) exactly as the stage does, then scores it on the
10,000 test images. Prints one line per run: seconds, images/s, test accuracy, load average.
Data loading and the test pass are outside the timed part.

To compare two versions of the code under the same load, run it alternately against each
version's ``src`` (A, B, A, B), e.g. with an exported copy of an older commit:

    git archive <rev> src | tar -x -C /tmp/before
    for i in 1 2; do
        PYTHONPATH=/tmp/before/src python benchmarks/bench_classifier.py --batch-size 64
        PYTHONPATH=src python benchmarks/bench_classifier.py --batch-size 64
    done

The defaults are ``ClassifierConfig``'s; pass params.yaml's ``classifier:`` values to time
what ``dvc repro classifier`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import ganops
from ganops.config import ClassifierConfig
from ganops.idx_files import load_split
from ganops.models.classifier import Classifier, accuracy, train_classifier

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(
    os.environ.get("GANOPS_MNIST_DIR", ROOT.parent / "shared" / "datasets" / "mnist")
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = ClassifierConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dir with MNIST IDX .gz")
    parser.add_argument("--images", type=int, default=0, help="training images (0 = all)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (train_classifier(bf16=True))"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)"
    )
    parser.add_argument("--json", type=Path, help="append the result as one JSON line here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels = load_split(args.data, "mnist", split="train", limit=args.images)
    test_images, test_labels = load_split(args.data, "mnist", split="test")
    torch.manual_seed(args.seed)  # weight init, as the stage does
    model = Classifier()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    train_classifier(
        model,
        images,
        labels=labels,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        **({"bf16": True} if args.bf16 else {}),  # older versions have no such option
    )
    seconds = time.perf_counter() - start
    test_accuracy = accuracy(model, test_images, labels=test_labels)
    result = {
        "ganops": str(Path(ganops.__file__).parent),
        "images": len(images),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "bf16": args.bf16,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(images) * args.epochs / seconds, 1),
        "test_accuracy": test_accuracy,
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result), flush=True)
    if args.json:
        with args.json.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
