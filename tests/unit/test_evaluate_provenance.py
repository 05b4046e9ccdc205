"""What ``evaluate`` records beside the metrics (the scored generator, its run, the dataset,
the Inception weights, the precision), and that it says when nothing went to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from ganops import mlflow_run_file
from ganops.config import EvaluateConfig, Params, params_from_dict
from ganops.files import file_sha256, save_torch
from ganops.generator_file import save_generator
from ganops.models import build_models
from ganops.stages import evaluate
from ganops.stages.scoring import Scores


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, tracked: bool) -> Params:
    """Prepared noise images, a tiny generator, and Inception scoring replaced by a stub."""
    for split in ("train", "test"):
        images = torch.rand(16, 1, 28, 28) * 2 - 1
        save_torch({"images": images, "labels": torch.arange(16) % 10}, tmp_path / f"{split}.pt")
    (tmp_path / "meta.json").write_text(
        json.dumps({"dataset": "fashion-mnist", "dataset_sha256": "0" * 64})
    )
    model = {"arch": "mlp", "latent_dim": 4, "g_hidden": [8]}
    evaluation = {"num_samples": 8, "precision": "bf16"}
    params = params_from_dict(
        {"model": model, "evaluate": evaluation, "tracking": {"enabled": tracked}}
    )
    save_generator(
        build_models(params.model)[0], params.model, path=tmp_path / "models/generator.pt"
    )

    def scores(batches: Any, real: Tensor, **kwargs: Any) -> Scores:
        assert sum(len(batch) for batch in batches) == 8
        return Scores({"fid_8": 12.0})

    monkeypatch.setattr(evaluate, "score_images", scores)
    monkeypatch.setattr(evaluate, "_inception_weights", lambda cfg, cache: (cfg, "0123abcd4567"))
    return params


def _evaluate(tmp_path: Path, params: Params) -> dict[str, Any]:
    evaluate.run(
        params,
        tmp_path,
        models_dir=tmp_path / "models",
        train_dir=tmp_path / "train",
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
    )
    document: dict[str, Any] = json.loads((tmp_path / "out/metrics.json").read_text())
    return document


def test_metrics_json_records_the_scored_generator_and_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ganops.tracking import runs

    params = _setup(tmp_path, monkeypatch, tracked=True)
    generator = tmp_path / "models/generator.pt"
    mlflow_run_file.write(
        tmp_path / "train", {"run_id": "run-9", "uri": "sqlite:///x.db"}, generators=[generator]
    )
    logged: list[dict[str, float]] = []
    monkeypatch.setattr(runs, "log_to_run", lambda ref, values, tags: logged.append(values))
    document = _evaluate(tmp_path, params)
    assert document["fid_8"] == 12.0 and document["num_samples"] == 8  # numbers stay top-level
    assert document["scored"] == {
        "generator_sha256": file_sha256(generator),
        "run_id": "run-9",
        "dataset": "fashion-mnist",
        "inception_weights": "0123abcd4567",
        "precision": "bf16",
    }
    assert logged == [{"fid_8": 12.0, "num_samples": 8.0}]  # the provenance is no metric


def test_tracked_evaluate_without_a_run_reference_says_nothing_was_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _setup(tmp_path, monkeypatch, tracked=True)
    document = _evaluate(tmp_path, params)
    assert document["scored"]["run_id"] is None
    warnings = [line for line in capsys.readouterr().err.splitlines() if "MLflow" in line]
    assert len(warnings) == 1 and "the metrics were not logged to MLflow" in warnings[0]
    assert "train with tracking.enabled: true" in warnings[0]


def test_untracked_evaluate_records_no_run_and_warns_of_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _setup(tmp_path, monkeypatch, tracked=False)
    assert _evaluate(tmp_path, params)["scored"]["run_id"] is None
    assert "not logged to MLflow" not in capsys.readouterr().err


def test_the_recorded_inception_weights_are_those_scored_with(tmp_path: Path) -> None:
    """Other (e.g. scaled) weights give another FID: their digest must differ in the record,
    and the scoring must use the very file the digest names."""
    from ganops.inception_weights import file_digest

    digests = []
    for scale in (1.0, 2.0):
        weights = tmp_path / f"weights_{scale}.pth"
        torch.save({"w": torch.ones(3) * scale}, weights)
        cfg, digest = evaluate._inception_weights(
            EvaluateConfig(inception_weights=str(weights)), tmp_path / "cache"
        )
        assert cfg.inception_weights == str(weights) and digest == file_digest(weights)
        digests.append(digest)
    assert digests[0] != digests[1]


@pytest.mark.parametrize(("flags", "expected"), [({"avx512_bf16"}, "bf16"), ({"avx2"}, "fp32")])
def test_auto_precision_scores_and_records_what_this_cpu_runs_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: set[str], expected: str
) -> None:
    from dataclasses import replace

    from ganops import devices

    params = _setup(tmp_path, monkeypatch, tracked=False)
    params = replace(params, evaluate=replace(params.evaluate, precision="auto"))
    monkeypatch.setattr(devices, "_cpu_flags", lambda: flags)
    used: list[str] = []
    scores = evaluate.score_images

    def spy(batches: Any, real: Tensor, **kwargs: Any) -> Scores:
        used.append(kwargs["cfg"].precision)
        return scores(batches, real, **kwargs)

    monkeypatch.setattr(evaluate, "score_images", spy)
    document = _evaluate(tmp_path, params)
    assert used == [expected] and document["scored"]["precision"] == expected


def test_a_generator_computing_nan_while_scored_is_named_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ganops.models.sampling import NonFiniteSamples

    params = _setup(tmp_path, monkeypatch, tracked=False)

    def drawing_nan(batches: Any, real: Tensor, **kwargs: Any) -> Scores:
        raise NonFiniteSamples("the generator computes NaN or inf values (first in net.0)")

    monkeypatch.setattr(evaluate, "score_images", drawing_nan)
    with pytest.raises(NonFiniteSamples) as caught:
        _evaluate(tmp_path, params)
    assert str(caught.value).startswith(str(tmp_path / "models/generator.pt") + ": the generator")
    assert not (tmp_path / "out/metrics.json").exists()


def test_metrics_json_lists_fid_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dvc exp show orders a file's metric columns as the file does: FID leads."""
    params = _setup(tmp_path, monkeypatch, tracked=False)

    def scores(batches: Any, real: Tensor, **kwargs: Any) -> Scores:
        return Scores({"fid_8": 12.0, "kid_8": 0.1, "class_kl": 0.2, "accuracy_like": 0.5})

    monkeypatch.setattr(evaluate, "score_images", scores)
    evaluate.run(params, tmp_path, models_dir=tmp_path / "models", train_dir=tmp_path / "train",
                 out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")  # fmt: skip
    text = (tmp_path / "out/metrics.json").read_text(encoding="utf-8")
    assert list(json.loads(text))[:3] == ["fid_8", "kid_8", "class_kl"]
