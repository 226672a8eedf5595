"""kill -9 in the middle of training, then `dvc repro`: training continues from the last
complete epoch and ends with the same metrics as an unbroken run (bitwise, on CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from vaeinpaint.checkpoint import load_checkpoint

from conftest import ROOT, run_env

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


def make_project(root):
    root.mkdir()
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block, values in PARAMS.items():
        params[block].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, env=run_env(), check=True)
    return root


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
    unbroken = make_project(tmp_path / "unbroken")
    out, _ = repro(unbroken).communicate(timeout=600)
    assert (unbroken / "metrics/evaluate.json").exists(), out

    broken = make_project(tmp_path / "broken")
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
