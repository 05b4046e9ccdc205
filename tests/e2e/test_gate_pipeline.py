"""The CI gate is not a rubber stamp: an untrained generator fails it.

`.ci/smoke-pipeline` trains a small-budget model and gates it (CI shows it passing); this
test evaluates an untrained generator with the same evaluate settings and limit and checks
that `ganops gate` fails it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from ganops.config import params_from_dict
from ganops.generator_file import save_generator
from ganops.metrics.names import metric_name
from ganops.models import build_models
from tests.conftest import ROOT, run_ganops, tiny_params, write_params

pytestmark = pytest.mark.slow

SMOKE = (ROOT / ".ci" / "smoke-pipeline").read_text(encoding="utf-8")


def smoke_setting(name: str) -> str:
    match = re.search(rf"^[^#]*{re.escape(name)}[=:-]+([\w.]+)", SMOKE, re.MULTILINE)
    assert match, f"{name} not found in .ci/smoke-pipeline"
    return match.group(1)


def ganops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_ganops(*args, cwd=cwd, timeout=900)


def test_untrained_generator_fails_the_smoke_gate(tmp_path: Path, mnist_dir: Path) -> None:
    num_samples = int(smoke_setting("evaluate.num_samples"))
    limits = {
        "max_fid": float(smoke_setting("GANOPS_SMOKE_MAX_FID")),
        "min_classes_covered": int(smoke_setting("GANOPS_SMOKE_MIN_CLASSES")),
        "max_class_kl": float(smoke_setting("GANOPS_SMOKE_MAX_CLASS_KL")),
    }
    raw = tiny_params(
        tmp_path,
        mnist_dir,
        # 2,000 training images: enough for a classifier that tells digits apart (~90%).
        data={"train_subset": 2000, "test_subset": num_samples},
        model={"arch": smoke_setting("model.arch")},
        evaluate={"num_samples": num_samples, "batch_size": 100},
        tracking={"enabled": False},
        gate=limits,
    )
    write_params(tmp_path / "params.yaml", raw)
    for stage in ("download", "prepare", "classifier"):
        assert ganops(stage, cwd=tmp_path).returncode == 0
    torch.manual_seed(0)
    params = params_from_dict(raw)
    (tmp_path / "models").mkdir()
    save_generator(
        build_models(params.model)[0], params.model, path=tmp_path / "models" / "generator.pt"
    )
    classifier = "outputs/classifier/classifier.pt"
    evaluated = ganops("evaluate", "--classifier", classifier, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    gate = ganops("gate", cwd=tmp_path)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    rows = {line.split("|")[1].strip(): line for line in gate.stdout.splitlines()[2:]}
    assert set(rows) == {metric_name("fid", num_samples), "classes_covered", "class_kl"}
    assert all("**FAIL**" in row for row in rows.values()), gate.stdout  # each limit catches it
