"""MLflow runs: where they go, opening and closing them, what a finished run logs, and the
Model Registry. The training loop's logger is ``ganops.tracking.logger``."""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops import outputs
from ganops.config import ModelConfig, Params, to_flat_dict
from ganops.errors import Interrupted, TrackingError, describe_error, warn
from ganops.tracking import quality_view
from ganops.tracking.store import (
    check_reachable,
    quick_http,
    repo_root,
    sqlite_store_lock,
    tracking_uri,
)


def attempt(what: str, call: Callable[[], Any]) -> None:
    """Run one tracking call; on failure warn (naming ``what``) instead of raising, so a
    tracking problem never costs outputs that are already on disk."""
    try:
        call()
    except Exception as error:  # whatever the store or the network raised
        warn(f"tracking: could not log {what} ({describe_error(error)})")


def _git_commit(root: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() or None


def _experiment_id(name: str, uri: str, root: Path) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    # With the default SQLite store, pin artifacts to the repo root too; MLflow would
    # otherwise put them under the current directory, lost with a DVC temp workspace.
    location = (root / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by a parallel experiment
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _run_exists(run_id: str) -> bool:
    """Whether the interrupted run can be continued: it is in the store and not deleted (a
    deleted run cannot be reopened; the resumed training then starts a new run and says so)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.get_run(run_id)
    except MlflowException:
        return False
    if run.info.lifecycle_stage == "deleted":
        warn(
            f"tracking: run {run_id} of the interrupted training was deleted in "
            "MLflow; the resumed training logs to a new run, without the metrics of the "
            "steps before the interruption (outputs/train/losses.csv keeps every step)"
        )
        return False
    return True


def describe_changes(params: Params) -> str:
    """What this run changes versus the defaults, for the run's description in the UI."""
    defaults = to_flat_dict(Params())
    changed = [f"{k}={v}" for k, v in to_flat_dict(params).items() if defaults[k] != v]
    return "Changed from defaults: " + (", ".join(changed) if changed else "nothing")


@contextmanager
def training_run(
    params: Params,
    cwd: Path,
    *,
    tags: dict[str, str],
    run_id: str | None = None,
    resumed_step: int | None = None,
) -> Iterator[dict[str, str]]:
    """Open the MLflow run for a training job (or reopen ``run_id`` when resuming from the
    checkpoint of ``resumed_step``); yields its reference (``run_id``, ``uri``)."""
    import mlflow

    root = repo_root(cwd)
    uri = tracking_uri(params.tracking, cwd)
    quick_http()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    # MLflow's INFO lines here ("Creating initial MLflow database tables", "Skip logging GPU
    # metrics", "Started monitoring system metrics") say nothing a user can act on; its
    # warnings and errors still show.
    for name in ("mlflow.store.db.utils", "mlflow.system_metrics", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with sqlite_store_lock(uri):
            experiment_id = _experiment_id(params.tracking.experiment, uri, root)
        end_orphaned_runs(experiment_id, keep=run_id)
        run = _start(params, root, experiment_id, tags, run_id)
    except Exception as error:  # the store refused: unwritable database, server error...
        if mlflow.active_run() is not None:  # opened, then log_params failed
            attempt("the failed start", lambda: mlflow.end_run("FAILED"))
        raise TrackingError(
            f"could not open an MLflow run at {uri} ({describe_error(error)}); fix "
            "tracking.uri, or set tracking.required: false to go on without tracking"
        ) from None
    if resumed_step is not None and run.info.run_id == run_id:
        step, resumed = resumed_step, run.info.run_id
        attempt("the steps trained again", lambda: _mark_replayed(resumed, step))
    status = "FAILED"
    try:
        yield {"run_id": run.info.run_id, "uri": uri, "experiment_id": experiment_id}
        status = "FINISHED"
    except (KeyboardInterrupt, Interrupted):
        status = "KILLED"
        raise
    finally:
        attempt(f"the end of run {run.info.run_id} ({status})", lambda: mlflow.end_run(status))


def _start(
    params: Params, root: Path, experiment_id: str, tags: dict[str, str], run_id: str | None
) -> Any:
    """Start (or, when resuming, reopen) the run; log params and tags on a new one."""
    import mlflow

    exp_name = os.environ.get("DVC_EXP_NAME")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_name = exp_name or f"{params.data.dataset}-{params.model.arch}-{params.train.loss}-{stamp}"
    commit = _git_commit(root) or "unknown"
    # git_commit as before; mlflow.source.git.commit is the tag MLflow's UI shows and links.
    all_tags = {**tags, "git_commit": commit, "mlflow.source.git.commit": commit}
    if exp_name:
        all_tags["dvc_exp_name"] = exp_name
    if run_id is not None and _run_exists(run_id):
        # Resuming: same run, so curves continue. Its tags describe this session; its params
        # were logged when it started and cannot change, so what differs now is tagged.
        # log_system_metrics: MLflow carries the sampler's step on from the run's last one.
        run = mlflow.start_run(run_id=run_id, log_system_metrics=True)
        mlflow.set_tags(all_tags | _owner() | _changed_since_start(run_id, params))
        return run
    all_tags |= _owner()
    all_tags["mlflow.note.content"] = describe_changes(params)  # the run's description
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags=all_tags,
        log_system_metrics=True,  # CPU/GPU utilisation and memory, sampled in the background
    )
    mlflow.log_params(to_flat_dict(params))
    attempt(
        "the training data as the run's input",
        lambda: mlflow.log_input(_training_dataset(params, tags), context="training"),
    )
    return run


def _training_dataset(params: Params, tags: dict[str, str]) -> Any:
    """The training data as an MLflow dataset (the run's Inputs): named ``data.dataset``, its
    digest the prepared data's identity (the raw files' ``dataset_sha256`` tag and
    ``data.train_subset``; a hash of the ``data`` params when no such tag was given), its
    source ``data.source`` (a URL, a local directory, or the public mirrors)."""
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    data = params.data
    sha = tags.get("dataset_sha256") or hashlib.sha256(repr(data).encode()).hexdigest()
    # MLflow keeps digests of at most 36 characters: the hash's head, then the images kept.
    digest = f"{sha[:24]}:{data.train_subset or 'all'}"
    source: Any
    if data.source.startswith(("http://", "https://")):
        source = HTTPDatasetSource(url=data.source)
    elif data.source == "mirrors":  # no one place: the list of mirrors is in ganops.datasets
        source = CodeDatasetSource(tags={"data.source": data.source})
    else:
        with warnings.catch_warnings():
            # MLflow registers its local source for both '' and file:, then warns that the
            # path matched two sources (the same one).
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(data.source)
    # MLflow's Dataset marks ``profile`` abstract but is no ABC; MetaDataset (its documented
    # metadata-only dataset) leaves it out, and runs: only mypy objects.
    return MetaDataset(source=source, name=data.dataset, digest=digest)  # type: ignore[abstract]


RESUMED_TAG_PREFIX = "resumed."
REPLAYED_TAG = "ganops.replayed_steps"


def _mark_replayed(run_id: str, step: int) -> None:
    """A session killed without a last checkpoint (kill -9, a lost machine) had logged points
    beyond the checkpoint of ``step``; the resumed session trains those steps again. MLflow
    cannot delete metric points, so its curves hold both: the tag ``ganops.replayed_steps``
    and a warning name the steps (losses.csv holds only the resumed run's)."""
    import mlflow

    client = mlflow.MlflowClient()
    later = [at.step for at in client.get_metric_history(run_id, "loss_d") if at.step > step]
    if not later:
        return
    span = f"{step + 1}-{max(later)}"
    earlier = client.get_run(run_id).data.tags.get(REPLAYED_TAG)
    mlflow.set_tag(REPLAYED_TAG, f"{earlier},{span}" if earlier else span)
    warn(
        f"tracking: run {run_id} holds points of steps {span} from the session that "
        f"was killed after its last checkpoint (step {step}); they are trained again, and "
        f"MLflow keeps both in its curves (tagged {REPLAYED_TAG}); "
        "outputs/train/losses.csv will hold this run's only"
    )


def _changed_since_start(run_id: str, params: Params) -> dict[str, str]:
    """The params a resumed session runs with that differ from those its run logged at the
    start (a resume may change ``train.device``, ``train.keep``, ...): MLflow params
    are write-once, so each becomes a tag ``resumed.<key>`` holding the value now, and a
    warning says so. A key the run never logged (added since) is logged as a param; a
    ``resumed.`` tag of an earlier resume whose key is back at the start's value goes."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    logged = run.data.params
    now = {key: str(value) for key, value in to_flat_dict(params).items()}
    new = {key: value for key, value in now.items() if key not in logged}
    if new:
        mlflow.log_params(new)
    changed = {key: value for key, value in now.items() if key in logged and logged[key] != value}
    for tag in run.data.tags:
        if (
            tag.startswith(RESUMED_TAG_PREFIX)
            and tag.removeprefix(RESUMED_TAG_PREFIX) not in changed
        ):
            client.delete_tag(run_id, tag)
    if changed:
        listed = ", ".join(f"{key}={value} (was {logged[key]})" for key, value in changed.items())
        warn(
            f"tracking: run {run_id} resumes with {listed}; its params keep the "
            f"start's values, the new ones are tagged {RESUMED_TAG_PREFIX}<key>"
        )
    return {RESUMED_TAG_PREFIX + key: value for key, value in changed.items()}


# Which process holds a RUNNING run: a run whose process is gone (kill -9, a crash, a lost
# machine) is ended as KILLED by the next training run on the same host.
HOST_TAG, PID_TAG = "ganops.host", "ganops.pid"


def _owner() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def end_orphaned_runs(experiment_id: str, keep: str | None = None) -> list[str]:
    """Mark KILLED the experiment's RUNNING runs that this host's ganops started and whose
    process no longer exists (``keep``: the run about to be resumed). Best effort: a failure
    only warns. Returns the ended runs' ids."""
    import mlflow

    ended: list[str] = []

    def sweep() -> None:
        client = mlflow.MlflowClient()
        host = socket.gethostname().replace("'", "")
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        )
        for run in runs:
            pid = run.data.tags.get(PID_TAG, "")
            if run.info.run_id != keep and pid.isdigit() and not _alive(int(pid)):
                client.set_terminated(run.info.run_id, "KILLED")
                ended.append(run.info.run_id)

    attempt("the end of runs whose process is gone", sweep)
    for run_id in ended:
        warn(f"tracking: run {run_id} was left RUNNING by a process that is gone; marked KILLED")
    return ended


def log_to_active(metrics: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics(metrics)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


CANDIDATE, CHAMPION = "candidate", "champion"


MODEL_ERROR_TAG = "ganops.model_error"  # why the run's generator is not a logged model


def log_generator(
    generator: nn.Module,
    model_cfg: ModelConfig,
    *,
    registered_name: str,
    params: Params | None = None,
    sample_grid: Path | None = None,
) -> None:
    """Log the generator as an MLflow PyTorch model that loads back and generates (a
    conditional one from (z, labels)), and register it as ``registered_name`` with the alias
    ``candidate`` (unless the name is empty); with the training's ``params``, the version is
    described and tagged (``_describe_version``; a failure there only warns). A
    ``sample_grid`` PNG travels in the model's own files (``extra_files/``), so every
    registered version carries the picture of what it generates. Raises whatever MLflow
    raised in logging or registering."""
    import mlflow.pytorch

    model = copy.deepcopy(generator).cpu().eval()  # the caller's module stays where it is
    example, signature = _example_and_signature(model, model_cfg)
    # Named, not inferred: MLflow's inference loads the model again in a child process to
    # watch its imports, which took longer than the whole rest of tracking (benchmarks/).
    requirements = [*mlflow.pytorch.get_default_pip_requirements(), f"numpy=={np.__version__}"]
    info = mlflow.pytorch.log_model(
        model,
        name="generator",
        input_example=example,
        signature=signature,
        pip_requirements=requirements,
        extra_files=[str(sample_grid)] if sample_grid is not None else None,
    )
    if registered_name:
        version = str(mlflow.register_model(info.model_uri, registered_name).version)
        mlflow.MlflowClient().set_registered_model_alias(registered_name, CANDIDATE, version)
        if params is not None:
            attempt(
                f"the description of {registered_name} version {version}",
                lambda: _describe_version(
                    registered_name, version, params, grid=sample_grid is not None
                ),
            )


def _describe_version(
    registered_name: str, version: str, params: Params, *, grid: bool = False
) -> None:
    """Say on a registered version what it is, so the registry reads without opening its run:
    a one-line description (dataset, arch, loss, epochs, run name, commit; with ``grid``,
    where its sample grid is) and the tags
    ``dataset``, ``arch``, ``git_commit``, ``experiment`` and (under DVC) ``dvc_exp_name``."""
    import mlflow

    client = mlflow.MlflowClient()
    run = mlflow.active_run()
    run_tags = client.get_run(run.info.run_id).data.tags if run is not None else {}
    commit = run_tags.get("git_commit") or _git_commit(repo_root(Path.cwd())) or "unknown"
    run_name = run.info.run_name if run is not None else "no run"
    tags = {
        "dataset": params.data.dataset,
        "arch": params.model.arch,
        "git_commit": commit,
        "experiment": params.tracking.experiment,
    }
    if exp_name := os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = exp_name
    description = (
        f"{params.data.dataset}, {params.model.arch}, loss {params.train.loss}, "
        f"{params.train.epochs} epochs; run {run_name}, commit {commit[:12]}"
    )
    if grid:
        description += f"; sample grid: extra_files/{outputs.SAMPLES} in its files"
    client.update_model_version(registered_name, version, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version, key, value)


def _example_and_signature(model: nn.Module, cfg: ModelConfig) -> tuple[Any, Any]:
    """The input example MLflow's ``pt2`` format traces (torch.export) and its signature: z
    (B, latent_dim), and for a conditional generator the labels (B,) too. Batch 2: a size-1
    dimension would be exported as fixed."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    inputs = [("z", torch.randn(2, cfg.latent_dim))]
    if cfg.conditional:
        inputs.append(("labels", torch.tensor([0, 1])))
    with torch.no_grad():
        images = model(*(tensor for _, tensor in inputs))  # (B, 1, 28, 28)

    def spec(tensor: torch.Tensor, name: str | None = None) -> TensorSpec:
        array = tensor.numpy()
        return TensorSpec(array.dtype, (-1, *array.shape[1:]), name)

    signature = ModelSignature(
        inputs=Schema([spec(tensor, name) for name, tensor in inputs]),
        outputs=Schema([spec(images)]),
    )
    return tuple(tensor.numpy() for _, tensor in inputs), signature


def _drop_stale_candidate(registered_name: str, run_id: str) -> str:
    """After this run's generator failed to log or register: remove the ``candidate`` alias
    where it names another run's version (someone loading @candidate would get an unrelated
    model) and tag the run with the failure. Returns what it did, for the warning line."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        current = client.get_model_version_by_alias(registered_name, CANDIDATE)
    except MlflowException:  # no such model or alias: nothing stale
        return ""
    if current.run_id == run_id:
        return ""
    try:
        client.delete_registered_model_alias(registered_name, CANDIDATE)
    except MlflowException as error:
        return (
            f"; {registered_name}@{CANDIDATE} still names version {current.version} of run "
            f"{current.run_id}, not this one (could not remove it: {describe_error(error)})"
        )
    return (
        f"; removed {registered_name}@{CANDIDATE}, which named version {current.version} of "
        f"another run ({current.run_id})"
    )


def unregistered_reason(run_id: str, uri: str) -> str:
    """Why ``run_id`` registered no generator, as its training recorded it ('' if it did not):
    for ``gate --promote`` to name the cause."""
    import mlflow

    reason = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).data.tags.get(MODEL_ERROR_TAG)
    return f"its training could not log the generator as a model ({reason})" if reason else ""


def promote(run_ref: dict[str, str], registered_name: str) -> str:
    """Point the ``champion`` alias at the model version logged by ``run_ref``'s run;
    returns the version. Raises ``DataError`` when that run registered no model, and
    ``TrackingError`` (one line, within MLflow's short retry budget) when the store fails."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ganops.errors import DataError

    quick_http()
    check_reachable(run_ref["uri"])
    client = mlflow.MlflowClient(tracking_uri=run_ref["uri"])
    try:
        versions = client.search_model_versions(f"name = '{registered_name}'")
    except (MlflowException, OSError) as error:  # HTTP 5xx after retries, a lost connection
        raise TrackingError(
            f"could not read the versions of {registered_name!r} at {run_ref['uri']} "
            f"({describe_error(error)})"
        ) from None
    mine = [v for v in versions if v.run_id == run_ref["run_id"]]
    if not mine:
        try:
            reason = unregistered_reason(run_ref["run_id"], run_ref["uri"])
        except (MlflowException, OSError):
            reason = ""
        hint = (
            f": {reason}; fix that and train again"
            if reason
            else " (is tracking.registered_model set, and did train finish?)"
        )
        raise DataError(
            f"run {run_ref['run_id']} registered no version of {registered_name!r}{hint}"
        )
    version = str(max(int(v.version) for v in mine))
    try:
        client.set_registered_model_alias(registered_name, CHAMPION, version)
    except (MlflowException, OSError) as error:
        raise TrackingError(
            f"could not set {registered_name!r}@{CHAMPION} to version {version} at "
            f"{run_ref['uri']} ({describe_error(error)})"
        ) from None
    return version


def log_to_run(
    run_ref: dict[str, str], metrics: dict[str, float], *, tags: dict[str, Any] | None = None
) -> None:
    """Add metrics (e.g. FID from the evaluate stage) and tags to an earlier run, leaving its
    status as it is: reopening it (``start_run``/``end_run``) would turn a killed training's
    RUNNING or KILLED run FINISHED."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    from ganops.metrics.names import family_of

    quick_http()
    check_reachable(run_ref["uri"])
    client = mlflow.MlflowClient(tracking_uri=run_ref["uri"])
    stamp = int(datetime.now(timezone.utc).timestamp() * 1000)
    points = [Metric(key, float(value), stamp, 0) for key, value in metrics.items()]
    labels = [RunTag(key, str(value)) for key, value in (tags or {}).items()]
    # MLflow's limits per log_batch: 1000 metrics, 100 tags.
    for start in range(0, max(len(points), len(labels), 1), 100):
        client.log_batch(
            run_ref["run_id"],
            metrics=points[start : start + 100],
            tags=labels[start : start + 100],
        )
    fids = {key: value for key, value in metrics.items() if family_of(key) == "fid"}
    if fids:
        attempt(
            f"FID on the model versions of run {run_ref['run_id']}",
            lambda: _tag_run_versions(client, run_ref["run_id"], fids),
        )
        attempt(
            "the runs table's quality view",
            lambda: quality_view.publish(client, run_ref["run_id"], metrics),
        )


def _tag_run_versions(client: Any, run_id: str, values: dict[str, float]) -> None:
    """Tag each registered model version ``run_id`` logged with ``values`` (``fid_10k``: the
    FID its evaluation found), so the registry compares versions without opening runs."""
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        for key, value in values.items():
            client.set_model_version_tag(version.name, version.version, key, str(float(value)))


def log_training_outputs(
    files: list[Path], seconds: float, *, generator: Callable[[], nn.Module], params: Params
) -> None:
    """What a finished training run adds to its MLflow run: its time, ``files`` as artifacts,
    and the generator (built by ``generator``) as a logged and registered model. Each part
    only warns when it fails: the files on disk are already safe."""
    attempt("train_seconds", lambda: log_to_active({"train_seconds": seconds}))
    for path in files:
        attempt(path.name, functools.partial(log_artifact, path))
    name = params.tracking.registered_model
    grid = next((path for path in files if path.name == outputs.SAMPLES), None)
    try:
        log_generator(
            generator(), params.model, registered_name=name, params=params, sample_grid=grid
        )
    except Exception as error:  # whatever the store, the network or torch.export raised
        _model_not_logged(describe_error(error), registered_name=name)


def _model_not_logged(reason: str, *, registered_name: str) -> None:
    """One warning line when the active run's generator could not be logged or registered;
    the run is tagged with the ``reason`` and a stale ``candidate`` alias removed first."""
    import mlflow

    run = mlflow.active_run()
    if run is not None:
        attempt("why the model is missing", lambda: mlflow.set_tag(MODEL_ERROR_TAG, reason))
    dropped = ""
    if registered_name and run is not None:
        try:
            dropped = _drop_stale_candidate(registered_name, run.info.run_id)
        except Exception as error:  # the store is gone too
            dropped = (
                f"; {registered_name}@{CANDIDATE} may still name another run's version "
                f"({describe_error(error)})"
            )
    registered = f", nor registered it as {registered_name!r}" if registered_name else ""
    warn(
        f"tracking: could not log the generator as an MLflow model ({reason})"
        f"{registered}{dropped}; the generator file in models/ is unaffected"
    )
