"""Stage ``classifier``: train the class-metrics classifier on the prepared training set."""

from __future__ import annotations

from pathlib import Path

import torch

from ganops import outputs
from ganops.classifier import save_classifier
from ganops.config import ClassifierConfig
from ganops.data import load_prepared, read_meta
from ganops.files import ensure_writable, write_json
from ganops.models.classifier import Classifier, accuracy, train_classifier
from ganops.progress import Progress
from ganops.stages.common import resolve_device, resolved_precision


def run(cfg: ClassifierConfig, data_dir: Path, *, out_dir: Path) -> float:
    """Write ``out_dir/classifier.pt`` and ``out_dir/metrics.json`` (test accuracy)."""
    device = resolve_device(cfg.device, "classifier.device")
    precision, _ = resolved_precision("classifier.precision", cfg.precision, device=device)
    ensure_writable(
        out_dir, files=[out_dir / outputs.CLASSIFIER, out_dir / outputs.CLASSIFIER_METRICS]
    )
    meta = read_meta(data_dir)
    images, labels = load_prepared(data_dir / outputs.TRAIN_IMAGES)
    test_images, test_labels = load_prepared(data_dir / outputs.TEST_IMAGES)
    torch.manual_seed(cfg.seed)  # weight init
    model = Classifier().to(device)
    steps = -(-len(images) // cfg.batch_size) * cfg.epochs
    with Progress(total=steps, desc=f"classifier ({device.type})", unit="step") as bar:
        train_classifier(
            model,
            images.to(device),
            labels=labels.to(device),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=cfg.seed,
            bf16=precision == "bf16",
            on_batch=lambda loss: bar.update(1, f"loss={loss:.3f}"),
        )
    test_accuracy = accuracy(model, test_images, labels=test_labels)
    save_classifier(
        model,
        out_dir / outputs.CLASSIFIER,
        dataset_sha256=str(meta["dataset_sha256"]),
        accuracy=test_accuracy,
    )
    write_json(
        {"test_accuracy": test_accuracy, "test_images": len(test_images)},
        out_dir / outputs.CLASSIFIER_METRICS,
    )
    print(f"classifier test accuracy {test_accuracy:.2%} on {len(test_images)} test images")
    return test_accuracy
