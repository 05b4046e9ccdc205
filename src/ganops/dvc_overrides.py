"""Values for ``dvc exp run -S key=value``, written and read exactly as DVC reads them.

DVC parses each ``-S`` with Hydra's override grammar, applies it with OmegaConf and writes
params.yaml back (``apply_overrides`` in dvc/utils/hydra.py). Two layers read a value:

- Hydra: in a double-quoted value only a run of backslashes before a quote (or before the
  closing quote) is an escape; ``${``, ``,``, ``[``, ``=`` and every other backslash are
  literal (hydra's ``_unescape_quoted_string``).
- OmegaConf: DVC's ``OmegaConf.to_object`` resolves ``${...}`` in *every* string of
  params.yaml on every ``dvc exp run -S`` (``${oc.env:TOKEN}`` reads the environment into
  params.yaml, the experiment and MLflow), and a string "???" is a missing value. Hydra's
  ``\\${`` would keep such a value for one run, but the ``${`` it leaves in params.yaml is
  resolved by the next ``-S`` run, so these values are refused, not escaped.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from ganops.errors import ConfigError, describe_error

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # Hydra's ID token: a string as it stands
_RESERVED = {"true", "false", "null", "inf", "nan"}  # Hydra reads these unquoted as non-strings
# The backslashes Hydra un-escapes in a quoted value: a run before a quote or before the end.
_BEFORE_QUOTE = re.compile(r'(\\*)("|\Z)')
NOT_VERBATIM = "not kept verbatim by `dvc exp run -S`"
DVC_PARAMS_FILE = "params.yaml"  # the file `dvc exp run -S key=value` (no FILE: prefix) sets


def verbatim_problem(value: Any) -> str | None:
    """Why DVC's OmegaConf pass would not keep ``value`` as it is, or None when it would."""
    if isinstance(value, list | tuple):
        return next(filter(None, map(verbatim_problem, value)), None)
    if isinstance(value, str) and "${" in value:
        return (
            "a value without '${': `dvc exp run -S` resolves ${...} in every string of "
            "params.yaml (${oc.env:NAME} reads the environment into it)"
        )
    if isinstance(value, str) and "\x85" in value:
        return (
            "a value without U+0085 (NEL): DVC writes params.yaml back as YAML, which reads it "
            "as a line break and folds it into a space"
        )
    if value == "???":
        return "a value other than '???', which `dvc exp run -S` reads as a missing value"
    return None


def check_verbatim(key: str, value: Any) -> None:
    """One ``ConfigError`` naming ``key`` and ``value`` when DVC would not keep ``value``."""
    problem = verbatim_problem(value)
    if problem is not None:
        raise ConfigError(key, value, problem, kind=NOT_VERBATIM)


def override_value(value: Any, *, key: str = "value") -> str:
    """``value`` in the Hydra override grammar that ``dvc exp run -S`` parses back to exactly
    ``value``: lists as ``[a,b]``, booleans lower-case, strings quoted unless plain words (a
    comma would otherwise start a sweep). A value DVC would not keep verbatim (``${``,
    "???") is one ``ConfigError`` naming ``key``."""
    check_verbatim(key, value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item, key=key) for item in value) + "]"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    escaped = _BEFORE_QUOTE.sub(lambda m: m[1] * 2 + ('\\"' if m[2] else ""), text)
    return f'"{escaped}"'


def read_override(text: str, keys: Collection[str]) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``dvc exp run -S`` reads it (DVC's own parsing): ``(KEY, value)``.
    Anything but one plain value for one of ``keys`` in params.yaml (a sweep, ``+``/``~``,
    another file, a value DVC would not keep verbatim) is one ``ConfigError``."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import OverrideParseException

    where = f"-S {text}"
    ((path, lines),) = to_path_overrides([text]).items()
    if path != DVC_PARAMS_FILE:
        raise ConfigError(where, path, f"a {DVC_PARAMS_FILE} key (no FILE: prefix)")
    try:
        (override,) = to_hydra_overrides(lines)
    except OverrideParseException as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(where, text, f"KEY=VALUE ({reason})", kind="unreadable") from None
    if override.type != OverrideType.CHANGE or override.is_sweep_override():
        raise ConfigError(where, text, "KEY=VALUE setting one value", kind="not one value")
    key = override.key_or_group
    if key not in keys or override.package is not None:
        section = key.partition(".")[0]
        names = tuple(k.partition(".")[2] for k in keys if k.startswith(f"{section}."))
        raise ConfigError(
            key, text, "a params key such as train.epochs", kind="unknown key", options=names
        )
    value = override.value()
    check_verbatim(key, value)
    return key, value


def applied_by_dvc(params_file: Path, overrides: Sequence[str]) -> Any:
    """What ``dvc exp run -S`` with ``overrides`` would make of ``params_file``, read back as
    ganops reads params: DVC's own ``apply_overrides`` on a temporary copy."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides
    from omegaconf.errors import OmegaConfBaseException

    from ganops.params_file import read_params_yaml

    with tempfile.TemporaryDirectory(prefix="ganops-recipe-") as scratch:
        copy = Path(scratch) / DVC_PARAMS_FILE
        shutil.copyfile(params_file, copy)
        try:
            apply_overrides(copy, list(overrides))
        except (InvalidArgumentError, OmegaConfBaseException) as error:
            reason = describe_error(error.__cause__ or error)
            raise ConfigError(
                "-S", " ".join(overrides), f"overrides DVC can apply ({reason})", kind="refused"
            ) from None
        return read_params_yaml(copy)
