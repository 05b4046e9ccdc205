"""The baseline committed on main (dvc.lock and the metrics files beside it): the files are
the ones DVC recorded, the run is the README's quick command on main's params.yaml, and the
gate reads it as ``--baseline`` (docs/pipeline.md#the-baseline-on-main says how it is made
again). Every file is read as committed at HEAD, not from the workspace: a `dvc exp run` of
one's own rewrites the workspace's dvc.lock and metrics, and must not fail this test."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ganops.config import params_from_dict, to_flat_dict
from ganops.metrics_file import parse_metrics

ROOT = Path(__file__).resolve().parents[2]
# What docs/pipeline.md says the committed run differs in from params.yaml besides the
# README quick command: the local copy of MNIST (same bytes; the download stage checks them).
LOCAL_SOURCE = "data.source"


def _committed(path: str) -> bytes:
    """``path`` as committed at HEAD (skipped outside a git checkout, e.g. an sdist)."""
    try:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"HEAD:{path}"],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except OSError:
        pytest.skip("git is not installed")
    if shown.returncode != 0:
        pytest.skip(f"no committed {path} here ({shown.stderr.decode().strip()[:120]})")
    return shown.stdout


def _lock() -> dict[str, Any]:
    return dict(yaml.safe_load(_committed("dvc.lock")))


def _quick_overrides() -> dict[str, str]:
    readme = _committed("README.md").decode("utf-8")
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
    assert recorded[path] == hashlib.md5(_committed(path)).hexdigest(), (
        f"{path} differs from what dvc.lock recorded: make the baseline again as "
        "docs/pipeline.md says, never edit it by hand"
    )


def test_the_baseline_is_the_readme_quick_command_on_main_s_params() -> None:
    defaults = to_flat_dict(params_from_dict(yaml.safe_load(_committed("params.yaml"))))
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
    metrics = parse_metrics(_committed("outputs/evaluate/metrics.json").decode(), "main")
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
