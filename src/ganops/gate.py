"""``ganops gate``: pass or fail a trained model on its metrics, for CI.

Limits come from params.yaml's ``gate`` section (absolute) and, optionally, from the same
metrics at a baseline git revision or DVC experiment (relative, direction-aware: a lower FID
is better; ``ganops.baseline``). Exit codes: 0 all checks pass, 1 a check fails, 2 bad input
(``DataError``/``ConfigError``) or a promotion the tracking server cannot make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ganops import mlflow_run_file
from ganops.baseline import baseline_file, compare_scoring
from ganops.config import GateConfig, TrackingConfig
from ganops.errors import DataError, GanopsError, TrackingError, output_error
from ganops.files import file_sha256
from ganops.metrics.names import family_of
from ganops.metrics.registry import GATED, Metric
from ganops.metrics_file import MetricsFile, load_metrics


class GateFailed(GanopsError):
    """At least one check failed (the table says which); exit code 1."""

    exit_code = 1


@dataclass(frozen=True)
class Check:
    metric: str
    value: float
    limit: str  # e.g. "<= 60" or "<= 52.5 (baseline HEAD~1: 50.0 +5%)"
    passed: bool


def find_metric(metrics: dict[str, float], family: str, *, source: str) -> str | None:
    """The one metric of ``family`` in a metrics file (``fid_10k`` for ``fid``), or None."""
    names = [name for name in metrics if family_of(name) == family]
    if len(names) > 1:
        raise DataError(f"{source}: expected one {family} metric, found {sorted(names)}")
    return names[0] if names else None


def _check(rule: Metric, name: str, value: float, limit: float, shown: str) -> Check:
    """``value`` against ``limit`` in the rule's direction; ``shown`` is the limit's text."""
    if rule.lower_is_better:
        return Check(name, value, f"<= {shown}", _bad(value, rule) <= limit)
    return Check(name, value, f">= {shown}", _bad(value, rule) >= limit)


def _absolute(rule: Metric, cfg: GateConfig, name: str, value: float) -> Check:
    limit = float(getattr(cfg, rule.limit_key))
    return _check(rule, name, value, limit, f"{limit:g}")


def _relative(
    rule: Metric, cfg: GateConfig, name: str, value: float, base: float, rev: str
) -> Check:
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
    for rule in GATED:  # the metrics registry's gated metrics, in its order
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


def _bad(value: float, rule: Metric) -> float:
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


@dataclass(frozen=True)
class Promotion:
    """What ``--promote`` would make the champion: the training run of ``generator``."""

    cfg: TrackingConfig
    run_ref: dict[str, str]
    generator: Path
    reference: Path  # the run reference file that names the run


class PromotionError(TrackingError):
    """The tracking server cannot promote (unreachable, or it failed): exit 2, never the
    gate's 'fail'."""

    exit_code = 2


def run(
    cfg: GateConfig,
    metrics_path: Path,
    *,
    baseline: str | None,
    repo: Path,
    summary: Path | None = None,
    promotion: Promotion | None = None,
) -> list[Check]:
    """Print the table (and append it to ``summary``); raise ``GateFailed`` on a failure.
    With ``promotion``, the metrics must be those of its generator and run, the tracking
    server must answer before a verdict is printed, and a pass promotes."""
    if summary is not None and not summary.parent.is_dir():  # before a verdict is printed
        raise DataError(f"--summary {summary}: its directory does not exist")
    metrics = load_metrics(metrics_path)
    if promotion is not None:
        require_scored(metrics, promotion)
    base, header = None, ""
    if baseline:
        base_file, shown = baseline_file(baseline, metrics_path, repo=repo)
        header = compare_scoring(metrics, base_file, shown)
        base = base_file.metrics
    results = checks(
        cfg, metrics.metrics, source=str(metrics_path), baseline=base, baseline_name=baseline or ""
    )
    if promotion is not None:
        probe(promotion)
    text = header + table(results)
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
    if promotion is not None:
        promote(promotion)
    return results


def promotion_target(cfg: TrackingConfig, train_dir: Path, *, generator: Path) -> Promotion:
    """The tracked training run of ``generator`` whose registered model ``--promote`` would
    promote; checked before gating, so a bad setup is exit 2, not a gate result."""
    if not cfg.enabled or not cfg.registered_model:
        raise DataError("--promote needs tracking.enabled: true and a tracking.registered_model")
    run_ref = mlflow_run_file.read(train_dir, generator)
    reference = train_dir / mlflow_run_file.FILE_NAME
    if run_ref is None:
        raise DataError(
            f"{reference}: no tracked training run recorded for {generator}; nothing to "
            "promote (train with tracking.enabled: true first)"
        )
    return Promotion(cfg, run_ref, generator, reference)


def require_scored(metrics: MetricsFile, promotion: Promotion) -> None:
    """Refuse to promote on metrics that are not ``promotion``'s generator's and run's: a
    ``train`` without an ``evaluate`` after it (or one cut short) leaves the previous
    model's metrics.json, and an edited run reference names another run."""
    fix = "run `ganops evaluate` (or `dvc repro evaluate`) to score it, then gate again"
    scored = metrics.scored_value("generator_sha256")
    if scored is None:
        raise DataError(
            f"{metrics.source} does not record which generator it scored (written before "
            f"ganops recorded it, or by --floor); nothing promoted: {fix}"
        )
    current = file_sha256(promotion.generator)
    if scored != current:
        raise DataError(
            f"{metrics.source} holds the metrics of another generator than {promotion.generator} "
            f"(SHA-256 {scored[:12]}, the file now {current[:12]}); nothing promoted: {fix}"
        )
    run_id = metrics.scored_value("run_id")
    if run_id != promotion.run_ref["run_id"]:
        raise DataError(
            f"{metrics.source} was scored for MLflow run {run_id}, but {promotion.reference} "
            f"names run {promotion.run_ref['run_id']}; nothing promoted: {fix}"
        )


def probe(promotion: Promotion) -> None:
    """The tracking server must answer within the short probe budget training uses: one that
    never does would hang the promotion after a printed 'pass'."""
    from ganops.tracking import store

    try:
        store.check_reachable(promotion.run_ref["uri"], timeout=store.PROBE_TIMEOUT_S)
    except TrackingError as error:
        reason = str(error).split(";")[0]
        raise PromotionError(
            f"--promote: {reason}; nothing gated or promoted. Start it (the run reference "
            f"{promotion.reference} names it) and gate again"
        ) from None


def promote(promotion: Promotion) -> str:
    """Make the generator registered by the promotion's run the champion."""
    from ganops.tracking.runs import CHAMPION
    from ganops.tracking.runs import promote as set_champion

    name = promotion.cfg.registered_model
    try:
        version = set_champion(promotion.run_ref, name)
    except TrackingError as error:
        raise PromotionError(f"the gate passed, but {error}; @{CHAMPION} is unchanged") from None
    print(f"promoted {name} version {version} to @{CHAMPION}")
    return version
