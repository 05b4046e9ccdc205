"""``outputs/evaluate/metrics.json``: the metrics of one scored generator, and what they were
scored with, read back by ``ganops gate``.

The numbers stay top-level, as DVC reads them (``dvc metrics show``, ``dvc exp show``). What
they were scored with is one nested object of strings under ``scored`` (a few columns in
``dvc exp show``): the generator file's SHA-256 and its MLflow run (so ``gate --promote`` can
tell metrics of this generator from a previous one's), the dataset, the Inception weights'
digest and the precision (so a baseline scored another way is refused, not compared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganops.errors import DataError
from ganops.files import parse_json
from ganops.metrics.names import family_of

SCORED = "scored"
SCORED_KEYS = ("generator_sha256", "run_id", "dataset", "inception_weights", "precision")


@dataclass(frozen=True)
class Range:
    """The values a metric family can really take; anything else is a corrupt or edited file."""

    low: float
    high: float = math.inf
    integer: bool = False  # a count: 10 or 10.0, never 9.5


RANGES = {
    "fid": Range(0.0),
    "fcd": Range(0.0),
    # KID is the unbiased MMD² estimate, which a good model takes below 0 by about its noise
    # (kid_std, ~1e-4 to 1e-2 on Inception features); -1 is far beyond what the estimator
    # gives on them, and bounds a value that is plainly not a KID.
    "kid": Range(-1.0),
    "kid_std": Range(0.0),
    "precision": Range(0.0, 1.0),
    "recall": Range(0.0, 1.0),
    "class_confidence": Range(0.0, 1.0),
    "class_kl": Range(0.0),
    "classes_covered": Range(0.0, integer=True),
    "num_samples": Range(0.0, integer=True),
}


@dataclass(frozen=True)
class MetricsFile:
    source: str  # names the file in errors: a path, or "main:outputs/evaluate/metrics.json"
    metrics: dict[str, float]
    scored: dict[str, str | None] | None  # None: written before evaluate recorded it

    def scored_value(self, key: str) -> str | None:
        return (self.scored or {}).get(key)


def scored_record(
    *,
    generator_sha256: str | None,
    run_id: str | None,
    dataset: str,
    inception_weights: str,
    precision: str,
) -> dict[str, str | None]:
    """The ``scored`` object evaluate writes beside the metrics (None: no generator, as for
    ``--floor``, or no MLflow run)."""
    return {
        "generator_sha256": generator_sha256,
        "run_id": run_id,
        "dataset": dataset,
        "inception_weights": inception_weights,
        "precision": precision,
    }


def parse_metrics(text: str, source: str) -> MetricsFile:
    """A metrics file's text, every metric checked for its type, finiteness and range: one
    ``DataError`` naming ``source``, the metric and the value, before any comparison."""
    document = parse_json(text, source)
    if not isinstance(document, dict):
        raise DataError(f"{source}: expected a JSON object of metric names to numbers")
    metrics = {}
    for name, value in document.items():
        if name == SCORED:
            continue
        number = _metric(name, value, source=source)
        if number is not None:
            metrics[name] = number
    return MetricsFile(source, metrics, _scored(document.get(SCORED), source=source))


def read_metrics(text: str, source: str) -> dict[str, float]:
    """The checked metrics of a metrics file's text; keys that hold no metric are left out."""
    return parse_metrics(text, source).metrics


def load_metrics(path: Path) -> MetricsFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"{path}: metrics file not found; run `dvc repro` (or `ganops evaluate`) first"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable metrics file ({type(error).__name__})") from None
    return parse_metrics(text, str(path))


def _metric(name: str, value: Any, *, source: str) -> float | None:
    """``value`` as a float when ``name`` holds a metric (None for other keys, such as a note
    a user added); a known metric that is not a number in its range is a ``DataError``."""
    span = RANGES.get(family_of(name))
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if span is None and not is_number:
        return None
    bad = f"{source}: {name} is {_shown(value)}"
    fix = "run `ganops evaluate` (or `dvc repro evaluate`) again to rewrite it"
    if not is_number:
        raise DataError(f"{bad}, not a number; {fix}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise DataError(f"{bad}, not a finite number; {fix}")
    if span is None:
        return number
    if number < span.low or number > span.high or (span.integer and not number.is_integer()):
        kind = "a whole number" if span.integer else "a value"
        upper = f" and {span.high:g}" if math.isfinite(span.high) else ""
        raise DataError(f"{bad}, outside what it can be ({kind} >= {span.low:g}{upper}); {fix}")
    return number


def _scored(value: Any, *, source: str) -> dict[str, str | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or v is None for v in value.values()
    ):
        raise DataError(
            f"{source}: {SCORED} is {_shown(value)}, not an object of strings; run "
            "`ganops evaluate` (or `dvc repro evaluate`) again to rewrite it"
        )
    return {key: value.get(key) for key in SCORED_KEYS}


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
