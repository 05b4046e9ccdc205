"""``ganops gate``: pass or fail a trained model on its metrics, for CI.

Limits come from params.yaml's ``gate`` section (absolute) and, optionally, from the same
metrics at a baseline git revision (relative, direction-aware: a lower FID is better).
Exit codes: 0 all checks pass, 1 a check fails, 2 bad input (``DataError``/``ConfigError``).
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganops import run_reference
from ganops.config import GateConfig, TrackingConfig
from ganops.errors import DataError, GanopsError, output_error
from ganops.metrics.names import family_of


class GateFailed(GanopsError):
    """At least one check failed (the table says which); exit code 1."""

    exit_code = 1


@dataclass(frozen=True)
class Check:
    metric: str
    value: float
    limit: str  # e.g. "<= 60" or "<= 52.5 (baseline HEAD~1: 50.0 +5%)"
    passed: bool


def read_metrics(text: str, source: str) -> dict[str, float]:
    """Parse a metrics JSON file's text; ``source`` names it in errors."""
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(metrics, dict):
        raise DataError(f"{source}: expected a JSON object of metric names to numbers")
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def load_metrics(path: Path) -> dict[str, float]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"{path}: metrics file not found; run `dvc repro` (or `ganops evaluate`) first"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable metrics file ({type(error).__name__})") from None
    return read_metrics(text, str(path))


def baseline_metrics(revision: str, path: Path, *, repo: Path) -> dict[str, float]:
    """The metrics file as committed at ``revision`` (e.g. ``main`` or ``HEAD~1``).

    ``revision`` is never read as a git option: one starting with '-' (``--output=FILE``
    would make ``git show`` write a file) or holding control characters is refused.
    """
    if not revision or revision.startswith("-") or not revision.isprintable():
        raise DataError(
            f"--baseline {revision!r} is not a git revision; give a branch, tag or commit "
            "such as main or HEAD~1"
        )
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if top.returncode != 0:
        raise DataError(f"--baseline needs a git repository; {repo} is not in one")
    try:
        relative = path.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    except ValueError:
        raise DataError(f"{path} is outside the git repository {top.stdout.strip()}") from None
    result = subprocess.run(
        ["git", "show", "--end-of-options", f"{revision}:{relative}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["git show failed"])[-1]
        raise DataError(
            f"baseline {revision!r}: cannot read {relative} there ({reason}); the baseline must "
            "be a git revision whose commit holds the metrics file"
        )
    return read_metrics(result.stdout, f"{revision}:{relative}")


@dataclass(frozen=True)
class Rule:
    """How one metric family is gated: its direction and its two ``gate.*`` keys."""

    family: str
    lower_is_better: bool
    limit_key: str  # absolute limit; 0 = off
    tolerance_key: str  # allowed worsening vs the baseline
    relative: bool  # tolerance as a fraction of the baseline value (else in the metric's units)


RULES = (
    Rule("fid", True, "max_fid", "fid_tolerance", relative=True),
    Rule("kid", True, "max_kid", "kid_tolerance", relative=True),
    Rule("precision", False, "min_precision", "precision_tolerance", relative=False),
    Rule("recall", False, "min_recall", "recall_tolerance", relative=False),
    Rule("classes_covered", False, "min_classes_covered", "classes_covered_tolerance", False),
    Rule("class_kl", True, "max_class_kl", "class_kl_tolerance", relative=False),
)


def find_metric(metrics: dict[str, float], family: str, *, source: str) -> str | None:
    """The one metric of ``family`` in a metrics file (``fid_10k`` for ``fid``), or None."""
    names = [name for name in metrics if family_of(name) == family]
    if len(names) > 1:
        raise DataError(f"{source}: expected one {family} metric, found {sorted(names)}")
    return names[0] if names else None


def _check(rule: Rule, name: str, value: float, limit: float, shown: str) -> Check:
    """``value`` against ``limit`` in the rule's direction; ``shown`` is the limit's text."""
    if rule.lower_is_better:
        return Check(name, value, f"<= {shown}", _bad(value, rule) <= limit)
    return Check(name, value, f">= {shown}", _bad(value, rule) >= limit)


def _absolute(rule: Rule, cfg: GateConfig, name: str, value: float) -> Check:
    limit = float(getattr(cfg, rule.limit_key))
    return _check(rule, name, value, limit, f"{limit:g}")


def _relative(rule: Rule, cfg: GateConfig, name: str, value: float, base: float, rev: str) -> Check:
    tolerance = float(getattr(cfg, rule.tolerance_key))
    slack = abs(base) * tolerance if rule.relative else tolerance
    shown = f"{tolerance:.0%}" if rule.relative else f"{tolerance:g}"
    limit, sign = (base + slack, "+") if rule.lower_is_better else (base - slack, "-")
    return _check(
        rule, name, value, limit, f"{limit:.4g} (baseline {rev}: {base:.4g} {sign}{shown})"
    )


def checks(
    cfg: GateConfig,
    metrics: dict[str, float],
    *,
    source: str,
    baseline: dict[str, float] | None = None,
    baseline_name: str = "",
) -> list[Check]:
    """Every check the gate config asks for, in the direction each metric improves."""
    out = []
    for rule in RULES:
        name = find_metric(metrics, rule.family, source=source)
        limit_on = float(getattr(cfg, rule.limit_key)) > 0
        if name is None:
            if limit_on:
                raise DataError(
                    f"gate.{rule.limit_key} is set but {source} has no {rule.family} metric "
                    f"(has {sorted(metrics)}); run `dvc repro evaluate` again, or set "
                    f"gate.{rule.limit_key}: 0"
                )
            continue
        if limit_on:
            out.append(_absolute(rule, cfg, name, metrics[name]))
        if baseline is not None:
            base_name = find_metric(baseline, rule.family, source=f"baseline {baseline_name}")
            if base_name is not None and base_name != name:
                raise DataError(
                    f"baseline {baseline_name}: has {base_name}, this run has {name}; metrics "
                    "from different sample counts are not comparable, so evaluate both with "
                    "the same evaluate.num_samples"
                )
            if base_name is not None:
                base = baseline[name]
                out.append(_relative(rule, cfg, name, metrics[name], base, baseline_name))
    if not out:
        raise DataError(
            "nothing to check: set a gate limit in params.yaml (e.g. gate.max_fid) and/or pass "
            "--baseline REV with a metrics file in common"
        )
    return out


def _bad(value: float, rule: Rule) -> float:
    """NaN never passes a limit: treat it as infinitely bad in the metric's direction."""
    if math.isnan(value):
        return math.inf if rule.lower_is_better else -math.inf
    return value


def table(results: list[Check]) -> str:
    """A Markdown table (readable in a terminal, and a GitHub job summary as is)."""
    lines = ["| metric | value | limit | result |", "|---|---:|---|---|"]
    for check in results:
        verdict = "pass" if check.passed else "**FAIL**"
        value = f"{check.value:.3f}" if abs(check.value) >= 1 else f"{check.value:.4g}"
        lines.append(f"| {check.metric} | {value} | {check.limit} | {verdict} |")
    return "\n".join(lines) + "\n"


def run(
    cfg: GateConfig,
    metrics_path: Path,
    *,
    baseline: str | None,
    repo: Path,
    summary: Path | None = None,
) -> list[Check]:
    """Print the table (and append it to ``summary``); raise ``GateFailed`` on a failure."""
    if summary is not None and not summary.parent.is_dir():  # before a verdict is printed
        raise DataError(f"--summary {summary}: its directory does not exist")
    metrics = load_metrics(metrics_path)
    base: dict[str, Any] | None = None
    if baseline:
        base = baseline_metrics(baseline, metrics_path, repo=repo)
    results = checks(
        cfg, metrics, source=str(metrics_path), baseline=base, baseline_name=baseline or ""
    )
    text = table(results)
    print(text, end="")
    if summary is not None:
        try:
            with summary.open("a", encoding="utf-8") as stream:
                stream.write("### ganops gate\n\n" + text + "\n")
        except OSError as error:
            raise output_error(summary, error) from None
    failed = [c.metric for c in results if not c.passed]
    if failed:
        raise GateFailed(f"gate failed: {', '.join(failed)} outside the limits above")
    return results


def promotion_target(cfg: TrackingConfig, train_dir: Path, *, generator: Path) -> dict[str, str]:
    """The tracked training run of ``generator`` whose registered model ``--promote`` would
    promote; checked before gating, so a bad setup is exit 2, not a gate result."""
    if not cfg.enabled or not cfg.registered_model:
        raise DataError("--promote needs tracking.enabled: true and a tracking.registered_model")
    run_ref = run_reference.read(train_dir, generator)
    if run_ref is None:
        raise DataError(
            f"{train_dir / run_reference.FILE_NAME}: no tracked training run recorded for "
            f"{generator}; nothing to promote (train with tracking.enabled: true first)"
        )
    return run_ref


def promote(cfg: TrackingConfig, run_ref: dict[str, str]) -> str:
    """Make the generator registered by ``run_ref``'s run the champion."""
    from ganops.tracking.runs import CHAMPION
    from ganops.tracking.runs import promote as set_champion

    version = set_champion(run_ref, cfg.registered_model)
    print(f"promoted {cfg.registered_model} version {version} to @{CHAMPION}")
    return version
