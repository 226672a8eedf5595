"""Screenshots of the MLflow UI for docs/tracking.md, taken with headless Chromium.

    pip install -e '.[test]'      # selenium; uses the system's chromium and chromedriver
    python docs/screenshots_mlflow.py [--project .] [--out docs]

Starts `mlflow ui` on a free loopback port over the project's store (`mlflow.db`), opens the
experiment `vae-inpainting`, and saves:
- mlflow_runs.png: the runs table (Source, Dataset and Models columns);
- mlflow_model.png: the champion's logged model (else the newest run's): its test scores, source run, versions.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1900, 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(project: Path, port: int) -> subprocess.Popen:
    import requests

    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    ui = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                return ui
        except requests.RequestException:
            time.sleep(0.5)
    os.killpg(ui.pid, signal.SIGTERM)
    raise SystemExit("mlflow ui did not start")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def settle_ui(driver, base: str) -> None:
    """The UI's model-training workspace, without its assistant panel over the page."""
    driver.get(base)
    time.sleep(3)
    driver.execute_script(
        "localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));"
        "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
    )
    driver.refresh()


def wait_for_text(driver, text: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 90).until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
    except Exception:
        driver.save_screenshot(str(path.with_suffix(".failed.png")))
        raise SystemExit(
            f"{driver.current_url}: {text!r} did not appear; what the page showed: {path.with_suffix('.failed.png')}"
        ) from None


def shoot(driver, url: str, wait_for: str, path: Path, settle: float = 3.0) -> None:
    """Open `url`, wait until the page shows the text `wait_for`, let it settle, save a PNG."""
    driver.get(url)
    wait_for_text(driver, wait_for, path)
    time.sleep(settle)  # images and charts load after the text
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def shoot_model(driver, url: str, model_id: str, path: Path) -> None:
    """A logged model's page, its metrics narrowed to the test scores."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for_text(driver, model_id[:12], path)
    time.sleep(3)
    driver.find_element(By.XPATH, "//input[@placeholder='Search metrics']").send_keys("test_")
    time.sleep(3)
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="the project root (holding mlflow.db)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="where to write the PNGs")
    args = parser.parse_args()
    project = args.project.resolve()

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vae-inpainting")
    if experiment is None:
        raise SystemExit(f"{project / 'mlflow.db'}: no experiment vae-inpainting (run dvc repro first)")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    with_model = [r for r in runs if r.outputs and r.outputs.model_outputs]
    if not with_model:
        raise SystemExit("no run has a logged model yet (run dvc repro with this version first)")
    run = with_model[0]
    try:  # the champion, when there is one
        champion = client.get_model_version_by_alias("vae-inpainting", "champion")
        run = client.get_run(champion.run_id)
    except Exception:
        pass
    model_id = run.outputs.model_outputs[0].model_id

    port = free_port()
    ui = start_ui(project, port)
    driver = browser()
    base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        settle_ui(driver, f"http://127.0.0.1:{port}/")
        shoot(driver, f"{base}/runs", run.info.run_name, args.out / "mlflow_runs.png")
        shoot_model(driver, f"{base}/models/{model_id}", model_id, args.out / "mlflow_model.png")
    finally:
        driver.quit()
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


if __name__ == "__main__":
    main()
