"""Stage ``evaluate``: every metric of generated samples against real test images.

Inception features are extracted once per image set (real ones cached) and give FID, KID and
precision/recall; the class-metrics classifier gives the class report and ``fcd_<n>``
(``ganops.stages.scoring``, which streams the generated batches).
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ganops import mlflow_run_file, outputs
from ganops.classifier import load_classifier
from ganops.config import EvaluateConfig, Params
from ganops.data import META_FILE, load_prepared, read_meta, require_images
from ganops.errors import DataError, warn
from ganops.files import ensure_writable, file_sha256, write_json, write_text
from ganops.generator_file import load_generator, scored_generator
from ganops.metrics.classes import classes_csv, expected_class_share
from ganops.metrics.kid import whole_sets
from ganops.metrics.names import family_of
from ganops.metrics_file import SCORED, scored_record
from ganops.models.sampling import NonFiniteSamples, generated_batches
from ganops.stages.common import resolve_device, resolved_precision
from ganops.stages.scoring import score_images


def run(
    params: Params,
    data_dir: Path,
    *,
    models_dir: Path,
    train_dir: Path,
    out_dir: Path,
    cache_dir: Path,
    classifier_path: Path | None = None,
    floor: bool = False,
) -> dict[str, float]:
    """Write ``out_dir/metrics.json`` (and ``classes.csv``) and log them to the training run.

    metrics.json also records, under ``scored``, the generator file's SHA-256, the run, the
    dataset, the Inception weights and the precision (``ganops.metrics_file``). ``floor``:
    score real training images instead of the generator, into ``floor.json``: the best any
    generator can do at this sample count.
    """
    cfg, n = params.evaluate, params.evaluate.num_samples
    device = resolve_device(cfg.device, "evaluate.device")
    # 'auto' resolved for the device; what runs is what metrics.json records (never 'auto').
    precision, _ = resolved_precision("evaluate.precision", cfg.precision, device=device)
    cfg = replace(cfg, precision=precision)
    # Before minutes of feature extraction (also a link or special file at an output).
    ensure_writable(
        out_dir,
        cache_dir,
        files=[out_dir / name for name in (outputs.METRICS, outputs.CLASSES, outputs.FLOOR)],
    )
    generator_path = scored_generator(models_dir, params.train.keep)
    generator, model_cfg = (None, params.model) if floor else load_generator(generator_path)
    # Hashed once it loaded (a missing file is load_generator's one-line error): the SHA-256
    # names the bytes that were scored.
    generator_sha256 = None if floor else file_sha256(generator_path)
    # Checked before minutes of Inception: the metrics must go to this generator's own run.
    tracked = not floor and params.tracking.enabled
    run_ref = mlflow_run_file.read(train_dir, generator_path) if tracked else None
    test_path, train_path = data_dir / outputs.TEST_IMAGES, data_dir / outputs.TRAIN_IMAGES
    real, real_labels = load_prepared(test_path)
    require_images(real, n, key="evaluate.num_samples", path=test_path)
    real, real_labels = real[:n], real_labels[:n]
    train_images, train_labels = load_prepared(train_path)
    # Loaded before the slow Inception pass, so a bad classifier file fails at once.
    classifier = None
    if classifier_path:
        classifier = load_classifier(classifier_path, data_dir=data_dir)[0].to(device)
    # A conditional generator draws the real test classes: their distribution.
    classes = real_labels if generator is not None and model_cfg.conditional else None
    share = None  # the class mix the samples should have: the training set's, or as asked
    if classifier is not None:
        share = expected_class_share(train_labels, classifier.num_classes, asked=classes)
    if generator is None:
        require_images(train_images, n, key="--floor's evaluate.num_samples", path=train_path)
        batches = iter(train_images[:n].split(cfg.batch_size))
    else:
        batches = generated_batches(
            generator.to(device),
            model_cfg.latent_dim,
            total=n,
            batch_size=cfg.batch_size,
            device=device,
            seed=cfg.seed,
            classes=classes,
        )
    scoring_cfg, weights_digest = _inception_weights(cfg, cache_dir)
    try:
        scores = score_images(
            batches,
            real,
            cfg=scoring_cfg,
            device=device,
            cache_dir=cache_dir,
            classifier=classifier,
            class_share=share,
        )
    except NonFiniteSamples as error:  # raised while its batches are drawn: name the file
        raise NonFiniteSamples(f"{generator_path}: {error}; nothing was written") from None
    metrics = {**scores.metrics, "num_samples": n}
    bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
    if bad:  # never a number in metrics.json that a gate could misread
        raise DataError(f"metrics {', '.join(bad)} are not finite; nothing was written")
    if scores.real_share is not None and not floor:
        write_text(classes_csv(scores.class_counts, scores.real_share), out_dir / outputs.CLASSES)
    scored = scored_record(
        generator_sha256=generator_sha256,
        run_id=run_ref["run_id"] if run_ref is not None else None,
        dataset=_dataset(data_dir, params),
        inception_weights=weights_digest,
        precision=cfg.precision,
    )
    document: dict[str, Any] = {**metrics, SCORED: scored}
    # In the suite's order, FID first: `dvc exp show` and `dvc metrics show` keep it.
    write_json(document, out_dir / (outputs.FLOOR if floor else outputs.METRICS), sort_keys=False)
    if tracked and run_ref is None:
        warn(
            f"tracking: the metrics were not logged to MLflow: {train_dir} records no "
            "tracked training run for this generator (no mlflow_run.json, or one of an "
            "untracked training); train with tracking.enabled: true to log them"
        )
    if run_ref is not None:
        from ganops.tracking.runs import attempt, log_to_run

        # metrics.json is written already; a tracking failure only warns. The run's params
        # hold evaluate.* as they were at training; what this evaluation used is tagged
        # evaluated_with.<key> beside the metrics it overwrites.
        values = {k: float(v) for k, v in metrics.items()}
        used = {f"evaluated_with.evaluate.{k}": str(v) for k, v in asdict(cfg).items()}
        used["evaluated_with.device"] = str(device)  # what evaluate.device: auto resolved to
        attempt(
            f"metrics to run {run_ref['run_id']}",
            lambda: log_to_run(run_ref, values, tags=used),
        )
    what = "real training" if floor else "generated"
    print(f"{n} {what} vs {n} real test images ({device}):")
    for name, value in metrics.items():
        alone = family_of(name) == "kid_std" and whole_sets(n, n)
        print(f"  {name:<18} {value:.5g}" + (" (one subset: the whole set)" if alone else ""))
    return metrics


def _inception_weights(cfg: EvaluateConfig, cache_dir: Path) -> tuple[EvaluateConfig, str]:
    """``cfg`` naming the Inception weights file it resolves to, and that file's digest: the
    weights scored with are the weights recorded (scaled or other weights give another FID)."""
    from ganops.inception_weights import resolve_inception_weights, weights_fingerprint

    weights = resolve_inception_weights(cfg.inception_weights, cache_dir)
    resolved = cfg if weights is None else replace(cfg, inception_weights=str(weights))
    return resolved, weights_fingerprint(weights)


def _dataset(data_dir: Path, params: Params) -> str:
    """The dataset the prepared images are of (their meta.json's), else the params'."""
    if (data_dir / META_FILE).is_file():
        return str(read_meta(data_dir)["dataset"])
    return params.data.dataset
