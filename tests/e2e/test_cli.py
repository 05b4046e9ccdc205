"""The CLI as a user meets it: help, version, and one-line errors with exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ganops.cli import app
from tests.conftest import run_ganops, write_params


def ganops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_ganops(*args, cwd=cwd, timeout=300)


def test_version_and_help_name_inputs_and_outputs(tmp_path: Path) -> None:
    assert ganops("--version", cwd=tmp_path).stdout.startswith("ganops ")
    for command, words in {
        "download": ["data.source", "manifest.json"],
        "prepare": ["[-1, 1]", "train.pt"],
        "train": ["generator.pt", "losses.csv", "train.*"],
        "classifier": ["classifier.pt", "classifier.*", "accuracy"],
        "evaluate": ["metrics.json", "evaluate.*", "--classifier", "--floor"],
        "sample": ["--digit", "--interpolate", "conditional"],
    }.items():
        result = ganops(command, "--help", cwd=tmp_path)
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert all(word in text for word in words), (command, text)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "lr_g", -0.1),
        ("train", "batch_size", 0),
        ("data", "dataset", "cifar10"),
        ("train", "bogus", 1),
    ],
)
def test_bad_params_stop_every_stage_with_one_line_and_exit_2(
    tmp_path: Path, params_file: Path, section: str, key: str, value: object
) -> None:
    params = yaml.safe_load(params_file.read_text())
    params[section][key] = value
    write_params(params_file, params)
    runner = CliRunner()
    for command in ("download", "prepare", "classifier", "train", "evaluate"):
        result = runner.invoke(app, [command, "--params", str(params_file)])
        assert result.exit_code == 2, (command, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{section}.{key}" in lines[0], result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


@pytest.mark.slow
def test_a_bad_value_in_a_real_process_prints_no_traceback(
    tmp_path: Path, params_file: Path
) -> None:
    params = yaml.safe_load(params_file.read_text())
    params["train"]["lr_d"] = "fast"
    write_params(params_file, params)
    result = ganops("train", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: params: invalid value for train.lr_d: 'fast'; expected a number"
    )


@pytest.mark.slow
def test_missing_params_file_is_one_clear_line(tmp_path: Path) -> None:
    result = ganops("train", "--params", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_stages_out_of_order_say_what_to_run_first(tmp_path: Path, params_file: Path) -> None:
    result = ganops("prepare", cwd=tmp_path)
    assert result.returncode == 2 and "run `ganops download` first" in result.stderr
    result = ganops("train", cwd=tmp_path)
    assert result.returncode == 2 and "run `ganops prepare`" in result.stderr
    result = ganops("evaluate", cwd=tmp_path)
    assert result.returncode == 2 and "run `ganops train`" in result.stderr
    result = ganops("classifier", cwd=tmp_path)
    assert result.returncode == 2
    # A command that failed leaves no empty output folders behind (params.yaml only).
    assert sorted(p.name for p in tmp_path.iterdir()) == [params_file.name]


@pytest.mark.slow
def test_cuda_requested_without_gpu_is_a_clear_error(tmp_path: Path, params_file: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    params = yaml.safe_load(params_file.read_text())
    params["train"]["device"] = "cuda"
    write_params(params_file, params)
    assert ganops("download", cwd=tmp_path).returncode == 0
    assert ganops("prepare", cwd=tmp_path).returncode == 0
    result = ganops("train", cwd=tmp_path)
    assert result.returncode == 2 and "no CUDA GPU is available" in result.stderr


@pytest.mark.slow
def test_sample_with_a_digit_for_an_unconditional_model_is_one_line_exit_2(
    tmp_path: Path,
) -> None:
    from ganops.config import params_from_dict
    from ganops.generator_file import save_generator
    from ganops.models import build_models

    params = params_from_dict({"model": {"arch": "mlp", "latent_dim": 4, "g_hidden": [8]}})
    save_generator(build_models(params.model)[0], params.model, path=tmp_path / "g.pt")
    result = ganops("sample", "--model", "g.pt", "--digit", "3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "--digit 3 needs a generator trained with model.conditional: true" in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_gate_exit_codes_pass_fail_and_bad_input(tmp_path: Path, params_file: Path) -> None:
    raw = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    write_params(params_file, {**raw, "gate": {"max_fid": 100.0}})
    metrics = tmp_path / "outputs" / "evaluate" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"fid_64": 80.0, "num_samples": 64}', encoding="utf-8")
    passed = ganops("gate", cwd=tmp_path)
    assert passed.returncode == 0 and "| fid_64 | 80.000 | <= 100 | pass |" in passed.stdout
    metrics.write_text('{"fid_64": 120.0, "num_samples": 64}', encoding="utf-8")
    failed = ganops("gate", cwd=tmp_path)
    assert failed.returncode == 1 and "**FAIL**" in failed.stdout
    assert failed.stderr.strip() == "error: gate failed: fid_64 outside the limits above"
    write_params(params_file, {**raw, "gate": {"max_bogus": 0.01}})
    unknown = ganops("gate", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown key for gate.max_bogus" in unknown.stderr
    write_params(params_file, {**raw, "gate": {"min_classes_covered": 9}})
    absent = ganops("gate", cwd=tmp_path)  # a limit on a metric the file does not have
    assert absent.returncode == 2 and "has no classes_covered metric" in absent.stderr


def test_help_wraps_paragraphs_to_the_terminal_and_shows_flags_bare(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ganops", "train", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60"},
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and max(map(len, lines)) <= 60
    flag = next(line for line in lines if "--fresh" in line)
    assert "<bool>" not in flag and flag.split()[0] == "--fresh"


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ui_serves_the_project_store_without_deprecation_noise(tmp_path: Path, stop: str) -> None:
    """`ganops ui` starts a real MLflow UI on the store params name; its output holds no
    starlette deprecation warning and one server process, not four. Ctrl-C (SIGINT to the
    terminal's process group) or a SIGTERM to ganops alone stops every MLflow process."""
    import signal
    import time

    import psutil

    from tests.conftest import free_port, wait_for_health

    store = tmp_path / "mlflow.db"
    write_params(tmp_path / "params.yaml", {"tracking": {"uri": f"sqlite:///{store}"}})
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ganops", "ui", "--port", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives a command
        )
        try:
            wait_for_health(f"http://127.0.0.1:{port}", process, log)
            served_by = psutil.Process(process.pid).children(recursive=True)
            announced = f"MLflow UI on http://127.0.0.1:{port} for sqlite:///{store}"
            deadline = time.monotonic() + 10  # printed once ganops' own poll sees it answer
            while announced not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            if stop == "ctrl-c":  # SIGINT to the whole group, as a terminal sends it
                os.killpg(process.pid, signal.SIGINT)
            else:  # a service manager's or a `kill`'s SIGTERM, to ganops only
                process.send_signal(signal.SIGTERM)
            code = process.wait(60)
    assert code == (0 if stop == "ctrl-c" else 128 + signal.SIGTERM)
    assert served_by  # mlflow ui, its server and workers
    _, alive = psutil.wait_procs(served_by, timeout=30)
    assert not alive, f"MLflow UI processes still running after {stop}: {alive}"
    text = log.read_text()
    assert f"MLflow UI on http://127.0.0.1:{port} for sqlite:///{store}" in text
    assert "no run of experiment 'ganops' logged yet" in text  # an empty store: no runs table
    assert "DeprecationWarning" not in text
    assert text.count("Started server process") == 1
    assert store.is_file()  # the UI opened (and created) the project's store
    deadline = time.monotonic() + 30
    while _group_alive(process.pid):  # nothing of the UI outlives Ctrl-C
        assert time.monotonic() < deadline, f"processes of ganops' group still running after {stop}"
        time.sleep(0.5)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
