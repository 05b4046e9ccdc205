"""recipes/: every tutorial recipe validates, its `dvc exp run -S` command sets exactly its
params, and it trains a few steps on the CPU; bad recipes are one clear error."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from dvc.utils.hydra import apply_overrides
from typer.testing import CliRunner

from ganops.cli import app
from ganops.config import Params, to_flat_dict
from ganops.errors import ConfigError, UsageError
from ganops.params_file import load_params
from ganops.recipes import (
    OPERATIONAL_KEYS,
    checked_command,
    dvc_command,
    load_recipe,
    override_value,
    recipe_names,
)
from ganops.training.run import TrainData, train

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
TUTORIALS = (
    "keras-mlp",
    "keras-conv-maths",
    "keras-mlp-rmsprop",
    "pytorch-mlp",
    "training-algorithm",
)


@pytest.fixture(scope="module")
def base() -> Params:
    return load_params(ROOT / "params.yaml")


def _overrides(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-S"]


def test_the_five_tutorials_and_the_default_are_there() -> None:
    assert set(recipe_names(RECIPES)) == {*TUTORIALS, "ganops-default"}
    for name in recipe_names(RECIPES):  # each names its source in its header
        assert "Source:" in (RECIPES / f"{name}.yaml").read_text(encoding="utf-8"), name


@pytest.mark.parametrize("name", [*TUTORIALS, "ganops-default"])
def test_dvc_exp_run_of_a_recipe_sets_exactly_its_params(
    name: str, base: Params, tmp_path: Path
) -> None:
    """The printed command, applied by DVC's own -S parser to a copy of params.yaml, gives
    the recipe's params: every value arrives with its type (lists, bools, 1e-08)."""
    recipe = load_recipe(name, RECIPES, base=base)
    command = dvc_command(recipe)
    assert command[:5] == ["dvc", "exp", "run", "-n", name]
    assert checked_command(recipe, ROOT / "params.yaml") == command  # the CLI's own check
    copy = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", copy)
    apply_overrides(copy, _overrides(command))
    assert load_params(copy) == recipe.params


def test_the_default_recipe_is_params_yaml(base: Params) -> None:
    recipe = load_recipe("ganops-default", RECIPES, base=base)
    assert recipe.changes == {}, "recipes/ganops-default.yaml and params.yaml differ"


def test_a_recipe_starts_from_config_defaults_not_params_yaml(base: Params) -> None:
    """params.yaml's EMA (not in the PyTorch tutorial) is off; its operational keys stay."""
    shifted = dataclasses.replace(
        base, train=dataclasses.replace(base.train, log_every=7, ema_decay=0.5)
    )
    recipe = load_recipe("pytorch-mlp", RECIPES, base=shifted)
    assert recipe.params.train.ema_decay == 0.0 and recipe.params.train.log_every == 7
    assert "train.log_every" in OPERATIONAL_KEYS and "train.log_every" not in recipe.changes
    assert recipe.params.data == base.data and recipe.params.evaluate == base.evaluate


@pytest.mark.parametrize("name", [*TUTORIALS, "ganops-default"])
def test_each_recipe_trains_a_few_steps_on_the_cpu(name: str, base: Params) -> None:
    """The recipe's networks, loss, optimizer and loop at full width, on 32 random images in
    batches of 8: 4 steps, finite losses, and the generator moved."""
    params = load_recipe(name, RECIPES, base=base).params
    params = dataclasses.replace(
        params,
        train=dataclasses.replace(
            params.train, epochs=1, batch_size=8, log_every=1, grid_size=4, device="cpu"
        ),
    )
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    data = TrainData(images, torch.arange(32) % 10, "mnist", "random")
    torch.manual_seed(0)
    from ganops.training.run import new_gan

    gan = new_gan(params, torch.device("cpu"))[0]
    before = [p.detach().clone() for p in gan.generator.parameters()]
    result = train(params, data, gan=gan, device=torch.device("cpu"), progress=False)
    assert result.state.step == 4
    # loss_g is NaN for a reading without a G update (k = 2 at log_every 1); all else finite.
    rows = result.state.history
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if k != "loss_g")
    assert any(math.isfinite(row["loss_g"]) for row in rows)
    assert all(math.isfinite(row["loss_g"]) or math.isnan(row["loss_g"]) for row in rows)
    after = list(result.gan.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def _recipe(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "recipes"
    directory.mkdir(exist_ok=True)
    (directory / "mine.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("model:\n  archh: mlp\n", "model.archh"),
        ("train:\n  lr_g: -1\n", "train.lr_g"),
        ("train:\n  loss: wgan\n  sigmoid_before_bce: true\n", "train.sigmoid_before_bce"),
        ("trian:\n  epochs: 3\n", "trian"),
        ("model: [mlp]\n", "model"),
        ("- model\n", "mine.yaml"),
    ],
)
def test_a_bad_recipe_is_one_error_naming_the_key_and_the_file(
    text: str, named: str, base: Params, tmp_path: Path
) -> None:
    directory = _recipe(tmp_path, text)
    with pytest.raises(ConfigError, match=r"mine\.yaml") as error:
        load_recipe("mine", directory, base=base)
    assert named in str(error.value)


def test_an_unknown_recipe_lists_the_known_ones(base: Params, tmp_path: Path) -> None:
    directory = _recipe(tmp_path, "train:\n  epochs: 3\n")
    with pytest.raises(UsageError, match=r"no recipe 'nope' .*recipes there: mine"):
        load_recipe("nope", directory, base=base)
    with pytest.raises(UsageError, match="no recipe"):
        load_recipe("../params", directory, base=base)  # names are file stems, nothing else


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (True, "true"),
        (1e-08, "1e-08"),
        (256, "256"),
        ([256, 512], "[256,512]"),
        ("non_saturating", "non_saturating"),
        ("translation,cutout", '"translation,cutout"'),  # unquoted, a comma starts a sweep
        ("", '""'),
        ("null", '"null"'),
    ],
)
def test_override_values_are_what_hydra_reads_back(value: object, written: str) -> None:
    assert override_value(value) == written


def test_strings_hydra_would_misread_arrive_as_strings(base: Params, tmp_path: Path) -> None:
    text = "train:\n  diffaugment: translation,cutout\n"
    recipe = load_recipe("mine", _recipe(tmp_path, text), base=base)
    copy = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", copy)
    apply_overrides(copy, _overrides(dvc_command(recipe)))
    assert load_params(copy).train.diffaugment == "translation,cutout"


def test_cli_prints_the_command_and_apply_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _recipe(tmp_path, "train:\n  epochs: 3\n")
    runs: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        runs.append(command)
        return subprocess.CompletedProcess(command, 5)

    monkeypatch.setattr(subprocess, "run", fake_run)
    args = ["recipe", "mine", "--dir", str(directory), "--params", str(ROOT / "params.yaml")]
    printed = CliRunner().invoke(app, args)
    assert printed.exit_code == 0 and runs == []
    assert printed.stdout.startswith("dvc exp run -n mine -S model.arch=mlp")
    assert "-S train.epochs=3" in printed.stdout
    applied = CliRunner().invoke(app, [*args, "--apply"])
    assert applied.exit_code == 5 and runs and runs[0][:5] == ["dvc", "exp", "run", "-n", "mine"]


def test_cli_bad_recipe_is_one_line_and_exit_2(tmp_path: Path) -> None:
    directory = _recipe(tmp_path, "model:\n  archh: mlp\n")
    args = ["recipe", "mine", "--dir", str(directory), "--params", str(ROOT / "params.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.archh" in lines[0] and "mine.yaml" in lines[0]


def test_flat_keys_of_a_recipe_are_params_keys(base: Params) -> None:
    for name in recipe_names(RECIPES):
        assert set(load_recipe(name, RECIPES, base=base).changes) <= set(to_flat_dict(base))
