"""Training iterations replayed as CUDA graphs.

On a GPU these models are too small to keep it busy: one iteration of the MLP pair is about
160 kernels of a few microseconds each, and launching them from Python costs more than running
them. A CUDA graph records the whole iteration (G forward, D step, G step, both optimizer
updates) once, and each later iteration is one ``replay()``: a single launch.

What stays the same as the eager ``train_iteration``: the computation, in the same order, on
the same batches and noise (drawn by the loop and copied into the graph's fixed input
buffers). What differs: dropout masks (and WGAN-GP's interpolation weights) come from the CUDA
generator's graph-safe offsets, so they are other random draws than an eager run's, just as
on another device. The EMA update stays outside the graph (it reads a counter on the host)
and runs eagerly after each replay that updated G.

The first ``WARMUP_ITERATIONS`` iterations of each kind (with and without a G update, for
``d_steps`` > 1) run eagerly on a side stream, as PyTorch's whole-network capture recipe
requires (optimizer state, cuDNN's algorithm choice); the next one is captured and then
replayed. Every iteration, warm-up and capture included, is a real training step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganops.config import TrainConfig
from ganops.distributed import Replicas
from ganops.errors import GanopsError
from ganops.training import GAN, train_iteration, update_ema_of

WARMUP_ITERATIONS = 3


def unsupported_reason(device: torch.device, replicas: Replicas) -> str | None:
    """Why this run cannot use CUDA graphs, or None when it can."""
    if device.type != "cuda":
        return f"training runs on {device.type}, not CUDA"
    if replicas.distributed:
        return "training runs under torchrun (DistributedDataParallel)"
    return None


def use_cuda_graph(cfg: TrainConfig, device: torch.device, replicas: Replicas) -> bool:
    """Whether to replay iterations as CUDA graphs; ``on`` where impossible is an error."""
    reason = unsupported_reason(device, replicas)
    if cfg.cuda_graph == "on" and reason is not None:
        raise GanopsError(
            f"train.cuda_graph is 'on' but {reason}; set train.cuda_graph to 'auto' "
            "(graphs only where possible) or 'off'"
        )
    return cfg.cuda_graph != "off" and reason is None


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Let ``optimizer.step()`` be captured: step counters on the device, no host reads.

    Done here rather than at construction because a resumed checkpoint's param groups bring
    their own ``capturable`` flag.
    """
    for group in optimizer.param_groups:
        group["capturable"] = True
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if isinstance(step, Tensor) and step.device != param.device:
                optimizer.state[param]["step"] = step.to(param.device, torch.float32)


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
        for optimizer in (gan.opt_g, gan.opt_d):
            make_capturable(optimizer)

    @property
    def replaying(self) -> bool:
        """Whether any kind of iteration is already captured."""
        return bool(self.graphs)

    def __call__(
        self, real: Tensor, z: Tensor, update_generator: bool, labels: Tensor | None = None
    ) -> Tensor:
        key = update_generator
        if key not in self.graphs and self.eager_runs[key] < self.warmup:
            self.eager_runs[key] += 1
            stats = self._eager(real, z, key, labels)
        else:
            self._fill(real, z, labels)
            if key not in self.graphs:
                self._capture(key)
            self.graphs[key].replay()
            stats = self.outputs[key]
        if update_generator:
            update_ema_of(self.gan)
        return stats

    def _eager(self, real: Tensor, z: Tensor, key: bool, labels: Tensor | None) -> Tensor:
        side = torch.cuda.Stream(device=real.device)
        side.wait_stream(torch.cuda.current_stream(real.device))
        with torch.cuda.stream(side):
            stats = train_iteration(self.gan, real, z, self.cfg, key, labels, update_ema=False)
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
        graph = torch.cuda.CUDAGraph()
        # Gradients set to None now are re-created inside the capture, in the graph's memory.
        for optimizer in (self.gan.opt_g, self.gan.opt_d):
            optimizer.zero_grad(set_to_none=True)
        # thread_local: the tracking thread may touch CUDA while this thread captures.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.outputs[key] = train_iteration(
                self.gan, real, z, self.cfg, key, labels, update_ema=False
            )
        self.graphs[key] = graph
