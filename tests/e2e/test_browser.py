"""The MLflow UI in a real browser: a tiny pipeline run logged to a real `mlflow server`,
its pages opened in headless Chromium. Skipped, with the reason, where Chromium or its
driver is absent (.ci/run installs both)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from scripts.mlflow_screenshots import (
    api,
    browser_paths,
    chromium,
    open_page,
    page_text,
    run_url,
    screenshots,
    shown_images,
    wait_for,
)

from tests.conftest import run_ganops, tiny_params, write_params

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        browser_paths() is None,
        reason="chromium and chromedriver not on PATH (apt-get install chromium chromium-driver)",
    ),
]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path, mlflow_server: str) -> Path:
    """A project whose train + evaluate run was logged to the server; returns its root."""
    root = tmp_path_factory.mktemp("browser")
    write_params(
        root / "params.yaml", tiny_params(root, mnist_dir, tracking={"uri": mlflow_server})
    )
    for stage in ("download", "prepare", "train", "evaluate"):
        done = run_ganops(stage, cwd=root)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


def _run_id(root: Path) -> str:
    return str(json.loads((root / "outputs/train/mlflow_run.json").read_text())["run_id"])


def test_the_run_page_shows_the_fid_and_the_artifacts_page_the_sample_grid(
    run: Path, mlflow_server: str
) -> None:
    run_id = _run_id(run)
    metrics = api(mlflow_server, "runs/get", run_id=run_id)["run"]["data"]["metrics"]
    fid = next(m["value"] for m in metrics if m["key"] == "fid_64")
    with chromium() as driver:
        open_page(driver, run_url(mlflow_server, run_id), "fid_64")
        text = wait_for(
            "the FID value", lambda: str(fid) in driver.page_source and driver.page_source
        )
        assert "fid_64" in text and str(fid) in text

        open_page(driver, run_url(mlflow_server, run_id, "artifacts/samples.png"), "samples.png")
        shown = wait_for("the sample grid", lambda: shown_images(driver))
        assert _png_size(run / "outputs/train/samples.png") in shown  # the grid, fully loaded


def test_what_ganops_ui_prints_opens_the_runs_table_on_the_fid_column(
    run: Path, mlflow_server: str
) -> None:
    """The address ``ganops ui`` prints for the project's tracking server opens the
    experiment's runs table with the FID as a column in view, sorted lowest first."""
    from selenium.webdriver.common.by import By

    done = run_ganops("ui", cwd=run, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"open (\S+) in a browser", done.stdout)
    assert found is not None, done.stdout
    address = found.group(1)
    assert address.startswith(f"{mlflow_server}/#/experiments/")
    assert address.endswith("/runs?viewStateShareKey=ganops-quality")
    metrics = api(mlflow_server, "runs/get", run_id=_run_id(run))["run"]["data"]["metrics"]
    fid = next(m["value"] for m in metrics if m["key"] == "fid_64")
    with chromium() as driver:
        open_page(driver, address, "fid_64")
        wait_for("the FID value", lambda: str(fid) in page_text(driver))
        headers = [
            cell
            for cell in driver.find_elements(By.CSS_SELECTOR, "[role='columnheader']")
            if cell.text.strip().startswith("fid_64") and cell.is_displayed()
        ]
        assert headers, "no fid_64 column header in view"
        width = driver.execute_script("return window.innerWidth")
        assert headers[0].location["x"] < width / 2  # beside the run names, not off to the right
        assert "Sort: fid_64" in page_text(driver)


def test_the_screenshot_script_writes_each_page(
    run: Path, mlflow_server: str, tmp_path: Path
) -> None:
    files = screenshots(mlflow_server, _run_id(run), None, tmp_path)
    names = [path.name for path in files]
    assert names == ["mlflow-run.png", "mlflow-metrics.png", "mlflow-samples.png"]
    for path in files:
        width, height = _png_size(path)
        assert width == 1400 and 600 < height <= 900, (path, width, height)
