"""The names of the files each stage writes, in one place.

Directories come from the command line (``dvc.yaml`` passes them, so it stays their single
source of truth); the names inside them are these. Stages and tests read them from here, and
``tests/unit/test_outputs.py`` checks ``dvc.yaml`` names the same files.
"""

from __future__ import annotations

from pathlib import Path

# download: RAW/ (beside the four IDX files)
MANIFEST = "manifest.json"

# prepare: DATA/
TRAIN_IMAGES = "train.pt"
TEST_IMAGES = "test.pt"
PREPARED = {"train": TRAIN_IMAGES, "test": TEST_IMAGES}  # by split (meta.json keys use it)
META = "meta.json"

# classifier: OUT/
CLASSIFIER = "classifier.pt"
CLASSIFIER_METRICS = "metrics.json"

# train: MODELS/
GENERATOR = "generator.pt"
BEST_GENERATOR = "generator_best.pt"  # lowest in-training fcd (train.keep: best)
CHECKPOINT = "checkpoint.pt"
SNAPSHOTS = "snapshots"  # train.snapshots: every checkpoint's generator, and snapshots.csv
SNAPSHOTS_CSV = "snapshots.csv"

# train: OUT/
LOSSES = "losses.csv"
QUALITY = "quality.csv"
SAMPLES = "samples.png"
CURVES = "curves.png"  # losses.csv and quality.csv drawn (opens offline)
RUN_REFERENCE = "mlflow_run.json"  # the MLflow run evaluate logs to (ganops.mlflow_run_file)

# evaluate: OUT/
METRICS = "metrics.json"
CLASSES = "classes.csv"
FLOOR = "floor.json"


def train_files(models_dir: Path, out_dir: Path) -> list[Path]:
    """Every file the train stage writes, to check before it trains."""
    models = [models_dir / name for name in (GENERATOR, BEST_GENERATOR, CHECKPOINT)]
    files = (LOSSES, QUALITY, SAMPLES, CURVES, RUN_REFERENCE)
    return models + [out_dir / name for name in files]
