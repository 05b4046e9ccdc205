"""The commands shown in README.md and docs/ stay runnable: every ``-S key=value`` they pass
is a valid param, every ``ganops`` command and option they use exists, and every script or
file they run is in the repo. (Running them all would take hours; this catches the drift.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from ganops.cli import app
from ganops.config import params_from_dict

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
]
COMMANDS = get_command(app).commands  # type: ignore[attr-defined]


def _commands() -> list[tuple[str, str]]:
    """(file, command line) of every line in a ```bash block, continuations joined."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                if line and not line.startswith("#"):
                    found.append((doc.name, line))
    return found


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def _overrides(words: list[str]) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-S", "--set-param")]


def test_examples_exist() -> None:
    lines = [line for _, line in _commands()]
    assert any("dvc exp run" in line and "-S" in line for line in lines)
    assert any(line.startswith("ganops ") for line in lines)


@pytest.mark.parametrize(("doc", "line"), [c for c in _commands() if "dvc exp run" in c[1]])
def test_every_set_param_in_the_docs_is_valid(doc: str, line: str) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for item in _overrides(_words(line)):
        key, _, value = item.partition("=")
        if "," in value and not value.startswith(("[", "'", '"')):
            value = value.split(",")[0]  # a DVC sweep (a,b,c): check its first value
        section, _, field = key.partition(".")
        assert section in params and field, f"{doc}: {item!r} is not section.key=value"
        params[section][field] = yaml.safe_load(value)
    params_from_dict(params)  # raises ConfigError naming a key the docs got wrong


@pytest.mark.parametrize(
    ("doc", "line"), [c for c in _commands() if re.match(r"(\S+=\S+ )*ganops ", c[1])]
)
def test_every_ganops_command_and_option_in_the_docs_exists(doc: str, line: str) -> None:
    words = _words(line)
    words = words[words.index("ganops") + 1 :]
    if not words or words[0].startswith("-"):
        return  # `ganops --version`, `ganops --help`
    command = COMMANDS.get(words[0])
    assert command is not None, f"{doc}: no command `ganops {words[0]}`"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words[1:]:
        if word in {"&&", "||", "|", ";"}:
            break
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"{doc}: `ganops {words[0]}` has no {word}"


@pytest.mark.parametrize(("doc", "line"), _commands())
def test_scripts_the_docs_run_are_in_the_repo(doc: str, line: str) -> None:
    for word in _words(line):
        if re.fullmatch(r"(\./)?(scripts|benchmarks|\.ci)/[\w./-]+", word):
            assert (ROOT / word.removeprefix("./")).exists(), f"{doc}: {word} does not exist"
