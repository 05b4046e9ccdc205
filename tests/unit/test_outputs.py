"""``ganops.outputs`` names the files ``dvc.yaml`` tracks: a renamed output fails here."""

from __future__ import annotations

from pathlib import Path

import yaml

from ganops import outputs

ROOT = Path(__file__).resolve().parents[2]
NAMES = {value for key, value in vars(outputs).items() if key.isupper() and isinstance(value, str)}


def _paths(entries: list[object]) -> list[str]:
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def test_every_file_dvc_yaml_tracks_has_its_name_in_outputs() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    files = [
        path
        for spec in stages.values()
        for kind in ("outs", "metrics", "plots", "deps")
        for path in _paths(spec.get(kind, []))
        if Path(path).suffix in {".pt", ".json", ".csv", ".png"}
    ]
    assert files, "dvc.yaml lists no output files"
    unnamed = sorted({path for path in files if Path(path).name not in NAMES})
    assert not unnamed, f"dvc.yaml files without a name in ganops.outputs: {unnamed}"


def test_names_are_distinct_within_a_directory() -> None:
    by_stage = [
        (outputs.TRAIN_IMAGES, outputs.TEST_IMAGES, outputs.META),
        (outputs.GENERATOR, outputs.BEST_GENERATOR, outputs.CHECKPOINT),
        (outputs.LOSSES, outputs.QUALITY, outputs.SAMPLES, outputs.RUN_REFERENCE),
        (outputs.METRICS, outputs.CLASSES, outputs.FLOOR),
    ]
    for names in by_stage:
        assert len(set(names)) == len(names)
