"""Imports point down (docs/development.md, issue 33): base utilities, then the library
(models, losses, augment, metrics, training), then adapters (each talking to one outside
thing: files, data, checkpoints, tracking, ...), then stages, then the CLI. A module may
import its own layer or one below.

The imports that still climb are listed in ``CLIMBING``, each to be removed by the
renovation: the test fails on a new one, and on a listed one that is gone (so the list only
shrinks and never hides one that came back)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ganops"

LAYERS: dict[str, int] = {
    # 0, base: what every layer may use (no files, no MLflow)
    **dict.fromkeys(("__init__", "config", "errors", "devices", "progress", "outputs"), 0),
    # 1, library: maths and training, reporting through its own hooks
    **dict.fromkeys(("models", "losses", "augment", "metrics", "training"), 1),
    # 2, adapters: each talks to one outside thing (files, torch files, git, MLflow, DVC)
    **dict.fromkeys(
        (
            "files",
            "params_file",
            "inception_weights",
            "feature_cache",
            "locks",
            "images",
            "plots",
            "datasets",
            "dataset_download",
            "idx_files",
            "data",
            "generator_file",
            "checkpoints",
            "kept_checkpoint",
            "untrusted_state",
            "classifier",
            "mlflow_run_file",
            "metrics_file",
            "baseline",
            "dvc_overrides",
            "recipes",
            "gate",
            "tracking",
        ),
        2,
    ),
    "stages": 3,
    **dict.fromkeys(("cli", "__main__"), 4),
}

# (importing file, imported top-level module) pairs that climb: none is left (issue 33 removed
# the last three: the Inception weights and the feature cache are adapters now).
CLIMBING: set[tuple[str, str]] = set()


def imported_modules(tree: ast.AST) -> set[str]:
    """The top-level ganops modules a file imports, at any depth (function-level too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "ganops":
                continue
            found |= {alias.name for alias in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ganops.")}
    return found - {"__version__"}


def climbing_imports() -> set[tuple[str, str]]:
    climbing = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        mine = LAYERS[relative.split("/")[0].removesuffix(".py")]
        for module in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            if LAYERS[module] > mine:
                climbing.add((relative, module))
    return climbing


def test_every_module_has_a_layer() -> None:
    tops = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.glob("*")}
    tops -= {"__pycache__", "py.typed"}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_imports_only_point_down_but_for_the_listed_ones() -> None:
    found = climbing_imports()
    new, gone = found - CLIMBING, CLIMBING - found
    assert not new, f"imports that climb a layer (import downward, or pass values in): {new}"
    assert not gone, f"fixed, so take them off CLIMBING: {gone}"


def test_the_walk_sees_function_level_imports_and_climbs() -> None:
    tree = ast.parse(
        "from ganops.config import Params\n"
        "def f():\n    from ganops.tracking.runs import log_to_run\n"
        "import ganops.stages.train\nfrom ganops import outputs\n"
    )
    assert imported_modules(tree) == {"config", "tracking", "stages", "outputs"}
