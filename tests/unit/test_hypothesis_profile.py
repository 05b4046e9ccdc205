"""Property tests draw the same examples in every CI run (issue: a random draw failed CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A property test that records what it was given; run twice in fresh interpreters.
PROBE = """
import json, sys
from hypothesis import given, settings, strategies as st
import tests.conftest  # noqa: F401  (loads the profile, as pytest would)
seen = []
@settings(max_examples=20)
@given(st.integers())
def probe(value):
    seen.append(value)
probe()
print(json.dumps([settings().derandomize, seen]))
"""


def _draws(ci: str | None) -> tuple[bool, list[int]]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    derandomized, seen = json.loads(out.stdout)
    return derandomized, seen


@pytest.mark.slow
def test_ci_runs_draw_the_same_examples_and_local_runs_fresh_ones() -> None:
    first, second = _draws("true"), _draws("true")
    assert first[0] is True and first == second
    local = [_draws(None) for _ in range(2)]
    assert local[0][0] is False and local[0][1] != local[1][1]
