"""Property-based tests (hypothesis): any params.yaml and any IDX bytes either work or give
the one-line user error with exit code 2, never a traceback."""

from __future__ import annotations

import dataclasses
import gzip
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ganops.cli import app
from ganops.config import SECTIONS, Params, params_from_dict
from ganops.errors import ConfigError, DataError
from ganops.idx_files import read_idx
from ganops.params_file import load_params

KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.integers(-(2**70), 2**70),  # seeds past 2**64, sizes that no allocator can serve
    st.sampled_from([4096, 4097, 2**32 - 1, 2**32, 2**63, 2**64, 10**10]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["5e-5", "1e3", "auto", "cpu", "cuda", "mlp", "dcgan", "hinge", ".inf"]),
    st.lists(st.integers(-3, 3000), max_size=4),
    st.lists(st.sampled_from([1, 64, 8192, 8193, 10**10]), min_size=1, max_size=20),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)

# Mapping keys YAML can produce besides names: `1:`, `null:`, `on:` (true), `1.5:`.
odd_keys = st.one_of(st.integers(-3, 3), st.none(), st.booleans(), st.floats(allow_nan=False))


@st.composite
def raw_params(draw: st.DrawFn) -> Any:
    """Mostly the defaults with a few keys (or sections) replaced by arbitrary values."""
    if draw(st.integers(0, 9)) == 0:  # sometimes not even a mapping
        return draw(values)
    raw: dict[Any, Any] = {}
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from([*KEYS, "bogus"]))
        if draw(st.integers(0, 9)) == 0:
            raw[section] = draw(values)
            continue
        key = draw(st.sampled_from([*KEYS.get(section, []), "bogus_key"]))
        body = raw.setdefault(section, {})
        if isinstance(body, dict):
            body[key] = draw(values)
            if draw(st.integers(0, 19)) == 0:  # a key that is not a name, inside a section
                body[draw(odd_keys)] = draw(values)
    if draw(st.integers(0, 19)) == 0:  # ... or at the top
        raw[draw(odd_keys)] = draw(values)
    return raw


def _within_what_runs(params: Params) -> None:
    """What was accepted can be seeded and allocated: every seed fits numpy's and torch's
    seeding, every size is far below what an allocator refuses."""
    for seed in (params.train.seed, params.classifier.seed, params.evaluate.seed):
        assert 0 <= seed <= 2**32 - 1
    model, train = params.model, params.train
    assert model.latent_dim <= 4096 and max(model.g_hidden + model.d_hidden) <= 8192
    assert len(model.g_hidden) <= 16 and len(model.d_hidden) <= 16
    assert max(model.dcgan_channels, model.res_channels) <= 1024 and model.res_blocks <= 16
    assert train.batch_size <= 65536 and params.classifier.batch_size <= 65536
    assert train.grid_size <= 1024 and params.evaluate.batch_size <= 1024
    assert max(params.evaluate.num_samples, params.train.score_samples) <= 100_000


@settings(max_examples=400, deadline=None)
@given(raw_params())
@example({"evaluate": {"seed": 2**64}})  # was accepted, then torch.manual_seed overflowed
@example({"train": {"seed": 2**32}})  # past numpy's seeding
@example({"model": {"latent_dim": 10**10}})  # was accepted: an allocator traceback
@example({"train": {"grid_size": 10**9}})
@example({"model": {"g_hidden": [64, 10**9]}})
@example({1: {}, "bogus": {}})  # was a TypeError: sorted() of an int and a str
@example({None: 1})
@example({"train": {True: 1, "bogus": 2}})  # YAML 1.1 reads `on:` as true
@example({"train": {1: 1, "seed": 2}})
def test_any_params_mapping_is_accepted_or_one_config_error(raw: Any) -> None:
    try:
        params = params_from_dict(raw)
    except ConfigError as error:
        assert "\n" not in str(error) and str(error).startswith("params: ")
        return
    assert isinstance(params, Params)
    # What was accepted is usable: positive sizes, finite learning rates.
    assert params.train.batch_size >= 1 and params.train.epochs >= 1
    assert math.isfinite(params.train.lr_g) and params.train.lr_g > 0
    _within_what_runs(params)


# YAML mapping keys that are not names: complex keys (unhashable in Python) and scalars
# YAML reads as another type; at the top and inside a section.
ODD_KEY_LINES = ["? [a, b]\n: 1", "? [a, b] : 1", "1: x", "null: x", "~: x", "{a: 1}: 2",
                 "? {a: 1}\n: 2", "on: 1", "1.5: x", "2020-01-01: x", "[1, 2]: 3"]  # fmt: skip


@st.composite
def params_text_with_odd_keys(draw: st.DrawFn) -> str:
    """A params.yaml of a real key and one key YAML does not read as a string, at the top
    or inside a section, before or after the real one."""
    odd = draw(st.sampled_from(ODD_KEY_LINES)).split("\n")
    section = draw(st.sampled_from([*KEYS]))
    real = f"{draw(st.sampled_from(KEYS[section]))}: {draw(st.sampled_from(['1', 'auto', 'x']))}"
    odd_first = draw(st.booleans())
    if draw(st.booleans()):  # inside the section
        body = [*odd, real] if odd_first else [real, *odd]
        return "\n".join([f"{section}:", *("  " + line for line in body)]) + "\n"
    block = [f"{section}:", "  " + real]
    return "\n".join([*odd, *block] if odd_first else [*block, *odd]) + "\n"


@settings(max_examples=100, deadline=None)
@given(params_text_with_odd_keys())
@example("? [a, b]\n: 1\n")  # was a TypeError (unhashable list) from the duplicate-key check
@example("{a: 1}: 2\n")  # unhashable dict
@example("train:\n  ? [a, b]\n  : 1\n")
@example("1: x\nnull: y\n")  # was a TypeError: sorted() of an int and None
@example("train:\n  1: x\n  null: y\n")
def test_non_string_yaml_keys_are_one_config_error_naming_the_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_params(path)
        except ConfigError as error:
            message = str(error)
            assert "\n" not in message and message.startswith(f"params: non-string key for {path}")
            assert "line " in message
            return
    raise AssertionError(f"accepted a params file with a non-string key: {text!r}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_params_file_text_is_accepted_or_one_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_params(path)
        except ConfigError as error:
            assert "\n" not in str(error)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw_params())
def test_the_cli_turns_any_params_into_exit_2_with_one_line(tmp_path: Path, raw: Any) -> None:
    """Through `ganops train`: bad params, or (when they are valid) the missing prepared data."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["train", "--params", str(path), "--data", str(tmp_path / "none"), "--models",
         str(tmp_path / "models"), "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@st.composite
def idx_bytes(draw: st.DrawFn) -> bytes:
    """An IDX file, valid or damaged: random magic, dims and payload length."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    magic = bytes([0, 0, draw(st.sampled_from([0x08, 0x08, 0x09, 0x0D])), 0])
    dims = draw(st.lists(st.integers(0, 12), min_size=0, max_size=4))
    magic = magic[:3] + bytes([draw(st.sampled_from([len(dims), len(dims), 5]))])
    header = magic + b"".join(d.to_bytes(4, "big") for d in dims)
    size = int(np.prod(dims)) if dims else 0
    payload = draw(st.binary(min_size=max(0, size - 2), max_size=size + 2))
    return header + payload


@settings(max_examples=300, deadline=None)
@given(idx_bytes(), st.booleans())
def test_any_idx_bytes_decode_consistently_or_one_data_error(data: bytes, compress: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(data) if compress else data)
        try:
            array = read_idx(path)
        except DataError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
            return
    # Accepted: the header's shape, every byte of the payload, nothing more.
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    assert array.shape == dims and array.dtype == np.uint8
    assert array.tobytes() == data[4 + 4 * ndim :]
