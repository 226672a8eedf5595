"""kill -9 in the middle of training, then `dvc repro`: training continues from the last
complete epoch and ends with the same metrics as an unbroken run (bitwise, on CPU)."""

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
    "train": {"epochs": 6, "batch_size": 8, "device": "cpu"},
    "baselines": {"methods": ["corrupted"]},
    "evaluate": {"grid_images": 2},
}


def repro(root, **popen):
    return subprocess.Popen(
        ["dvc", "repro"],
        cwd=root,
        env=run_env(VAEINPAINT_TRACKING="0"),
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
    process = repro(broken, start_new_session=True)
    deadline = time.time() + 300
    while saved_epoch(broken) < 2:
        assert process.poll() is None, "training finished before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # dvc and the training under it, mid-epoch 3
    process.wait()
    assert not (broken / "metrics/evaluate.json").exists()

    out, _ = repro(broken).communicate(timeout=600)
    assert "resuming from epoch" in out, out
    train = json.loads((broken / "metrics/train.json").read_text())
    assert train["resumed_from_epoch"] >= 2 and train["epochs"] == 6
    for name in ("evaluate.json",):
        assert json.loads((broken / "metrics" / name).read_text()) == json.loads((unbroken / "metrics" / name).read_text())
    assert (broken / "metrics/train_loss.csv").read_text() == (unbroken / "metrics/train_loss.csv").read_text()
    assert not list((broken / ".resume").glob("*.pt"))
