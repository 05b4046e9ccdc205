"""Screenshots of a ganops run in the real MLflow UI, taken with headless Chromium.

Makes the README's pictures, so they can be refreshed after a change:

    mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$PWD/mlflow.db &
    python scripts/mlflow_screenshots.py --server http://127.0.0.1:5000 \\
        --run RUN_ID --compare OTHER_RUN_ID --model ganops-generator --out docs

Needs Chromium and its driver (Debian: apt-get install chromium chromium-driver) and the
selenium client (in the test extras). tests/e2e/test_browser.py drives the UI with the same
functions and checks what it shows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def browser_paths() -> tuple[str, str] | None:
    """(browser, driver) executables on PATH that run, or None when either is missing (an
    Ubuntu `chromium` that only points at a snap does not answer --version)."""
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which(DRIVER)
    if not (browser and driver):
        return None
    try:
        subprocess.run([browser, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return browser, driver


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A headless Chromium session driven through WebDriver (no download of any driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise SystemExit("error: chromium and chromedriver must be on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def api(server: str, endpoint: str, **query: str) -> dict[str, Any]:
    url = f"{server}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def run_url(server: str, run_id: str, tab: str = "") -> str:
    """The UI address of a run's page (``tab``: "", "model-metrics", "artifacts/PATH")."""
    experiment = api(server, "runs/get", run_id=run_id)["run"]["info"]["experiment_id"]
    return f"{server}/#/experiments/{experiment}/runs/{run_id}" + (f"/{tab}" if tab else "")


def compare_url(server: str, run_ids: list[str]) -> str:
    experiments = {
        api(server, "runs/get", run_id=r)["run"]["info"]["experiment_id"] for r in run_ids
    }
    query = urllib.parse.urlencode(
        {"runs": json.dumps(run_ids), "experiments": json.dumps(sorted(experiments))}
    )
    return f"{server}/#/compare-runs?{query}"


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something truthy (the UI renders asynchronously)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the MLflow UI did not show {what} within {timeout:.0f} s")
        time.sleep(0.5)
    return result


def page_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def open_page(driver: Any, url: str, expect: str) -> None:
    """Load ``url`` and wait until the page shows ``expect``; close the assistant panel
    MLflow opens on first load, so it covers nothing."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(repr(expect), lambda: expect in page_text(driver))
    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()
    time.sleep(1.5)  # let charts finish drawing before a screenshot


def search_charts(driver: Any, pattern: str) -> None:
    """Type ``pattern`` into the model-metrics page's chart search box (regex allowed)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, "input[placeholder='Search metric charts']")
    box.send_keys(pattern)
    time.sleep(2.5)


def show_diff_only(driver: Any) -> None:
    """Switch the comparison's parameter and metric tables to the rows that differ."""
    from selenium.webdriver.common.by import By

    for switch in driver.find_elements(By.CSS_SELECTOR, "[role='switch']"):
        if switch.get_attribute("aria-checked") != "true":
            driver.execute_script("arguments[0].click()", switch)
    time.sleep(1)


def scroll_to(driver: Any, text: str) -> None:
    """Scroll the last element whose own text is ``text`` to the top of the window."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']")
    if found:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", found[-1])
        time.sleep(1)


def shown_images(driver: Any) -> list[tuple[int, int]]:
    """Natural (width, height) of every loaded, visible image bigger than an icon."""
    from selenium.webdriver.common.by import By

    sizes = []
    for image in driver.find_elements(By.TAG_NAME, "img"):
        width = int(image.get_attribute("naturalWidth") or 0)
        height = int(image.get_attribute("naturalHeight") or 0)
        if width > 32 and image.is_displayed():
            sizes.append((width, height))
    return sizes


def screenshots(
    server: str, run_id: str, compare: str | None, out: Path, model: str | None = None
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    name = api(server, "runs/get", run_id=run_id)["run"]["info"]["run_name"]
    pages = [
        ("mlflow-run.png", run_url(server, run_id), "fid_"),
        ("mlflow-metrics.png", run_url(server, run_id, "model-metrics"), "Add chart"),
        ("mlflow-samples.png", run_url(server, run_id, "artifacts/samples.png"), "Path:"),
    ]
    if compare:
        pages.append(("mlflow-compare.png", compare_url(server, [run_id, compare]), name))
    if model:  # the Model Registry page: versions with their candidate/champion aliases
        pages.append(("mlflow-model.png", f"{server}/#/models/{model}", "champion"))
    written = []
    with chromium() as driver:
        for file, url, expect in pages:
            open_page(driver, url, expect)
            if file == "mlflow-samples.png":
                wait_for("the sample grid", lambda: shown_images(driver))
            if file == "mlflow-metrics.png":  # the D(x), D(G(z)) and loss curves only
                search_charts(driver, "^(d_|loss_)")
            if file == "mlflow-compare.png":  # what differs between the two runs
                show_diff_only(driver)
                scroll_to(driver, "Parameters")
            driver.save_screenshot(str(out / file))
            written.append(out / file)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="MLflow server URL")
    parser.add_argument("--run", required=True, help="the run to show")
    parser.add_argument("--compare", help="a second run for the comparison page")
    parser.add_argument("--model", help="a registered model name for the registry page")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    server = args.server.rstrip("/")
    for path in screenshots(server, args.run, args.compare, args.out, args.model):
        print(path)


if __name__ == "__main__":
    main()
