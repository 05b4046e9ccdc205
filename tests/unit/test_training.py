from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from ganops.config import LOSSES, ModelConfig, TrainConfig, params_from_dict
from ganops.errors import GanopsError, Interrupted
from ganops.models import build_models
from ganops.training.loop import Hooks, LoopState, NullLogger, fit
from ganops.training.step import GAN, build_gan

MODEL = ModelConfig(arch="mlp", latent_dim=8, g_hidden=(32,), d_hidden=(32,))


class RecordingLogger(NullLogger):
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.sample_epochs: list[int] = []

    def log_stats(self, stats: dict[str, float], step: int, epoch: int) -> None:
        self.steps.append(step)

    def log_samples(self, images: torch.Tensor, epoch: int) -> None:
        assert images.shape[1:] == (1, 28, 28)
        self.sample_epochs.append(epoch)


def run(
    cfg: TrainConfig,
    images: torch.Tensor,
    model: ModelConfig = MODEL,
    logger: NullLogger | None = None,
) -> tuple[LoopState, torch.nn.Module]:
    torch.manual_seed(cfg.seed)
    generator, discriminator = build_models(model)
    gan = build_gan(generator, discriminator, cfg=cfg, device=torch.device("cpu"))
    result = fit(
        gan,
        images,
        cfg=cfg,
        latent_dim=model.latent_dim,
        fixed_noise=torch.zeros(4, model.latent_dim),
        hooks=Hooks(logger=logger or NullLogger()),
    )
    return result, gan.generator


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_step_count_is_floor_of_dataset_over_batch_times_epochs(images: torch.Tensor) -> None:
    logger = RecordingLogger()
    cfg = TrainConfig(epochs=3, batch_size=32, log_every=2)
    result, _ = run(cfg, images, logger=logger)
    assert result.step == (100 // 32) * 3 == 9
    assert logger.steps == [2, 4, 6, 8, 9]  # every log_every steps, and the last one
    assert logger.sample_epochs == [1, 2, 3]
    assert [row["epoch"] for row in result.history] == [1, 2, 2, 3, 3]


def test_same_seed_same_weights_different_seed_different(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=20)
    _, first = run(cfg, images)
    _, again = run(cfg, images)
    _, other = run(dataclasses.replace(cfg, seed=7), images)
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not all(
        torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True)
    )


def test_k_discriminator_steps_per_generator_step(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=10, d_steps=5)
    torch.manual_seed(0)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg=cfg, device=torch.device("cpu"))
    fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(2, 8))
    d_steps = gan.opt_d.state_dict()["state"][0]["step"].item()
    g_steps = gan.opt_g.state_dict()["state"][0]["step"].item()
    assert (d_steps, g_steps) == (10, 2)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_objective_trains_without_nan(loss: str, images: torch.Tensor) -> None:
    optimizer = "rmsprop" if loss == "wgan" else "adam"
    cfg = TrainConfig(epochs=1, batch_size=25, loss=loss, optimizer=optimizer, ema_decay=0.9)
    result, _ = run(cfg, images)
    assert result.step == 4
    assert all(all(v == v for v in row.values()) for row in result.history)


def test_wgan_clips_critic_weights(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=25, loss="wgan", optimizer="rmsprop", clip_value=0.01)
    torch.manual_seed(0)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg=cfg, device=torch.device("cpu"))
    fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(2, 8))
    assert max(p.abs().max().item() for p in gan.discriminator.parameters()) <= 0.01


def test_divergence_stops_with_the_step(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=1, batch_size=25, lr_d=1e30, lr_g=1e30, log_every=1)
    with pytest.raises(GanopsError, match=r"not finite at step \d+"):
        run(cfg, images)


@pytest.mark.parametrize("sampling", ["epochs", "random"])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    images: torch.Tensor, sampling: str
) -> None:
    """Stop mid-epoch (as SIGTERM would), save, rebuild from the saved state, continue: the
    same step count and bit-identical weights as one uninterrupted run (CPU, fixed seed)."""
    cfg = TrainConfig(
        epochs=3,
        batch_size=16,
        log_every=4,
        checkpoint_every=0,
        ema_decay=0.5,
        batch_sampling=sampling,
    )
    model = dataclasses.replace(MODEL, d_dropout=0.3)
    uninterrupted, reference = run(cfg, images, model)

    torch.manual_seed(cfg.seed)
    gan = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
    saved: dict[str, object] = {}

    def checkpoint(state: LoopState) -> None:  # what the train stage stores, in memory
        saved.update(
            loop=state.state_dict(),
            g=gan.generator.state_dict(),
            d=gan.discriminator.state_dict(),
            og=gan.opt_g.state_dict(),
            od=gan.opt_d.state_dict(),
            ema=gan.ema.state_dict() if gan.ema else None,
            rng=torch.get_rng_state(),
        )
        saved.update({k: copy.deepcopy(v) for k, v in saved.items()})

    hooks = Hooks(on_checkpoint=checkpoint, should_stop=lambda: gan_steps() >= 9)
    gan_steps = lambda: gan.opt_d.state_dict()["state"][0]["step"].item()  # noqa: E731
    with pytest.raises(Interrupted, match="step 9"):
        fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(2, 8), hooks=hooks)

    torch.manual_seed(999)  # a new process: nothing left over from the first one
    resumed = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
    resumed.generator.load_state_dict(saved["g"])
    resumed.discriminator.load_state_dict(saved["d"])
    resumed.opt_g.load_state_dict(saved["og"])
    resumed.opt_d.load_state_dict(saved["od"])
    assert resumed.ema is not None
    resumed.ema.load_state_dict(saved["ema"])
    torch.set_rng_state(saved["rng"])
    state = fit(
        resumed,
        images,
        cfg=cfg,
        latent_dim=8,
        fixed_noise=torch.zeros(2, 8),
        state=LoopState.from_state_dict(saved["loop"]),
    )
    assert state.step == uninterrupted.step == 3 * (100 // 16)
    assert state.history == uninterrupted.history
    for a, b in zip(resumed.generator.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_conditional_gan_trains_on_image_labels(images: torch.Tensor) -> None:
    model = dataclasses.replace(MODEL, conditional=True)
    cfg = TrainConfig(epochs=2, batch_size=25, log_every=2)
    torch.manual_seed(cfg.seed)
    gan = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
    logger = RecordingLogger()
    labels = torch.arange(len(images)) % 10
    state = fit(
        gan,
        images,
        cfg=cfg,
        latent_dim=model.latent_dim,
        fixed_noise=torch.zeros(10, model.latent_dim),
        labels=labels,
        fixed_labels=torch.arange(10),
        hooks=Hooks(logger=logger),
    )
    assert state.step == 8 and logger.sample_epochs == [1, 2]
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in state.history)


def test_an_interval_without_a_generator_update_has_no_generator_loss(
    images: torch.Tensor,
) -> None:
    """k = 2 and log_every = 2 over 5 steps: G steps at 2 and 4, readings at 2, 4 and 5. The
    last interval (step 5) had no G update: its loss_g is NaN (a gap), not 0, and is not
    taken for divergence; the others are G's measured loss."""
    cfg = TrainConfig(epochs=1, batch_size=20, d_steps=2, log_every=2)
    result, _ = run(cfg, images)
    assert [row["step"] for row in result.history] == [2, 4, 5]
    *updated, last = result.history
    assert all(math.isfinite(row["loss_g"]) and row["loss_g"] > 0 for row in updated)
    assert math.isnan(last["loss_g"])
    assert all(math.isfinite(row[k]) for row in result.history for k in ("loss_d", "d_real"))


def test_a_random_state_from_another_kind_of_device_reseeds_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CUDA generator's state (16 bytes: seed and offset) cannot be loaded into a CPU
    generator: resuming on the CPU reseeds from (seed, step), the same way every time, with a
    warning, instead of failing on a device change that train.device allows."""
    from ganops.training.loop import _restore_rng

    cuda_like = torch.zeros(16, dtype=torch.uint8)
    draws = []
    for _ in range(2):
        rng = torch.Generator().manual_seed(0)
        _restore_rng(rng, LoopState(step=40, rng_state=cuda_like), TrainConfig(seed=3))
        draws.append(torch.randn(5, generator=rng))
    torch.testing.assert_close(draws[0], draws[1])
    assert "not a cpu generator's" in capsys.readouterr().err
    saved = torch.Generator().manual_seed(9)
    rng = torch.Generator().manual_seed(0)
    _restore_rng(rng, LoopState(step=40, rng_state=saved.get_state()), TrainConfig(seed=3))
    torch.testing.assert_close(torch.randn(5, generator=rng), torch.randn(5, generator=saved))
    assert capsys.readouterr().err == ""


def test_a_diverged_state_is_never_checkpointed_between_log_readings(
    images: torch.Tensor,
) -> None:
    cfg = TrainConfig(
        epochs=1, batch_size=10, lr_d=1e30, lr_g=1e30, log_every=1000, checkpoint_every=1
    )
    saved: list[torch.Tensor] = []
    torch.manual_seed(cfg.seed)
    gan = build_gan(*build_models(MODEL), cfg=cfg, device=torch.device("cpu"))
    hooks = Hooks(on_checkpoint=lambda state: saved.append(state.sums.clone()))
    with pytest.raises(GanopsError, match=r"not finite at step \d+"):
        fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(1, 8), hooks=hooks)
    assert all(torch.isfinite(sums).all() for sums in saved)


def _training_linear_dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    """The dtypes the module's Linear layers output while training (sample grids, drawn in
    eval mode, are left out)."""
    seen: set[torch.dtype] = set()
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.register_forward_hook(
                lambda m, args, out: seen.add(out.dtype) if m.training else None
            )
    return seen


@pytest.mark.parametrize("loss", ["non_saturating", "wgan_gp"])
@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)]
)
def test_precision_sets_the_forward_passes_dtype_and_keeps_fp32_weights(
    precision: str, dtype: torch.dtype, loss: str, images: torch.Tensor
) -> None:
    cfg = TrainConfig(epochs=2, batch_size=20, precision=precision, loss=loss, log_every=1)
    torch.manual_seed(cfg.seed)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg=cfg, device=torch.device("cpu"))
    g_seen, d_seen = _training_linear_dtypes(generator), _training_linear_dtypes(discriminator)
    before = copy.deepcopy(generator.state_dict())
    state = fit(gan, images, cfg=cfg, latent_dim=MODEL.latent_dim, fixed_noise=torch.zeros(4, 8))
    assert state.step == 10
    assert g_seen == d_seen == {dtype}
    for module in (gan.generator, gan.discriminator):
        assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert all(math.isfinite(row["loss_d"]) for row in state.history)
    assert any(not torch.equal(before[k], v) for k, v in generator.state_dict().items())


@pytest.mark.parametrize("key", ["train.precision", "evaluate.precision"])
def test_bf16_without_native_support_warns_with_the_fix(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ganops.devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(ganops.devices, "native_bf16", lambda device: False)
    warning = ganops.devices.precision_warning(key, "bf16", device=cpu)
    assert warning is not None and key in warning and "'fp32'" in warning
    assert ganops.devices.precision_warning(key, "fp32", device=cpu) is None
    monkeypatch.setattr(ganops.devices, "native_bf16", lambda device: True)
    assert ganops.devices.precision_warning(key, "bf16", device=cpu) is None


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"avx2", "avx512f", "avx512bw"}, False),
        ({"avx512_bf16"}, True),
        ({"amx_bf16"}, True),
        (None, True),
    ],
)
def test_native_bf16_reads_the_cpu_flags(
    flags: set[str] | None, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ganops.devices

    monkeypatch.setattr(ganops.devices, "_cpu_flags", lambda: flags)
    assert ganops.devices.native_bf16(torch.device("cpu")) is native


def test_ema_warmup_ramps_the_decay_up() -> None:
    """Update 1 copies; update n + 1 uses min(decay, (1 + n) / (10 + n)) of the old average."""
    cfg = TrainConfig(ema_decay=0.999, ema_warmup=True)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg=cfg, device=torch.device("cpu"))
    assert gan.ema is not None
    weight = next(gan.generator.parameters())
    averaged = next(gan.ema.module.parameters())
    values = [1.0, 3.0, 5.0]
    for value in values:
        with torch.no_grad():
            weight.fill_(value)
        gan.ema.update_parameters(gan.generator)
    beta1, beta2 = 2 / 11, 3 / 12
    expected = (beta1 * 1.0 + (1 - beta1) * 3.0) * beta2 + (1 - beta2) * 5.0
    assert averaged.flatten()[0].item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n", [1, 80, 5000, 20000])
def test_ema_warmup_reads_a_tensor_count_on_its_device(n: int) -> None:
    """The count as a tensor (what a CUDA graph passes) gives the host formula's average."""
    from ganops.training.step import ema_with_warmup

    average = ema_with_warmup(0.999)
    on_host, on_device = [torch.full((3,), 2.0)], [torch.full((3,), 2.0)]
    current = [torch.full((3,), 7.0)]
    average(on_host, current, n)
    average(on_device, current, torch.tensor(n))
    decay = min(0.999, (1 + n) / (10 + n))
    torch.testing.assert_close(on_device[0], on_host[0])
    assert on_host[0][0].item() == pytest.approx(decay * 2.0 + (1 - decay) * 7.0, rel=1e-6)


@pytest.mark.parametrize(
    ("n", "rampup", "warmup", "half_life_images"),
    [
        (0, 0.0, False, 20000.0),  # no ramp: the half-life from the first update
        (999, 0.0, False, 20000.0),
        (9, 0.05, False, 10 * 64 * 0.05),  # ramped: 5% of the 640 images seen
        (20000, 0.05, False, 20000.0),  # past the ramp (5% of 1.28M > 20k)
        (9, 0.05, True, None),  # the TF warm-up caps the ramped decay early on
    ],
)
def test_ema_in_images_has_the_half_life_stylegan2_ada_gives(
    n: int, rampup: float, warmup: bool, half_life_images: float | None
) -> None:
    """After the decay's half-life in images, the old average keeps half its weight:
    decay = 0.5 ** (64 / h) per update of 64 images; host count and tensor count agree."""
    from ganops.training.step import ema_in_images

    average = ema_in_images(half_life=20000.0, rampup=rampup, images_per_update=64, warmup=warmup)
    ema, current = [torch.full((3,), 2.0)], [torch.full((3,), 7.0)]
    average(ema, current, torch.tensor(n))
    if half_life_images is None:
        decay = min(0.5 ** (64 / (10 * 64 * 0.05)), (1 + n) / (10 + n))
    else:
        decay = 0.5 ** (64 / half_life_images)
    assert ema[0][0].item() == pytest.approx(decay * 2.0 + (1 - decay) * 7.0, rel=1e-5)
    on_host = [torch.full((3,), 2.0)]
    average(on_host, current, n)
    torch.testing.assert_close(on_host[0], ema[0])


def test_train_ema_kimg_builds_that_ema_and_clashes_with_a_decay() -> None:
    from ganops.errors import ConfigError

    cfg = TrainConfig(ema_decay=0.0, ema_kimg=20.0, ema_rampup=0.05, ema_warmup=False)
    generator, discriminator = build_models(MODEL)
    gan = build_gan(generator, discriminator, cfg=cfg, device=torch.device("cpu"))
    assert gan.ema is not None
    weight, averaged = next(gan.generator.parameters()), next(gan.ema.module.parameters())
    for value in (1.0, 3.0):
        with torch.no_grad():
            weight.fill_(value)
        gan.ema.update_parameters(gan.generator)
    decay = 0.5 ** (cfg.batch_size / (2 * cfg.batch_size * 0.05))  # n = 1: 2 updates seen
    assert averaged.flatten()[0].item() == pytest.approx(decay * 1.0 + (1 - decay) * 3.0)
    with pytest.raises(ConfigError, match=r"train.ema_decay.*set train.ema_decay=0"):
        params_from_dict({"train": {"ema_decay": 0.999, "ema_kimg": 20}})
    with pytest.raises(ConfigError, match=r"train.ema_rampup.*without train.ema_kimg"):
        params_from_dict({"train": {"ema_decay": 0.999, "ema_rampup": 0.05}})


@pytest.mark.parametrize(
    ("schedule", "middle", "last"),
    [
        ("constant", 1.0, 1.0),
        ("linear", 0.5, 0.25),
        ("cosine", 0.5, (1 + math.cos(0.75 * math.pi)) / 2),
    ],
)
def test_lr_schedules(schedule: str, middle: float, last: float, images: torch.Tensor) -> None:
    from ganops.training.step import lr_factor

    assert lr_factor(schedule, 0, 4) == 1.0
    assert lr_factor(schedule, 2, 4) == pytest.approx(middle)
    # Through the loop: 100 images / batch 25 = 4 steps; the last one trains at step 3 of 4.
    cfg = TrainConfig(epochs=1, batch_size=25, lr_schedule=schedule, lr_g=0.001, lr_d=0.002)
    torch.manual_seed(0)
    gan = build_gan(*build_models(MODEL), cfg=cfg, device=torch.device("cpu"))
    fit(gan, images, cfg=cfg, latent_dim=MODEL.latent_dim, fixed_noise=torch.zeros(1, 8))
    assert gan.opt_g.param_groups[0]["lr"] == pytest.approx(0.001 * last)
    assert gan.opt_d.param_groups[0]["lr"] == pytest.approx(0.002 * last)


def test_lazy_r1_adds_its_scaled_penalty_on_every_nth_d_step(images: torch.Tensor) -> None:
    """D = w2 * LeakyReLU(<w1, x> + b1) + b2 has input gradient w2 * slope(x) * w1, so R1 is
    mean((w2 * slope)^2) * ||w1||^2; with gamma 3 every 2 steps D's loss gains 3 / 2 * 2 * R1
    on steps 1 and 3 only (lr ~0 keeps the weights fixed)."""
    from ganops.training.step import discriminator_step

    model = ModelConfig(arch="mlp", latent_dim=8, g_hidden=(32,), d_hidden=(1,), d_dropout=0.0)
    real, fake = images[:8], images[8:16]
    losses = {}
    for gamma in (0.0, 3.0):
        torch.manual_seed(0)
        cfg = TrainConfig(r1_gamma=gamma, r1_every=2, lr_d=1e-12, precision="fp32")
        gan = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
        losses[gamma] = [
            discriminator_step(gan, real, fake=fake, cfg=cfg)[0].item() for _ in range(3)
        ]
        assert gan.d_updates == 3
    first, last = (m for m in gan.discriminator.modules() if isinstance(m, torch.nn.Linear))
    hidden = first(real.flatten(1)).squeeze(1)
    slope = torch.where(hidden > 0, 1.0, 0.2)
    r1 = ((last.weight * slope) ** 2).mean() * first.weight.square().sum()
    penalties = [b - a for a, b in zip(losses[0.0], losses[3.0], strict=True)]
    assert penalties == pytest.approx([3.0 * r1.item(), 0.0, 3.0 * r1.item()], rel=1e-4, abs=1e-6)


def test_lazy_r2_adds_the_same_penalty_on_the_generated_images(images: torch.Tensor) -> None:
    """As the R1 test above, with R2 taken at the fake batch: gamma 3 every 2 steps adds
    3 / 2 * 2 * R2 on steps 1 and 3, and R1 + R2 together add both."""
    from ganops.training.step import discriminator_step

    model = ModelConfig(arch="mlp", latent_dim=8, g_hidden=(32,), d_hidden=(1,), d_dropout=0.0)
    real, fake = images[:8], images[8:16]
    losses = {}
    for r1, r2 in ((0.0, 0.0), (0.0, 3.0), (3.0, 3.0)):
        torch.manual_seed(0)
        cfg = TrainConfig(r1_gamma=r1, r2_gamma=r2, r1_every=2, lr_d=1e-12, precision="fp32")
        gan = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
        losses[r1, r2] = [
            discriminator_step(gan, real, fake=fake, cfg=cfg)[0].item() for _ in range(3)
        ]
    assert not fake.requires_grad  # the caller's tensor is left as it was
    first, last = (m for m in gan.discriminator.modules() if isinstance(m, torch.nn.Linear))

    def penalty(batch: torch.Tensor) -> float:
        slope = torch.where(first(batch.flatten(1)).squeeze(1) > 0, 1.0, 0.2)
        return float(((last.weight * slope) ** 2).mean() * first.weight.square().sum())

    base = losses[0.0, 0.0]
    r2_only = [b - a for a, b in zip(base, losses[0.0, 3.0], strict=True)]
    both = [b - a for a, b in zip(base, losses[3.0, 3.0], strict=True)]
    r1_value, r2_value = 3.0 * penalty(real), 3.0 * penalty(fake)
    assert r2_only == pytest.approx([r2_value, 0.0, r2_value], rel=1e-4, abs=1e-6)
    assert both == pytest.approx(
        [r1_value + r2_value, 0.0, r1_value + r2_value], rel=1e-4, abs=1e-6
    )
    from ganops.training.cuda_graphs import eager_only_reason

    assert "R1/R2" in str(eager_only_reason(TrainConfig(r2_gamma=1.0, r1_every=4)))


def test_lazy_r1_and_schedules_train_eagerly() -> None:
    from ganops.training.cuda_graphs import eager_only_reason

    assert eager_only_reason(TrainConfig()) is None
    assert "lr_schedule" in str(eager_only_reason(TrainConfig(lr_schedule="cosine")))
    assert eager_only_reason(TrainConfig(ema_decay=0.9, ema_warmup=True)) is None  # on the GPU
    assert "r1_every" in str(eager_only_reason(TrainConfig(r1_gamma=1.0, r1_every=4)))
    assert eager_only_reason(TrainConfig(r1_gamma=1.0, r1_every=1)) is None


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "tf_dcgan", "resnet"])
def test_feature_matching_moves_g_toward_the_real_feature_means(
    arch: str, images: torch.Tensor
) -> None:
    """The G step of feature matching lowers ||E f(x) - E f(G(z))||^2 on the same batch and
    noise (D frozen in the G step), for every architecture's f."""
    from ganops.losses import feature_matching_loss
    from ganops.training.step import generator_step

    model = ModelConfig(
        arch=arch,
        latent_dim=8,
        g_hidden=(32,),
        d_hidden=(32,),
        dcgan_channels=4,
        res_channels=4,
        d_dropout=0.0,
    )
    cfg = TrainConfig(loss="feature_matching", lr_g=1e-2)
    torch.manual_seed(0)
    gan = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
    real, z = images[:16], torch.randn(16, 8)
    gan.generator.eval()  # BatchNorm on running stats: the same fakes before and after

    def distance() -> float:
        with torch.no_grad():
            fake = gan.generator(z)
            features = gan.discriminator.features  # type: ignore[operator]
            return feature_matching_loss(features(real), features(fake)).item()

    before = distance()
    for _ in range(5):
        generator_step(gan, gan.generator(z), cfg=cfg, real=real)
    assert distance() < before


def test_keras_clipvalue_clips_each_gradient_element() -> None:
    from ganops.training.step import _clip_grad

    layer = torch.nn.Linear(3, 1)
    layer.weight.grad = torch.tensor([[5.0, -0.5, -3.0]])
    layer.bias.grad = torch.tensor([0.2])
    _clip_grad(layer, TrainConfig(grad_clip_value=1.0))
    assert layer.weight.grad.tolist() == [[1.0, -0.5, -1.0]]  # element-wise, not by norm
    assert layer.bias.grad.tolist() == pytest.approx([0.2])


def test_keras_inverse_time_decay_counts_each_optimizers_own_updates() -> None:
    """lr / (1 + decay * t): D has made `step` updates, G (with k = 2) step // 2."""
    from ganops.training.step import set_learning_rates

    cfg = TrainConfig(optimizer="rmsprop", lr_g=4e-4, lr_d=4e-4, lr_decay=0.5, d_steps=2)
    gan = build_gan(*build_models(MODEL), cfg=cfg, device=torch.device("cpu"))
    set_learning_rates(gan, cfg, step=6, total_steps=100)
    assert gan.opt_d.param_groups[0]["lr"] == pytest.approx(4e-4 / (1 + 0.5 * 6))
    assert gan.opt_g.param_groups[0]["lr"] == pytest.approx(4e-4 / (1 + 0.5 * 3))


def _constant_logit_gan(cfg: TrainConfig, logit: float) -> GAN:
    """An MLP GAN whose D says ``logit`` for every image (zero weights, that bias)."""
    model = ModelConfig(arch="mlp", latent_dim=8, g_hidden=(8,), d_hidden=(1,), d_dropout=0.0)
    gan = build_gan(*build_models(model), cfg=cfg, device=torch.device("cpu"))
    with torch.no_grad():
        for param in gan.discriminator.parameters():
            param.zero_()
        gan.discriminator.net[-1].bias.fill_(logit)  # type: ignore[index, union-attr]
    return gan


def test_sigmoid_before_bce_is_the_keras_tutorials_loss_by_hand(images: torch.Tensor) -> None:
    """D's logit 0 is the probability 1/2. Meant: BCE(1/2, 1) + BCE(1/2, 0) = 2 ln 2 = 1.3863.
    The bug reads 1/2 as a logit: softplus(-1/2) + softplus(1/2) = 0.4741 + 0.9741 = 1.4482,
    and G's loss is softplus(-1/2) = 0.4741 instead of ln 2. D(x) is still read as 1/2."""
    from ganops.training.step import discriminator_step, generator_step

    real, fake = images[:8], images[8:16]
    for bug, loss_d, loss_g in [(False, 2 * math.log(2), math.log(2)), (True, 1.448154, 0.474077)]:
        cfg = TrainConfig(sigmoid_before_bce=bug, lr_d=1e-12, lr_g=1e-12)
        gan = _constant_logit_gan(cfg, 0.0)
        stats = discriminator_step(gan, real, fake=fake, cfg=cfg)
        assert stats.tolist() == pytest.approx([loss_d, 0.5, 0.5], abs=1e-5)
        assert generator_step(gan, fake.requires_grad_(), cfg=cfg).item() == pytest.approx(
            loss_g, abs=1e-5
        )


def test_sigmoid_before_bce_floors_the_discriminator_loss() -> None:
    """A perfect D (p = 1 on real, 0 on fake) still pays softplus(-1) + softplus(0) = 1.0064."""
    from ganops.losses import discriminator_loss
    from ganops.training.step import loss_input

    cfg = TrainConfig(sigmoid_before_bce=True)
    real, fake = loss_input(torch.tensor([50.0]), cfg), loss_input(torch.tensor([-50.0]), cfg)
    floor = math.log1p(math.exp(-1)) + math.log(2)
    assert discriminator_loss("non_saturating", real, fake).item() == pytest.approx(floor)
    assert floor == pytest.approx(1.006409, abs=1e-6)


@pytest.mark.parametrize(("resample", "forwards"), [(False, 4), (True, 6)])
def test_g_resample_gives_the_g_step_its_own_batch(
    resample: bool, forwards: int, images: torch.Tensor
) -> None:
    """4 steps, k = 2: one generator pass a step, plus (resample) a second one, on new
    noise, in each of the 2 steps that update G."""
    cfg = TrainConfig(epochs=1, batch_size=25, d_steps=2, g_resample=resample)
    torch.manual_seed(0)
    gan = build_gan(*build_models(MODEL), cfg=cfg, device=torch.device("cpu"))
    noise: list[torch.Tensor] = []
    gan.generator.register_forward_hook(
        lambda module, args, out: noise.append(args[0]) if module.training else None
    )
    fit(gan, images, cfg=cfg, latent_dim=8, fixed_noise=torch.zeros(2, 8))
    assert len(noise) == forwards
    if resample:  # steps 2 and 4: the D step's noise, then the G step's
        assert not torch.equal(noise[1], noise[2]) and not torch.equal(noise[4], noise[5])


def test_random_batches_are_drawn_with_replacement() -> None:
    """'random': indices uniform with replacement (10 of 10 all distinct has probability
    10!/10^10 = 0.00036); 'epochs': a permutation, each image once."""
    from ganops.training.loop import batch_indices

    rng = torch.Generator().manual_seed(0)
    drawn = batch_indices(
        LoopState(), TrainConfig(batch_size=10, batch_sampling="random"), num_images=10, rng=rng
    )
    assert drawn.shape == (10,) and drawn.unique().numel() < 10
    state = LoopState()
    order = batch_indices(state, TrainConfig(batch_size=10), num_images=10, rng=rng)
    assert sorted(order.tolist()) == list(range(10)) and state.order is not None


def test_random_batches_keep_floor_n_over_batch_times_epochs(images: torch.Tensor) -> None:
    cfg = TrainConfig(epochs=3, batch_size=32, batch_sampling="random", log_every=100)
    state, _ = run(cfg, images)
    assert state.step == (100 // 32) * 3 == 9 and state.order is None


@pytest.mark.parametrize(("alpha", "move"), [(0.9, 2 / 0.4**0.5), (0.99, 2 / 0.04**0.5)])
def test_rmsprop_alpha_is_kerass_rho(alpha: float, move: float) -> None:
    """One RMSprop step on w with gradient 2: v = (1 - alpha) * 4, w -= lr * 2 / sqrt(v):
    Keras' rho 0.9 moves w by 3.162 lr, torch's default alpha 0.99 by 10 lr."""
    from ganops.training.step import make_optimizer

    weight = torch.nn.Parameter(torch.zeros(1))
    cfg = TrainConfig(optimizer="rmsprop", rmsprop_alpha=alpha)
    optimizer = make_optimizer([weight], cfg, lr=1e-3, device=torch.device("cpu"))
    (2 * weight).sum().backward()
    optimizer.step()
    assert weight.item() == pytest.approx(-1e-3 * move, rel=1e-5)


def test_a_loop_state_with_entries_never_written_is_one_checkpoint_error() -> None:
    from ganops.errors import CheckpointError
    from ganops.training.loop import LoopState

    state = {**LoopState(step=3).state_dict(), "__class__": "os.system"}
    with pytest.raises(CheckpointError, match=r"never writes \(__class__\).*--fresh"):
        LoopState.from_state_dict(state)
    assert LoopState.from_state_dict(LoopState(step=3).state_dict()).step == 3
