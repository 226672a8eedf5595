"""Against a real `mlflow server` on loopback: a server that is down, one that goes away
mid-training, and the whole path from `dvc repro` to a scoring request to `mlflow models serve`."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from _mlflow_server import MlflowServer, free_port
from conftest import copy_project, run_env

pytestmark = pytest.mark.slow

TINY = {
    "data": {"builtin_count": 48},
    "prepare": {"size": 48},
    "split": {"train": 0.75, "test": 0.25},
    "model": {"width": 8, "latent_channels": 4},
    "train": {"epochs": 2, "batch_size": 16, "image_every": 1},
    "baselines": {"train_limit": 12},
    "evaluate": {"grid_images": 4},
}
# MLflow's client retries a failing request for minutes by default; the tests keep it short.
FAST_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def tracked_env(server_url: str, **extra: str) -> dict[str, str]:
    return run_env(VAEINPAINT_TRACKING="1", MLFLOW_TRACKING_URI=server_url, **FAST_FAILURE, **extra)


def sh(*args: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (starting one migrates a fresh store: slow on a busy machine).
    The tests run in file order: the end-to-end one, then the one that kills it mid-training,
    then the one that needs it down."""
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("server") / "project", TINY)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_repro_against_a_server_then_register_serve_and_score(project, server, tmp_path):
    env = tracked_env(server.url, VAEINPAINT_CACHE=str(tmp_path / "cache"), MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="0.5")
    sh("dvc", "repro", cwd=project, env=env)
    out = sh("vaeinpaint", "register", "--best", "test_ssim_mean", "--alias", "champion", cwd=project, env=env)
    run_id = json.loads((project / "data/model/run.json").read_text())["run_id"]
    assert f"registered runs:/{run_id}/model" in out.stdout and "models:/vae-inpainting@champion -> version 1" in out.stdout
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.source.name"] == "stages/train.py" and run.data.tags["mlflow.source.type"] == "LOCAL"
    assert run.data.tags["mlflow.source.git.commit"] == sh("git", "rev-parse", "HEAD", cwd=project, env=env).stdout.strip()
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"builtin-train", "builtin-test"}
    assert [o.step for o in run.outputs.model_outputs] == [2]
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= run.data.metrics.keys()
    model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert {m.key for m in model.metrics} >= {"test_ssim_mean", "train_ssim_mean"}  # evaluate's scores, on the model too
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    images = [a.path for a in client.list_artifacts(run_id, "images")]
    assert {"restorations+step+1", "restorations+step+2"} <= {"+".join(Path(p).name.split("+")[:3]) for p in images}

    # DVC's side: the same checkpoint is the artifact `vae-inpainting` (a GTO-style tag versions it).
    for command in (
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "trained"],
        ["git", "tag", "-a", "vae-inpainting@v0.1.0", "-m", "v0.1.0"],
    ):
        sh(*command, cwd=project, env=env)
    sh("dvc", "artifacts", "get", ".", "vae-inpainting", "-o", str(tmp_path / "artifact.pt"), cwd=project, env=env)
    assert (tmp_path / "artifact.pt").read_bytes() == (project / "data/model/checkpoint.pt").read_bytes()

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", "models:/vae-inpainting@champion",
         "-p", str(port), "--host", "127.0.0.1", "--env-manager", "local"],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert serve.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        rng = np.random.default_rng(0)
        photo = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
        hole = np.zeros(photo.shape[:2], bool)
        hole[20:55, 30:70] = True
        request = {"dataframe_split": {"columns": ["image", "mask"], "data": [[base64.b64encode(png(photo)).decode(), base64.b64encode(png(np.where(hole, 255, 0).astype(np.uint8))).decode()]]}}  # fmt: skip
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json=request, timeout=60)
        assert answer.status_code == 200, answer.text[:2000]
        restored = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["predictions"][0]["image"]))))
        assert restored.shape == photo.shape
        assert np.array_equal(restored[~hole], photo[~hole])  # every known pixel kept
        assert (restored[hole] != photo[hole]).mean() > 0.9  # the hole filled by the model
    finally:
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(timeout=30)


def test_evaluate_scores_a_registered_model_in_a_run_of_its_own(project, server, tmp_path):
    env = tracked_env(server.url, VAEINPAINT_CACHE=str(tmp_path / "cache"))
    before = json.loads((project / "metrics/evaluate.json").read_text())
    train_run = json.loads((project / "data/model/run.json").read_text())["run_id"]
    params = project / "params.yaml"
    original = params.read_text()
    changed = yaml.safe_load(original)
    changed["evaluate"]["model"] = "models:/vae-inpainting@champion"
    params.write_text(yaml.safe_dump(changed, sort_keys=False))
    try:
        out = sh("dvc", "repro", cwd=project, env=env)
    finally:
        params.write_text(original)
    assert "Running stage 'evaluate'" in out.stdout and "Running stage 'train'" not in out.stdout
    after = json.loads((project / "metrics/evaluate.json").read_text())
    assert after["test"] == before["test"]  # the champion is the pipeline's own model

    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    runs = client.search_runs(
        [client.get_experiment_by_name("vae-inpainting").experiment_id], "tags.`vaeinpaint.model` = 'models:/vae-inpainting@champion'"
    )
    assert len(runs) == 1 and runs[0].info.run_id != train_run
    assert runs[0].data.metrics["test_ssim_mean"] == pytest.approx(after["test"]["ssim_mean"])


def test_train_finishes_and_says_what_was_lost_when_the_server_goes_away(project, server):
    sh("dvc", "repro", "occlude", cwd=project, env=run_env(VAEINPAINT_TRACKING="0"))
    params = project / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("epochs: 2", "epochs: 12"))
    try:
        train = subprocess.Popen(
            [sys.executable, "stages/train.py"], cwd=project, env=tracked_env(server.url), stderr=subprocess.PIPE, text=True
        )
        seen = []
        for line in train.stderr:  # the server goes away once epoch 2 is logged
            seen.append(line)
            if "train: epoch 2/12" in line:
                server.stop()
                break
        seen += train.stderr.readlines()
        assert train.wait(timeout=600) == 0, "".join(seen)
    finally:
        params.write_text(original)
    info = json.loads((project / "data/model/run.json").read_text())
    run_id = info["run_id"]
    warning = [line for line in seen if line.startswith("warning: tracking:")]
    assert len(warning) == 1, "".join(seen)
    assert f"MLflow run {run_id} at {server.url} lost its server" in warning[0]
    assert "train_loss" in warning[0] and "val_loss" in warning[0] and "-12)" in warning[0]  # (steps N-12)
    assert "the model" in warning[0] and "artifact train_loss.csv" in warning[0]
    assert "the DVC outputs and metrics files are written" in warning[0]
    # Training itself finished: every epoch, every output.
    assert json.loads((project / "metrics/train.json").read_text())["epochs"] == 12
    assert (project / "data/model/checkpoint.pt").stat().st_size > 0
    assert len((project / "metrics/train_loss.csv").read_text().splitlines()) == 13
    lost_steps = info["unlogged"]["metrics"]["train_loss"]
    assert lost_steps[-1] == 12 and lost_steps[0] >= 3
    # What reached the server before it went away is in its store.
    from mlflow import MlflowClient

    store = MlflowClient(f"sqlite:///{server.folder / 'server.db'}")
    assert [m.step for m in store.get_metric_history(run_id, "train_loss")] == list(range(1, lost_steps[0]))


def test_train_stops_before_the_first_epoch_when_the_server_is_down(project, server):
    server.stop()  # down (already, after the test above)
    sh("dvc", "repro", "occlude", cwd=project, env=run_env(VAEINPAINT_TRACKING="0"))
    for output in (project / "data/model/checkpoint.pt", project / "metrics/train.json"):
        output.unlink(missing_ok=True)
    started = time.time()
    out = subprocess.run(
        [sys.executable, "stages/train.py"], cwd=project, env=tracked_env(server.url), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: tracking: the MLflow server at {server.url} does not answer"), out.stderr
    assert "VAEINPAINT_TRACKING=0" in lines[0]
    assert time.time() - started < 120  # one short check, not MLflow's minutes of retries (a busy 2-core machine: ~20 s)
    assert not (project / "data/model/checkpoint.pt").exists() and not (project / "metrics/train.json").exists()
