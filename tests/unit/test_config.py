from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ganops.cli import app
from ganops.config import SECTIONS, Params, TrainConfig, params_from_dict, to_flat_dict
from ganops.errors import ConfigError
from ganops.params_file import load_params

ROOT = Path(__file__).resolve().parents[2]


def _committed_params_yaml() -> str | None:
    """params.yaml as committed at HEAD, or None outside a git checkout."""
    try:
        shown = subprocess.run(
            ["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return shown.stdout if shown.returncode == 0 else None


def _params_yaml_problem(text: str) -> str | None:
    raw = yaml.safe_load(text)
    for name, cls in SECTIONS.items():
        missing = {f.name for f in dataclasses.fields(cls)} ^ set(raw.get(name) or {})
        if missing:
            return f"{name}: keys {sorted(missing)} differ from config.py's"
    try:
        params_from_dict(raw)
    except ConfigError as error:
        return str(error)
    return None


def test_repo_params_yaml_lists_every_key_with_a_valid_value() -> None:
    """The committed params.yaml (or, while it is being edited, the workspace's) lists every
    key config.py knows, each valid. Not only the workspace copy: `dvc exp run -S` writes its
    values there (even invalid ones, after a failed run), and the suite must not fail for that."""
    copies = {"workspace": (ROOT / "params.yaml").read_text(encoding="utf-8")}
    committed = _committed_params_yaml()
    if committed is not None:
        copies["HEAD"] = committed
    problems = {where: _params_yaml_problem(text) for where, text in copies.items()}
    assert None in problems.values(), problems


def test_params_yaml_check_sees_a_bad_value_and_a_missing_key() -> None:
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    assert _params_yaml_problem(text) is None
    assert "epochs" in str(_params_yaml_problem(text.replace("epochs:", "epochs: -7 #", 1)))
    assert "res_blocks" in str(_params_yaml_problem(text.replace("res_blocks:", "# gone:", 1)))


def test_missing_keys_take_defaults_and_lists_become_tuples() -> None:
    params = params_from_dict({"model": {"g_hidden": [8, 16]}, "train": {"lr_g": 1}})
    assert params.model.g_hidden == (8, 16)
    assert params.train.lr_g == 1.0 and isinstance(params.train.lr_g, float)
    assert params.train.batch_size == Params().train.batch_size


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"train": {"lr_g": -0.001}}, "train.lr_g", "> 0.0"),
        ({"train": {"batch_size": 0}}, "train.batch_size", ">= 1"),
        ({"data": {"dataset": "cifar10"}}, "data.dataset", "mnist, fashion-mnist"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "an integer"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "an integer"),
        ({"train": {"ema_decay": 1.0}}, "train.ema_decay", "< 1.0"),
        ({"model": {"g_batchnorm": "yes"}}, "model.g_batchnorm", "true or false"),
        ({"model": {"g_hidden": [64, 0]}}, "model.g_hidden", "positive integers"),
        ({"train": {"lr_d": float("nan")}}, "train.lr_d", "finite"),
        ({"train": {"learning_rate": 0.1}}, "train.learning_rate", "known keys"),
        ({"trian": {"epochs": 1}}, "trian", "sections"),
        ({"model": {"leaky_slope": 1.0}}, "model.leaky_slope", "< 1.0"),
        ({"model": {"g_bias": 0}}, "model.g_bias", "true or false"),
        ({"model": {"init": "glorot"}}, "model.init", "keras"),
        ({"model": {"arch": "keras"}}, "model.arch", "keras_conv"),
        ({"train": {"batch_sampling": "shuffle"}}, "train.batch_sampling", "epochs, random"),
        ({"train": {"rmsprop_alpha": 1.0}}, "train.rmsprop_alpha", "< 1.0"),
        ({"train": {"g_resample": "yes"}}, "train.g_resample", "true or false"),
        (
            {"train": {"loss": "hinge", "sigmoid_before_bce": True}},
            "train.sigmoid_before_bce",
            "minimax, non_saturating, feature_matching",
        ),
    ],
)
def test_bad_values_name_the_key_value_and_what_is_allowed(
    raw: dict[str, object], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    message = str(info.value)
    assert key in message and fragment in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  source: [oops\n")  # a flow sequence never closed
    with pytest.raises(ConfigError, match="YAML syntax error") as info:
        load_params(path)
    # What PyYAML was reading and where it started, then what went wrong where.
    assert "while parsing a flow sequence at line 2, column 11: expected ',' or ']'" in str(
        info.value
    )
    assert "at line 3, column 1" in str(info.value) and "\n" not in str(info.value)


def test_flat_dict_has_every_key_once() -> None:
    flat = to_flat_dict(Params())
    expected = sum(len(dataclasses.fields(cls)) for cls in SECTIONS.values())
    assert len(flat) == expected
    assert flat["train.lr_g"] == 2e-4 and flat["model.g_hidden"] == [256, 512, 1024]


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Params().train.epochs = 3  # type: ignore[misc]


def test_docs_params_table_is_the_generated_reference() -> None:
    from ganops.config import params_reference, params_reference_markdown

    page = (ROOT / "docs" / "params.md").read_text(encoding="utf-8")
    start = page.index("<!-- params-reference -->\n") + len("<!-- params-reference -->\n")
    table = page[start : page.index("<!-- /params-reference -->")]
    assert table == params_reference_markdown(), "docs/params.md is stale: paste `ganops params`"
    keys = [row["key"] for row in params_reference()]
    assert keys == list(to_flat_dict(params_from_dict({})))


def test_registered_model_name_is_checked_before_any_training() -> None:
    with pytest.raises(ConfigError, match=r"tracking\.registered_model: 'team/gan'"):
        params_from_dict({"tracking": {"registered_model": "team/gan"}})
    assert params_from_dict({"tracking": {"registered_model": ""}}).tracking.registered_model == ""


def test_exponent_without_a_dot_is_a_float_although_yaml_reads_a_string(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr_g: 5e-5\n  lr_d: 1E-4\n", encoding="utf-8")
    assert yaml.safe_load(path.read_text())["train"]["lr_g"] == "5e-5"  # the YAML 1.1 quirk
    params = load_params(path)
    assert params.train.lr_g == 5e-5 and params.train.lr_d == 1e-4
    with pytest.raises(ConfigError, match=r"train\.lr_g: 'fast'; expected a number"):
        params_from_dict({"train": {"lr_g": "fast"}})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # 9 x 9 x 9 aliases: a "billion laughs" file, refused before any expansion
        (
            'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
            "c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
            "no YAML aliases",
        ),
        ("train:\n  g: " + "[" * 500 + "]" * 500 + "\n", "levels of nesting"),
        ("train:\n  epochs: 3\n  epochs: 4\n", "a second 'epochs'"),
        ("train:\n  epochs: 3\ntrain:\n  epochs: 4\n", "a second 'train'"),
    ],
)
def test_params_files_that_mislead_or_exhaust_yaml_are_one_error(
    text: str, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_params_file_not_utf8_or_too_large_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  epochs: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_params(path)
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError, match="file too large"):
        load_params(path)


def test_params_that_validate_can_run_batchnorm_needs_two_images() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size: 1; expected at least 2"):
        params_from_dict({"model": {"arch": "tf_dcgan"}, "train": {"batch_size": 1}})
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        params_from_dict(
            {"model": {"arch": "mlp", "g_batchnorm": True}, "train": {"batch_size": 1}}
        )
    assert params_from_dict({"model": {"arch": "mlp"}, "train": {"batch_size": 1}})
    assert params_from_dict({"model": {"arch": "keras_conv"}, "train": {"batch_size": 1}})
    with pytest.raises(ConfigError, match=r"evaluate\.num_samples"):
        params_from_dict({"evaluate": {"num_samples": 3}})


def test_a_bad_value_names_what_differs_from_the_committed_params(tmp_path: Path) -> None:
    """After `dvc exp run -S train.epochs=-1` fails, the workspace keeps the bad value: the
    error says which values differ from git HEAD and how to restore them."""
    from ganops.params_file import uncommitted_changes

    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 30\n  seed: 42\n", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "params.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "p"], cwd=tmp_path, check=True)
    assert uncommitted_changes(path) == []
    path.write_text("train:\n  epochs: -1\n  seed: 42\n", encoding="utf-8")
    assert uncommitted_changes(path) == ["train.epochs 30 -> -1"]
    assert uncommitted_changes(tmp_path / "elsewhere" / "params.yaml") == []


@pytest.mark.parametrize(
    ("raw", "suggestion"),
    [
        ({"train": {"epoch": 3}}, "did you mean 'epochs'?"),
        ({"trian": {}}, "did you mean 'train'?"),
        ({"train": {"loss": "hinj"}}, "did you mean 'hinge'?"),
        ({"model": {"arch": "tf-dcgan"}}, "did you mean 'tf_dcgan'?"),
    ],
)
def test_a_typo_suggests_the_close_name(raw: dict[str, Any], suggestion: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(suggestion)):
        params_from_dict(raw)


def test_nothing_close_suggests_nothing() -> None:
    with pytest.raises(ConfigError) as caught:
        params_from_dict({"train": {"xyz": 1}})
    assert "did you mean" not in str(caught.value)


def test_every_integer_param_has_an_upper_bound() -> None:
    """Sizes, counts and seeds: each bounded in its schema entry, so a typo is one error
    at load time, not an allocator traceback (or a seed overflow after the Inception pass)."""
    from ganops.config import _HINTS

    unbounded = [
        f"{name}.{spec.name}"
        for name, cls in SECTIONS.items()
        for spec in dataclasses.fields(cls)
        if _HINTS[cls][spec.name] is not bool
        and _HINTS[cls][spec.name] in (int, tuple[int, ...])
        and spec.metadata["le"] is None
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    ("section", "key", "too_big", "largest"),
    [
        ("train", "seed", 2**64, 2**32 - 1),
        ("classifier", "seed", 2**32, 2**32 - 1),
        ("evaluate", "seed", 2**64, 2**32 - 1),
        ("model", "latent_dim", 10**10, 4096),
        ("model", "dcgan_channels", 10**6, 1024),
        ("model", "res_channels", 1025, 1024),
        ("train", "grid_size", 10**9, 1024),
        ("train", "batch_size", 65537, 65536),
        ("classifier", "batch_size", 10**9, 65536),
        ("train", "epochs", 10**12, 100_000),
        ("evaluate", "num_samples", 10**8, 100_000),
        ("evaluate", "batch_size", 10**6, 1024),
    ],
)
def test_absurd_sizes_and_seeds_are_refused_at_load(
    section: str, key: str, too_big: int, largest: int
) -> None:
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: {too_big}; expected a value <= "):
        params_from_dict({section: {key: too_big}})
    assert getattr(getattr(params_from_dict({section: {key: largest}}), section), key) == largest


def test_hidden_widths_are_bounded_item_by_item_and_in_number() -> None:
    with pytest.raises(ConfigError, match=r"model\.g_hidden: \[64, 1000000000\]; .* <= 8192"):
        params_from_dict({"model": {"g_hidden": [64, 10**9]}})
    with pytest.raises(ConfigError, match=r"model\.d_hidden: .*at most 16 items"):
        params_from_dict({"model": {"d_hidden": [8] * 17}})
    assert params_from_dict({"model": {"g_hidden": [8192] * 16}}).model.g_hidden == (8192,) * 16


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("? [a, b]\n: 1\n", "line 1: a list"),
        ("? [a, b] : 1\n", "line 1: a mapping"),  # one line: the key is {[a, b]: 1}
        ("1: x\n", "line 1: 1 (read as int)"),
        ("null: x\n", "line 1: null (read as NoneType)"),
        ("{a: 1}: 2\n", "line 1: a mapping"),
        ("train:\n  seed: 1\n  ? [a, b]\n  : 1\n", "line 3: a list"),
        ("train:\n  1: x\n", "line 2: 1 (read as int)"),
        ("train:\n  null: x\n", "line 2: null (read as NoneType)"),
        ("train:\n  {a: 1}: 2\n", "line 2: a mapping"),
        ("train:\n  on: 1\n", "line 2: on (read as bool)"),  # YAML 1.1's true
    ],
)
def test_yaml_keys_that_are_not_names_are_one_error_naming_the_line(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert str(info.value).startswith(f"params: non-string key for {path}: '{where}'; expected")
    assert "\n" not in str(info.value) and "quote" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({1: {}, "bogus": {}}, "params.yaml"),
        ({None: 1}, "params.yaml"),
        ({"train": {2: 1}}, "train"),
    ],
)
def test_non_string_keys_of_a_parsed_mapping_are_one_error(raw: Any, where: str) -> None:
    with pytest.raises(ConfigError, match=rf"non-string key for {where}: "):
        params_from_dict(raw)


def test_the_schema_s_roles_are_what_resume_and_recipes_leave_out() -> None:
    """One fact, one place: a train.* key the schema marks operational may change across a
    resume (it is not in the checkpoint's identity) and a recipe leaves it, as it does the
    per-run seed; every other key is part of both."""
    from ganops.checkpoints import training_shape
    from ganops.config import ROLE_OPERATIONAL, ROLE_PER_RUN, _spec
    from ganops.recipes import OPERATIONAL_KEYS

    identity = training_shape(Params(), "data")["train"]
    for spec in dataclasses.fields(TrainConfig):
        role = spec.metadata["role"]
        assert (spec.name not in identity) == (role == ROLE_OPERATIONAL), spec.name
        assert (f"train.{spec.name}" in OPERATIONAL_KEYS) == (
            role in (ROLE_OPERATIONAL, ROLE_PER_RUN)
        ), spec.name
    assert {"device", "snapshots"} <= {s.name for s in dataclasses.fields(TrainConfig)} - set(
        identity
    )
    with pytest.raises(ValueError, match="role 'sometimes'"):
        _spec(1, "a key", role="sometimes")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("every_epochs", "train.score_every"),
        ("epoch_samples", "train.score_samples"),
        ("generator", "train.keep"),
    ],
)
def test_a_moved_scoring_key_names_its_new_place(old: str, new: str, tmp_path: Path) -> None:
    """The in-training scoring keys moved from evaluate to train: the old name is one error
    naming the new key, from a file and from the CLI alike, and the new key is accepted."""
    with pytest.raises(ConfigError, match=rf"moved key for evaluate\.{old}: .*new name {new}"):
        params_from_dict({"evaluate": {old: 1 if old != "generator" else "best"}})
    path = tmp_path / "params.yaml"
    path.write_text(f"evaluate:\n  {old}: 2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "-p", str(path)])
    assert result.exit_code == 2 and f"new name {new}" in result.output
    assert "Traceback" not in result.output
    section, key = new.split(".")
    value = "best" if key == "keep" else 5
    assert getattr(params_from_dict({section: {key: value}}).train, key) == value
