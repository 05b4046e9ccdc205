"""dvc.yaml's deps cover every ganops module a stage imports, so editing one re-runs it.

Imports are read from the source (``ast``, function-level ones included) and followed through
the package; a dep covers a module when it is the module's file or a folder above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "ganops"


def _module_file(name: str) -> Path | None:
    """The file of module ``ganops.x.y``, or None when it is not one of ours."""
    if name != "ganops" and not name.startswith("ganops."):
        return None
    path = ROOT / "src" / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_files(start: Path) -> set[Path]:
    """``start`` and every ganops file it imports, directly or not (packages' __init__ too)."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path):
            parts = name.split(".")
            for end in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                found = _module_file(".".join(parts[:end]))
                if found is not None:
                    todo.append(found)
    return seen


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_deps_cover_every_module_it_imports(stage: str) -> None:
    spec = _stages()[stage]
    command = spec["cmd"].split()[1]  # "ganops train ..." -> train
    deps = [ROOT / (d if isinstance(d, str) else next(iter(d))) for d in spec["deps"]]
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted(imported_files(PACKAGE / "stages" / f"{command}.py"))
        if not any(path == dep or dep in path.parents for dep in deps)
    ]
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps on {missing}"


def test_import_walk_follows_function_level_and_package_imports(tmp_path: Path) -> None:
    files = imported_files(PACKAGE / "stages" / "evaluate.py")
    assert PACKAGE / "metrics" / "features.py" in files  # imported inside a function
    assert PACKAGE / "models" / "__init__.py" in files  # via ganops.checkpoints
    assert PACKAGE / "models" / "resnet.py" in files  # via the package's own imports
    assert PACKAGE / "stages" / "train.py" not in files


def test_dvc_shows_fid_first_and_few_dep_columns(tmp_path: Path) -> None:
    """What `dvc exp show` reads: evaluate's metrics before the classifier's accuracy, and
    one dep column for the code (the package), not one per module (__pycache__ ignored)."""
    import json
    import shutil
    import subprocess

    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(PACKAGE, tmp_path / "src" / "ganops")
    for out, text in {
        "outputs/evaluate/metrics.json": '{"fid_10k": 9.6, "num_samples": 10000}',
        "outputs/classifier/metrics.json": '{"accuracy": 0.99}',
    }.items():
        (tmp_path / out).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / out).write_text(text, encoding="utf-8")

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=True)
        return done.stdout

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    shown = json.loads(run("dvc", "metrics", "show", "--json"))
    files = list(shown[""]["data"]) if "" in shown else list(shown["workspace"]["data"])
    assert files == ["outputs/evaluate/metrics.json", "outputs/classifier/metrics.json"]
    stages = _stages()
    code_deps = {d for s in stages.values() for d in s["deps"] if str(d).startswith("src/")}
    assert code_deps == {"src/ganops"}
    all_deps = {
        d if isinstance(d, str) else next(iter(d)) for s in stages.values() for d in s["deps"]
    }
    assert len(all_deps) <= 10, sorted(all_deps)
    assert "__pycache__/" in (ROOT / ".dvcignore").read_text(encoding="utf-8").split()
