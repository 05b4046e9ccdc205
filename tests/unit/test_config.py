from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ganops.config import SECTIONS, Params, load_params, params_from_dict, to_flat_dict
from ganops.errors import ConfigError

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
    from ganops.config import uncommitted_changes

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
