"""The training curves as one PNG (``outputs/train/curves.png``): the same data as the DVC
plots, but a picture that opens without a browser or internet (``dvc plots show`` loads
Vega from a CDN) and that MLflow shows beside the run's sample grids."""

from __future__ import annotations

import io
import math
from pathlib import Path

from ganops.files import atomic_path

FEW_POINTS = 30  # up to this many readings a curve also marks each one
_PANELS = (  # (title, rows' source, x column, y columns)
    ("Losses", "losses", "step", ("loss_d", "loss_g")),
    ("D(x) on real, D(G(z)) on generated", "losses", "step", ("d_real", "d_fake")),
    ("fcd per epoch (lower is better)", "quality", "epoch", ("fcd",)),
    ("Class KL per epoch (mode collapse raises it)", "quality", "epoch", ("class_kl",)),
)


def training_curves_png(
    losses: list[dict[str, float]], quality: list[dict[str, float]], *, path: Path
) -> None:
    """Draw the loss, D-output and per-epoch quality curves into ``path`` (atomically); a
    panel without data says so instead of staying blank."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = {"losses": losses, "quality": quality}
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    try:
        for axis, (title, source, x, ys) in zip(axes.flat, _PANELS, strict=True):
            points = [row for row in rows[source] if all(y in row for y in ys)]
            axis.set_title(title, fontsize=10)
            axis.set_xlabel(x)
            if not points:
                axis.text(
                    0.5,
                    0.5,
                    "no data (not scored in this run)",
                    ha="center",
                    va="center",
                    transform=axis.transAxes,
                    color="grey",
                )
                continue
            for y in ys:  # NaN (loss_g of an interval without a G update): no point
                kept = [row for row in points if not math.isnan(row[y])]
                # Few points (a short run, a few epochs): markers, or one point draws nothing.
                marker = "o" if len(kept) <= FEW_POINTS else None
                axis.plot(
                    [row[x] for row in kept], [row[y] for row in kept], label=y, marker=marker
                )
            if x == "epoch":  # no "epoch 2.5" ticks between whole epochs
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.legend(fontsize=8)
            axis.grid(alpha=0.3)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(figure)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
