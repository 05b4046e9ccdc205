"""The interrupted run's checkpoint, kept where DVC does not restore over it.

``dvc exp run`` checks out every stage's outputs recorded in ``dvc.lock`` (forced) before it
runs anything, so an interrupted run's ``models/checkpoint.pt`` is replaced by the last
finished run's and the same ``dvc exp run`` again would start over; ``dvc repro`` does not
check out. So each checkpoint is written first to a *slot*,
``RESUME_DIR/<key>/checkpoint.pt`` (default ``.ganops/resume``, ignored by git through its
own ``.gitignore``, outside every DVC output), and then hard-linked (copied across file
systems) to ``models/checkpoint.pt``. The key hashes what must match for a resume: the
checkpoint's training shape (model, trajectory params, data) and the models folder, so
another experiment's checkpoint is never found for this one. On start the slot's checkpoint
(and best generator) is put back into ``models/``; the finished run and ``--fresh`` remove
the slot. In a ``dvc exp run --temp``/``--queue`` copy the slot goes with the copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ganops import outputs
from ganops.checkpoints import load_resumable, training_shape
from ganops.config import Params
from ganops.files import atomic_path, remove_stale_temps

DEFAULT_RESUME_DIR = Path(".ganops/resume")
# Where DVC makes the working copy of an experiment run with --temp or from a queue.
_DVC_TEMP_PARTS = (".dvc", "tmp", "exps")


def slot_for(resume_dir: Path, params: Params, *, data_id: str, models_dir: Path) -> Path:
    """The folder keeping the interrupted checkpoint of this config training into
    ``models_dir``."""
    identity = {"shape": training_shape(params, data_id), "models": str(models_dir.resolve())}
    text = json.dumps(identity, sort_keys=True, default=str)
    return resume_dir / hashlib.sha256(text.encode()).hexdigest()[:16]


def in_dvc_temp_copy(cwd: Path | None = None) -> bool:
    """Whether this runs in DVC's temporary copy of the project (``dvc exp run --temp``,
    ``--queue``): deleted when the experiment ends, so nothing kept there can be resumed."""
    parts = (cwd or Path.cwd()).resolve().parts
    width = len(_DVC_TEMP_PARTS)
    return any(parts[i : i + width] == _DVC_TEMP_PARTS for i in range(len(parts) - width + 1))


def put_back(slot: Path, models_dir: Path) -> bool:
    """Make ``models_dir`` hold the slot's checkpoint and best generator (none if the slot
    has none) unless it already does; True if it changed anything."""
    kept, checkpoint = slot / outputs.CHECKPOINT, models_dir / outputs.CHECKPOINT
    remove_stale_temps(slot)  # writes cut short by kill -9
    if not kept.is_file() or _same_file(kept, checkpoint):
        return False
    best = slot / outputs.BEST_GENERATOR
    if best.is_file():
        _link(best, models_dir / outputs.BEST_GENERATOR)
    else:  # e.g. the last finished run's, checked out by DVC: not this run's best
        (models_dir / outputs.BEST_GENERATOR).unlink(missing_ok=True)
    _link(kept, checkpoint)
    return True


def load_kept(slot: Path, params: Params, *, data_id: str) -> dict[str, Any] | None:
    """The slot's interrupted checkpoint as ``load_resumable`` reads it (None: no slot)."""
    kept = slot / outputs.CHECKPOINT
    return load_resumable(kept, params, data_id=data_id) if kept.is_file() else None


def link_out(slot: Path, models_dir: Path) -> None:
    """After the slot's checkpoint is written: link it into ``models_dir``, and keep the
    best generator so far in the slot (DVC would restore another run's over it)."""
    best = models_dir / outputs.BEST_GENERATOR
    if best.is_file() and not _same_file(best, slot / outputs.BEST_GENERATOR):
        _link(best, slot / outputs.BEST_GENERATOR)
    _link(slot / outputs.CHECKPOINT, models_dir / outputs.CHECKPOINT)


def ignore_in_git(resume_dir: Path) -> None:
    """A ``.gitignore`` of ``*`` in ``resume_dir``: git (and so ``dvc exp run``, which
    commits the workspace) leaves the kept checkpoints out."""
    marker = resume_dir / ".gitignore"
    if not marker.exists():
        resume_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text("# ganops: interrupted runs' checkpoints (ganops train --help)\n*\n")


def discard(slot: Path) -> None:
    shutil.rmtree(slot, ignore_errors=True)


def others_note(slot: Path) -> str | None:
    """A line on the other slots beside ``slot`` (other configs' interrupted runs, kept until
    they are resumed and finish), or None when there are none."""
    kept = [path / outputs.CHECKPOINT for path in _subfolders(slot.parent) if path != slot]
    kept = [path for path in kept if path.is_file()]
    if not kept:
        return None
    size = sum(path.stat().st_size for path in kept) / 1e6
    return (
        f"note: {len(kept)} interrupted run(s) of other configs kept in {slot.parent} "
        f"({size:.0f} MB); each resumes when trained again with its params; delete its "
        "folder to drop it"
    )


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(path for path in folder.iterdir() if path.is_dir())
    except OSError:
        return []


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _link(source: Path, final: Path) -> None:
    """``final`` becomes ``source`` atomically: a hard link (no copy, no extra space), or a
    copy where hard links cannot be made. Both are only ever replaced, never written in
    place, so one never changes the other."""
    with atomic_path(final) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(source, tmp)
