"""The classifier's file: format, saving and verified loading. The network itself (the
judge behind the class metrics, ``ganops.metrics.classes``) and its training loop are in
``ganops.models.classifier``; its own stage trains it on the prepared training set."""

from __future__ import annotations

from pathlib import Path

from ganops.data import read_meta
from ganops.errors import CheckpointError
from ganops.files import save_torch
from ganops.models import NUM_CLASSES
from ganops.models.classifier import Classifier
from ganops.untrusted_state import (
    bad_values,
    load_checked,
    on_meta_device,
    read_model_file,
    state_misfit,
)

CLASSIFIER_FORMAT = "ganops-classifier/2"  # 2: pooling before BatchNorm (see Classifier)


def save_classifier(model: Classifier, path: Path, *, dataset_sha256: str, accuracy: float) -> None:
    save_torch(
        {
            "format": CLASSIFIER_FORMAT,
            "num_classes": model.num_classes,
            "dataset_sha256": dataset_sha256,
            "test_accuracy": accuracy,
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_classifier(
    path: Path, *, data_dir: Path | None = None
) -> tuple[Classifier, dict[str, object]]:
    """The classifier saved by ``save_classifier`` in eval mode on the CPU, and its metadata.
    ``data_dir`` (the prepared data it will judge): a classifier trained on another dataset
    than its meta.json names is refused, as its class metrics would be plausible nonsense."""
    rebuild = "run `ganops classifier` (or `dvc repro classifier`)"
    try:
        blob = read_model_file(path, CLASSIFIER_FORMAT, missing_hint=f"{rebuild} first")
    except CheckpointError as error:
        if CLASSIFIER_FORMAT in str(error):  # another file, or one from an older ganops
            raise CheckpointError(f"{error}; {rebuild} to write a current one") from None
        raise
    trained_on = str(blob.get("dataset_sha256"))
    dataset_sha256 = str(read_meta(data_dir)["dataset_sha256"]) if data_dir else None
    if dataset_sha256 is not None and trained_on != dataset_sha256:
        raise CheckpointError(
            f"{path} was trained on another dataset (SHA-256 {trained_on[:12]}...) than the "
            f"prepared data ({dataset_sha256[:12]}...), so its class metrics would not mean "
            f"anything here; {rebuild} on this data"
        )
    num_classes = blob.get("num_classes", NUM_CLASSES)
    if type(num_classes) is not int or num_classes != NUM_CLASSES:  # read back: any type
        raise CheckpointError(
            f"{path}: num_classes is {str(num_classes)[:40]}, expected {NUM_CLASSES}; {rebuild} again"
        )
    # On the meta device until the file's tensors are known to fit (no memory, no draws).
    skeleton = on_meta_device(Classifier)
    state = blob.get("state_dict")
    problem = state_misfit(state, skeleton)
    if problem is None and isinstance(state, dict):
        problem = bad_values(state)
    if problem is not None or not isinstance(state, dict):
        raise CheckpointError(f"{path}: classifier weights do not fit ({problem}); {rebuild} again")
    model = load_checked(skeleton, state)
    meta = {k: v for k, v in blob.items() if k not in ("state_dict", "format")}
    return model.eval(), meta
