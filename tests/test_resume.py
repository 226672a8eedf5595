"""kill -9 in the middle of training, then `dvc repro`: training continues from the last
complete epoch, in the same MLflow run, and ends with the same metrics as an unbroken run
(bitwise, on CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from vaeinpaint.modeling.checkpoint import load_checkpoint

from conftest import copy_project, run_env

pytestmark = pytest.mark.slow

PARAMS = {
    "data": {"builtin_count": 64},
    "prepare": {"size": 48},
    "split": {"train": 0.75, "test": 0.25},
    "model": {"width": 8, "latent_channels": 4},
    "train": {"epochs": 6, "batch_size": 8, "device": "cpu", "resume_minutes": 0},  # a resume point after every epoch
    "baselines": {"methods": ["corrupted"]},
    "evaluate": {"grid_images": 2},
}


def repro(root, tracking: str = "0", **popen):
    return subprocess.Popen(
        ["dvc", "repro"],
        cwd=root,
        env=run_env(VAEINPAINT_TRACKING=tracking),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def saved_epoch(root) -> int:
    for path in (root / ".resume").glob("*.pt"):
        try:
            return int(load_checkpoint(path)["epoch"])
        except Exception:  # being renamed into place right now
            return 0
    return 0


def test_killed_training_resumes_and_matches_an_unbroken_run(tmp_path):
    unbroken = copy_project(tmp_path / "unbroken", PARAMS)
    out, _ = repro(unbroken).communicate(timeout=600)
    assert (unbroken / "metrics/evaluate.json").exists(), out

    broken = copy_project(tmp_path / "broken", PARAMS)
    process = repro(broken, tracking="1", start_new_session=True)
    deadline = time.time() + 300
    while saved_epoch(broken) < 2:
        assert process.poll() is None, "training finished before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # dvc and the training under it, mid-epoch 3
    process.wait()
    assert not (broken / "metrics/evaluate.json").exists()

    out, _ = repro(broken, tracking="1").communicate(timeout=600)
    assert "resuming from epoch" in out, out
    train = json.loads((broken / "metrics/train.json").read_text())
    assert train["resumed_from_epoch"] >= 2 and train["epochs"] == 6
    for name in ("evaluate.json",):
        assert json.loads((broken / "metrics" / name).read_text()) == json.loads((unbroken / "metrics" / name).read_text())
    assert (broken / "metrics/train_loss.csv").read_text() == (unbroken / "metrics/train_loss.csv").read_text()
    assert not list((broken / ".resume").glob("*.pt"))

    # One MLflow run for the whole training, finished, with every epoch's loss once.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{broken}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vae-inpainting").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"], [(r.info.run_id, r.info.status) for r in runs]
    history = sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, "train_loss"))
    curve = [line.split(",") for line in (broken / "metrics/train_loss.csv").read_text().splitlines()[1:]]
    assert [step for step, _ in history] == [1, 2, 3, 4, 5, 6]
    assert [value for _, value in history] == pytest.approx([float(row[1]) for row in curve])
    assert json.loads((broken / "data/model/run.json").read_text())["run_id"] == runs[0].info.run_id
