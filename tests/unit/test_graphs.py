"""CUDA-graph training iterations (``ganops.training.cuda_graphs``).

Where they are used is decided on any machine. That a replayed graph trains exactly as the
eager loop does needs a GPU: those tests skip without one, and run with
``pytest -m "not slow" tests/unit/test_graphs.py`` on a CUDA machine.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganops.config import ModelConfig, TrainConfig
from ganops.errors import GanopsError
from ganops.models import build_models
from ganops.training.cuda_graphs import GraphedIteration, set_capturable, use_cuda_graph
from ganops.training.distributed import Replicas
from ganops.training.loop import Hooks, LoopState, fit, iteration_for
from ganops.training.step import GAN, build_gan
from tests.unit.test_fast_path import tiny_model

CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(
    ("setting", "device", "world_size", "expected"),
    [
        ("auto", "cuda", 1, True),
        ("auto", "cpu", 1, False),
        ("auto", "cuda", 2, False),
        ("on", "cuda", 1, True),
        ("off", "cuda", 1, False),
        ("off", "cpu", 1, False),
    ],
)
def test_graphs_are_used_on_one_cuda_device_unless_off(
    setting: str, device: str, world_size: int, expected: bool
) -> None:
    cfg = TrainConfig(cuda_graph=setting)
    replicas = Replicas(rank=0, world_size=world_size)
    assert use_cuda_graph(cfg, torch.device(device), replicas=replicas) is expected


@pytest.mark.parametrize(
    ("device", "world_size", "reason"),
    [("cpu", 1, "runs on cpu, not CUDA"), ("cuda", 2, "under torchrun")],
)
def test_on_where_graphs_are_impossible_is_one_clear_error(
    device: str, world_size: int, reason: str
) -> None:
    cfg = TrainConfig(cuda_graph="on")
    with pytest.raises(GanopsError, match=reason) as error:
        use_cuda_graph(cfg, torch.device(device), replicas=Replicas(rank=0, world_size=world_size))
    assert "train.cuda_graph" in str(error.value) and "'auto'" in str(error.value)


def test_the_cpu_loop_iterates_eagerly() -> None:
    torch.manual_seed(0)
    gan = build_gan(
        *build_models(ModelConfig(arch="mlp")), cfg=TrainConfig(), device=torch.device("cpu")
    )
    iterate = iteration_for(gan, TrainConfig(), device=torch.device("cpu"), replicas=Replicas())
    assert not isinstance(iterate, GraphedIteration)


def _saved_by_a_graphed_run() -> tuple[torch.nn.Parameter, dict[str, object]]:
    """An RMSprop state as a graphed CUDA run checkpoints it: capturable, counter a float."""
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.RMSprop([param], lr=0.1, capturable=False)
    param.grad = torch.ones(3)
    optimizer.step()
    state = optimizer.state_dict()
    state["param_groups"][0]["capturable"] = True
    state["state"][0]["step"] = state["state"][0]["step"].to(torch.float32)
    return param, state


def test_a_graphed_runs_optimizer_state_resumes_eagerly_on_the_cpu() -> None:
    param, saved = _saved_by_a_graphed_run()
    stuck = torch.optim.RMSprop([param], lr=0.1)
    stuck.load_state_dict(saved)
    param.grad = torch.ones(3)
    with pytest.raises(AssertionError, match="capturable"):  # what set_capturable prevents
        stuck.step()
    resumed = torch.optim.RMSprop([param], lr=0.1)
    resumed.load_state_dict(saved)
    set_capturable(resumed, False)
    resumed.step()
    assert resumed.param_groups[0]["capturable"] is False
    assert int(resumed.state[param]["step"]) == 2


def test_the_eager_loop_turns_a_resumed_capturable_flag_off() -> None:
    cfg = TrainConfig(optimizer="rmsprop")
    torch.manual_seed(0)
    gan = build_gan(*build_models(ModelConfig(arch="mlp")), cfg=cfg, device=torch.device("cpu"))
    for group in gan.opt_d.param_groups:
        group["capturable"] = True
    iteration_for(gan, cfg, device=torch.device("cpu"), replicas=Replicas())
    assert [g["capturable"] for g in gan.opt_d.param_groups + gan.opt_g.param_groups] == [
        False,
        False,
    ]


def test_set_capturable_moves_step_counters_beside_the_parameters() -> None:
    param, saved = _saved_by_a_graphed_run()
    optimizer = torch.optim.RMSprop([param], lr=0.1)
    optimizer.load_state_dict(saved)
    set_capturable(optimizer, True)
    assert optimizer.param_groups[0]["capturable"] is True
    assert optimizer.state[param]["step"].device == param.device


def test_ema_follows_the_generator_updates_only() -> None:
    """The EMA update moved out of the G step (graphs run it outside the capture): it must
    still happen once per generator update, not per iteration."""
    cfg = TrainConfig(epochs=1, batch_size=10, d_steps=2, ema_decay=0.5, log_every=1)
    gan, images = _gan(_tiny("mlp", d_dropout=0.0), cfg, torch.device("cpu"))
    fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(4, 8))
    assert gan.ema is not None
    assert int(gan.ema.n_averaged) == len(images) // cfg.batch_size // 2


# --- On a GPU: replayed graphs train as the eager loop does -----------------------------------


def _tiny(arch: str, d_dropout: float = 0.0, **extra: object) -> ModelConfig:
    return dataclasses.replace(tiny_model(arch, d_dropout), **extra)  # type: ignore[arg-type]


def _gan(model: ModelConfig, cfg: TrainConfig, device: torch.device) -> tuple[GAN, torch.Tensor]:
    torch.manual_seed(0)
    gan = build_gan(*build_models(model), cfg=cfg, device=device)
    images = torch.rand(160, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return gan, images.to(device)


def _train(model: ModelConfig, cfg: TrainConfig) -> tuple[GAN, LoopState]:
    gan, images = _gan(model, cfg, CUDA)
    labels = torch.arange(len(images), device=CUDA) % 10 if model.conditional else None
    fixed_labels = torch.arange(4, device=CUDA) if model.conditional else None
    state = fit(
        gan,
        images,
        cfg=cfg,
        latent_dim=model.latent_dim,
        fixed_noise=torch.zeros(4, model.latent_dim, device=CUDA),
        labels=labels,
        fixed_labels=fixed_labels,
        hooks=Hooks(),
    )
    torch.cuda.synchronize()
    return gan, state


def _assert_same_training(model: ModelConfig, cfg: TrainConfig, tol: float) -> None:
    cfg = dataclasses.replace(cfg, precision="fp32")  # 'auto' would be bf16 on Ampere and newer
    graphed, graphed_state = _train(model, dataclasses.replace(cfg, cuda_graph="on"))
    eager, eager_state = _train(model, dataclasses.replace(cfg, cuda_graph="off"))
    for name in ("generator", "discriminator"):
        torch.testing.assert_close(
            getattr(graphed, name).state_dict(),
            getattr(eager, name).state_dict(),
            rtol=tol,
            atol=tol,
            msg=lambda text, name=name: f"{name} differs: {text}",  # type: ignore[misc]
        )
    if eager.ema is not None:
        assert graphed.ema is not None
        torch.testing.assert_close(
            graphed.ema.state_dict(), eager.ema.state_dict(), rtol=tol, atol=tol
        )
    for graphed_row, eager_row in zip(graphed_state.history, eager_state.history, strict=True):
        assert graphed_row == pytest.approx(eager_row, rel=tol, abs=tol)


@needs_cuda
def test_graphed_mlp_trains_exactly_as_the_eager_loop() -> None:
    # 16 steps: 3 eager warm-up iterations, a capture, then replays.
    cfg = TrainConfig(epochs=2, batch_size=20, log_every=4, seed=3)
    _assert_same_training(_tiny("mlp"), cfg, tol=1e-5)


@needs_cuda
def test_graphed_dcgan_with_k_steps_ema_clipping_and_labels_matches_eager() -> None:
    """BatchNorm buffers, two graphs (D-only and D+G iterations for k = 2), the EMA outside
    the graph, gradient-norm clipping and a conditional model."""
    cfg = TrainConfig(
        epochs=3, batch_size=16, d_steps=2, ema_decay=0.9, grad_clip_norm=1.0, log_every=5
    )
    _assert_same_training(_tiny("dcgan", conditional=True), cfg, tol=1e-4)


@needs_cuda
def test_graphed_ema_warmup_matches_eager() -> None:
    """The warm-up decay read from the graph's own count on the GPU, replay after replay."""
    cfg = TrainConfig(epochs=3, batch_size=16, ema_decay=0.999, ema_warmup=True, log_every=5)
    _assert_same_training(_tiny("dcgan"), cfg, tol=1e-4)


@needs_cuda
@pytest.mark.parametrize("loss", ["wgan", "hinge", "lsgan", "minimax"])
def test_graphed_objectives_match_eager(loss: str) -> None:
    cfg = TrainConfig(epochs=2, batch_size=20, loss=loss, optimizer="rmsprop", log_every=4)
    _assert_same_training(_tiny("mlp"), cfg, tol=1e-5)


@needs_cuda
@pytest.mark.parametrize(
    ("model", "loss"),
    [
        (_tiny("mlp", d_dropout=0.3), "non_saturating"),  # dropout masks inside the graph
        (_tiny("dcgan", spectral_norm=True), "wgan_gp"),  # double backward, power iteration
    ],
)
def test_graphed_random_draws_train_every_step(model: ModelConfig, loss: str) -> None:
    """Dropout masks and WGAN-GP interpolates are drawn inside the graph: other draws than an
    eager run's, so this checks the update count and finite, changing losses instead."""
    cfg = TrainConfig(epochs=2, batch_size=20, loss=loss, log_every=2, cuda_graph="on")
    gan, state = _train(model, cfg)
    steps = len(state.history) * cfg.log_every
    assert state.step == steps == 16
    for optimizer in (gan.opt_d, gan.opt_g):
        counts = {int(s["step"]) for s in optimizer.state.values()}
        assert counts == {16}
    losses = [row["loss_d"] for row in state.history]
    assert all(torch.isfinite(torch.tensor(losses))) and len(set(losses)) == len(losses)


@needs_cuda
def test_graphed_bf16_autocast_matches_eager_bf16() -> None:
    """Autocast inside the capture (its weight-cast cache off) records the bf16 kernels."""
    cfg = TrainConfig(epochs=2, batch_size=20, log_every=4, precision="bf16")
    _assert_same_training(_tiny("mlp"), cfg, tol=1e-3)
