"""Inception features, extracted once per image set and shared by FID, KID and precision/recall.

The network is torchmetrics' ``NoTrainInceptionV3`` (torch-fidelity's TF-FID Inception with the
TF1-compatible bilinear resize to 299x299, no antialiasing): the one ``FrechetInceptionDistance``
uses, so the features are the classic FID features. Its weights come from
``ganops.inception_weights`` and the real images' features are cached by ``ganops.feature_cache``.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ganops.errors import describe_error, warn

FEATURE_DIM = 2048


def to_inception_input(images: Tensor) -> Tensor:
    """Images in [-1, 1], (B, 1|3, H, W) -> uint8 (B, 3, H, W), the pixels a saved PNG would hold."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (B, 1 or 3, H, W), got {tuple(images.shape)}")
    pixels = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def fold_batch_norms(network: nn.Module) -> int:
    """Fold each conv's inference BatchNorm into the conv's weights and bias (in place).

    Inception's 94 BasicConv2d blocks are conv -> BN -> ReLU; in eval mode the BN is an affine
    map per channel, so conv(x) * s + t is one conv with scaled weights. Same features to
    float rounding (tests/unit/test_inception.py), one pass over memory fewer per layer.
    Returns the number of folded pairs.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for module in network.modules():
        conv, norm = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv.eval(), norm.eval())
            module.bn = nn.Identity()
            folded += 1
    return folded


class CompiledInception:
    """``network`` compiled by ``torch.compile`` (Inductor, weights frozen into the graph):
    faster than eager on a CPU after a one-off compile, the same features to float rounding
    (benchmarks/RESULTS.md has both).

    Every pass runs ``size`` images (a smaller batch is padded with copies of its last
    image), so the graph is compiled once. If the first pass fails to compile (no C++
    compiler, an unsupported backend), it warns and runs ``network`` eagerly from then on.
    """

    def __init__(self, network: nn.Module, size: int) -> None:
        self.network, self.size = network, size
        self._compiled: Callable[[Tensor], Tensor] | None = torch.compile(
            network, dynamic=False, options={"freezing": True}
        )
        self._proven = False  # a pass has run compiled

    def __call__(self, pixels: Tensor) -> Tensor:
        if self._compiled is None:
            return self.network(pixels)
        n = len(pixels)
        if n < self.size:
            pixels = torch.cat([pixels, pixels[-1:].expand(self.size - n, -1, -1, -1)])
        # One memory layout for every pass: the graph is specialised to its input's strides
        # (a grey batch arrives as an expanded view, a padded one contiguous).
        pixels = pixels.contiguous()
        if self._proven:
            return self._compiled(pixels)[:n]
        return self._first_pass(self._compiled, pixels)[:n]

    def _first_pass(self, compiled: Callable[[Tensor], Tensor], pixels: Tensor) -> Tensor:
        """The pass that compiles; eager (from now on) if compiling fails."""
        print(
            "compiling Inception for this machine (once; under a minute)",
            file=sys.stderr,
            flush=True,
        )
        # Its "No CUDA runtime is found" warning on every CPU-only machine says nothing useful.
        extension_log = logging.getLogger("torch.utils.cpp_extension")
        level = extension_log.level
        extension_log.setLevel(logging.ERROR)
        try:
            features = compiled(pixels)
        except torch.OutOfMemoryError:
            raise  # not a compiler failure: eager would run out of memory too
        except Exception as error:  # the compiler's errors have no common base class
            warn(
                f"cannot compile Inception ({describe_error(error)}); running it eagerly (set "
                "evaluate.compile to 'never' to skip the attempt)"
            )
            self._compiled = None
        finally:
            extension_log.setLevel(level)
        if self._compiled is None:
            return self.network(pixels)
        self._proven = True
        return features


def extract_features(
    network: nn.Module | CompiledInception,
    batches: Iterable[Tensor],
    *,
    chunk: int,
    device: torch.device,
    limit: int,
    bf16: bool = False,
    report: Callable[[int], None] = lambda n: None,
) -> Tensor:
    """Features (N, 2048) float32 on the CPU of images in [-1, 1], at most ``chunk`` per pass;
    ``bf16``: Inception under bf16 autocast (``evaluate.precision``).

    More than ``limit`` images is a ValueError, raised before Inception time is spent on them.
    """
    parts, count = [], 0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), autocast:
        for batch in batches:
            for part in batch.split(chunk):
                count += len(part)
                if count > limit:
                    raise ValueError(
                        f"got more than {limit} generated images for {limit} real ones"
                    )
                features = network(to_inception_input(part.to(device)))  # (B, 2048)
                parts.append(features.float().cpu())
                report(len(part))
    return torch.cat(parts) if parts else torch.empty(0, FEATURE_DIM)


def tensor_digest(tensor: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes: what a cache entry is checked against."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}:{tuple(data.shape)}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()
