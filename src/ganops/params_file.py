"""Reading ``params.yaml`` (and recipe overlays): a hardened YAML loader, one ``ConfigError``
line for a missing, oversized, non-UTF-8 or malformed file, and what the file changed against
its committed version. The schema and its validation are ``ganops.config``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ganops.config import NON_STRING_KEY, Params, params_from_dict
from ganops.errors import ConfigError

MAX_PARAMS_BYTES = 1 << 20  # a params file is a few KB; this bounds what YAML parses
MAX_PARAMS_DEPTH = 8  # sections > keys > list values: 3 levels are ever needed


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without the two YAML features that let a small file mislead or exhaust
    ganops: aliases (a 1 KB "billion laughs" file expands to gigabytes) and duplicate keys
    (the last one silently wins)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(
                "params.yaml",
                f"line {mark.line + 1}",
                "no YAML aliases (*name)",
                kind="unsupported YAML",
            )
        depth = len(getattr(self, "_ganops_stack", []))
        if depth >= MAX_PARAMS_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(
                "params.yaml",
                f"line {mark.line + 1}",
                f"at most {MAX_PARAMS_DEPTH} levels of nesting",
                kind="too deeply nested",
            )
        self.__dict__.setdefault("_ganops_stack", []).append(None)
        try:
            return super().compose_node(parent, index)
        finally:
            self._ganops_stack.pop()

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            line = f"line {key_node.start_mark.line + 1}"
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]`, `{a: 1}: 2`: unhashable
                shape = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise ConfigError(
                    "params.yaml", f"{line}: a {shape}", NON_STRING_KEY, kind="non-string key"
                )
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):  # `1:`, `null:`, `on:` (YAML 1.1's true)
                raise ConfigError(
                    "params.yaml",
                    f"{line}: {key_node.value or '~'} (read as {type(key).__name__})",
                    NON_STRING_KEY,
                    kind="non-string key",
                )
            if key in seen:
                raise ConfigError(
                    "params.yaml",
                    f"line {key_node.start_mark.line + 1}",
                    f"each key once (a second {key!r})",
                    kind="duplicate key",
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: Path = Path("params.yaml")) -> Params:
    """Read and validate ``path``; raises ``ConfigError`` with a one-line reason."""
    return params_from_dict(read_params_yaml(path))


def read_params_yaml(path: Path) -> Any:
    """The parsed YAML of a params file (or a recipe overlay), not yet validated; a missing,
    oversized, non-UTF-8 or malformed file raises ``ConfigError`` naming ``path``."""
    try:
        size = path.stat().st_size
        if size > MAX_PARAMS_BYTES:
            raise ConfigError(
                str(path),
                f"{size} bytes",
                f"a params file under {MAX_PARAMS_BYTES} bytes",
                kind="file too large",
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            "no such file",
            "an existing params file (run from the project root or pass --params)",
            kind="file not found",
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            str(path), f"byte {error.start}", "UTF-8 text", kind="not UTF-8"
        ) from None
    except IsADirectoryError:
        raise ConfigError(str(path), "a directory", "a params file", kind="not a file") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python objects
    except ConfigError as error:
        raise ConfigError(str(path), error.value, error.allowed, kind=error.kind) from None
    except yaml.YAMLError as error:
        raise ConfigError(
            str(path), _yaml_problem(error), "valid YAML", kind="YAML syntax error"
        ) from None
    return raw


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's account of a syntax error on one line, with positions (1-based): what it was
    reading where (e.g. a flow sequence opened at line 2), then what went wrong where."""
    parts = []
    for text, mark in (
        (getattr(error, "context", None), getattr(error, "context_mark", None)),
        (getattr(error, "problem", None), getattr(error, "problem_mark", None)),
    ):
        if text:
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            parts.append(f"{text}{at}")
    return ": ".join(parts) or str(error).replace("\n", " ")


def uncommitted_changes(path: Path) -> list[str]:
    """``section.key old -> new`` for each value of the params file ``path`` that differs from
    its committed version (git HEAD); [] outside git, or when either side does not parse.

    `dvc exp run -S` writes its values into the workspace's params.yaml: after a failed run,
    this says which of them to undo.
    """
    import subprocess

    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:./{path.name}"],
            cwd=path.parent.resolve(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        committed = yaml.load(shown.stdout, Loader=_StrictLoader) if shown.returncode == 0 else None
        current = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except (OSError, subprocess.SubprocessError, yaml.YAMLError, ConfigError, UnicodeDecodeError):
        return []
    if not isinstance(committed, dict) or not isinstance(current, dict):
        return []
    changes = []
    for section in sorted(set(committed) | set(current), key=str):
        old, new = committed.get(section), current.get(section)
        old, new = (old if isinstance(old, dict) else {}), (new if isinstance(new, dict) else {})
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                changes.append(f"{section}.{key} {old.get(key)!r} -> {new.get(key)!r}")
    return changes
