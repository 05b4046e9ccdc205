"""``outputs/train/mlflow_run.json``: which MLflow run a trained generator belongs to.

The reference carries the SHA-256 of the generator file it was written for, and every reader
checks it against ``models/generator.pt``: a train stage cut short after saving a new
generator (or a generator copied in by hand) can then never be scored into, or promoted as,
another run. ``train`` removes the old reference before it starts and writes the new one right
after the generator, before any upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganops import outputs
from ganops.errors import DataError
from ganops.files import file_sha256, read_json, write_json

FILE_NAME = outputs.RUN_REFERENCE


def clear(out_dir: Path) -> None:
    """Remove the previous run's reference: until the new one is written there is none."""
    (out_dir / FILE_NAME).unlink(missing_ok=True)


def write(
    out_dir: Path, run_ref: dict[str, str], *, generators: list[Path], model: Path | None = None
) -> None:
    """Record ``run_ref`` (empty when untracked) for the run's generator files, and which of
    them the run logged as its model (``model``: what ``gate --promote`` would register)."""
    write_json(
        {
            "run_id": run_ref.get("run_id"),
            "uri": run_ref.get("uri"),
            "generators_sha256": {path.name: file_sha256(path) for path in generators},
            "model": model.name if model is not None else None,
        },
        out_dir / FILE_NAME,
    )


def read(train_dir: Path, generator: Path) -> dict[str, Any] | None:
    """The run reference of ``generator``: None when there is none or the run was untracked
    (a generator from elsewhere is scored, just not logged anywhere).

    An unreadable reference, or one written for other generator bytes, is a ``DataError``
    that says how to get a consistent pair back.
    """
    path = train_dir / FILE_NAME
    fix = "run `ganops train` (or `dvc repro`) again so the two match"
    try:
        ref = read_json(path, "run reference")
    except FileNotFoundError:
        return None
    except DataError as error:
        raise DataError(f"{error}; {fix}") from None
    if not isinstance(ref, dict):
        raise DataError(f"{path}: not a run reference (expected a JSON object); {fix}")
    digests = ref.get("generators_sha256")
    if not isinstance(digests, dict) or digests.get(generator.name) != file_sha256(generator):
        raise DataError(
            f"{path} was written for another generator than {generator} (a train stage was "
            f"interrupted, or the file was replaced); {fix}"
        )
    if not ref.get("run_id"):
        return None
    model = ref.get("model")  # None in a reference from before it was recorded
    if model is not None and (not isinstance(model, str) or Path(model).name != model):
        raise DataError(f"{path}: its model is {str(model)[:80]!r}, not a file name; {fix}")
    if model is not None and model != generator.name:
        if not (generator.parent / model).exists():
            raise DataError(
                f"{path}: its MLflow run logged {generator.parent / model} as its model, and "
                f"that file is missing (so {generator.name} stood in for it); restore it "
                "(`dvc checkout`) or train again"
            )
        raise DataError(
            f"{path}: its MLflow run logged {model} as its model, so {generator.name}'s "
            "metrics would be attached to (and promoted as) another generator; set "
            "train.keep back to what it was at training, or train again with the new value "
            "(`dvc repro` does)"
        )
    return {"run_id": str(ref["run_id"]), "uri": str(ref.get("uri") or "")}
