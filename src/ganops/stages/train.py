"""Stage ``train``: ``ganops.training.run.train`` on the prepared data, with checkpoints,
MLflow, a progress bar and the stage's files around it.

Checkpoints (atomic) every ``train.checkpoint_every`` steps, at the end, and on SIGINT or
SIGTERM; an interrupted run is resumed by running the stage again with the same config.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

from ganops import outputs
from ganops.config import Params
from ganops.devices import precision_warning
from ganops.files import ensure_writable
from ganops.stages.common import resolve_device
from ganops.tracking.logger import training_logger
from ganops.training import distributed
from ganops.training.cuda_graphs import use_cuda_graph
from ganops.training.loop import Hooks, LoopState
from ganops.training.run import TrainData, new_gan, stop_on_signals, train
from ganops.training.run_files import (
    best_keeping_scorer,
    checkpoint_writer,
    earlier_seconds,
    resume_or_start,
    write_outputs,
)


def run(
    params: Params,
    data_dir: Path,
    *,
    models_dir: Path,
    out_dir: Path,
    fresh: bool = False,
    classifier: Path | None = None,
) -> LoopState:
    """Train; write MODELS/{generator,checkpoint}.pt and OUT/{losses.csv,...}. With a
    ``classifier``, score samples every evaluate.every_epochs (and keep the best generator).
    Under ``torchrun --nproc-per-node N`` it trains with DDP; only rank 0 writes and tracks."""
    replicas = distributed.from_env()
    distributed.check_batch_size(params.train.batch_size, replicas)
    device = distributed.device_for(resolve_device(params.train.device, "train.device"), replicas)
    ensure_writable(models_dir, out_dir)  # fail now, not after hours of training
    # train.cuda_graph 'on' where a graph is impossible fails now.
    graphed = use_cuda_graph(params.train, device, replicas=replicas)
    main = replicas.is_main
    if main and (
        slow := precision_warning("train.precision", params.train.precision, device=device)
    ):
        print(f"warning: {slow}", file=sys.stderr)
    data = TrainData.load(data_dir)
    checkpoint_path = models_dir / outputs.CHECKPOINT
    resume = resume_or_start(
        params, data.data_id, models_dir=models_dir, out_dir=out_dir, fresh=fresh, main=main
    )
    tags = {"dataset": data.dataset, "dataset_sha256": data.dataset_sha256}
    tags |= {"device": str(device), "processes": str(replicas.world_size)}  # > 1: DDP
    tags["cuda_graph"] = str(graphed).lower()
    # Training time of the whole run: a resumed run adds the interrupted sessions' time.
    earlier, started = earlier_seconds(resume), time.monotonic()

    def seconds() -> float:
        return earlier + time.monotonic() - started

    with ExitStack() as stack:
        stack.enter_context(distributed.process_group(replicas, device))
        gan, state = new_gan(params, device, resume=resume)
        run_id = resume.get("run_id") if resume else None
        step = state.step if state else None
        logger, ref = stack.enter_context(
            training_logger(params, tags, run_id=run_id, resumed_step=step, enabled=main)
        )

        checkpoint = checkpoint_writer(
            gan,
            params,
            data_id=data.data_id,
            path=checkpoint_path,
            run_ref=ref,
            main=main,
            seconds=seconds,
        )
        hooks = Hooks(on_checkpoint=checkpoint)
        if main and classifier is not None:
            scorer = best_keeping_scorer(
                params,
                classifier=classifier,
                data=data,
                data_dir=data_dir,
                device=device,
                models_dir=models_dir,
                state=state,
            )
            hooks.evaluate_epoch = scorer or hooks.evaluate_epoch
        with stop_on_signals() as stop:  # only around the loop: uploads can still be cut short
            hooks.should_stop = stop
            result = train(
                params,
                data,
                gan=gan,
                state=state,
                logger=logger,
                hooks=hooks,
                device=device,
                replicas=replicas,
            )
        if not main:
            return result.state
        checkpoint(result.state, complete=True)
        write_outputs(
            result, params, models_dir=models_dir, out_dir=out_dir, run_ref=ref, seconds=seconds()
        )
    if replicas.distributed:
        print(f"{replicas.world_size} processes (DDP) ended with identical weights")
    resumed = f", {earlier:.1f} s of it before the resume" if earlier else ""
    print(
        f"trained to step {result.state.step} in {seconds():.1f} s on {device}{resumed}; "
        f"models in {models_dir}"
    )
    return result.state
