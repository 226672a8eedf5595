"""`train.gpus: 2` on CPU: the train stage re-runs itself under torchrun, DDP over gloo."""

import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, run_env

pytestmark = pytest.mark.slow

PARAMS = {
    "data": {"builtin_count": 40},
    "prepare": {"size": 32},
    "split": {"train": 0.8, "test": 0.2},
    "model": {"width": 8, "latent_channels": 4},
    "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "gpus": 2},
}


def stage(name, cwd, **env):
    out = subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=cwd, env=run_env(**env), capture_output=True, text=True)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


def test_two_process_ddp_training_on_cpu(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    for name in ("download", "prepare", "split", "occlude"):
        stage(name, tmp_path, VAEINPAINT_TRACKING="0")
    out = stage("train", tmp_path, VAEINPAINT_TRACKING="1")
    assert "2 processes under torchrun" in out.stderr
    train = json.loads((tmp_path / "metrics/train.json").read_text())
    assert train["epochs"] == 2 and train["train_loss"] > 0
    assert (tmp_path / "data/model/checkpoint.pt").exists()
    assert not list((tmp_path / ".resume").glob("*.pt"))  # finished: no state left behind

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vae-inpainting").experiment_id])
    assert len(runs) == 1  # only rank 0 talks to MLflow
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")] == [1, 2]
    run_id = json.loads((tmp_path / "data/model/run.json").read_text())["run_id"]
    assert run_id == runs[0].info.run_id
