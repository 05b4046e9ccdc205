"""Quality per CPU-minute (issue 32's goal 4): fid_10k against training minutes, one line
per recipe, from ``benchmarks/results/quality-minutes.csv`` (each row a scored checkpoint:
recipe, seed, commit, machine, precisions, step, training minutes, fid_10k; docs/results.md
says how each was measured). Writes ``docs/quality-per-minute.png``:

    python benchmarks/plot_quality_minutes.py [--csv FILE] [--out PNG]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def curves(rows: list[dict[str, str]]) -> dict[str, list[tuple[float, float]]]:
    """(minutes, fid_10k) points per recipe/seed/machine, in time order."""
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        label = f"{row['recipe']} (seed {row['seed']}, {row['machine']}, {row['train_precision']})"
        found[label].append((float(row["minutes"]), float(row["fid_10k"])))
    return {label: sorted(points) for label, points in found.items()}


def plot(lines: dict[str, list[tuple[float, float]]], out: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for label, points in lines.items():
        minutes, fids = zip(*points, strict=True)
        axes.plot(minutes, fids, marker="o", label=label)
        axes.annotate(
            f"{fids[-1]:.2f}", (minutes[-1], fids[-1]), textcoords="offset points", xytext=(4, 4)
        )
    axes.set_yscale("log")
    axes.set_yticks([5, 10, 15, 20, 30, 50, 75])
    axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("training minutes (2-core CPU)")
    axes.set_ylabel("fid_10k (log scale; lower is better)")
    axes.set_title("What more CPU minutes buy: fid_10k at each checkpoint")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=ROOT / "benchmarks/results/quality-minutes.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/quality-per-minute.png")
    args = parser.parse_args()
    with args.csv.open(newline="") as stream:
        plot(curves(list(csv.DictReader(stream))), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
