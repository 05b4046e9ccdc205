"""Named recipes: params overlays in ``recipes/NAME.yaml``, one per tutorial the project grew
from (docs/recipes.md), each run as a DVC experiment by ``ganops recipe NAME --apply``.

An overlay has params.yaml's shape and sets only what its recipe needs. The keys that shape
training, ``model.*`` and ``train.*`` but the operational ones in ``OPERATIONAL_KEYS``, start
from config.py's defaults (the classic tutorials' settings), never from params.yaml's values,
so a recipe is the same run whatever params.yaml holds. The other sections (data, evaluate,
...) and the operational keys stay as params.yaml has them, unless the overlay sets them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganops.config import (
    ROLE_OPERATIONAL,
    ROLE_PER_RUN,
    SECTIONS,
    Params,
    TrainConfig,
    keys_with_role,
    params_from_dict,
    to_flat_dict,
)
from ganops.dvc_overrides import (
    NOT_VERBATIM,
    applied_by_dvc,
    check_verbatim,
    override_value,
    read_override,
)
from ganops.errors import ConfigError, UsageError
from ganops.params_file import read_params_yaml

# Where and how a run happens, not what it computes: a recipe leaves them to params.yaml.
# What a recipe leaves to params.yaml: train.* keys the schema marks operational or per-run
# (the seed), config.py's roles.
OPERATIONAL_KEYS = frozenset(
    f"train.{key}" for key in keys_with_role(TrainConfig, ROLE_OPERATIONAL, ROLE_PER_RUN)
)
RECIPE_SECTIONS = ("model", "train")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a file stem and a `dvc exp run -n` name


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    params: Params  # params.yaml's, with the recipe applied
    changes: dict[str, Any]  # "section.key" -> value, where params differs from params.yaml's
    overrides: tuple[str, ...] = ()  # `-S KEY=VALUE` given on the command line, verbatim


def recipe_names(directory: Path) -> list[str]:
    """The recipes in ``directory``: the stems of its ``*.yaml`` files, sorted."""
    return sorted(path.stem for path in directory.glob("*.yaml") if _NAME.fullmatch(path.stem))


def load_recipe(name: str, directory: Path, *, base: Params) -> Recipe:
    """Recipe ``name`` from ``directory``, applied to ``base`` (params.yaml) and validated:
    an unknown or invalid key is one ``ConfigError`` naming the key and the recipe file."""
    path = directory / f"{name}.yaml"
    if not _NAME.fullmatch(name) or not path.is_file():
        known = ", ".join(recipe_names(directory)) or "none"
        raise UsageError(f"no recipe {name!r} in {directory}/ (recipes there: {known})")
    params = recipe_params(base, read_params_yaml(path), path=path)
    current, wanted = to_flat_dict(base), to_flat_dict(params)
    changes = {key: value for key, value in wanted.items() if value != current[key]}
    for key, value in changes.items():
        try:
            check_verbatim(key, value)
        except ConfigError as error:
            raise error.with_note(f"in recipe {path}") from None
    return Recipe(name=name, path=path, params=params, changes=changes)


def recipe_params(base: Params, overlay: Any, *, path: Path) -> Params:
    """``base`` with its recipe keys reset to config.py's defaults, then ``overlay`` (a parsed
    recipe file) on top, validated like params.yaml."""
    if overlay is None:
        overlay = {}
    if not isinstance(overlay, dict):
        raise ConfigError(
            str(path), type(overlay).__name__, "a mapping of sections, as params.yaml"
        )
    raw: dict[str, Any] = dataclasses.asdict(base)
    for section in RECIPE_SECTIONS:
        for key, default in dataclasses.asdict(SECTIONS[section]()).items():
            if f"{section}.{key}" not in OPERATIONAL_KEYS:
                raw[section][key] = default
    for section, values in overlay.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:  # an unknown section or a non-mapping: params_from_dict names it
            raw[section] = values
    try:
        return params_from_dict(raw)
    except ConfigError as error:
        raise error.with_note(f"in recipe {path}") from None


def with_overrides(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """``recipe`` with ``-S KEY=VALUE`` overrides (``dvc exp run``'s) on top, each read as DVC
    reads it and the whole validated again; they reach DVC verbatim, after the recipe's."""
    raw: dict[str, Any] = dataclasses.asdict(recipe.params)
    keys = to_flat_dict(recipe.params)
    for text in overrides:
        key, value = read_override(text, keys)
        section, name = key.split(".")
        raw[section][name] = value
    try:
        params = params_from_dict(raw)
    except ConfigError as error:
        raise error.with_note(f"from -S {' -S '.join(overrides)}") from None
    return dataclasses.replace(recipe, params=params, overrides=(*recipe.overrides, *overrides))


def dvc_command(recipe: Recipe) -> list[str]:
    """``dvc exp run -n NAME -S key=value ...``: the experiment that runs ``recipe`` on top
    of the current params.yaml (only the values that differ from it are set), then the
    ``-S`` overrides as given."""
    command = ["dvc", "exp", "run", "-n", recipe.name]
    for key, value in recipe.changes.items():
        try:
            command += ["-S", f"{key}={override_value(value, key=key)}"]
        except ConfigError as error:
            raise error.with_note(f"in recipe {recipe.path}") from None
    for text in recipe.overrides:
        command += ["-S", text]
    return command


def checked_command(recipe: Recipe, params_file: Path) -> list[str]:
    """``dvc_command(recipe)``, proven: DVC's own ``-S`` code, run on a copy of
    ``params_file`` (the params.yaml it rewrites whole), gives exactly ``recipe.params``.
    Otherwise one ``ConfigError`` names the first key that would arrive changed."""
    wanted = to_flat_dict(recipe.params)
    for key, value in wanted.items():
        try:  # the recipe's values and -S's were checked already: these are params_file's
            check_verbatim(key, value)
        except ConfigError as error:
            raise error.with_note(f"in {params_file}, which dvc exp run -S rewrites") from None
    command = dvc_command(recipe)
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "-S"]
    try:
        written = to_flat_dict(params_from_dict(applied_by_dvc(params_file, overrides)))
    except ConfigError as error:  # e.g. a string DVC writes so that YAML reads a bool
        if error.key not in wanted or error.value == wanted[error.key]:
            raise error.with_note(f"as dvc exp run -S would write {params_file}") from None
        written = {error.key: error.value}
    for key, value in wanted.items():
        if key in written and written[key] != value:
            raise ConfigError(
                key,
                value,
                "a value `dvc exp run -S` writes back unchanged (it would arrive in "
                f"{params_file} as {written[key]!r})",
                kind=NOT_VERBATIM,
            )
    return command


def summary(path: Path) -> str:
    """A recipe file's header up to its "Source:" line, as one line without its own name."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or text.startswith("Source:"):
            break
        words.append(text)
    return " ".join(words).removeprefix(f"{path.stem}:").strip()
