"""outputs/train/curves.png: the DVC plots' data as a PNG that opens offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ganops.plots import training_curves_png


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_curves_png_draws_every_panel(tmp_path: Path) -> None:
    losses = [
        {
            "step": s,
            "epoch": 1,
            "loss_d": 1.0,
            "loss_g": 0.5 + s / 100,
            "d_real": 0.6,
            "d_fake": 0.4,
        }
        for s in range(0, 100, 10)
    ]
    quality = [{"step": 50 * e, "epoch": e, "fcd": 10.0 / e, "class_kl": 0.1} for e in (1, 2)]
    empty, full = tmp_path / "empty.png", tmp_path / "full.png"
    training_curves_png(losses, [], path=empty)
    training_curves_png(losses, quality, path=full)
    assert _pixels(full).shape == (700, 1100, 3)  # 11 x 7 inches at 100 dpi
    # The quality panels (lower half) hold curves only when there was quality data.
    lower_full, lower_empty = _pixels(full)[350:], _pixels(empty)[350:]
    assert (lower_full != lower_empty).any()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left over


def test_per_epoch_panels_tick_whole_epochs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib import pyplot as plt

    figures: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (figures.append(figure), close(figure)))
    quality = [{"step": 50 * e, "epoch": e, "fcd": 10.0 / e, "class_kl": 0.1} for e in (1, 2, 3)]
    training_curves_png([], quality, path=tmp_path / "curves.png")
    epoch_axes = [axis for axis in figures[0].axes if axis.get_xlabel() == "epoch"]
    assert len(epoch_axes) == 2
    for axis in epoch_axes:
        ticks = axis.get_xticks()
        assert len(ticks) >= 2 and all(float(tick).is_integer() for tick in ticks)


def test_a_generator_loss_missing_every_other_reading_still_draws_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log_every below d_steps: every other loss_g is NaN (no G update in that interval).
    The line joins the measured points; with the NaN kept, matplotlib would draw nothing."""
    from matplotlib import pyplot as plt

    figures: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (figures.append(figure), close(figure)))
    nan = float("nan")
    losses = [
        {"step": s, "epoch": 1, "loss_d": 1.0, "loss_g": nan if s % 2 else s / 10,
         "d_real": 0.6, "d_fake": 0.4}
        for s in range(1, 11)
    ]  # fmt: skip
    training_curves_png(losses, [], path=tmp_path / "curves.png")
    (line,) = [ln for ln in figures[0].axes[0].get_lines() if ln.get_label() == "loss_g"]
    assert list(line.get_xdata()) == [2, 4, 6, 8, 10]
    assert list(line.get_ydata()) == [0.2, 0.4, 0.6, 0.8, 1.0]


def test_a_run_shorter_than_log_every_still_draws_its_one_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One loss reading (a run shorter than train.log_every) drawn as a line of one point
    left the panel empty. Few points get a marker each, so they show; many stay a line."""
    from matplotlib.axes import Axes

    markers: list[Any] = []
    plot = Axes.plot

    def spy(self: Axes, *args: Any, **kwargs: Any) -> Any:
        markers.append(kwargs.get("marker"))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    keys = ("loss_d", "loss_g", "d_real", "d_fake")
    training_curves_png([{"step": 7, **dict.fromkeys(keys, 0.5)}], [], path=tmp_path / "a.png")
    assert markers == ["o"] * 4
    markers.clear()
    many = [{"step": s, **dict.fromkeys(keys, 0.5)} for s in range(100)]
    training_curves_png(many, [], path=tmp_path / "b.png")
    assert markers == [None] * 4
