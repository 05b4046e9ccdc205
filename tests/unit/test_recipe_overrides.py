"""`ganops recipe`'s `dvc exp run -S` values: every value goes through DVC's real `-S` code
(dvc.utils.hydra.apply_overrides: Hydra's override grammar, then OmegaConf) and arrives
exactly as it was, or is refused with one error; `-S KEY=VALUE` overrides on `ganops recipe`
are validated first and passed on verbatim."""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from dvc.utils.hydra import apply_overrides
from dvc.utils.serialize import load_yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ganops.cli import app
from ganops.errors import ConfigError
from ganops.params_file import load_params
from ganops.recipes import checked_command, load_recipe, override_value, with_overrides

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-token-value"
AWKWARD = [
    "${",
    "${oc.env:GANOPS_TEST_TOKEN}",
    "http://host/${oc.env:GANOPS_TEST_TOKEN}/",
    "\\${oc.env:GANOPS_TEST_TOKEN}",  # Hydra's escape: kept once, resolved by the next -S run
    "???",
    "$",
    "$HOME",
    "{}",
    "}",
    "'",
    '"',
    "a'b\"c",
    '\\"',
    "\\",
    "a\\b",
    "a\\",
    "a\\\\",
    "C:\\data\\",
    "a,b",
    "translation,cutout",
    "[a,b]",
    "[1]",
    "(x)",
    "{a: 1}",
    "a=b",
    "=",
    ":",
    "file:x=y",
    " ",
    "  two spaces ",
    "tab\there",
    "line\nbreak",
    "é ß ✓ \U0001d538 中文",
    "",
    "1e3",
    "1e-05",
    "1",
    "-1",
    "0x10",
    "1_000",
    "true",
    "True",
    "false",
    "null",
    "NULL",
    "~",
    "nan",
    "inf",
    "-inf",
    ".inf",
    "#comment",
    "a #b",
    "- item",
    "%",
    "*alias",
    "&anchor",
    "!tag",
    "range(1,3)",
    "choice(a,b)",
    "str(1)",
]


def _through_dvc(value_text: str) -> Any:
    """The value of ``data.source`` after DVC's own `-S data.source=VALUE_TEXT` on a small
    params.yaml, read back as DVC reads params (YAML 1.2)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "params.yaml"
        path.write_text("data:\n  source: mirrors\n", encoding="utf-8")
        apply_overrides(path, [f"data.source={value_text}"])
        return load_yaml(path)["data"]["source"]


def _arrives_verbatim_or_is_refused(value: Any) -> None:
    try:
        text = override_value(value, key="data.source")
    except ConfigError as error:  # refused: only what OmegaConf would resolve or drop
        assert "${" in str(value) or "\x85" in str(value) or value == "???", value
        message = str(error)
        assert "data.source" in message and repr(value) in message and SECRET not in message
        return
    arrived = _through_dvc(text)
    assert type(arrived) is type(value) and arrived == value, (value, text, arrived)


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment secret that a resolved ${oc.env:...} would copy into params.yaml."""
    monkeypatch.setenv("GANOPS_TEST_TOKEN", SECRET)


def test_dvc_resolves_env_interpolations_even_inside_quotes() -> None:
    """Why ${ is refused: DVC's -S copies the environment into params.yaml through a quoted
    value, and through Hydra's \\${ escape on the next -S run (any -S run re-resolves all)."""
    assert _through_dvc('"http://host/${oc.env:GANOPS_TEST_TOKEN}/"') == f"http://host/{SECRET}/"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "params.yaml"
        path.write_text("data:\n  source: mirrors\n  train_subset: 0\n", encoding="utf-8")
        apply_overrides(path, ['data.source="\\${oc.env:GANOPS_TEST_TOKEN}"'])
        assert load_yaml(path)["data"]["source"] == "${oc.env:GANOPS_TEST_TOKEN}"
        apply_overrides(path, ["data.train_subset=5"])  # an unrelated later -S
        assert load_yaml(path)["data"]["source"] == SECRET


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_strings_arrive_verbatim_or_are_refused(value: str) -> None:
    _arrives_verbatim_or_is_refused(value)


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -7,
        10**12,
        0.0,
        -0.0,
        0.1,
        1e-05,
        1e-08,
        2.5e16,
        1e300,
        math.inf,
        -math.inf,
        True,
        False,
        [256, 512],
        [1],
        ["a,b"],
        ["x y", "[z]", "'"],
    ],
)
def test_numbers_bools_and_lists_arrive_with_their_type(value: Any) -> None:
    _arrives_verbatim_or_is_refused(value)


def test_nan_arrives_as_nan() -> None:
    arrived = _through_dvc(override_value(math.nan))
    assert isinstance(arrived, float) and math.isnan(arrived)


def test_a_string_in_a_list_with_an_interpolation_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"model\.g_hidden"):
        override_value(["ok", "${oc.env:GANOPS_TEST_TOKEN}"], key="model.g_hidden")


AWKWARD_CHARS = st.sampled_from(list("\\\"'${}[](),=:~+@ \t\n?#%*!&|>-.0123456789eEnN"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.one_of(AWKWARD_CHARS, st.characters()), max_size=16))
@example("\x85")  # found locally: YAML folded NEL into a space; now refused
def test_any_text_arrives_verbatim_or_is_refused(value: str) -> None:
    _arrives_verbatim_or_is_refused(value)


def _recipe_dir(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "recipes"
    directory.mkdir(exist_ok=True)
    (directory / "mine.yaml").write_text(text, encoding="utf-8")
    return directory


def test_a_recipe_with_an_interpolation_is_one_error_naming_file_key_and_value(
    tmp_path: Path,
) -> None:
    text = 'data:\n  source: "http://host/${oc.env:GANOPS_TEST_TOKEN}/"\n'
    base = load_params(ROOT / "params.yaml")
    with pytest.raises(ConfigError) as error:
        load_recipe("mine", _recipe_dir(tmp_path, text), base=base)
    message = str(error.value)
    assert "mine.yaml" in message and "data.source" in message
    assert "http://host/${oc.env:GANOPS_TEST_TOKEN}/" in message and SECRET not in message


def _invoke(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *extra: str,
    params: Path = ROOT / "params.yaml",
) -> tuple[Any, list[list[str]]]:
    """`ganops recipe mine ...` with subprocess.run (the dvc call) recorded, not run."""
    runs: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        runs.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    directory = tmp_path / "recipes"
    if not directory.exists():
        _recipe_dir(tmp_path, "train:\n  epochs: 3\n")
    args = ["recipe", "mine", "--dir", str(directory), "--params", str(params), *extra]
    return CliRunner().invoke(app, args), runs


def _one_error_line(result: Any, runs: list[list[str]], *named: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(name in lines[0] for name in named), lines[0]
    assert SECRET not in result.output and runs == []


def test_cli_recipe_with_an_interpolation_exits_2_before_dvc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _recipe_dir(tmp_path, "data:\n  source: ${oc.env:GANOPS_TEST_TOKEN}\n")
    result, runs = _invoke(tmp_path, monkeypatch, "--apply")
    _one_error_line(result, runs, "mine.yaml", "data.source", "${oc.env:GANOPS_TEST_TOKEN}")


def test_params_yaml_with_an_interpolation_is_refused_as_dvc_would_resolve_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dvc exp run -S` rewrites (and resolves) the whole params.yaml, not only the -S keys."""
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    params.write_text(
        text.replace("experiment: ganops", "experiment: run-${oc.env:GANOPS_TEST_TOKEN}"),
        encoding="utf-8",
    )
    result, runs = _invoke(tmp_path, monkeypatch, "--apply", params=params)
    _one_error_line(result, runs, "tracking.experiment", str(params))


def test_a_value_dvc_writes_back_changed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DVC drops params.yaml's quotes around "on" and YAML 1.1 then reads True: refused up
    front (naming the key) rather than failing in the train stage after DVC rewrote it."""
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    params.write_text(text.replace("cuda_graph: auto", 'cuda_graph: "on"'), encoding="utf-8")
    assert load_params(params).train.cuda_graph == "on"
    result, runs = _invoke(tmp_path, monkeypatch, params=params)
    _one_error_line(result, runs, "train.cuda_graph", "'on'", "True")


def _overrides(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-S"]


def test_cli_overrides_follow_the_recipes_and_parse_back_through_dvc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = ["-S", "train.epochs=1", "-S", "evaluate.num_samples=1000"]
    extra += ["-S", 'train.diffaugment="translation,cutout"', "-S", "train.lr_g=5e-5"]
    printed, runs = _invoke(tmp_path, monkeypatch, *extra)
    assert printed.exit_code == 0 and runs == [], printed.output
    tail = "-S train.epochs=1 -S evaluate.num_samples=1000 -S 'train.diffaugment=\"translation,"
    assert "-S train.epochs=3 " in printed.stdout and tail in printed.stdout
    applied, runs = _invoke(tmp_path, monkeypatch, *extra, "--apply")
    assert applied.exit_code == 0 and len(runs) == 1
    command = runs[0]
    assert command[:5] == ["dvc", "exp", "run", "-n", "mine"]
    assert _overrides(command)[-4:] == extra[1::2]  # verbatim, after the recipe's
    copy = tmp_path / "params.yaml"
    copy.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    apply_overrides(copy, _overrides(command))
    got = load_params(copy)
    assert got.train.epochs == 1 and got.evaluate.num_samples == 1000
    assert got.train.diffaugment == "translation,cutout" and got.train.lr_g == 5e-5
    assert got.model.arch == "mlp"  # the recipe's reset of model.* still applies


def test_a_repeated_override_key_takes_the_last(tmp_path: Path) -> None:
    base = load_params(ROOT / "params.yaml")
    recipe = load_recipe("mine", _recipe_dir(tmp_path, "train:\n  epochs: 3\n"), base=base)
    recipe = with_overrides(recipe, ["train.epochs=4", "train.epochs=5"])
    assert recipe.params.train.epochs == 5
    command = checked_command(recipe, ROOT / "params.yaml")  # DVC's parse agrees
    assert _overrides(command)[-2:] == ["train.epochs=4", "train.epochs=5"]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.epoch=1", "did you mean 'epochs'"),
        ("train=1", "train"),  # a section, not a key
        ("trian.epochs=1", "trian.epochs"),
        ("train.epochs=-1", "train.epochs"),  # out of range
        ("train.epochs=3.5", "train.epochs"),  # wrong type
        ("train.loss=wgann", "train.loss"),
        ("train.epochs=", "train.epochs"),  # Hydra reads an empty value as ""
        ("train.epochs=1,2", "train.epochs=1,2"),  # a sweep
        ("train.epochs=range(1,3)", "train.epochs=range(1,3)"),
        ("+train.extra=1", "+train.extra=1"),
        ("~train.epochs", "~train.epochs"),
        ("other.yaml:train.epochs=1", "other.yaml"),  # another params file
        ("train.epochs=[1", "train.epochs=[1"),  # not the grammar
        ("train.epochs", "train.epochs"),
        ("data.source=${oc.env:GANOPS_TEST_TOKEN}", "data.source"),
        ('data.source="x${oc.env:GANOPS_TEST_TOKEN}"', "data.source"),
        ("data.source=???", "data.source"),
    ],
)
def test_a_bad_override_is_one_line_exit_2_before_dvc(
    override: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, runs = _invoke(tmp_path, monkeypatch, "-S", override, "--apply")
    _one_error_line(result, runs, named)


def test_an_override_without_a_recipe_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["recipe", "-S", "train.epochs=1"])
    assert result.exit_code == 2 and "needs a recipe NAME" in result.stderr
