"""``train.snapshots``: every checkpoint's generator kept, with its step, epoch and seconds."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ganops import outputs
from ganops.config import params_from_dict
from ganops.generator_file import load_generator
from ganops.stages.train_files import checkpoint_writer, resume_or_start, snapshot_rows
from ganops.training.loop import Hooks
from ganops.training.run import TrainData, new_gan, train

PARAMS = params_from_dict(
    {
        "model": {"arch": "mlp", "latent_dim": 8, "g_hidden": [16], "d_hidden": [16]},
        "train": {"epochs": 2, "batch_size": 10, "ema_decay": 0.9, "checkpoint_every": 3},
    }
)
DATA_ID = "0" * 64


def _data(count: int = 40) -> TrainData:
    images = torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return TrainData(images, torch.arange(count) % 10, "mnist", DATA_ID)


def _train_with_snapshots(models: Path) -> torch.nn.Module:
    device = torch.device("cpu")
    gan, _ = new_gan(PARAMS, device)
    clock = iter(range(100))
    write = checkpoint_writer(
        gan,
        PARAMS,
        data_id=DATA_ID,
        path=models / outputs.CHECKPOINT,
        run_ref={},
        main=True,
        seconds=lambda: float(next(clock)),
        snapshots=models / outputs.SNAPSHOTS,
    )
    result = train(
        PARAMS, _data(), gan=gan, hooks=Hooks(on_checkpoint=write), device=device, progress=False
    )
    write(result.state, complete=True)  # as the train stage ends: the last step too
    return result.gan.sampler


def test_each_checkpoint_keeps_its_generator_and_a_row(tmp_path: Path) -> None:
    sampler = _train_with_snapshots(tmp_path)
    directory = tmp_path / outputs.SNAPSHOTS
    with (directory / outputs.SNAPSHOTS_CSV).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # 8 steps, a checkpoint every 3 and at the end: steps 3, 6 and 8, each once.
    assert [int(row["step"]) for row in rows] == [3, 6, 8]
    assert [int(row["epoch"]) for row in rows] == [1, 2, 2]
    seconds = [float(row["seconds"]) for row in rows]
    assert seconds == sorted(seconds) and len(set(seconds)) == 3
    last, _ = load_generator(directory / rows[-1]["file"])
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the EMA generator, the one samples and evaluation use
        assert torch.equal(last(z), sampler.eval()(z))
        assert not torch.equal(load_generator(directory / rows[0]["file"])[0](z), last(z))


def test_a_row_without_its_file_or_that_does_not_parse_is_dropped(tmp_path: Path) -> None:
    _train_with_snapshots(tmp_path)
    directory = tmp_path / outputs.SNAPSHOTS
    (directory / "generator-step0000003.pt").unlink()
    listing = directory / outputs.SNAPSHOTS_CSV
    listing.write_text(listing.read_text() + "x,2,1.0,generator-step0000006.pt\n")
    assert [row["step"] for row in snapshot_rows(directory)] == [6, 8]


def test_a_new_run_clears_the_old_runs_snapshots(tmp_path: Path) -> None:
    _train_with_snapshots(tmp_path)
    out = tmp_path / "out"
    resume = resume_or_start(
        PARAMS, DATA_ID, models_dir=tmp_path, out_dir=out, fresh=True, main=True
    )
    assert resume is None and not (tmp_path / outputs.SNAPSHOTS).exists()
