"""Model files are read back, so untrusted: each is loaded without running code
(``read_model_file``: weights only, its format checked), and what it holds is checked
against the network it must fit before memory is allocated for that network or anything is
copied into it.

Each check returns why the contents do not fit (a short phrase for a one-line error), or None.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ganops.errors import CheckpointError

T = TypeVar("T")
M = TypeVar("M", bound=nn.Module)


def read_model_file(
    path: Path,
    expected_format: str,
    *,
    missing_hint: str = "run `ganops train` (or `dvc repro`) first",
) -> dict[str, Any]:
    """The dict saved in a ganops model file of ``expected_format``, loaded safely on the CPU."""
    try:
        # weights_only: a crafted file cannot execute code when loaded.
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; {missing_hint}") from None
    except Exception as error:  # unpickling failures come in many types
        raise CheckpointError(f"{path}: not a loadable ganops model file ({error})") from None
    if not isinstance(blob, dict) or blob.get("format") != expected_format:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: format {found!r}, expected {expected_format!r}")
    return blob


def on_meta_device(build: Callable[[], T]) -> T:
    """``build()`` with its tensors on the meta device: the networks' names and shapes, none
    of their memory (a crafted config of 16 layers 8192 wide would otherwise allocate
    gigabytes) and no random numbers drawn. ``module.to_empty(device=...)`` makes it real."""
    with torch.device("meta"):
        return build()


def state_misfit(state: object, module: nn.Module) -> str | None:
    """Why ``state`` is not a state dict of ``module``: not names mapped to tensors, missing
    or unexpected names, or a tensor of another shape or kind of dtype."""
    if not isinstance(state, dict):
        return f"its weights are a {type(state).__name__}, not names mapped to tensors"
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, Tensor):
            return f"its weights hold a {type(value).__name__} under a {type(name).__name__} key"
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing:
        return f"{len(missing)} weight tensors are missing (first: {missing[0]})"
    if unexpected:
        return f"{len(unexpected)} weight tensors are unexpected (first: {unexpected[0]})"
    for name, tensor in expected.items():
        found = state[name]
        same_kind = found.dtype == tensor.dtype or (
            found.is_floating_point() and tensor.is_floating_point()
        )
        if found.shape != tensor.shape or not same_kind:
            return (
                f"{name} is {found.dtype} {tuple(found.shape)}, expected {tensor.dtype} "
                f"{tuple(tensor.shape)}"
            )
    return None


def bad_values(state: dict[str, Tensor]) -> str | None:
    """NaN/inf in a floating tensor, or a negative BatchNorm running variance (its square
    root is NaN): both make every image NaN, which a PNG or uint8 cast shows as black."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"{name} holds NaN or inf values"
        if name.endswith("running_var") and bool((tensor < 0).any()):
            return f"{name} holds negative variances"
    return None


def load_checked(skeleton: M, state: dict[str, Tensor]) -> M:
    """``skeleton`` (built ``on_meta_device``, ``state_misfit`` None) made real on the CPU
    with ``state``'s tensors."""
    module = skeleton.to_empty(device="cpu")
    module.load_state_dict(state)  # strict; every tensor overwritten, shapes already checked
    return module


def _optimizer_misfit(state: object, parameters: list[Tensor]) -> str | None:
    """Why ``state`` is not an optimizer state dict for ``parameters`` (one group, in order)."""
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list):
        return "not an optimizer state"
    groups, slots = state["param_groups"], state.get("state")
    if len(groups) != 1 or not isinstance(groups[0], dict) or not isinstance(slots, dict):
        return "not the state of one parameter group"
    if groups[0].get("params") != list(range(len(parameters))):
        return f"not the state of {len(parameters)} parameters"
    for index, slot in slots.items():
        if index not in range(len(parameters)) or not isinstance(slot, dict):
            return f"state of an unknown parameter {index!r}"
        for name, value in slot.items():
            if not isinstance(value, Tensor):
                return f"{name} of parameter {index} is a {type(value).__name__}"
            if value.dim() > 0 and value.shape != parameters[index].shape:
                return f"{name} of parameter {index} is {tuple(value.shape)}"
    return None


def _loop_misfit(loop: object) -> str | None:
    """Why ``loop`` is not a ``LoopState.state_dict()``: its counters are integers, its
    history and scores rows of numbers, its tensors tensors, its batch order a permutation."""
    if not isinstance(loop, dict) or not all(isinstance(key, str) for key in loop):
        return "its loop state is not a mapping of names"
    for name, value in loop.items():
        if isinstance(value, list):
            fine = all(
                isinstance(row, dict) and all(_is_number(v) for v in row.values()) for row in value
            )
        else:
            fine = value is None or isinstance(value, Tensor) or _is_integer(value)
        if not fine:
            return f"its loop state's {name} is a {type(value).__name__}"
    step, order = loop.get("step"), loop.get("order")
    if not _is_integer(step) or not 0 <= step < 2**62:
        return f"its loop state's step is {str(step)[:40]}"
    if isinstance(order, Tensor) and (
        order.dim() != 1
        or order.dtype != torch.int64
        or not torch.equal(order.sort().values, torch.arange(len(order)))
    ):
        return "its loop state's batch order is not a permutation"
    return None


def _is_integer(value: object) -> typing.TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def checkpoint_misfit(
    blob: dict[str, Any], generator: nn.Module, discriminator: nn.Module
) -> str | None:
    """Why a training checkpoint cannot be restored into these (meta-device) networks, their
    Adam/RMSprop optimizers, the EMA and the loop state."""
    for key, module in (("generator", generator), ("discriminator", discriminator)):
        if problem := state_misfit(blob.get(key), module):
            return f"{key}: {problem}"
    for key, module in (("opt_g", generator), ("opt_d", discriminator)):
        if problem := _optimizer_misfit(blob.get(key), list(module.parameters())):
            return f"{key}: {problem}"
    ema = blob.get("ema")
    if ema is not None:
        averaged = on_meta_device(lambda: AveragedModel(generator, use_buffers=True))
        if problem := state_misfit(ema, averaged):
            return f"ema: {problem}"
    rng = blob.get("torch_rng")
    cpu_rng = torch.get_rng_state()
    if not isinstance(rng, Tensor) or (rng.dtype, rng.shape) != (cpu_rng.dtype, cpu_rng.shape):
        return "torch_rng is not a CPU random-generator state"
    cuda_rng = blob.get("cuda_rng")
    if cuda_rng is not None and not (
        isinstance(cuda_rng, list) and all(isinstance(s, Tensor) for s in cuda_rng)
    ):
        return "cuda_rng is not a list of CUDA random-generator states"
    if not _is_number(blob.get("d_updates", 0)):
        return "d_updates is not a number"
    return _loop_misfit(blob.get("loop"))
