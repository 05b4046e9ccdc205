"""The class-metrics classifier, and the per-epoch quality hook built on it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from ganops import devices
from ganops.classifier import load_classifier, save_classifier
from ganops.config import ClassifierConfig, params_from_dict
from ganops.errors import CheckpointError
from ganops.files import save_torch
from ganops.generator_file import save_generator
from ganops.idx_files import load_split
from ganops.metrics.classes import expected_class_share
from ganops.metrics.epoch import QUALITY_NAMES, EpochEvaluator
from ganops.models import build_models
from ganops.models.classifier import Classifier, accuracy, classify, train_classifier
from ganops.stages import classifier as classifier_stage

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """1024 training and 256 test images of real MNIST with their labels."""
    train_images, train_labels = load_split(mnist_dir, "mnist", split="train", limit=1024)
    test_images, test_labels = load_split(mnist_dir, "mnist", split="test", limit=256)
    return train_images, train_labels, test_images, test_labels


@pytest.fixture(scope="module")
def trained(digits: tuple[Tensor, ...]) -> Classifier:
    torch.manual_seed(0)
    images, labels = digits[0], digits[1]
    return train_classifier(
        Classifier(), images, labels=labels, epochs=3, batch_size=64, lr=1e-3, seed=0
    )


@pytest.mark.slow
def test_a_few_epochs_on_1024_digits_classify_held_out_digits(
    trained: Classifier, digits: tuple[Tensor, ...]
) -> None:
    untrained = accuracy(Classifier(), digits[2], labels=digits[3])
    learned = accuracy(trained, digits[2], labels=digits[3])
    assert learned > 0.85 and learned > untrained + 0.5  # chance is 0.1


def test_classify_gives_probabilities_and_128_d_features(
    trained: Classifier, digits: tuple[Tensor, ...]
) -> None:
    outputs = classify(trained, digits[2][:100].split(30), device=CPU)
    assert outputs.probabilities.shape == (100, 10) and outputs.features.shape == (100, 128)
    torch.testing.assert_close(outputs.probabilities.sum(1), torch.ones(100))
    assert not trained.training  # classify leaves the mode as it found it (eval after training)


def test_saved_classifier_loads_back_identical(
    trained: Classifier, digits: tuple[Tensor, ...], tmp_path: Path
) -> None:
    path = tmp_path / "classifier.pt"
    save_classifier(trained, path, dataset_sha256="abc", accuracy=0.9)
    loaded, meta = load_classifier(path)
    assert meta["test_accuracy"] == 0.9 and meta["dataset_sha256"] == "abc"
    before, after = (classify(m, [digits[2][:20]], device=CPU).features for m in (trained, loaded))
    torch.testing.assert_close(after, before)


def test_a_generator_file_is_not_a_classifier(tmp_path: Path) -> None:
    params = params_from_dict({"model": {"arch": "mlp", "latent_dim": 4, "g_hidden": [8]}})
    save_generator(build_models(params.model)[0], params.model, path=tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match=r"format 'ganops-generator/1', expected 'ganops-c"):
        load_classifier(tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="run `ganops classifier`"):
        load_classifier(tmp_path / "missing.pt")


def test_a_classifier_from_an_older_ganops_is_refused_in_one_line(tmp_path: Path) -> None:
    """Version 1 was conv-BN-ReLU-pool; its weights would load into today's net (same shapes)
    and give other features, so the format names the version and the old one is refused."""
    path = tmp_path / "classifier.pt"
    save_torch({"format": "ganops-classifier/1", "state_dict": Classifier().state_dict()}, path)
    with pytest.raises(CheckpointError) as caught:
        load_classifier(path)
    message = str(caught.value)
    assert "\n" not in message and "'ganops-classifier/1'" in message
    assert "run `ganops classifier` (or `dvc repro classifier`) to write a current one" in message


def test_bf16_training_learns_and_leaves_float32_weights(digits: tuple[Tensor, ...]) -> None:
    torch.manual_seed(0)
    model = train_classifier(
        Classifier(),
        digits[0],
        labels=digits[1],
        epochs=2,
        batch_size=64,
        lr=1e-3,
        seed=0,
        bf16=True,
    )
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert accuracy(model, digits[2], labels=digits[3]) > 0.8  # chance is 0.1


def test_epoch_evaluator_scores_only_its_epochs_and_never_moves_the_training_rng(
    trained: Classifier, digits: tuple[Tensor, ...]
) -> None:
    params = params_from_dict({"model": {"arch": "mlp", "latent_dim": 8, "g_hidden": [32]}})
    generator = build_models(params.model)[0]
    evaluator = _asking(
        trained, digits, real=digits[2][:64], asked=digits[3][:64], conditional=False, every=2
    )
    assert evaluator(generator, 1) == {} and evaluator(generator, 3) == {}
    rng = torch.get_rng_state()
    scored = evaluator(generator, 2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert tuple(scored) == QUALITY_NAMES and scored["fcd"] > 0
    assert 0 <= scored["classes_covered"] <= 10 and scored["class_kl"] >= 0
    assert evaluator(generator, 4) == scored  # the same noise every time: epochs compare


def _prepared(tmp_path: Path, digits: tuple[Tensor, ...]) -> Path:
    """A prepared-data folder, as `ganops prepare` writes it, of the 1024 + 256 digits."""
    data_dir = tmp_path / "prepared"
    for split, images, labels in (("train", *digits[:2]), ("test", *digits[2:])):
        save_torch({"images": images, "labels": labels}, data_dir / f"{split}.pt")
    meta = {"dataset": "mnist", "dataset_sha256": "0" * 64, "train_count": 1024, "test_count": 256}
    (data_dir / "meta.json").write_text(json.dumps(meta))
    return data_dir


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_stage_trains_in_the_precision_params_name(
    precision: str,
    digits: tuple[Tensor, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    autocasts: list[torch.dtype | None] = []
    forward = Classifier.forward

    def spy(self: Classifier, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training:  # the test accuracy's passes stay fp32 whatever the precision
            on = torch.is_autocast_enabled("cpu")
            autocasts.append(torch.get_autocast_dtype("cpu") if on else None)
        return forward(self, x)

    monkeypatch.setattr(Classifier, "forward", spy)
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)  # as on an older CPU
    cfg = ClassifierConfig(epochs=1, batch_size=256, precision=precision)
    test_accuracy = classifier_stage.run(cfg, _prepared(tmp_path, digits), out_dir=tmp_path / "out")
    assert set(autocasts) == {torch.bfloat16 if precision == "bf16" else None}
    assert len(autocasts) == 4  # 1024 images in batches of 256
    assert 0.0 <= test_accuracy <= 1.0 and (tmp_path / "out" / "classifier.pt").is_file()
    warned = (
        "classifier.precision is 'bf16' but this cpu has no native bf16" in capsys.readouterr().err
    )
    assert warned == (precision == "bf16")


class _Asked(nn.Module):
    """A perfect conditional generator: for the asked labels, real test digits of them."""

    def __init__(self, images: Tensor) -> None:
        super().__init__()
        self.images = images

    def forward(self, z: Tensor, labels: Tensor | None) -> Tensor:
        return self.images[: len(z)]  # digits[2][:64], asked for with their own labels


def _asking(
    trained: Classifier,
    digits: tuple[Tensor, ...],
    *,
    real: Tensor,
    asked: Tensor,
    conditional: bool,
    every: int = 1,
) -> EpochEvaluator:
    """A per-epoch scorer of every ``every``-th epoch whose real images are ``real``,
    labelled ``asked``."""
    return EpochEvaluator(
        trained,
        real_images=real,
        real_labels=asked,
        train_labels=digits[1],
        every=every,
        latent_dim=8,
        conditional=conditional,
        seed=5,
        device=CPU,
    )


def test_a_conditional_generator_s_classes_are_judged_against_the_classes_asked_for(
    trained: Classifier, digits: tuple[Tensor, ...]
) -> None:
    """The evaluator asks a conditional G for the real images' classes; their mix (here
    64 test digits') is what its samples should have, not the training set's."""
    real, asked = digits[2][:64], digits[3][:64]
    scores = {}
    for conditional in (True, False):
        evaluator = _asking(trained, digits, real=real, asked=asked, conditional=conditional)
        scores[conditional] = evaluator(_Asked(real), 1)["class_kl"]
    # Against the classes asked for, only the classifier's few mistakes count.
    assert scores[True] < 0.02 and scores[True] < scores[False] / 3


def test_a_few_asked_labels_missing_classes_still_give_a_finite_class_kl(
    trained: Classifier, digits: tuple[Tensor, ...]
) -> None:
    """The first 16 MNIST test labels have no 3 and no 8: samples of those classes must not
    make the reference share zero (an infinite KL, and evaluate refusing to write)."""
    real, asked = digits[2][:16], digits[3][:16]
    assert not {3, 8} & set(asked.tolist())
    evaluator = _asking(trained, digits, real=real, asked=asked, conditional=True)
    threes_and_eights = digits[0][(digits[1] == 3) | (digits[1] == 8)][:16]
    kl = evaluator(_Asked(threes_and_eights), 1)["class_kl"]
    assert math.isfinite(kl) and kl > 1.0  # all 16 samples of unasked classes: far off


def _evaluate_with_scores_captured(
    tmp_path: Path,
    digits: tuple[Tensor, ...],
    monkeypatch: pytest.MonkeyPatch,
    *,
    conditional: bool,
    classifier_dataset: str,
) -> dict[str, Any]:
    """``evaluate.run`` on the prepared digits with a tiny generator and a classifier trained
    on ``classifier_dataset``, with the Inception scoring replaced by a spy."""
    from ganops.stages import evaluate
    from ganops.stages.scoring import Scores

    data_dir = _prepared(tmp_path, digits)
    model = {"arch": "mlp", "latent_dim": 8, "g_hidden": [16], "conditional": conditional}
    params = params_from_dict(
        {"model": model, "evaluate": {"num_samples": 16}, "tracking": {"enabled": False}}
    )
    save_generator(
        build_models(params.model)[0], params.model, path=tmp_path / "models" / "generator.pt"
    )
    save_classifier(
        Classifier(), tmp_path / "classifier.pt", dataset_sha256=classifier_dataset, accuracy=1.0
    )
    seen: dict[str, Any] = {}

    def spy(batches: Any, real: Tensor, **kwargs: Any) -> Scores:
        seen.update(kwargs, images=torch.cat(list(batches)))
        return Scores({"fid_16": 1.0})

    monkeypatch.setattr(evaluate, "score_images", spy)
    # No Inception pass runs, so no weights need converting for the record in metrics.json.
    monkeypatch.setattr(evaluate, "_inception_weights", lambda cfg, cache: (cfg, "test"))
    evaluate.run(
        params,
        data_dir,
        models_dir=tmp_path / "models",
        train_dir=tmp_path / "train",
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        classifier_path=tmp_path / "classifier.pt",
    )
    return seen


@pytest.mark.parametrize("conditional", [False, True])
def test_evaluate_compares_classes_with_the_mix_the_generator_was_asked_for(
    conditional: bool,
    digits: tuple[Tensor, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _evaluate_with_scores_captured(
        tmp_path, digits, monkeypatch, conditional=conditional, classifier_dataset="0" * 64
    )
    asked = digits[3][:16] if conditional else None  # the first 16 test labels
    expected = expected_class_share(digits[1], 10, asked=asked)
    assert torch.equal(seen["class_share"], expected) and len(seen["images"]) == 16


def test_evaluate_refuses_a_classifier_of_another_dataset_before_scoring(
    digits: tuple[Tensor, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CheckpointError, match="trained on another dataset"):
        _evaluate_with_scores_captured(
            tmp_path, digits, monkeypatch, conditional=False, classifier_dataset="f" * 64
        )
