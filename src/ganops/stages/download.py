"""Stage ``download``: fetch the four IDX files and verify them."""

from __future__ import annotations

from pathlib import Path

from ganops.config import DataConfig
from ganops.data import DATASETS, dataset_checksum, download
from ganops.files import write_json
from ganops.progress import Progress

MANIFEST = "manifest.json"


def run(cfg: DataConfig, out_dir: Path) -> dict[str, object]:
    """Download ``cfg.dataset`` from ``cfg.source`` into ``out_dir``; write its manifest."""
    with Progress(total=0, desc=f"download {cfg.dataset}", unit="B", interval=5.0) as bar:
        files = download(cfg.source, cfg.dataset, out_dir, on_bytes=bar.update)
    manifest: dict[str, object] = {
        "dataset": cfg.dataset,
        "sha256": dataset_checksum(files),
        "files": files,
    }
    write_json(manifest, out_dir / MANIFEST)
    print(
        f"downloaded and verified {len(DATASETS[cfg.dataset].sha256)} files of {cfg.dataset} "
        f"into {out_dir}"
    )
    return manifest
