"""Where runs go: a tracking URI no run outlives is refused, a relative SQLite path is taken
from the repo root (also from DVC's temporary copy), and processes opening a fresh SQLite
store at the same moment all get their run."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from ganops.config import TrackingConfig
from ganops.errors import TrackingError
from ganops.tracking.store import StoreUriError, check_reachable, tracking_uri


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``dvc exp run --temp`` copy of the repo at tmp_path."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    copy.mkdir(parents=True)
    return copy


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_an_in_memory_store_is_refused_naming_where_it_was_set(
    uri: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StoreUriError, match=r"tracking\.uri .*in-memory.*name a file") as error:
        tracking_uri(TrackingConfig(uri=uri), workspace)
    assert error.value.exit_code == 2 and not isinstance(error.value, TrackingError)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(StoreUriError, match="MLFLOW_TRACKING_URI"):
        tracking_uri(TrackingConfig(), workspace)


def test_ui_on_an_in_memory_store_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ganops.cli import app

    (tmp_path / "params.yaml").write_text("tracking:\n  uri: 'sqlite://'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 2
    assert "tracking.uri 'sqlite://' is an in-memory SQLite database" in result.output
    assert "Traceback" not in result.output


def test_a_relative_sqlite_path_is_taken_from_the_repo_root(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not from the temporary copy DVC deletes with the runs in it."""
    root = tmp_path.resolve()
    cfg = TrackingConfig(uri="sqlite:///mlflow.db")
    assert tracking_uri(cfg, workspace) == f"sqlite:///{root}/mlflow.db"
    sub = TrackingConfig(uri="sqlite:///stores/team.db?timeout=30")
    assert tracking_uri(sub, workspace) == f"sqlite:///{root}/stores/team.db?timeout=30"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert tracking_uri(TrackingConfig(), workspace) == f"sqlite:///{root}/env.db"
    absolute = f"sqlite:///{tmp_path}/elsewhere.db"  # sqlite:////abs/path: as given
    assert tracking_uri(TrackingConfig(uri=absolute), workspace) == absolute
    server = "http://127.0.0.1:5000"
    assert tracking_uri(TrackingConfig(uri=server), workspace) == server


def test_dvc_root_names_the_repo_when_the_copy_is_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DVC sets DVC_ROOT to the parent repo for an experiment run in a temporary copy."""
    repo, copy = tmp_path / "repo", tmp_path / "copies" / "exp1"
    repo.mkdir()
    copy.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    cfg = TrackingConfig(uri="sqlite:///mlflow.db")
    assert tracking_uri(cfg, copy) == f"sqlite:///{repo.resolve()}/mlflow.db"
    assert tracking_uri(TrackingConfig(), copy) == f"sqlite:///{repo.resolve()}/mlflow.db"


def test_the_store_error_hint_no_longer_suggests_a_cwd_relative_file(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="taken from the repo root") as error:
        check_reachable(f"sqlite:///{tmp_path}/missing/mlflow.db")
    assert "e.g. sqlite:///mlflow.db" not in str(error.value)


def _open_run_at_once(barrier: object, folder: str, results: object) -> None:
    """What the train stage does first: open its run in the store (``training_run``)."""
    from ganops.config import Params
    from ganops.tracking.runs import training_run

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    try:
        barrier.wait(timeout=120)  # type: ignore[attr-defined]
        with training_run(Params(), Path(folder), tags={}) as run_ref:
            results.put(("ok", run_ref["run_id"]))  # type: ignore[attr-defined]
    except Exception as error:
        results.put(("error", str(error)))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_four_trainings_starting_at_once_on_a_fresh_store_all_get_a_run(tmp_path: Path) -> None:
    """Two `dvc exp run --temp` at once on a fresh clone: without the store lock, the
    processes created MLflow's tables together and failed ("table experiments already
    exists", "duplicate column name")."""
    # Fresh processes, as DVC starts them, forked from one that imported MLflow once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ganops.tracking.runs", "mlflow", "sqlalchemy"])
    barrier, results = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_open_run_at_once, args=(barrier, str(tmp_path), results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=240) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert len({run_id for _, run_id in outcomes}) == 4
