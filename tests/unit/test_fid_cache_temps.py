"""A kill -9 during the Inception weights conversion leaves a temporary file in data/fid_cache
(a DVC output); the next run removes it, and no reader ever takes it for the real file."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
from pathlib import Path

import pytest
import torch

from ganops import inception_weights as inception
from ganops.feature_cache import load_real_features, save_real_features
from ganops.files import atomic_path, torch_bytes
from ganops.inception_weights import CONVERTER_VERSION, resolve_inception_weights


def killed_while_writing(final: Path, payload: bytes) -> Path:
    """The temporary file a writer of ``final`` leaves when ``kill -9`` hits it mid-write
    (a forked child, really killed)."""
    child = os.fork()
    if child == 0:
        try:
            with atomic_path(final) as tmp:
                tmp.write_bytes(payload)
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)  # never run the rest of pytest in the child
    os.waitpid(child, 0)
    (left,) = final.parent.glob(f".{final.name}.ganops-{child}-*.tmp")
    return left


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for fid-helper's TorchScript and a converter that writes a small file."""
    source = tmp_path / "default_1.pt"
    source.write_bytes(b"network")

    def convert(source: Path, out: Path) -> Path:
        data = torch_bytes({"w": torch.ones(3)})
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
        out.with_name(out.name + ".sha256").write_text(hashlib.sha256(data).hexdigest())
        return out

    monkeypatch.setattr(inception, "locate_fid_helper_torchscript", lambda: source)
    monkeypatch.setattr(inception, "convert_fid_helper_weights", convert)
    return source


def test_a_killed_conversions_temp_file_is_removed_by_the_next_run(
    fake_wheel: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "fid_cache"
    name = f"inception-fid-helper-{inception.file_digest(fake_wheel)}-v{CONVERTER_VERSION}.pth"
    left = killed_while_writing(cache / name, b"half a network" * 1000)
    other = killed_while_writing(cache / "real_features_64.pt", b"half the features")
    assert left.name.endswith(".tmp") and not (cache / name).exists()
    weights = resolve_inception_weights("", cache)
    assert weights == cache / name
    assert sorted(p.name for p in cache.iterdir()) == [name, name + ".sha256"]
    assert not left.exists() and not other.exists()


def test_configured_weights_still_clear_the_cache_dir(fake_wheel: Path, tmp_path: Path) -> None:
    cache = tmp_path / "fid_cache"
    left = killed_while_writing(cache / "inception-x.pth", b"x")
    weights = tmp_path / "weights.pth"
    torch.save({"w": torch.ones(1)}, weights)
    assert resolve_inception_weights(str(weights), cache) == weights
    assert not left.exists()


def test_a_live_runs_temp_file_is_kept(fake_wheel: Path, tmp_path: Path) -> None:
    """Another evaluate converting into the same cache at this moment: not stale."""
    cache = tmp_path / "fid_cache"
    cache.mkdir()
    live = cache / f".inception-x.pth.ganops-{os.getppid()}-abc123.tmp"
    live.write_bytes(b"being written")
    resolve_inception_weights("", cache)
    assert live.exists()


def test_the_feature_cache_never_reads_a_leftover_temp_file(tmp_path: Path) -> None:
    """Only the final name is read: a planted pickle in a temp's name never runs."""
    cache = tmp_path / "real_features_8.pt"
    marker = tmp_path / "pwned"

    class RunsCodeOnLoad:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    planted = killed_while_writing(cache, pickle.dumps({"features": RunsCodeOnLoad()}))
    assert load_real_features(cache, "key", 8) is None  # no cache: recompute
    save_real_features(cache, "key", torch.zeros(8, 2048))
    assert load_real_features(cache, "key", 8) is not None
    assert not planted.exists() and not marker.exists()
