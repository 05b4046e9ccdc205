"""Model selection by quality: the generator of the lowest in-training fcd is kept beside the
last one, and train.keep picks which is scored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from ganops.config import params_from_dict
from ganops.errors import DataError
from ganops.generator_file import keeping_best, load_generator, scored_generator
from ganops.models import build_models
from ganops.outputs import BEST_GENERATOR, GENERATOR, TEST_IMAGES
from ganops.stages.train_files import epoch_evaluator

PARAMS = params_from_dict({"model": {"arch": "dcgan", "dcgan_channels": 4, "latent_dim": 8}})


def _scores(values: list[float]) -> Callable[[nn.Module, int], dict[str, float]]:
    """An in-training evaluator that reports ``values`` as fcd, one per call."""
    remaining = iter(values)
    return lambda generator, epoch: {"fcd": next(remaining)}


def test_the_lowest_fcd_epochs_generator_is_kept(tmp_path: Path) -> None:
    generator, _ = build_models(PARAMS.model)
    evaluate = keeping_best(_scores([5.0, 3.0, 4.0]), PARAMS.model, models_dir=tmp_path)
    weights = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            next(generator.parameters()).fill_(float(epoch))
        weights.append(next(generator.parameters()).clone())
        assert evaluate(generator, epoch) is not None
        best, _ = load_generator(tmp_path / BEST_GENERATOR)
        kept = next(best.parameters())
        assert torch.equal(kept, weights[0] if epoch == 1 else weights[1])  # epoch 2's fcd 3


def test_a_resumed_run_remembers_its_best_score(tmp_path: Path) -> None:
    generator, _ = build_models(PARAMS.model)
    evaluate = keeping_best(_scores([3.0]), PARAMS.model, models_dir=tmp_path, earlier=[2.0])
    evaluate(generator, 2)
    assert not (tmp_path / BEST_GENERATOR).exists()  # 3.0 is worse than the earlier 2.0


def test_train_keep_names_the_file(tmp_path: Path) -> None:
    assert scored_generator(tmp_path, "best") == tmp_path / GENERATOR  # none kept
    (tmp_path / BEST_GENERATOR).write_bytes(b"x")
    assert scored_generator(tmp_path, "best") == tmp_path / BEST_GENERATOR
    assert scored_generator(tmp_path, "last") == tmp_path / GENERATOR


def test_loading_model_files_draws_no_random_numbers(tmp_path: Path) -> None:
    """Per-epoch scoring loads the classifier after the GAN's weights are drawn and before
    training: if loading drew numbers (a module's throwaway init), every dropout mask of the
    run would move, and a run with scoring would train another GAN than one without."""
    from ganops.classifier import load_classifier, save_classifier
    from ganops.generator_file import save_generator
    from ganops.models.classifier import Classifier

    save_classifier(Classifier(), tmp_path / "classifier.pt", dataset_sha256="x", accuracy=1.0)
    save_generator(build_models(PARAMS.model)[0], PARAMS.model, path=tmp_path / GENERATOR)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    load_classifier(tmp_path / "classifier.pt")
    load_generator(tmp_path / GENERATOR)
    assert torch.equal(torch.rand(4), expected)


def test_a_run_with_a_classifier_loaded_trains_the_same_gan(tmp_path: Path) -> None:
    """The train stage's order: the GAN, then the scorer's classifier, then training (here
    with D's dropout on, so a moved global generator would change the weights)."""
    from ganops.classifier import load_classifier, save_classifier
    from ganops.models.classifier import Classifier
    from ganops.training.run import TrainData, new_gan, train

    params = params_from_dict(
        {
            "model": {"arch": "mlp", "g_hidden": [16], "d_hidden": [16], "latent_dim": 8},
            "train": {"epochs": 1, "batch_size": 8},
        }
    )
    images = torch.rand(32, 1, 28, 28) * 2 - 1
    data = TrainData(images, torch.zeros(32, dtype=torch.long), "mnist", "x")
    save_classifier(Classifier(), tmp_path / "classifier.pt", dataset_sha256="x", accuracy=1.0)
    weights = []
    for load in (False, True):
        gan, _ = new_gan(params, torch.device("cpu"))
        if load:
            load_classifier(tmp_path / "classifier.pt")
        train(params, data, gan=gan, device=torch.device("cpu"), progress=False)
        weights.append(gan.generator.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_too_few_test_images_for_score_samples_fail_before_training(tmp_path: Path) -> None:
    from ganops.classifier import save_classifier
    from ganops.models.classifier import Classifier

    save_classifier(Classifier(), tmp_path / "classifier.pt", dataset_sha256="x", accuracy=1.0)
    images, labels = torch.zeros(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)
    torch.save({"images": images, "labels": labels}, tmp_path / TEST_IMAGES)
    (tmp_path / "meta.json").write_text('{"dataset": "mnist", "dataset_sha256": "x"}')
    params = params_from_dict({"train": {"score_samples": 6}})
    with pytest.raises(DataError, match=r"train\.score_samples is 6 but .*test\.pt has 5 images"):
        epoch_evaluator(
            params,
            classifier=tmp_path / "classifier.pt",
            data_dir=tmp_path,
            train_labels=labels,
            device=torch.device("cpu"),
        )


def test_a_classifier_of_another_dataset_is_refused_before_training(tmp_path: Path) -> None:
    """An MNIST classifier kept (`ganops classifier` not rerun) after a switch to
    Fashion-MNIST would score the new samples by digit classes: plausible, meaningless."""
    from ganops.classifier import load_classifier, save_classifier
    from ganops.errors import CheckpointError
    from ganops.models.classifier import Classifier

    path = tmp_path / "classifier.pt"
    save_classifier(Classifier(), path, dataset_sha256="a" * 64, accuracy=1.0)
    images, labels = torch.zeros(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)
    torch.save({"images": images, "labels": labels}, tmp_path / TEST_IMAGES)
    meta = '{"dataset": "fashion-mnist", "dataset_sha256": "%s"}'
    (tmp_path / "meta.json").write_text(meta % ("b" * 64))
    params = params_from_dict({"train": {"score_samples": 4, "score_every": 1}})
    with pytest.raises(CheckpointError, match=r"another dataset \(SHA-256 aaaaaaaaaaaa\.\.\.\)"):
        epoch_evaluator(
            params,
            classifier=path,
            data_dir=tmp_path,
            train_labels=labels,
            device=torch.device("cpu"),
        )
    (tmp_path / "meta.json").write_text(meta % ("a" * 64))  # its own dataset: accepted
    assert epoch_evaluator(
        params, classifier=path, data_dir=tmp_path, train_labels=labels, device=torch.device("cpu")
    )
    assert load_classifier(path)[1]["dataset_sha256"] == "a" * 64  # no data given: no check
