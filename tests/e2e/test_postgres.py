"""The team deployment's store: `mlflow server` on a PostgreSQL backend, trained against
over HTTP. Starts a throwaway PostgreSQL cluster (initdb + pg_ctl, on 127.0.0.1 only);
skipped with the reason where PostgreSQL's server binaries are not installed."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripts.mlflow_screenshots import api

from tests.conftest import free_port, run_ganops, running_mlflow_server, tiny_params, write_params

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        shutil.which("initdb") is None or shutil.which("pg_ctl") is None,
        reason="PostgreSQL server binaries (initdb, pg_ctl) not on PATH; "
        "apt-get install postgresql and link /usr/lib/postgresql/*/bin into PATH",
    ),
]


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and no `postgres` user to run PostgreSQL as")
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster with database `mlflow`; yields its SQLAlchemy URI."""
    user = _as_postgres_user()
    # Not under pytest's temp root: that is private to the test's user, not `postgres`.
    home = Path(tempfile.mkdtemp(prefix="ganops-postgres-"))
    if user:
        shutil.chown(home, "postgres")
    data, port = home / "data", free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*user, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")  # runuser resets PATH
    assert initdb and pg_ctl
    started = False
    try:
        run(initdb, "-D", str(data), "-U", "ganops", "-A", "trust")
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start")
        started = True
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="ganops", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE mlflow")
        yield f"postgresql://ganops@127.0.0.1:{port}/mlflow"
    finally:
        if started:
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_a_run_lands_in_a_postgresql_backed_server(
    tmp_path: Path, mnist_dir: Path, postgres: str
) -> None:
    import psycopg

    home = tmp_path / "server"
    home.mkdir()
    with running_mlflow_server(home, postgres) as server:
        params = tiny_params(tmp_path, mnist_dir, tracking={"uri": server})
        write_params(tmp_path / "params.yaml", params)
        for stage in ("download", "prepare", "train", "evaluate"):
            done = run_ganops(stage, cwd=tmp_path)
            assert done.returncode == 0, done.stdout + done.stderr
        run_id = json.loads((tmp_path / "outputs/train/mlflow_run.json").read_text())["run_id"]
        run = api(server, "runs/get", run_id=run_id)["run"]
        assert run["info"]["status"] == "FINISHED"
        assert {"loss_d", "fid_64"} <= {m["key"] for m in run["data"]["metrics"]}
        listing = api(server, "artifacts/list", run_id=run_id)
        assert "samples.png" in {f["path"] for f in listing["files"]}
    # The run is rows in PostgreSQL, not in some local file store.
    with psycopg.connect(postgres) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
        assert cursor.fetchall() == [("FINISHED",)]
        cursor.execute(
            "SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'loss_d'", (run_id,)
        )
        assert cursor.fetchone()[0] == 4
    assert not (tmp_path / "mlflow.db").exists()
