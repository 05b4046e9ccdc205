"""Which cheap score ranks generators the way fid_10k does (issue 32's proxy study).

Each generator (a ``generator.pt``, one of ``train.snapshots``' files, or a training
``checkpoint.pt`` whose EMA generator is scored) draws 10,000 images once, as ``ganops evaluate`` does (``generated_batches``, seed
``evaluate.seed``), and one Inception pass and one classifier pass over them give every
candidate: ``fid_10k`` (the headline), and the cheap ones a search could afford, from the
first N of the same images against the first N test images, which is what ``ganops evaluate``
with ``evaluate.num_samples: N`` scores: ``fid_2k``, ``kid_2k``, ``fcd_1k``, ``fcd_2k``.

One JSON line per generator is appended to ``--out`` as soon as it is scored, so an
interrupted study loses at most the generator in progress; a generator already in the file
(the same bytes, by SHA-256) is skipped. ``--report`` prints each candidate's Spearman rank
correlation with fid_10k over the scored generators, and their table:

    PYTHONPATH=src python benchmarks/proxy_study.py --data data/prepared \\
        --classifier outputs/classifier/classifier.pt --cache data/fid_cache \\
        --out proxy.jsonl runs/*/snapshots/*.pt runs/*/models/generator.pt
    PYTHONPATH=src python benchmarks/proxy_study.py --out proxy.jsonl --report
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ganops.checkpoints import CHECKPOINT_FORMAT
from ganops.classifier import load_classifier
from ganops.config import EvaluateConfig, ModelConfig, params_from_dict
from ganops.data import load_prepared
from ganops.devices import resolve_precision
from ganops.feature_cache import real_and_fake_features
from ganops.files import file_sha256
from ganops.generator_file import load_generator
from ganops.inception_weights import resolve_inception_weights, weights_fingerprint
from ganops.metrics.features import tensor_digest
from ganops.metrics.fid import fid_from_features
from ganops.metrics.kid import kid_from_features
from ganops.metrics.suite import inception_metrics
from ganops.models import build_models
from ganops.models.classifier import Classifier, Outputs, classify
from ganops.models.sampling import generated_batches
from ganops.stages.train_files import snapshot_rows
from ganops.untrusted_state import read_model_file

HEADLINE = "fid_10k"
CHEAP = ("fcd_1k", "fcd_2k", "fid_2k", "kid_2k")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generators", nargs="*", type=Path, help="generator.pt / checkpoint.pt")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--classifier", type=Path, default=Path("outputs/classifier/classifier.pt"))
    parser.add_argument("--cache", type=Path, default=Path("data/fid_cache"))
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--report", action="store_true", help="print the correlations")
    return parser.parse_args(argv)


def sampler_of(path: Path) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """The generator a file holds, its model config and what the file says of its training
    (step, seconds): a ``checkpoint.pt`` gives its EMA generator (the one ``ganops train``
    would save), else its raw generator."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(blob, dict) and blob.get("format") == CHECKPOINT_FORMAT):
        generator, model_cfg = load_generator(path)
        # A train.snapshots file: its step, epoch and seconds from snapshots.csv beside it.
        rows = [row for row in snapshot_rows(path.parent) if row["file"] == path.name]
        return (
            generator,
            model_cfg,
            {k: rows[0][k] for k in ("step", "epoch", "seconds")} if rows else {},
        )
    blob = read_model_file(path, CHECKPOINT_FORMAT)
    model_cfg = params_from_dict({"model": blob["shape"]["model"]}).model
    generator, _ = build_models(model_cfg)
    if blob.get("ema") is not None:
        averaged = AveragedModel(generator, use_buffers=True)
        averaged.load_state_dict(blob["ema"])  # strict: every tensor of the file's shape
        generator = averaged.module
    else:
        generator.load_state_dict(blob["generator"])
    loop = blob.get("loop", {})
    info = {"step": loop.get("step"), "epoch": loop.get("epoch"), "seconds": blob.get("seconds")}
    return generator.eval(), model_cfg, info


@dataclass
class Reference:
    """What every generator is scored against, prepared once for the whole study."""

    real: torch.Tensor  # the test images
    real_classes: torch.Tensor  # their classifier features
    classifier: Classifier
    weights: Path | None  # Inception's
    cache: Path  # real Inception features
    cache_key: str
    bf16: bool


def reference(args: argparse.Namespace) -> Reference:
    real = load_prepared(args.data / "test.pt")[0]
    cfg = EvaluateConfig()
    bf16 = resolve_precision(args.precision, torch.device("cpu"))[0] == "bf16"
    weights = resolve_inception_weights(cfg.inception_weights, args.cache)
    classifier = load_classifier(args.classifier, data_dir=args.data)[0]
    real_classes = classify(classifier, real.split(cfg.batch_size), device=torch.device("cpu"))
    return Reference(
        real=real,
        real_classes=real_classes.features,
        classifier=classifier,
        weights=weights,
        cache=args.cache / f"real_features_{len(real)}{'_bf16' if bf16 else ''}.pt",
        cache_key=f"test:{tensor_digest(real)}:{weights_fingerprint(weights)}",
        bf16=bf16,
    )


def score(path: Path, sha256: str, ref: Reference) -> dict[str, Any]:
    """Every candidate of one generator file, from one pass over 10,000 of its images."""
    cfg = EvaluateConfig()
    generator, model_cfg, info = sampler_of(path)
    if model_cfg.conditional:
        raise SystemExit(f"{path}: conditional generators are not part of this study")
    judged: list[Outputs] = []

    def classified(batches: Any) -> Any:
        for batch in batches:
            judged.append(classify(ref.classifier, [batch], device=torch.device("cpu")))
            yield batch

    start = time.monotonic()
    batches = generated_batches(
        generator,
        model_cfg.latent_dim,
        total=len(ref.real),
        batch_size=cfg.batch_size,
        device=torch.device("cpu"),
        seed=cfg.seed,
    )
    fake_f, real_f = real_and_fake_features(
        classified(batches),
        ref.real,
        batch_size=cfg.batch_size,
        device=torch.device("cpu"),
        weights=ref.weights,
        cache=ref.cache,
        cache_key=ref.cache_key,
        bf16=ref.bf16,
        compiled=True,
    )
    fake_c, real_c = torch.cat([o.features for o in judged]), ref.real_classes
    row: dict[str, Any] = {"file": str(path), "sha256": sha256, **info}
    row |= inception_metrics(fake_f, real_f, seed=cfg.seed)
    row["fid_2k"] = fid_from_features(fake_f[:2000], real_f[:2000])
    row["kid_2k"] = kid_from_features(fake_f[:2000], real_f[:2000], seed=cfg.seed)[0]
    for n, name in ((1000, "fcd_1k"), (2000, "fcd_2k"), (10000, "fcd_10k")):
        row[name] = fid_from_features(fake_c[:n], real_c[:n])
    row["precision"] = "bf16" if ref.bf16 else "fp32"
    row["score_seconds"] = round(time.monotonic() - start, 1)
    return row


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank), torchmetrics' own."""
    from torchmetrics.functional import spearman_corrcoef

    as_tensor = functools.partial(torch.tensor, dtype=torch.float64)
    return float(spearman_corrcoef(as_tensor(a), as_tensor(b)))


def report(rows: list[dict[str, Any]]) -> str:
    """The table of scored generators and each cheap candidate's Spearman with fid_10k."""
    lines = ["| file | step | fid_10k | " + " | ".join(CHEAP) + " |"]
    lines.append("|---|---:|---:|" + "---:|" * len(CHEAP))
    for row in sorted(rows, key=lambda r: r[HEADLINE]):
        cells = " | ".join(f"{row[name]:.4g}" for name in CHEAP)
        lines.append(f"| {row['file']} | {row.get('step')} | {row[HEADLINE]:.2f} | {cells} |")
    lines.append("")
    headline = [row[HEADLINE] for row in rows]
    for name in CHEAP:
        rho = spearman([row[name] for row in rows], headline) if len(rows) > 2 else float("nan")
        lines.append(f"Spearman({name}, fid_10k) over {len(rows)} generators: {rho:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    lines = args.out.read_text().splitlines() if args.out.is_file() else []
    rows = [json.loads(line) for line in lines]
    if args.report:
        print(report(rows))
        return
    done = {row["sha256"] for row in rows}
    ref = None
    for path in args.generators:
        sha256 = file_sha256(path)
        if sha256 in done:
            print(f"{path}: scored already", file=sys.stderr)
            continue
        ref = ref or reference(args)  # not for a study with nothing left to score
        row = score(path, sha256, ref)
        with args.out.open("a") as out:  # one whole line per generator, flushed at once
            out.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
