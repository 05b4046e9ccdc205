"""Training iterations replayed as CUDA graphs.

On a GPU these models are too small to keep it busy: one iteration of the MLP pair is about
160 kernels of a few microseconds each, and launching them from Python costs more than running
them. A CUDA graph records the whole iteration (G forward, D step, G step, both optimizer
updates) once, and each later iteration is one ``replay()``: a single launch.

What stays the same as the eager ``train_iteration``: the computation, in the same order, on
the same batches and noise (drawn by the loop and copied into the graph's fixed input
buffers), and the generator EMA. Dropout masks (and WGAN-GP's interpolation weights) are drawn
by the graph from the CUDA generator's graph-safe offsets; they need not be an eager run's
draws, as on another device. The EMA's first update (a copy, decided by a host read of its
counter) runs eagerly in the warm-up; later ones are captured with the G step, without that
read.

The first ``WARMUP_ITERATIONS`` iterations of each kind (with and without a G update, for
``d_steps`` > 1) run eagerly on a side stream, as PyTorch's whole-network capture recipe
requires (optimizer state, cuDNN's algorithm choice); the next one is captured and then
replayed. Every iteration, warm-up and capture included, is a real training step.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ganops.config import TrainConfig
from ganops.errors import GanopsError
from ganops.training.distributed import Replicas
from ganops.training.step import GAN, train_iteration

WARMUP_ITERATIONS = 3


def unsupported_reason(device: torch.device, replicas: Replicas) -> str | None:
    """Why this run cannot use CUDA graphs, or None when it can."""
    if device.type != "cuda":
        return f"training runs on {device.type}, not CUDA"
    if replicas.distributed:
        return "training runs under torchrun (DistributedDataParallel)"
    return None


def eager_only_reason(cfg: TrainConfig) -> str | None:
    """Why this config needs eager iterations: what changes from one iteration to the next on
    the host (a learning rate, whether lazy R1 is due) would be frozen into a graph at capture.
    The EMA's warm-up decay is not among them: the graph counts its updates on the GPU."""
    if cfg.lr_schedule != "constant":
        return f"train.lr_schedule is {cfg.lr_schedule!r} (the learning rate changes every step)"
    if cfg.lr_decay > 0:
        return "train.lr_decay is on (the learning rate changes every step)"
    if (cfg.r1_gamma > 0 or cfg.r2_gamma > 0) and cfg.r1_every > 1:
        return f"train.r1_every is {cfg.r1_every} (lazy R1/R2 runs on some steps only)"
    return None


def use_cuda_graph(cfg: TrainConfig, device: torch.device, *, replicas: Replicas) -> bool:
    """Whether to replay iterations as CUDA graphs; ``on`` where impossible is an error."""
    reason = unsupported_reason(device, replicas) or eager_only_reason(cfg)
    if cfg.cuda_graph == "on" and reason is not None:
        raise GanopsError(
            f"train.cuda_graph is 'on' but {reason}; set train.cuda_graph to 'auto' "
            "(graphs only where possible) or 'off'"
        )
    return cfg.cuda_graph != "off" and reason is None


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Make ``optimizer.step()`` capturable (step counters on the device, no host reads), or
    not, as PyTorch would have built it.

    Set at every start rather than at construction: a resumed checkpoint's param groups bring
    the flag of the run that saved them, and e.g. RMSprop saved by a graphed CUDA run fails
    on the CPU with ``capturable`` still on.
    """
    for group in optimizer.param_groups:
        group["capturable"] = capturable
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if not isinstance(step, Tensor):
                continue
            # Fused and capturable optimizers keep the counter beside the parameter; the
            # others on the CPU.
            on_device = capturable or group.get("fused")
            device = param.device if on_device else torch.device("cpu")
            if step.device != device:
                optimizer.state[param]["step"] = step.to(device, torch.float32)


def ema_update_in_graph(ema: AveragedModel, model: nn.Module, count: Tensor) -> None:
    """``ema.update_parameters(model)`` once it has averaged before (``n_averaged`` > 0),
    without the host reads of ``n_averaged`` that keep it out of a CUDA graph: the same
    ``multi_avg_fn`` on the same tensors, grouped by device and dtype as PyTorch groups
    them, given ``count``, a copy of ``n_averaged`` on the GPU that this counts up (a warm-up
    decay reads it there). The caller counts ``n_averaged`` up (a CPU tensor) after each replay.
    """
    if not ema.use_buffers or ema.multi_avg_fn is None:
        raise GanopsError("internal: the EMA in a CUDA graph needs use_buffers and multi_avg_fn")
    groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
    averaged = itertools.chain(ema.module.parameters(), ema.module.buffers())
    current = itertools.chain(model.parameters(), model.buffers())
    for mine, theirs in zip(averaged, current, strict=True):
        pair = groups.setdefault((mine.device, mine.dtype), ([], []))
        pair[0].append(mine.detach())
        pair[1].append(theirs.detach())
    for mine_list, their_list in groups.values():
        ema.multi_avg_fn(mine_list, their_list, count)  # type: ignore[arg-type]
    count.add_(1)


class GraphedIteration:
    """``train_iteration`` for one GAN and config, replayed from CUDA graphs.

    Call it like ``train_iteration`` without ``gan`` and ``cfg``. The returned statistics
    tensor is the graph's output buffer: read it (or add it up) before the next call.
    """

    def __init__(self, gan: GAN, cfg: TrainConfig, warmup: int = WARMUP_ITERATIONS) -> None:
        self.gan, self.cfg, self.warmup = gan, cfg, warmup
        self.graphs: dict[bool, torch.cuda.CUDAGraph] = {}  # keyed by "updates G"
        self.outputs: dict[bool, Tensor] = {}
        self.eager_runs = {True: 0, False: 0}
        self.inputs: tuple[Tensor, Tensor, Tensor | None] | None = None
        self.ema_count: Tensor | None = None
        for optimizer in (gan.opt_g, gan.opt_d):
            set_capturable(optimizer, True)

    def __call__(
        self, real: Tensor, z: Tensor, update_generator: bool, labels: Tensor | None = None
    ) -> Tensor:
        key = update_generator
        if key not in self.graphs and self.eager_runs[key] < self.warmup:
            self.eager_runs[key] += 1
            return self._eager(real, z, key, labels)
        self._fill(real, z, labels)
        if key not in self.graphs:
            self._capture(key)
        self.graphs[key].replay()
        if update_generator and self.gan.ema is not None:
            self.gan.ema.n_averaged += 1  # the graph averaged; n_averaged lives on the CPU
        return self.outputs[key]

    def _eager(self, real: Tensor, z: Tensor, key: bool, labels: Tensor | None) -> Tensor:
        """A warm-up iteration, the EMA update included (its first one is a copy)."""
        side = torch.cuda.Stream(device=real.device)
        side.wait_stream(torch.cuda.current_stream(real.device))
        with torch.cuda.stream(side):
            stats = train_iteration(
                self.gan, real, z=z, cfg=self.cfg, update_generator=key, labels=labels
            )
        torch.cuda.current_stream(real.device).wait_stream(side)
        return stats

    def _fill(self, real: Tensor, z: Tensor, labels: Tensor | None) -> None:
        """Copy this iteration's inputs into the buffers the graphs read."""
        if self.inputs is None:
            self.inputs = (
                real.clone(),
                z.clone(),
                None if labels is None else labels.clone(),
            )
            return
        static_real, static_z, static_labels = self.inputs
        static_real.copy_(real)
        static_z.copy_(z)
        if static_labels is not None and labels is not None:
            static_labels.copy_(labels)

    def _capture(self, key: bool) -> None:
        assert self.inputs is not None
        real, z, labels = self.inputs
        ema = self.gan.ema if key else None
        if ema is not None and int(ema.n_averaged) == 0:  # the warm-up's G steps did that
            raise GanopsError("internal: the EMA must have averaged before its capture")
        # The graph's own count of EMA updates, on the GPU: capture records, it does not run.
        # Kept on self: the graph reads and writes this memory at every replay.
        count = self.ema_count = ema.n_averaged.to(real.device) if ema is not None else None
        graph = torch.cuda.CUDAGraph()
        # Gradients set to None now are re-created inside the capture, in the graph's memory.
        for optimizer in (self.gan.opt_g, self.gan.opt_d):
            optimizer.zero_grad(set_to_none=True)
        try:
            # thread_local: CUDA calls of other threads do not invalidate this capture.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.outputs[key] = train_iteration(
                    self.gan,
                    real,
                    z=z,
                    cfg=self.cfg,
                    update_generator=key,
                    labels=labels,
                    update_ema=False,
                )
                if ema is not None and count is not None:
                    ema_update_in_graph(ema, self.gan.generator, count)
        except RuntimeError as error:
            raise GanopsError(
                f"capturing the training iteration as a CUDA graph failed ({error}); set "
                "train.cuda_graph to 'off' to train eagerly, and report the error"
            ) from error
        self.graphs[key] = graph
