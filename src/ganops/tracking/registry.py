"""Registered generators back from the MLflow Model Registry, as generator files.

``ganops sample --model models:/NAME@champion`` (or ``@candidate``, or ``models:/NAME/3``)
draws from a registered version: the training run logged its generator file as an artifact
beside the MLflow model, and that file (the project's own format, read as untrusted like any
other) is what is loaded, so conditional generators and every architecture work alike.
"""

from __future__ import annotations

import re
from pathlib import Path

from ganops import outputs
from ganops.errors import DataError, TrackingError, UsageError, describe_error

# models:/NAME@ALIAS or models:/NAME/VERSION (MLflow's model URIs)
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))")
GENERATOR_FILES = (outputs.GENERATOR, outputs.BEST_GENERATOR)  # what a run logs (one of)


def is_model_uri(text: str) -> bool:
    return text.startswith("models:/")


def download_generator(model_uri: str, tracking_uri: str, into: Path) -> Path:
    """The generator file that the run behind ``model_uri`` logged, downloaded into ``into``.
    A malformed URI is a ``UsageError``; an unknown name, alias or version, or a version
    registered before runs logged their generator file, a ``DataError``; a store that fails,
    a ``TrackingError``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ganops.tracking.store import check_reachable, quick_http

    match = _MODEL_URI.fullmatch(model_uri)
    if match is None:
        raise UsageError(
            f"--model {model_uri!r} is not a registered model: expected models:/NAME@ALIAS "
            "(e.g. models:/ganops-generator@champion) or models:/NAME/VERSION"
        )
    name, alias, version = match["name"], match["alias"], match["version"]
    quick_http()
    check_reachable(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as error:
        raise DataError(
            f"{model_uri}: not found at {tracking_uri} ({describe_error(error)}); "
            "`ganops gate --promote` sets @champion, each training @candidate"
        ) from None
    run_id = str(found.run_id)  # a registered version made by a training always has one
    try:
        logged = {item.path for item in client.list_artifacts(run_id)}
        present = [file for file in GENERATOR_FILES if file in logged]
        if not present:
            raise DataError(
                f"{model_uri} (version {found.version}, run {run_id}) has no generator "
                "file among its run's artifacts: it was registered before runs logged one; "
                "train again, or load it with mlflow.pytorch.load_model"
            )
        into.mkdir(parents=True, exist_ok=True)
        local = client.download_artifacts(run_id, present[0], str(into))
    except (MlflowException, OSError) as error:
        raise TrackingError(
            f"could not download {model_uri}'s generator from {tracking_uri} "
            f"({describe_error(error)})"
        ) from None
    return Path(local)
