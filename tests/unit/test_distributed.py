"""The process bookkeeping behind `torchrun ... ganops train` (the 2-process run itself is in
tests/e2e/test_distributed.py)."""

from __future__ import annotations

import pytest
import torch

from ganops.config import ModelConfig
from ganops.errors import GanopsError
from ganops.models import build_models
from ganops.training.distributed import (
    Replicas,
    check_batch_size,
    from_env,
    global_mean,
    sync_batchnorm,
)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_the_ranks_slices_of_a_global_batch_are_disjoint_and_cover_it(world: int) -> None:
    batch = torch.arange(64)
    parts = [batch[Replicas(rank=r, world_size=world).shard(64)] for r in range(world)]
    assert all(len(part) == 64 // world for part in parts)
    assert torch.equal(torch.cat(parts), batch)


def test_without_torchrun_the_process_is_rank_0_of_1() -> None:
    replicas = from_env({})
    assert replicas == Replicas() and replicas.is_main and not replicas.distributed
    flag = torch.tensor([1.0, 2.0])
    assert replicas.mean(flag) is flag and replicas.any(True, torch.device("cpu"))


def test_torchrun_variables_are_read() -> None:
    replicas = from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert replicas == Replicas(rank=1, world_size=2, local_rank=1)
    assert replicas.distributed and not replicas.is_main


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "2"}, "RANK, WORLD_SIZE, LOCAL_RANK are not all integers"),
        ({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"}, "not all integers"),
        ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "RANK 2 is not within WORLD_SIZE 2"),
    ],
)
def test_broken_torchrun_variables_are_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(GanopsError, match=message):
        from_env(env)


def test_the_global_batch_must_split_evenly() -> None:
    check_batch_size(128, Replicas(rank=0, world_size=4))
    with pytest.raises(GanopsError, match="batch_size 100 does not split evenly over 3"):
        check_batch_size(100, Replicas(rank=0, world_size=3))


def test_batchnorm_is_synchronised_on_gpus_and_reported_on_cpus() -> None:
    """On a GPU every BatchNorm becomes SyncBatchNorm with the same parameters and buffers
    (checkpoints keep their keys); on a CPU, where PyTorch has none, it stays and the caller
    is told (it warns); a net without BatchNorm is left alone."""
    generator, _ = build_models(ModelConfig(arch="tf_dcgan", dcgan_channels=4))
    keys = set(generator.state_dict())
    assert sync_batchnorm(generator, torch.device("cpu")) is True
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in generator.modules())
    assert sync_batchnorm(generator, torch.device("cuda", 0)) is False  # converted, no forward
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert set(generator.state_dict()) == keys
    mlp, _ = build_models(ModelConfig(arch="mlp"))
    assert sync_batchnorm(mlp, torch.device("cpu")) is False


def test_global_mean_of_one_process_is_the_batch_mean() -> None:
    batch = torch.arange(12.0).view(4, 3)
    torch.testing.assert_close(global_mean(batch), batch.mean(dim=0))
