"""Stage ``prepare``: decode IDX, normalize to [-1, 1], save train/test tensors."""

from __future__ import annotations

from pathlib import Path

from ganops import outputs
from ganops.config import DataConfig
from ganops.datasets import SPLITS
from ganops.errors import DataError
from ganops.files import MAX_JSON_BYTES, file_sha256, parse_json, save_torch, write_json
from ganops.idx_files import load_split
from ganops.stages.download import MANIFEST


def read_manifest(raw_dir: Path, dataset: str) -> dict[str, object]:
    """``download``'s manifest; missing, unreadable or incomplete: one ``DataError``."""
    path = raw_dir / MANIFEST
    try:
        with path.open("rb") as stream:  # bounded: parse_json refuses what is longer
            text = stream.read(MAX_JSON_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path}: missing or unreadable ({type(error).__name__}); run `ganops download` first"
        ) from None
    try:
        manifest = parse_json(text, str(path))
    except DataError as error:  # nested too deeply, integers too long, not JSON
        raise DataError(f"{error}; run `ganops download` again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str):
        raise DataError(f"{path}: incomplete; run `ganops download` again")
    if manifest.get("dataset") != dataset:
        raise DataError(
            f"{raw_dir} holds {manifest.get('dataset')!r} but data.dataset is "
            f"{dataset!r}; run `ganops download` again"
        )
    return dict(manifest)


def run(cfg: DataConfig, raw_dir: Path, *, out_dir: Path) -> dict[str, object]:
    """Write ``<out_dir>/{train,test}.pt`` (images float32 in [-1,1], labels int64) and meta."""
    manifest = read_manifest(raw_dir, cfg.dataset)
    meta: dict[str, object] = {"dataset": cfg.dataset, "dataset_sha256": manifest["sha256"]}
    for split, limit in zip(SPLITS, (cfg.train_subset, cfg.test_subset), strict=True):
        images, labels = load_split(raw_dir, cfg.dataset, split=split, limit=limit)
        path = out_dir / outputs.PREPARED[split]
        # Contiguous, plain tensors so torch.load(weights_only=True, mmap=True) maps them.
        save_torch({"images": images.contiguous(), "labels": labels.contiguous()}, path)
        meta[f"{split}_count"] = len(images)
        meta[f"{split}_file_sha256"] = file_sha256(path)  # checked on load
        print(
            f"prepared {split}: {tuple(images.shape)} in [{images.min():.0f}, "
            f"{images.max():.0f}] -> {path}"
        )
    write_json(meta, out_dir / outputs.META)
    return meta
