"""Property-based tests (hypothesis) of the inputs beyond params.yaml and IDX bytes
(tests/unit/test_properties.py): metrics files and revisions given to ``gate``, and the
options of ``sample``. Every outcome is success or one ``error:`` line with exit 1/2, never a
traceback, and ``--baseline`` is never read as a git option."""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ganops.cli import app
from ganops.config import params_from_dict
from ganops.generator_file import save_generator
from ganops.models import build_models

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30)
json_values = st.recursive(
    st.none() | st.booleans() | floats | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
metric_names = st.sampled_from(["fid_10k", "kid_10k", "precision_500", "classes_covered", "x"])
metrics_docs = st.dictionaries(metric_names | st.text(max_size=10), json_values, max_size=5)
option_like = st.sampled_from(
    ["--output=/tmp/ganops-pwned", "-p", "--", "HEAD~999", "..", "main\n", "\x00", "ü", "a b"]
)


def _one_line_or_success(result: Any, allowed: tuple[int, ...]) -> None:
    assert result.exit_code in allowed, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr


@pytest.mark.slow
@SETTINGS
@given(doc=metrics_docs | json_values, raw=st.binary(max_size=64), use_raw=st.booleans())
def test_gate_on_any_metrics_file_passes_fails_or_says_why(
    doc: Any, raw: bytes, use_raw: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "metrics.json")
        if use_raw:
            path.write_bytes(raw)
        else:
            path.write_text(json.dumps(doc, allow_nan=True), encoding="utf-8")
        params = Path(tmp, "params.yaml")
        params.write_text("gate:\n  max_fid: 50\n  min_precision: 0.1\n", encoding="utf-8")
        result = CliRunner().invoke(app, ["gate", "--metrics", str(path), "-p", str(params)])
        _one_line_or_success(result, (0, 1, 2))
        if isinstance(doc, dict) and not use_raw and result.exit_code == 0:
            fid = doc.get("fid_10k")
            assert not isinstance(fid, float) or math.isfinite(fid)  # NaN never passes


@pytest.mark.slow
@SETTINGS
@given(revision=option_like | st.text(max_size=20))
def test_any_baseline_revision_is_a_revision_or_one_error(revision: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        metrics = repo / "metrics.json"
        metrics.write_text('{"fid_10k": 10.0}', encoding="utf-8")
        (repo / "params.yaml").write_text("gate:\n  max_fid: 50\n", encoding="utf-8")
        git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "m"], check=True)
        # --baseline=VALUE: the value reaches ganops even when it looks like an option.
        args = ["gate", "--metrics", str(metrics), f"--baseline={revision}"]
        here = Path.cwd()
        os.chdir(repo)  # gate reads the baseline from the repository it runs in
        try:
            result = CliRunner().invoke(app, [*args, "-p", "params.yaml"])
        finally:
            os.chdir(here)
        _one_line_or_success(result, (0, 1, 2))
        assert not list(Path("/tmp").glob("ganops-pwned*"))  # git show --output=FILE
        assert sorted(p.name for p in repo.iterdir()) == [".git", "metrics.json", "params.yaml"]


def _tiny_generator(folder: Path) -> Path:
    params = params_from_dict({"model": {"arch": "mlp", "latent_dim": 4, "g_hidden": [8]}})
    path = folder / "generator.pt"
    save_generator(build_models(params.model)[0], params.model, path=path)
    return path


@pytest.mark.slow
@SETTINGS
@given(
    num=st.integers(-5, 10**12),
    seed=st.integers(-(2**70), 2**70),
    digit=st.none() | st.integers(-3, 12),
    interpolate=st.none() | st.integers(-(2**65), 2**65),
)
def test_sample_with_any_numbers_draws_or_says_why(
    num: int, seed: int, digit: int | None, interpolate: int | None
) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = _tiny_generator(Path(tmp))
        args = ["sample", "--model", str(model), "--out", str(Path(tmp, "grid.png"))]
        args += ["--num", str(num), "--seed", str(seed), "--device", "cpu"]
        args += [] if digit is None else ["--digit", str(digit)]
        args += [] if interpolate is None else ["--interpolate", str(interpolate)]
        result = CliRunner().invoke(app, args)
        _one_line_or_success(result, (0, 2))
        assert (result.exit_code == 0) == Path(tmp, "grid.png").is_file()
