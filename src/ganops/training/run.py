"""One whole training run as a library call: ``train(params, data)``.

What the ``train`` stage adds around it (checkpoint files, MLflow, signals, the files it
writes) arrives through ``Hooks``; a notebook can call it without any of that::

    from ganops.params_file import load_params
    from ganops.data import load_training_set
    from ganops.training.run import train

    result = train(load_params(Path("params.yaml")), load_training_set(Path("data/prepared")))
    images = result.gan.sampler(torch.randn(16, 100))
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganops.config import Params
from ganops.models import NUM_CLASSES, build_models
from ganops.progress import Progress
from ganops.training import distributed
from ganops.training.distributed import Replicas
from ganops.training.loop import Hooks, LoopState, TrainLogger, fit
from ganops.training.step import GAN, build_gan

# After this long, one line estimates the whole run's wall time on this machine: past the
# first steps' warm-up, and early enough to decide whether to wait.
ESTIMATE_AFTER_S = 30.0


@dataclass(frozen=True)
class TrainData:
    """The prepared training set: images (N, 1, 28, 28) in [-1, 1], labels (N,), and the
    dataset's identity (what a checkpoint and the MLflow run are tagged with)."""

    images: Tensor
    labels: Tensor
    dataset: str
    dataset_sha256: str

    @property
    def data_id(self) -> str:
        """What a checkpoint must have been trained on to be resumed with this data."""
        return f"{self.dataset_sha256}:{len(self.images)}"


@dataclass
class TrainResult:
    gan: GAN  # gan.sampler: the generator to draw from (the EMA one when train.ema_decay > 0)
    state: LoopState  # step, epoch, loss history and in-training quality rows


def new_gan(
    params: Params, device: torch.device, *, resume: dict[str, Any] | None = None
) -> tuple[GAN, LoopState | None]:
    """The GAN of ``params`` on ``device`` (weights drawn from train.seed), restored from a
    checkpoint's contents ``resume`` when given, with the loop state to continue from."""
    torch.manual_seed(params.train.seed)  # weight init
    gan = build_gan(*build_models(params.model), cfg=params.train, device=device)
    return gan, (restore(gan, resume) if resume else None)


def train(
    params: Params,
    data: TrainData,
    *,
    gan: GAN | None = None,
    state: LoopState | None = None,
    logger: TrainLogger | None = None,
    hooks: Hooks | None = None,
    device: torch.device | None = None,
    replicas: Replicas | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the GAN of ``params`` on ``data`` for train.epochs (continuing from ``state``).

    ``gan`` defaults to ``new_gan(params, device)``; ``device`` to the GPU when there is one.
    ``logger`` receives losses, D(x)/D(G(z)) and sample grids; ``hooks`` the loop's other
    call-outs (checkpoints, stop requests, per-epoch quality). ``progress``: a progress bar
    on stderr (in the main process).
    """
    replicas = replicas or Replicas()
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if gan is None:
        gan = new_gan(params, device)[0]
    hooks = hooks or Hooks()
    if logger is not None:
        hooks.logger = logger
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    images = data.images.to(device)  # the whole set lives on the device: no DataLoader
    labels = data.labels.to(device) if params.model.conditional else None
    distributed.check_same_start(state.step if state else 0, replicas, device=device)
    if replicas.distributed:
        gan.wrapped = (
            distributed.wrap(gan.generator, device, name="generator"),
            distributed.wrap(gan.discriminator, device, name="discriminator"),
        )
        if replicas.rank:  # other dropout masks than rank 0's (weights were drawn alike)
            torch.manual_seed(hash((params.train.seed, replicas.rank, state.step if state else 0)))
    fixed_noise, fixed_labels = fixed_inputs(params, device)
    with contextlib.ExitStack() as stack:
        if progress and replicas.is_main:
            total = len(images) // params.train.batch_size * params.train.epochs
            where = device.type + (f" x{replicas.world_size}" if replicas.distributed else "")
            start = state.step if state else 0
            bar = stack.enter_context(
                Progress(
                    total,
                    f"train ({where})",
                    unit="step",
                    initial=start,
                    estimate_after=ESTIMATE_AFTER_S,
                )
            )
            hooks.on_step = lambda postfix: bar.update(1, postfix)
        state = fit(
            gan,
            images,
            cfg=params.train,
            latent_dim=params.model.latent_dim,
            fixed_noise=fixed_noise,
            labels=labels,
            fixed_labels=fixed_labels,
            hooks=hooks,
            state=state,
            replicas=replicas,
        )
    distributed.assert_identical_weights(
        {"generator": gan.generator, "discriminator": gan.discriminator}, replicas
    )
    return TrainResult(gan, state)


def fixed_inputs(params: Params, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """The noise (and, for a conditional model, the classes, in reading order 0..9) behind
    every sample grid of a run; drawn on the CPU so they do not depend on the device."""
    rng = torch.Generator().manual_seed(params.train.seed)
    n = params.train.grid_size
    z = torch.randn(n, params.model.latent_dim, generator=rng).to(device)
    labels = torch.arange(n, device=device) * NUM_CLASSES // n if params.model.conditional else None
    return z, labels


def gan_state(gan: GAN) -> dict[str, Any]:
    """The GAN's part of a checkpoint: both networks, both optimizers and the EMA."""
    return {
        "generator": gan.generator.state_dict(),
        "discriminator": gan.discriminator.state_dict(),
        "opt_g": gan.opt_g.state_dict(),
        "opt_d": gan.opt_d.state_dict(),
        "ema": gan.ema.state_dict() if gan.ema is not None else None,
        "d_updates": gan.d_updates,
        "precision": gan.precision,  # as resolved: 'auto' may resolve otherwise on resume
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
    }


def restore(gan: GAN, blob: dict[str, Any]) -> LoopState:
    """Load a checkpoint's contents into ``gan``; the loop state to continue from."""
    gan.generator.load_state_dict(blob["generator"])
    gan.discriminator.load_state_dict(blob["discriminator"])
    gan.opt_g.load_state_dict(blob["opt_g"])
    gan.opt_d.load_state_dict(blob["opt_d"])
    if gan.ema is not None and blob["ema"] is not None:
        gan.ema.load_state_dict(blob["ema"])
    gan.d_updates = int(blob.get("d_updates", 0))  # absent before lazy R1 existed
    torch.set_rng_state(blob["torch_rng"])  # dropout draws continue where they stopped
    if blob.get("cuda_rng") is not None and torch.cuda.is_available():
        # One state per GPU of the saving machine; a machine with fewer GPUs takes its share.
        torch.cuda.set_rng_state_all(blob["cuda_rng"][: torch.cuda.device_count()])
    return LoopState.from_state_dict(blob["loop"])


def trained_precision(blob: dict[str, Any]) -> str | None:
    """The precision a checkpoint's run trained in: as recorded (``gan_state``), else its
    explicit train.precision, else fp32 (checkpoints from before the param); None where the
    file says something else (it is read back, so untrusted)."""
    shape = blob.get("shape")
    train = shape.get("train") if isinstance(shape, dict) else None
    configured = train.get("precision", "fp32") if isinstance(train, dict) else None
    found = blob.get("precision", configured)
    return found if found in ("fp32", "bf16") else None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (so it can save)."""
    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers need the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield lambda: bool(received)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
