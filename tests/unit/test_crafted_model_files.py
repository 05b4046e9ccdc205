"""Every file read back is untrusted: crafted generator, checkpoint, classifier and Inception
files and crafted JSON are each one clear error naming the file; nothing unpickles a file with
code execution allowed, not even one swapped after it was checked; a generator that computes
NaN or inf writes no picture."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ganops import inception_weights as inception
from ganops.checkpoints import load_resumable, save_checkpoint
from ganops.classifier import load_classifier, save_classifier
from ganops.cli import app
from ganops.config import Params, params_from_dict
from ganops.errors import CheckpointError, DataError, GanopsError
from ganops.generator_file import load_generator, save_generator
from ganops.inception_weights import build_inception
from ganops.mlflow_run_file import read as read_run_reference
from ganops.models import build_models
from ganops.models.classifier import Classifier
from ganops.models.sampling import NonFiniteSamples, generated_batches
from ganops.stages import prepare, sample
from ganops.training.loop import LoopState
from ganops.training.run import gan_state
from ganops.training.step import build_gan

CPU = torch.device("cpu")
TINY = {"arch": "mlp", "latent_dim": 8, "g_hidden": [16], "d_hidden": [16]}


class RunsCodeOnLoad:
    """Unpickling this object calls ``Path.touch(marker)``: the classic pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def _exploit(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"Conv2d_1a_3x3.conv.weight": RunsCodeOnLoad(marker)}))


# --- Inception weights: read once, verified, never unpickled from a path (item 5) ---------


def test_weights_swapped_after_resolving_never_run_code(tmp_path: Path) -> None:
    """resolve_inception_weights checks the file; it is replaced before Inception is built."""
    weights, marker = tmp_path / "mine.pth", tmp_path / "pwned"
    torch.save({"conv.weight": torch.zeros(2, 2)}, weights)
    resolved = inception.resolve_inception_weights(str(weights), tmp_path / "cache")
    assert resolved == weights
    _exploit(weights, marker)  # the race: after the check, before the load
    with pytest.raises(CheckpointError, match="does not load as plain tensors"):
        build_inception(resolved, CPU)
    assert not marker.exists()


def test_weights_swapped_after_their_bytes_were_verified_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file changes right after its bytes passed: torch-fidelity gets those bytes (and
    here says they do not fit its network), never the swapped file."""
    weights, marker = tmp_path / "mine.pth", tmp_path / "pwned"
    torch.save({"conv.weight": torch.zeros(2, 2)}, weights)
    verify = inception._plain_state

    def verify_then_swap(data: bytes, path: Path) -> dict[str, torch.Tensor]:
        state = verify(data, path)
        _exploit(path, marker)
        return state

    monkeypatch.setattr(inception, "_plain_state", verify_then_swap)
    with pytest.raises(
        CheckpointError, match=r"cannot use Inception weights .*Error\(s\) in loading state_dict"
    ):
        build_inception(weights, CPU)
    assert not marker.exists()


def test_the_torch_hub_cache_is_verified_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the wheel, torch-fidelity's download is cached by torch hub, which would
    unpickle it with code execution allowed: a pickle planted there is refused."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    cached.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    _exploit(cached, marker)
    with pytest.raises(CheckpointError, match=r"delete .*6726825d\.pth to download it again"):
        build_inception(None, CPU)
    assert not marker.exists()
    torch.save({"fc.bias": torch.zeros(3)}, cached)
    assert set(inception.downloaded_inception_state()) == {"fc.bias"}


def test_a_failed_download_says_how_to_work_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(GanopsError, match=r"could not download .*Network is unreachable"):
        build_inception(None, CPU)


def test_torch_fidelity_is_handed_an_in_memory_file_never_a_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed: list[object] = []

    class Recording(torch.nn.Module):
        def __init__(self, *args: object, feature_extractor_weights_path: object, **kw: object):
            super().__init__()
            handed.append(feature_extractor_weights_path)

    monkeypatch.setattr("torchmetrics.image.fid.NoTrainInceptionV3", Recording)
    monkeypatch.setattr(
        "torch_fidelity.feature_extractor_inceptionv3.FeatureExtractorInceptionV3", Recording
    )
    inception.fidelity_inception(b"data", antialias=False)  # what build_inception builds
    inception._check_fits_torch_fidelity(b"data")  # what the conversion checks
    assert len(handed) == 2 and all(isinstance(h, io.BytesIO) for h in handed)


# --- Generators that compute NaN or inf (item 4) ------------------------------------------


def _generator_file(
    path: Path, edit: Callable[[dict[str, torch.Tensor]], None], **model: Any
) -> Path:
    params = params_from_dict({"model": {**TINY, **model}})
    generator, _ = build_models(params.model)
    state = generator.state_dict()
    with torch.no_grad():
        edit(state)
    generator.load_state_dict(state)
    save_generator(generator, params.model, path=path)
    return path


def test_a_negative_batch_norm_variance_is_refused_on_load(tmp_path: Path) -> None:
    def negative(state: dict[str, torch.Tensor]) -> None:
        state["net.1.running_var"].fill_(-1.0)

    path = _generator_file(tmp_path / "g.pt", negative, g_batchnorm=True)
    with pytest.raises(CheckpointError, match=r"net\.1\.running_var holds negative variances"):
        load_generator(path)


def _overflowing(state: dict[str, torch.Tensor]) -> None:
    """Finite weights near float32's limit: the first layer's outputs overflow to inf."""
    next(iter(state.values())).fill_(3e38)


def test_sample_refuses_a_generator_that_overflows_and_writes_nothing(tmp_path: Path) -> None:
    path = _generator_file(tmp_path / "g.pt", _overflowing)
    load_generator(path)  # every weight is finite: only the samples show it
    with pytest.raises(CheckpointError) as caught:
        sample.run(
            path,
            tmp_path / "grid.png",
            num=4,
            seed=0,
            digit=None,
            interpolate_to=None,
            images_dir=tmp_path / "each",
            device_name="cpu",
        )
    message = str(caught.value)
    assert message.startswith(f"{path}: the generator computes NaN or inf values (first in net.0)")
    assert "nothing was written" in message and "\n" not in message
    assert not (tmp_path / "grid.png").exists() and not (tmp_path / "each").exists()


def test_generated_batches_for_scoring_refuse_it_too(tmp_path: Path) -> None:
    generator, cfg = load_generator(_generator_file(tmp_path / "g.pt", _overflowing))
    batches = generated_batches(
        generator, cfg.latent_dim, total=4, batch_size=2, device=CPU, seed=0
    )
    with pytest.raises(NonFiniteSamples):
        next(batches)
    assert isinstance(NonFiniteSamples("x"), CheckpointError)  # one line, exit 2


# --- Crafted files read back: one error line naming the file (item 12) --------------------


def _generator_blob(**model: Any) -> dict[str, Any]:
    params = params_from_dict({"model": {**TINY, **model}})
    generator, _ = build_models(params.model)
    return {
        "format": "ganops-generator/1",
        "model": dataclasses.asdict(params.model),
        "state_dict": generator.state_dict(),
    }


def _edited(edit: Callable[[dict[str, Any]], None], **model: Any) -> dict[str, Any]:
    blob = _generator_blob(**model)
    edit(blob)
    return blob


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda blob: blob.__setitem__(key, value)


def _set_model(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda blob: blob["model"].__setitem__(key, value)


def _state(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda blob: edit(blob["state_dict"])


CRAFTED_GENERATORS = {
    "no model config": (_edited(lambda b: b.pop("model")), "stored model config is missing"),
    "model config a list": (_edited(_set("model", [1, 2])), "stored model config is missing"),
    "unknown config key": (_edited(_set_model("depth", 3)), "unknown key for model.depth"),
    "latent_dim 1e10": (_edited(_set_model("latent_dim", 10**10)), "model.latent_dim"),
    "latent_dim a string": (_edited(_set_model("latent_dim", "8")), "model.latent_dim"),
    "another latent size": (
        _edited(_set_model("latent_dim", 12)),
        "net.0.weight is torch.float32 (16, 8), expected torch.float32 (16, 12)",
    ),
    "another arch": (
        _edited(_set_model("arch", "dcgan")),
        "its weights are a 'mlp' generator but its stored config says model.arch='dcgan'",
    ),
    "no weights": (_edited(lambda b: b.pop("state_dict")), "its weights are a NoneType"),
    "weights a list": (_edited(_set("state_dict", [1])), "its weights are a list"),
    "a missing key": (
        _edited(_state(lambda s: s.pop("net.0.bias"))),
        "1 weight tensors are missing (first: net.0.bias)",
    ),
    "an extra key": (
        _edited(_state(lambda s: s.__setitem__("extra", torch.zeros(1)))),
        "1 weight tensors are unexpected (first: extra)",
    ),
    "a mis-shaped key": (
        _edited(_state(lambda s: s.__setitem__("net.0.bias", torch.zeros(3)))),
        "net.0.bias is torch.float32 (3,)",
    ),
    "a non-tensor weight": (
        _edited(_state(lambda s: s.__setitem__("net.0.bias", 1.5))),
        "its weights hold a float",
    ),
    "integer weights": (
        _edited(_state(lambda s: s.__setitem__("net.0.bias", torch.zeros(16, dtype=torch.int64)))),
        "net.0.bias is torch.int64 (16,)",
    ),
    "huge widths, tiny weights": (
        _edited(_set_model("g_hidden", [8192] * 3), d_hidden=[8192] * 3),
        "4 weight tensors are missing (first: net.4.bias)",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED_GENERATORS))
def test_a_crafted_generator_file_is_one_error_naming_it(case: str, tmp_path: Path) -> None:
    blob, says = CRAFTED_GENERATORS[case]
    path = tmp_path / "generator.pt"
    torch.save(blob, path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(CheckpointError) as caught:
        load_generator(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(caught.value)
    assert message.startswith(str(path)) and says in message and "\n" not in message
    assert grown_mib < 300  # the config's sizes allocated nothing (3 x 8192 wide: > 1 GB)


def _checkpoint(params: Params) -> dict[str, Any]:
    generator, discriminator = build_models(params.model)
    gan = build_gan(generator, discriminator, cfg=params.train, device=CPU)
    return {**gan_state(gan), "loop": LoopState(step=3).state_dict(), "complete": False}


CHECKPOINT_PARAMS = params_from_dict({"model": TINY, "train": {"ema_decay": 0.999}})
_LOOP = LoopState(step=3).state_dict()
CRAFTED_CHECKPOINTS: dict[str, tuple[dict[str, Any], str]] = {
    "loop a list": ({"loop": [1]}, "not a ganops training checkpoint"),
    "shape a string": ({"shape": "x"}, "not a ganops training checkpoint"),
    "shape.model a list": ({"shape": {"model": [1]}}, "model (the checkpoint's is a list)"),
    "generator mis-shaped": (
        {"generator": {"net.0.weight": torch.zeros(1)}},
        "generator: 3 weight tensors are missing",
    ),
    "discriminator a tensor": ({"discriminator": torch.zeros(2)}, "discriminator: its weights"),
    "optimizer missing": ({"opt_g": None}, "opt_g: not an optimizer state"),
    "optimizer of other params": (
        {"opt_d": {"state": {}, "param_groups": [{"params": [0]}]}},
        "opt_d: not the state of 4 parameters",
    ),
    "ema of another net": ({"ema": {"n_averaged": torch.tensor(1)}}, "ema: "),
    "rng state junk": ({"torch_rng": torch.zeros(3)}, "torch_rng is not"),
    "loop step a string": ({"loop": {**_LOOP, "step": "7"}}, "loop state's step is a str"),
    "loop step huge": ({"loop": {**_LOOP, "step": 10**30}}, "loop state's step is 1000"),
    "batch order out of range": (
        {"loop": {**_LOOP, "order": torch.tensor([0, 5])}},
        "batch order is not a permutation",
    ),
    "scores not numbers": (
        {"loop": {**_LOOP, "quality": [{"fcd": "low"}]}},
        "loop state's quality is a list",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED_CHECKPOINTS))
def test_a_crafted_checkpoint_is_one_error_naming_it(case: str, tmp_path: Path) -> None:
    edits, says = CRAFTED_CHECKPOINTS[case]
    path = tmp_path / "checkpoint.pt"
    params = CHECKPOINT_PARAMS
    save_checkpoint(_checkpoint(params), params, data_id="d:1", path=path)
    blob = torch.load(path, weights_only=True)
    torch.save({**blob, **edits}, path)  # what the file holds, "shape" included
    with pytest.raises(CheckpointError) as caught:
        load_resumable(path, params, data_id="d:1")
    message = str(caught.value)
    assert message.startswith(str(path)) and says in message and "\n" not in message


def test_a_real_checkpoint_after_training_steps_still_resumes(tmp_path: Path) -> None:
    """The checks pass what training writes: optimizer moments, the EMA, a batch order."""
    params = CHECKPOINT_PARAMS
    generator, discriminator = build_models(params.model)
    gan = build_gan(generator, discriminator, cfg=params.train, device=CPU)
    for optimizer, net in ((gan.opt_g, gan.generator), (gan.opt_d, gan.discriminator)):
        for parameter in net.parameters():
            parameter.grad = torch.ones_like(parameter)
        optimizer.step()
    assert gan.ema is not None
    gan.ema.update_parameters(gan.generator)
    loop = LoopState(step=1, order=torch.randperm(10), quality=[{"step": 1, "fcd": 3.0}])
    state = {**gan_state(gan), "loop": loop.state_dict(), "complete": False}
    save_checkpoint(state, params, data_id="d:1", path=tmp_path / "c.pt")
    assert load_resumable(tmp_path / "c.pt", params, data_id="d:1") is not None


CRAFTED_CLASSIFIERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "num_classes 1e10": (_set("num_classes", 10**10), "num_classes is 10000000000, expected 10"),
    "num_classes a string": (_set("num_classes", "10"), "num_classes is 10, expected 10"),
    "num_classes a tensor": (_set("num_classes", torch.arange(3)), "num_classes is tensor"),
    "weights missing": (lambda b: b.pop("state_dict"), "classifier weights do not fit"),
    "weights mis-shaped": (
        lambda b: b["state_dict"].__setitem__("head.1.bias", torch.zeros(4)),
        "head.1.bias is torch.float32 (4,)",
    ),
    "NaN weights": (
        lambda b: b["state_dict"]["head.1.bias"].fill_(float("nan")),
        "head.1.bias holds NaN or inf values",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED_CLASSIFIERS))
def test_a_crafted_classifier_is_one_error_naming_it(case: str, tmp_path: Path) -> None:
    edit, says = CRAFTED_CLASSIFIERS[case]
    path = tmp_path / "classifier.pt"
    save_classifier(Classifier(), path, dataset_sha256="abc", accuracy=0.99)
    blob = torch.load(path, weights_only=True)
    edit(blob)
    torch.save(blob, path)
    with pytest.raises(CheckpointError) as caught:
        load_classifier(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and says in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ([torch.zeros(2)], "are not a state dict"),
        ({"a": "b"}, "are not a state dict"),
        ({"w": torch.tensor([float("inf")])}, "w holds NaN or inf values"),
    ],
)
def test_crafted_inception_weights_are_one_error_naming_them(
    content: object, says: str, tmp_path: Path
) -> None:
    path = tmp_path / "inception.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError) as caught:
        inception.resolve_inception_weights(str(path), tmp_path / "cache")
    assert str(path) in str(caught.value) and says in str(caught.value)


DEEP = "[" * 100_000 + "]" * 100_000
LONG_NUMBER = "1" * 5_000
CRAFTED_JSON = {
    "nested too deeply": (DEEP, "nested too deeply"),
    "a very long number": (f'{{"sha256": {LONG_NUMBER}}}', "unreadable JSON"),
    "not JSON": ("{", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(CRAFTED_JSON))
def test_a_crafted_run_reference_is_one_error_naming_it(case: str, tmp_path: Path) -> None:
    text, says = CRAFTED_JSON[case]
    (tmp_path / "mlflow_run.json").write_text(text, encoding="utf-8")
    (tmp_path / "generator.pt").write_bytes(b"weights")
    with pytest.raises(DataError) as caught:
        read_run_reference(tmp_path, tmp_path / "generator.pt")
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "mlflow_run.json"))
    assert says in message and "\n" not in message


def test_a_run_reference_whose_model_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    from ganops.files import file_sha256

    generator = tmp_path / "generator.pt"
    generator.write_bytes(b"weights")
    for model in (["a"], "../../etc/passwd"):
        ref = {"run_id": "r", "generators_sha256": {generator.name: file_sha256(generator)}}
        (tmp_path / "mlflow_run.json").write_text(json.dumps({**ref, "model": model}))
        with pytest.raises(DataError, match="not a file name"):
            read_run_reference(tmp_path, generator)


@pytest.mark.parametrize("case", list(CRAFTED_JSON))
def test_a_crafted_manifest_is_one_error_naming_it(case: str, tmp_path: Path) -> None:
    text, says = CRAFTED_JSON[case]
    (tmp_path / "manifest.json").write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        prepare.read_manifest(tmp_path, "mnist")
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "manifest.json"))
    assert says in message and "run `ganops download` again" in message and "\n" not in message


@pytest.mark.parametrize("case", ["huge widths, tiny weights", "a mis-shaped key", "no weights"])
def test_ganops_sample_on_a_crafted_generator_exits_2_with_one_line(
    case: str, tmp_path: Path
) -> None:
    blob, says = CRAFTED_GENERATORS[case]
    path = tmp_path / "generator.pt"
    torch.save(blob, path)
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(
        app, ["sample", "--model", str(path), "--out", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and says in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_ganops_sample_on_an_overflowing_generator_exits_2_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = _generator_file(tmp_path / "g.pt", _overflowing)
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(
        app, ["sample", "--model", str(path), "--out", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().startswith(f"error: {path}: the generator computes NaN")
    assert not out.exists()
