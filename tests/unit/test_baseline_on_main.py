"""The baseline committed on main (dvc.lock and the metrics files beside it): the files are
the ones DVC recorded, the run is the README's quick command on main's params.yaml, and the
gate reads it as ``--baseline`` (docs/pipeline.md#the-baseline-on-main says how it is made
again)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ganops.config import load_params, to_flat_dict
from ganops.metrics_file import parse_metrics

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "dvc.lock"
# What docs/pipeline.md says the committed run differs in from params.yaml besides the
# README quick command: the local copy of MNIST (same bytes; the download stage checks them).
LOCAL_SOURCE = "data.source"


def _lock() -> dict[str, Any]:
    return dict(yaml.safe_load(LOCK.read_text(encoding="utf-8")))


def _quick_overrides() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"dvc exp run -n quick (.+?)\n```", readme, re.S)
    assert command is not None, "README.md has no `dvc exp run -n quick` command"
    return dict(re.findall(r"-S (\S+?)=(\S+)", command.group(1)))


@pytest.mark.parametrize(
    "path",
    [
        "outputs/evaluate/metrics.json",
        "outputs/evaluate/classes.csv",
        "outputs/classifier/metrics.json",
    ],
)
def test_the_committed_metrics_are_the_files_dvc_recorded(path: str) -> None:
    recorded = {
        out["path"]: out["md5"]
        for stage in _lock()["stages"].values()
        for out in stage.get("outs", [])
    }
    assert recorded[path] == hashlib.md5((ROOT / path).read_bytes()).hexdigest(), (
        f"{path} differs from what dvc.lock recorded: make the baseline again as "
        "docs/pipeline.md says, never edit it by hand"
    )


def test_the_baseline_is_the_readme_quick_command_on_main_s_params() -> None:
    defaults = to_flat_dict(load_params(ROOT / "params.yaml"))
    overrides = _quick_overrides()
    for stage in _lock()["stages"].values():
        for values in stage.get("params", {}).values():
            for key, value in _flatten(values).items():
                if key == LOCAL_SOURCE:
                    continue
                expected = overrides.get(key, defaults[key])
                assert str(value) == str(expected), (
                    f"dvc.lock's {key} is {value!r}, main's quick run would have {expected!r}: "
                    "params.yaml or the README's quick command changed, so make the baseline "
                    "again (docs/pipeline.md#the-baseline-on-main)"
                )


def test_the_gate_reads_the_baseline_as_a_500_sample_mnist_scoring() -> None:
    metrics = parse_metrics((ROOT / "outputs/evaluate/metrics.json").read_text(), "main")
    assert metrics.metrics["num_samples"] == 500
    assert metrics.scored_value("dataset") == "mnist"
    assert metrics.metrics["fid_500"] > 0


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
