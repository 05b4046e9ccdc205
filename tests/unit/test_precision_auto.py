"""``*.precision: auto``: bf16 where the hardware multiplies bf16 natively, else fp32; the
stages say which, the train stage records it, and a resume that resolves otherwise warns."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from ganops import devices
from ganops.config import ClassifierConfig, Params, TrainConfig, params_from_dict
from ganops.errors import Interrupted
from ganops.files import save_torch
from ganops.models import build_models
from ganops.models.classifier import Classifier
from ganops.stages import classifier as classifier_stage
from ganops.stages import train as train_stage
from ganops.training.loop import fit
from ganops.training.run import gan_state, trained_precision
from ganops.training.step import build_gan, forward_precision

CPU = torch.device("cpu")
NO_BF16 = {"fpu", "avx2", "avx512f", "avx512bw"}


def _flags(monkeypatch: pytest.MonkeyPatch, flags: set[str] | None) -> None:
    monkeypatch.setattr(devices, "_cpu_flags", lambda: flags)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({*NO_BF16, "avx512_bf16"}, ("bf16", "bf16 (auto: this CPU has AVX512-BF16)")),
        ({*NO_BF16, "amx_bf16"}, ("bf16", "bf16 (auto: this CPU has AMX-BF16)")),
        (
            {"amx_bf16", "avx512_bf16"},
            ("bf16", "bf16 (auto: this CPU has AMX-BF16 and AVX512-BF16)"),
        ),
        (NO_BF16, ("fp32", "fp32 (auto: no native bf16 on this CPU)")),
        (None, ("fp32", "fp32 (auto: this CPU's flags cannot be read)")),  # no bf16 on a guess
    ],
)
def test_auto_on_a_cpu_reads_its_flags(
    flags: set[str] | None, expected: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _flags(monkeypatch, flags)
    assert devices.resolve_precision("auto", CPU) == expected


@pytest.mark.parametrize(
    ("capability", "precision"), [((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")]
)
def test_auto_on_a_gpu_reads_its_compute_capability(
    capability: tuple[int, int], precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    resolved, reason = devices.resolve_precision("auto", torch.device("cuda"))
    assert resolved == precision
    assert (
        reason.startswith(f"{precision} (auto: ") and f"{capability[0]}.{capability[1]}" in reason
    )
    assert devices.native_bf16(torch.device("cuda")) == (precision == "bf16")


@pytest.mark.parametrize("flags", [{*NO_BF16, "amx_bf16"}, NO_BF16, None])
@pytest.mark.parametrize("explicit", ["fp32", "bf16"])
def test_explicit_precisions_are_kept_on_any_hardware(
    explicit: str, flags: set[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flags(monkeypatch, flags)
    assert devices.resolve_precision(explicit, CPU) == (explicit, f"{explicit} (set explicitly)")


def test_the_default_is_auto_in_every_section() -> None:
    params = Params()
    assert params.train.precision == params.classifier.precision == "auto"
    assert params.evaluate.precision == "auto"
    assert params_from_dict({"train": {"precision": "fp32"}}).train.precision == "fp32"


@pytest.mark.parametrize(
    ("flags", "precision"), [({*NO_BF16, "avx512_bf16"}, "bf16"), (NO_BF16, "fp32")]
)
def test_the_gan_runs_and_records_what_auto_resolves_to(
    flags: set[str], precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flags(monkeypatch, flags)
    model = params_from_dict({"model": {"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]}})
    gan = build_gan(*build_models(model.model), cfg=TrainConfig(precision="auto"), device=CPU)
    assert gan.precision == precision
    with forward_precision(gan, CPU):
        dtype = gan.generator(torch.randn(2, 8), None).dtype
    assert dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert gan_state(gan)["precision"] == precision  # what a checkpoint holds


def test_fit_runs_in_the_precision_of_the_cfg_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GAN built under one cfg and fitted under another (benchmarks/bench_train.py does)
    trains, and records, the precision of the cfg fit is given."""
    _flags(monkeypatch, NO_BF16)
    model = params_from_dict({"model": {"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]}})
    gan = build_gan(*build_models(model.model), cfg=TrainConfig(), device=CPU)
    assert gan.precision == "fp32"  # auto, on a CPU without bf16
    dtypes: set[torch.dtype] = set()
    gan.generator.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    cfg = TrainConfig(epochs=1, batch_size=8, log_every=1, precision="bf16")
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(2, 8))
    assert gan.precision == gan_state(gan)["precision"] == "bf16"
    assert torch.bfloat16 in dtypes  # the training steps' forward passes


@pytest.mark.parametrize(
    ("blob", "precision"),
    [
        ({"precision": "bf16", "shape": {"train": {"precision": "auto"}}}, "bf16"),
        ({"shape": {"train": {"precision": "bf16"}}}, "bf16"),  # before it was recorded
        ({"shape": {"train": {}}}, "fp32"),  # before train.precision existed
        ({"precision": [1], "shape": {"train": {}}}, None),  # read back: untrusted
        ({"shape": "junk"}, None),
    ],
)
def test_a_checkpoints_precision_is_what_it_trained_in(
    blob: dict[str, Any], precision: str | None
) -> None:
    assert trained_precision(blob) == precision


def test_a_resume_in_another_precision_warns_with_the_fix() -> None:
    why = "fp32 (auto: no native bf16 on this CPU)"
    warning = devices.resumed_precision_warning("bf16", precision="fp32", reason=why)
    assert warning is not None and "bf16" in warning and why in warning
    assert "train.precision to 'bf16'" in warning
    assert devices.resumed_precision_warning("fp32", precision="fp32", reason=why) is None
    assert devices.resumed_precision_warning(None, precision="fp32", reason=why) is None


def _prepared(tmp_path: Path, count: int = 64) -> Path:
    """A prepared-data folder as `ganops prepare` writes it, of random images."""
    data_dir = tmp_path / "prepared"
    rng = torch.Generator().manual_seed(0)
    for split in ("train", "test"):
        images = torch.rand(count, 1, 28, 28, generator=rng) * 2 - 1
        save_torch({"images": images, "labels": torch.arange(count) % 10}, data_dir / f"{split}.pt")
    meta = {"dataset": "mnist", "dataset_sha256": "0" * 64, "train_count": count}
    (data_dir / "meta.json").write_text(json.dumps(meta | {"test_count": count}))
    return data_dir


def test_the_classifier_stage_says_and_uses_what_auto_resolves_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    autocast: set[bool] = set()
    forward = Classifier.forward

    def spy(self: Classifier, x: torch.Tensor) -> Any:
        if self.training:
            autocast.add(torch.is_autocast_enabled("cpu"))
        return forward(self, x)

    monkeypatch.setattr(Classifier, "forward", spy)
    _flags(monkeypatch, {*NO_BF16, "amx_bf16"})
    cfg = ClassifierConfig(epochs=1, batch_size=32, device="cpu")  # precision: auto
    classifier_stage.run(cfg, _prepared(tmp_path), out_dir=tmp_path / "out")
    assert autocast == {True}
    out = capsys.readouterr()
    assert "classifier.precision: bf16 (auto: this CPU has AMX-BF16)\n" in out.out
    assert "warning" not in out.err


def _train_params(tmp_path: Path, **train: Any) -> Params:
    return params_from_dict(
        {
            "model": {"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]},
            "train": {
                "device": "cpu",
                "epochs": 1,
                "batch_size": 16,
                "grid_size": 4,
                "score_every": 0,
                **train,
            },
            "tracking": {"enabled": False},
        }
    )


def _run_train(tmp_path: Path, params: Params) -> Any:
    return train_stage.run(
        params,
        _prepared(tmp_path),
        models_dir=tmp_path / "models",
        out_dir=tmp_path / "out",
        resume_dir=tmp_path / "resume",
    )


@contextlib.contextmanager
def _stop_at_once() -> Iterator[Any]:
    yield lambda: True  # as if SIGINT arrived during the first step


def test_the_train_stage_says_records_and_resumes_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Interrupted on a CPU with AVX512-BF16, resumed on one without: the resolved
    precision is printed, tagged and checkpointed, and the resume warns but goes on."""
    tags: list[dict[str, str]] = []
    logger = train_stage.training_logger
    monkeypatch.setattr(
        train_stage,
        "training_logger",
        lambda p, t, **kw: tags.append(dict(t)) or logger(p, t, **kw),
    )
    params = _train_params(tmp_path)
    _flags(monkeypatch, {*NO_BF16, "avx512_bf16"})
    with monkeypatch.context() as patch:
        patch.setattr(train_stage, "stop_on_signals", _stop_at_once)
        with pytest.raises(Interrupted):
            _run_train(tmp_path, params)
    first = capsys.readouterr()
    assert "train.precision: bf16 (auto: this CPU has AVX512-BF16)\n" in first.out
    sizes = [sum(p.numel() for p in net.parameters()) for net in build_models(params.model)]
    assert f"generator {sizes[0]:,} parameters, discriminator {sizes[1]:,} parameters" in first.out
    assert tags[-1]["precision"] == "bf16"
    saved = torch.load(tmp_path / "models" / "checkpoint.pt", weights_only=True)
    assert saved["precision"] == "bf16" and saved["shape"]["train"]["precision"] == "auto"

    _flags(monkeypatch, NO_BF16)
    state = _run_train(tmp_path, params)  # 'auto' both times: not a config change
    second = capsys.readouterr()
    assert state.step == 64 // 16
    assert "train.precision: fp32 (auto: no native bf16 on this CPU)\n" in second.out
    assert "resuming the interrupted run from step 1" in second.out
    assert "warning: the interrupted run trained in bf16" in second.err
    assert tags[-1]["precision"] == "fp32"
    done = torch.load(tmp_path / "models" / "checkpoint.pt", weights_only=True)
    assert done["precision"] == "fp32"


def test_explicit_bf16_without_native_support_keeps_its_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _flags(monkeypatch, NO_BF16)
    _run_train(tmp_path, _train_params(tmp_path, precision="bf16"))
    out = capsys.readouterr()
    assert "train.precision: bf16 (set explicitly)\n" in out.out
    assert "warning: train.precision is 'bf16' but this cpu has no native bf16" in out.err
    saved = torch.load(tmp_path / "models" / "checkpoint.pt", weights_only=True)
    assert saved["precision"] == "bf16"


@pytest.mark.parametrize(
    ("saved", "current", "trained", "resolved", "same"),
    [
        ("auto", "auto", "bf16", "fp32", True),  # resolves otherwise here: a warning, not a refusal
        ("fp32", "auto", "fp32", "fp32", True),  # a run from before 'auto' was the default
        ("fp32", "auto", "fp32", "bf16", False),  # would switch an explicit fp32 run to bf16
        ("auto", "bf16", "bf16", "bf16", True),
        ("auto", "fp32", "bf16", "fp32", False),
        ("fp32", "bf16", "fp32", "bf16", False),  # explicit changes stay refused
        ("bf16", "bf16", "bf16", "bf16", True),
    ],
)
def test_the_resume_check_compares_what_auto_resolved_to(
    saved: str, current: str, trained: str, resolved: str, same: bool
) -> None:
    assert devices.same_precision(saved, current, trained=trained, resolved=resolved) is same
