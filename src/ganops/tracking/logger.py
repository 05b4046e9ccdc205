"""The training loop's ``TrainLogger``: ``MlflowLogger`` for one MLflow run, off the loop's
critical path (an ``Outbox`` sends from a background thread), and ``training_logger``, which
opens the run (or gives a no-op logger when tracking is off)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from ganops.config import Params
from ganops.errors import TrackingError, say, warn
from ganops.images import VIEW_SCALE, grid_array
from ganops.tracking.outbox import Item, Outbox
from ganops.tracking.runs import training_run
from ganops.training.loop import NullLogger, TrainLogger


class MlflowLogger:
    """``TrainLogger`` for one MLflow run. Calls go through an ``Outbox``: the loop never
    waits on the server, and points logged while it is away are sent when it is back."""

    def __init__(self, run_id: str, **outbox_options: Any) -> None:
        import mlflow

        self.run_id = run_id
        self._client = mlflow.MlflowClient()
        # 100 points of 5 metrics per request: under MLflow's limit of 1000 per log_batch.
        self._outbox = Outbox(self._send, max_batch=100, warn=say, **outbox_options)

    def _send(self, items: list[Item]) -> None:
        from mlflow.entities import Metric

        kind, data, step, stamp = items[0].payload
        if kind == "image":  # key + step: the UI shows the grids as one series over epochs
            self._client.log_image(self.run_id, data, key="samples", step=step, timestamp=stamp)
            return
        metrics = [
            Metric(key, value, stamp, step)
            for _, data, step, stamp in (item.payload for item in items)
            for key, value in data.items()
        ]  # a retry resends the same timestamps: MLflow's SQL store drops the duplicates
        self._client.log_batch(self.run_id, metrics=metrics)

    def log_stats(self, stats: dict[str, float], step: int, epoch: int) -> None:
        payload = ("metrics", {**stats, "epoch": float(epoch)}, step, _now_ms())
        self._outbox.put(Item(f"metrics at step {step}", payload, batchable=True))

    def log_samples(self, images: torch.Tensor, epoch: int) -> None:
        payload = ("image", grid_array(images, scale=VIEW_SCALE), epoch, _now_ms())
        self._outbox.put(Item(f"sample grid of epoch {epoch}", payload))

    def close(self, timeout: float = 30.0) -> None:
        """Send what is left (waiting up to ``timeout`` s); warn about what could not be."""
        unsent = self._outbox.close(timeout)
        if unsent:
            warn(
                f"tracking: {len(unsent)} logging call(s) could not be sent to MLflow "
                f"(first: {unsent[0].what}, last: {unsent[-1].what}); the checkpoint, models "
                "and outputs/train/losses.csv hold everything"
            )


def _now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def training_logger(
    params: Params,
    tags: dict[str, str],
    *,
    run_id: str | None = None,
    resumed_step: int | None = None,
    enabled: bool = True,
) -> Iterator[tuple[TrainLogger, dict[str, str]]]:
    """The training run's ``TrainLogger`` and run reference: an MLflow run (``run_id``: the
    interrupted run to continue from its checkpoint of ``resumed_step``), or a no-op logger
    and ``{}`` when tracking is off (or not ``enabled``: DDP's other ranks) or, with
    ``tracking.required: false``, when the server or store cannot be used at the start."""
    if not (enabled and params.tracking.enabled):
        yield NullLogger(), {}
        return
    with ExitStack() as stack:
        try:
            run_ref = stack.enter_context(
                training_run(
                    params, Path.cwd(), tags=tags, run_id=run_id, resumed_step=resumed_step
                )
            )
        except TrackingError as error:
            if params.tracking.required:
                raise
            warn(f"{error}; training without tracking (tracking.required is false)")
            yield NullLogger(), {}
            return
        logger = MlflowLogger(run_ref["run_id"])
        stack.callback(logger.close)  # before the run ends: send what is still queued
        yield logger, run_ref
