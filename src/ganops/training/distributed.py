"""Training on several processes with ``torch.distributed``, as launched by ``torchrun``.

``torchrun --nproc-per-node N -m ganops train`` starts N copies of the train stage; each
reads its place from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK). Both
networks are wrapped in ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs), which
averages gradients across processes in every backward pass.

``train.batch_size`` stays the *global* batch: each process takes its own
``batch_size / N`` slice of every batch of the shared epoch permutation (and of the noise),
so the step count, and the data one step sees, are those of a single-process run.
What is computed over a batch is taken over the global batch too: feature matching's batch
means are averaged across processes (``global_mean``), and on GPUs BatchNorm becomes
SyncBatchNorm. PyTorch has no SyncBatchNorm on CPUs, so there (gloo) each process normalises
by its own slice's statistics, and a warning says so.
Only rank 0 logs to MLflow, draws progress and writes checkpoints and outputs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ganops.errors import GanopsError, warn

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Replicas:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This rank's part of a global batch; the parts are disjoint and cover it."""
        check_batch_size(batch_size, self)
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def mean(self, tensor: Tensor) -> Tensor:
        """The mean of ``tensor`` over all processes (a copy; the tensor itself as is)."""
        if not self.distributed:
            return tensor
        total = tensor.clone()
        torch.distributed.all_reduce(total)
        return total / self.world_size

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when ``flag`` is true on at least one (e.g. a signal that
        reached only some of them), so all stop at the same step. A host synchronisation:
        the loop asks once per log interval, not every step."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())


def from_env(environ: dict[str, str] | None = None) -> Replicas:
    """Read torchrun's variables; a plain ``ganops train`` is rank 0 of 1."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return Replicas()
    try:
        values = {name: int(env[name]) for name in TORCHRUN_ENV}
    except (KeyError, ValueError) as error:
        raise GanopsError(
            f"WORLD_SIZE is set but {', '.join(TORCHRUN_ENV)} are not all integers "
            f"({error}); launch several processes with torchrun --nproc-per-node N, or unset "
            "WORLD_SIZE"
        ) from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world:
        raise GanopsError(f"RANK {rank} is not within WORLD_SIZE {world}; launch with torchrun")
    return Replicas(rank=rank, world_size=world, local_rank=values["LOCAL_RANK"])


def check_batch_size(batch_size: int, replicas: Replicas) -> None:
    if batch_size % replicas.world_size:
        raise GanopsError(
            f"train.batch_size {batch_size} does not split evenly over "
            f"{replicas.world_size} processes; use a multiple of {replicas.world_size} (it is "
            "the global batch: each process takes batch_size / N)"
        )


def device_for(device: torch.device, replicas: Replicas) -> torch.device:
    """One GPU per process (cuda:LOCAL_RANK) under torchrun; the CPU is shared."""
    if device.type != "cuda" or not replicas.distributed:
        return device
    if replicas.local_rank >= torch.cuda.device_count():
        raise GanopsError(
            f"LOCAL_RANK {replicas.local_rank} but this machine has "
            f"{torch.cuda.device_count()} GPUs; lower --nproc-per-node"
        )
    torch.cuda.set_device(replicas.local_rank)
    return torch.device("cuda", replicas.local_rank)


@contextlib.contextmanager
def process_group(replicas: Replicas, device: torch.device) -> Iterator[None]:
    """Join the process group for the duration (nothing to do for a single process)."""
    if not replicas.distributed:
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def sync_batchnorm(module: nn.Module, device: torch.device) -> bool:
    """On GPUs, replace ``module``'s BatchNorm layers in place by SyncBatchNorm (statistics
    over the global batch; the same parameters and buffers, so checkpoints do not change).
    Returns whether ``module`` still normalises per process (BatchNorm on a CPU)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return False
    if device.type != "cuda":
        return True
    nn.SyncBatchNorm.convert_sync_batchnorm(module)  # replaces the layers inside module
    return False


def wrap(module: nn.Module, device: torch.device, *, name: str) -> nn.Module:
    """DistributedDataParallel around ``module`` (rank 0's weights are broadcast to all)."""
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm(module, device) and torch.distributed.get_rank() == 0:
        warn(
            f"the {name} has BatchNorm and PyTorch has no SyncBatchNorm on the CPU: "
            "each process normalises by the statistics of its own batch slice, so this run "
            "is not the single-process one (it is on GPUs)"
        )
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def global_mean(batch: Tensor) -> Tensor:
    """The mean over dim 0 of the global batch, of which this process holds a slice (the
    same-size slice on every process); differentiable, so each process's gradient is its
    slice's share of the global objective's. One process: ``batch.mean(0)``."""
    mean = batch.mean(dim=0)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return mean
    world = torch.distributed.get_world_size()
    if world == 1:
        return mean
    return _SumOverProcesses.apply(mean) / world  # type: ignore[no-any-return]


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: the sum's gradient reaches every process's input
    as the sum of the gradients of every process's output. (torch.distributed.nn's version
    is deprecated, and its successor's autograd is recent.)"""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        torch.distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        torch.distributed.all_reduce(total)
        return total


def check_same_start(step: int, replicas: Replicas, *, device: torch.device) -> None:
    """Every process must resume from the same step (each reads the checkpoint itself)."""
    if not replicas.distributed:
        return
    steps = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(replicas.world_size)]
    torch.distributed.all_gather(steps, torch.tensor([step], device=device))
    found = [int(s.item()) for s in steps]
    if len(set(found)) > 1:
        raise GanopsError(
            f"the processes would start from different steps {found} (rank order): each reads "
            "models/checkpoint.pt (or its kept copy in .ganops/resume) itself, so put models/, "
            "data/ and .ganops/ on a filesystem every node shares, or start over with --fresh"
        )


def assert_identical_weights(modules: dict[str, nn.Module], replicas: Replicas) -> None:
    """Fail loudly if any process ended with other weights than rank 0 (they must agree
    exactly: every process applied the same averaged gradients)."""
    if not replicas.distributed:
        return
    for name, module in modules.items():
        mine = torch.cat([p.detach().flatten() for p in module.parameters()])
        rank0 = mine.clone()
        torch.distributed.broadcast(rank0, src=0)
        differs = replicas.any(not torch.equal(mine, rank0), mine.device)
        if differs:
            raise GanopsError(
                f"the {name} weights differ between processes after training; this is a bug "
                "in ganops's distributed training, please report it"
            )
