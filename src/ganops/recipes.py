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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganops.config import (
    SECTIONS,
    Params,
    params_from_dict,
    read_params_yaml,
    to_flat_dict,
)
from ganops.errors import ConfigError, UsageError

# Where and how a run happens, not what it computes: a recipe leaves them to params.yaml.
OPERATIONAL_KEYS = frozenset(
    {
        "train.device",
        "train.seed",
        "train.log_every",
        "train.grid_size",
        "train.checkpoint_every",
        "train.cuda_graph",
    }
)
RECIPE_SECTIONS = ("model", "train")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a file stem and a `dvc exp run -n` name


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    params: Params  # params.yaml's, with the recipe applied
    changes: dict[str, Any]  # "section.key" -> value, where params differs from params.yaml's


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


def dvc_command(recipe: Recipe) -> list[str]:
    """``dvc exp run -n NAME -S key=value ...``: the experiment that runs ``recipe`` on top
    of the current params.yaml (only the values that differ from it are set)."""
    command = ["dvc", "exp", "run", "-n", recipe.name]
    for key, value in recipe.changes.items():
        command += ["-S", f"{key}={override_value(value)}"]
    return command


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RESERVED = {"true", "false", "null", "inf", "nan"}  # Hydra reads these unquoted as non-strings


def override_value(value: Any) -> str:
    """``value`` in the Hydra override grammar that ``dvc exp run -S`` parses: lists as
    ``[a,b]``, booleans lower-case, strings quoted unless plain words (a comma would
    otherwise start a sweep)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def summary(path: Path) -> str:
    """A recipe file's header up to its "Source:" line, as one line without its own name."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or text.startswith("Source:"):
            break
        words.append(text)
    return " ".join(words).removeprefix(f"{path.stem}:").strip()
