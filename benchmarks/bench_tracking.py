"""What MLflow tracking costs a training run: ``ganops train`` with and without it, alternated.

Prepares MNIST once in a temporary project, then runs the real command line
(``python -m ganops train --fresh``) with ``tracking.enabled`` true (a SQLite store in that
project, the default) and false, alternating (on, off, off, on, ...) so that drifting machine
load hits both. Everything else is the same params file: by default the issue's case, the MLP
pair, 3 epochs, batch 100, no per-epoch scoring. Prints the median wall time of each and the
overhead of tracking in percent; ``--json`` keeps every measurement. Needs MLflow, not DVC:

    python benchmarks/bench_tracking.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "mnist"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="mlp", help="model.arch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--subset", type=int, default=0, help="training images (0 = all 60,000)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dir with MNIST IDX .gz")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1 or args.batch_size < 1:
        parser.error("--epochs, --repeats and --batch-size must be >= 1")
    return args


def params(args: argparse.Namespace, tracked: bool) -> dict[str, Any]:
    return {
        "data": {"source": str(args.data.resolve()), "train_subset": args.subset},
        "model": {"arch": args.arch},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "device": "cpu",
            "score_every": 0,
        },
        "tracking": {"enabled": tracked, "experiment": "bench-tracking"},
    }


def ganops(*words: str, cwd: Path) -> float:
    """Run ``python -m ganops WORDS`` in ``cwd``; its wall time in seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ganops", *words], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ganops {' '.join(words)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seconds: dict[str, list[float]] = {"tracked": [], "untracked": []}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / ".git").mkdir()  # the repo root: where the default SQLite store goes
        files = {}
        for mode in seconds:
            files[mode] = project / f"{mode}.yaml"
            text = yaml.safe_dump(params(args, mode == "tracked"), sort_keys=False)
            files[mode].write_text(text, encoding="utf-8")
        ganops("download", "-p", str(files["untracked"]), cwd=project)
        ganops("prepare", "-p", str(files["untracked"]), cwd=project)
        # The store's tables are created once per repository, not per run: not timed.
        import mlflow

        mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").search_experiments()
        for round_index in range(args.repeats):
            order = list(seconds) if round_index % 2 == 0 else list(seconds)[::-1]
            for mode in order:
                seconds[mode].append(
                    ganops("train", "--fresh", "-p", str(files[mode]), cwd=project)
                )
                print(
                    f"  round {round_index + 1}: {mode} {seconds[mode][-1]:.1f} s", file=sys.stderr
                )
    tracked, untracked = (statistics.median(seconds[k]) for k in ("tracked", "untracked"))
    overhead = 100 * (tracked - untracked) / untracked
    what = f"{args.arch}, {args.epochs} epochs, batch {args.batch_size}, {args.precision}"
    print(f"\nganops train ({what}), median of {args.repeats}:")
    print(f"tracked {tracked:.1f} s, untracked {untracked:.1f} s: tracking costs {overhead:+.1f}%")
    if args.json:
        result = {"config": vars(args) | {"data": str(args.data), "json": None}}
        result |= {"seconds": seconds, "overhead_percent": overhead}
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
