"""Stage ``train``: ``ganops.training.run.train`` on the prepared data, with checkpoints,
MLflow, a progress bar and the stage's files around it.

Checkpoints (atomic) every ``train.checkpoint_every`` steps, at the end, and on SIGINT or
SIGTERM; an interrupted run is resumed by running the stage again with the same config, also
under ``dvc exp run``, which restores ``models/`` from dvc.lock first: the interrupted run's
checkpoint is kept outside it too (``ganops.kept_checkpoint``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ganops import kept_checkpoint, outputs
from ganops.config import Params
from ganops.data import load_training_set
from ganops.devices import resumed_precision_warning
from ganops.errors import Interrupted, warn
from ganops.files import ensure_writable
from ganops.stages.common import resolve_device, resolved_precision
from ganops.stages.train_files import (
    best_keeping_scorer,
    checkpoint_writer,
    earlier_seconds,
    resume_or_start,
    write_outputs,
)
from ganops.tracking.logger import training_logger
from ganops.training import distributed
from ganops.training.cuda_graphs import use_cuda_graph
from ganops.training.loop import Hooks, LoopState
from ganops.training.run import new_gan, stop_on_signals, train, trained_precision


def run(
    params: Params,
    data_dir: Path,
    *,
    models_dir: Path,
    out_dir: Path,
    fresh: bool = False,
    classifier: Path | None = None,
    resume_dir: Path = kept_checkpoint.DEFAULT_RESUME_DIR,
) -> LoopState:
    """Train; write MODELS/{generator,checkpoint}.pt and OUT/{losses.csv,...}. With a
    ``classifier``, score samples every train.score_every (and keep the best generator).
    An unfinished run's checkpoint is also kept in a folder of ``resume_dir`` until it ends.
    Under ``torchrun --nproc-per-node N`` it trains with DDP; only rank 0 writes and tracks."""
    # --- Where and how: processes, device, precision; every output writable before any work.
    replicas = distributed.from_env()
    distributed.check_batch_size(params.train.batch_size, replicas)
    device = distributed.device_for(resolve_device(params.train.device, "train.device"), replicas)
    # Fail now, not after hours of training (also on a link or special file at an output).
    ensure_writable(models_dir, out_dir, resume_dir, files=outputs.train_files(models_dir, out_dir))
    # train.cuda_graph 'on' where a graph is impossible fails now.
    graphed = use_cuda_graph(params.train, device, replicas=replicas)
    main = replicas.is_main
    # 'auto' resolved for the device: the GAN resolves it alike (step.build_gan).
    precision, why = resolved_precision(
        "train.precision", params.train.precision, device=device, show=main
    )
    # --- Resume or start: the interrupted run's checkpoint (its slot outside models/), if any.
    data = load_training_set(data_dir)
    slot = kept_checkpoint.slot_for(resume_dir, params, data_id=data.data_id, models_dir=models_dir)
    resume = _resume(
        params,
        data.data_id,
        slot=slot,
        models_dir=models_dir,
        out_dir=out_dir,
        fresh=fresh,
        main=main,
    )
    # --- What the MLflow run records of this session (the params are logged whole).
    tags = {"dataset": data.dataset, "dataset_sha256": data.dataset_sha256}
    tags |= {"device": str(device), "processes": str(replicas.world_size)}  # > 1: DDP
    tags["cuda_graph"] = str(graphed).lower()
    tags["precision"] = precision  # as resolved; the params keep 'auto'
    saved_precision = trained_precision(resume) if resume else None
    if main and (
        moved := resumed_precision_warning(saved_precision, precision=precision, reason=why)
    ):
        warn(moved)
    # Training time of the whole run: a resumed run adds the interrupted sessions' time.
    earlier, started = earlier_seconds(resume), time.monotonic()

    def seconds() -> float:
        return earlier + time.monotonic() - started

    with ExitStack() as stack:
        stack.enter_context(distributed.process_group(replicas, device))
        gan, state = new_gan(params, device, resume=resume)
        if main:
            sizes = {name: sum(p.numel() for p in getattr(gan, name).parameters())
                     for name in ("generator", "discriminator")}  # fmt: skip
            print(", ".join(f"{name} {size:,} parameters" for name, size in sizes.items()))
        # --- Open the run: a new MLflow run, or the interrupted one again.
        run_id = resume.get("run_id") if resume else None
        step = state.step if state else None
        logger, ref = stack.enter_context(
            training_logger(params, tags, run_id=run_id, resumed_step=step, enabled=main)
        )

        # --- Hooks: checkpoints (the slot, then models/) and the per-epoch scorer.
        def writer(path: Path) -> Callable[..., None]:
            return checkpoint_writer(
                gan,
                params,
                data_id=data.data_id,
                path=path,
                run_ref=ref,
                main=main,
                seconds=seconds,
                snapshots=models_dir / outputs.SNAPSHOTS if params.train.snapshots else None,
            )

        keep = writer(slot / outputs.CHECKPOINT)

        def checkpoint(loop: LoopState) -> None:
            """To the slot first, then linked into models/: the slot is never the older."""
            if main:
                kept_checkpoint.ignore_in_git(slot.parent)
            keep(loop)
            if main:
                kept_checkpoint.link_out(slot, models_dir)

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
        # --- Train: the library's loop; SIGINT/SIGTERM stop it after a checkpoint.
        with stop_on_signals() as stop:  # only around the loop: uploads can still be cut short
            hooks.should_stop = stop
            try:
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
            except Interrupted as error:
                raise Interrupted(f"{error}{_how_to_resume(slot)}") from None
        # --- Write outputs (rank 0): the final checkpoint, generator, curves, run reference.
        if not main:
            return result.state
        writer(models_dir / outputs.CHECKPOINT)(result.state, complete=True)
        write_outputs(
            result, params, models_dir=models_dir, out_dir=out_dir, run_ref=ref, seconds=seconds()
        )
        kept_checkpoint.discard(slot)  # finished: nothing left to resume
    if replicas.distributed:
        print(f"{replicas.world_size} processes (DDP) ended with identical weights")
    resumed = f", {earlier:.1f} s of it before the resume" if earlier else ""
    print(
        f"trained to step {result.state.step} in {seconds():.1f} s on {device}{resumed}; "
        f"models in {models_dir}"
    )
    return result.state


def _resume(
    params: Params,
    data_id: str,
    *,
    slot: Path,
    models_dir: Path,
    out_dir: Path,
    fresh: bool,
    main: bool,
) -> dict[str, Any] | None:
    """The interrupted run's checkpoint to continue (None: a new run): the slot's, put back
    into ``models_dir`` where ``dvc exp run`` restored another over it, else as before from
    ``models_dir``. ``fresh`` removes the slot. Only the main process changes files."""
    if not main:  # rank 0 may be putting the slot back right now: read it where it is
        kept = None if fresh else kept_checkpoint.load_kept(slot, params, data_id=data_id)
        if kept is not None:
            return kept
    elif fresh:
        kept_checkpoint.discard(slot)
    elif kept_checkpoint.put_back(slot, models_dir):
        print(
            f"put back the interrupted run's checkpoint kept in {slot} ({models_dir} held "
            "another, e.g. the last finished run's that dvc exp run restores); delete that "
            "folder or run `ganops train --fresh` to start over"
        )
    if main and kept_checkpoint.in_dvc_temp_copy():
        print(
            "note: this runs in DVC's temporary copy of the project (dvc exp run --temp or "
            "--queue), deleted when it ends: if interrupted, it cannot be resumed"
        )
    if main and (note := kept_checkpoint.others_note(slot)):
        print(note)
    return resume_or_start(
        params, data_id, models_dir=models_dir, out_dir=out_dir, fresh=fresh, main=main
    )


def _how_to_resume(slot: Path) -> str:
    """What the interrupted error adds: where the checkpoint is kept and how to resume."""
    if kept_checkpoint.in_dvc_temp_copy():
        return (
            " in DVC's temporary copy (dvc exp run --temp or --queue), deleted with it: this "
            "run cannot be resumed; run it in the workspace (dvc exp run without --temp) to "
            "resume after an interruption"
        )
    return (
        f" (kept in {slot}); run the same command again to resume: ganops train, dvc repro, "
        "or dvc exp run with the same -S values"
    )
