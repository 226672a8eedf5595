"""The train stage's run lifecycle: one MLflow run per training however often it is
interrupted, and the first error is the one the user sees."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from vaeinpaint import training as training_module
from vaeinpaint.data.dataset import write_masks, write_prepared
from vaeinpaint.errors import TrainingError
from vaeinpaint.files import write_csv
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling import distributed as distributed_module
from vaeinpaint.modeling import epoch as epoch_module  # where the training loop looks up its step
from vaeinpaint.modeling.device import machine_name
from vaeinpaint.params import load_params
from vaeinpaint.tracking import lifecycle
from vaeinpaint.tracking.runs import NullRun, RunLike

from conftest import ROOT, synthetic_images

N, SIZE = 40, 32
PARAMS = {
    "prepare": {"size": SIZE},
    "split": {"train": 32, "test": 8},
    "model": {"width": 8, "latent_channels": 4},
    "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "val_fraction": 0.1},
}


def load_stage():
    """stages/train.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("train_stage", ROOT / "stages" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(project_dir):
    """A project folder holding prepared images, a split and masks, as the upstream stages write them."""
    (project_dir / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    ids = [f"{i:016x}" for i in range(N)]
    index = pd.DataFrame({"id": ids, "row": range(N), "sha256": [i * 4 for i in ids]})
    write_prepared(synthetic_images(N, SIZE), index)
    write_csv("data/split/split.csv", pd.DataFrame({"id": ids, "row": range(N), "subset": ["train"] * 32 + ["test"] * 8}))
    occlusion = load_params("params.yaml").occlusion
    results = {"train": occlude(ids[:32], SIZE, occlusion), "test": occlude(ids[32:], SIZE, occlusion)}
    write_masks(
        {subset: r.masks for subset, r in results.items()},
        pd.concat([r.boxes.assign(subset=s) for s, r in results.items()], ignore_index=True),
        pd.concat([r.per_image.assign(subset=s) for s, r in results.items()], ignore_index=True),
    )
    return project_dir


class FailingStore(NullRun):
    """A run whose store goes away: ending it raises (the rest of the run interface is
    NullRun's, so this stand-in cannot drift from it)."""

    run_id = "r1"

    def end(self, status="FINISHED"):
        raise RuntimeError("the tracking store is down")


def test_the_stand_in_follows_the_run_interface():
    assert isinstance(FailingStore(), RunLike)


def test_a_failing_run_end_or_shutdown_does_not_hide_the_training_error(project, monkeypatch, caplog):
    stage = load_stage()

    def nan_training(*args, **kwargs):
        raise TrainingError("train: loss is nan at epoch 2, step 3; stopped, the last good checkpoint is epoch 1")

    def broken_shutdown(dist):
        raise RuntimeError("the process group is gone")

    monkeypatch.setattr(lifecycle, "start_run", lambda *args, **kwargs: FailingStore())
    monkeypatch.setattr(training_module, "train_model", nan_training)
    monkeypatch.setattr(distributed_module, "close_distributed", broken_shutdown)
    with caplog.at_level("WARNING"), pytest.raises(TrainingError, match="loss is nan at epoch 2"):
        stage.main(Path("params.yaml"))
    assert "the tracking store is down" in caplog.text and "the process group is gone" in caplog.text


def test_an_interrupted_first_epoch_continues_the_same_run(project, monkeypatch):
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    stage = load_stage()
    real_step = epoch_module.training_step
    calls = [0]

    def interrupted_in_step_3(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt  # Ctrl-C (a kill -9 is tested end to end in test_resume)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(epoch_module, "training_step", interrupted_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        stage.main(Path("params.yaml"))
    monkeypatch.setattr(epoch_module, "training_step", real_step)
    stage.main(Path("params.yaml"))

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vae-inpainting").experiment_id])
    assert len(runs) == 1, [(r.info.run_id, r.info.status) for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert json.loads(Path("data/model/run.json").read_text())["run_id"] == run.info.run_id
    train = json.loads(Path("metrics/train.json").read_text())
    assert train["precision"] in ("bf16", "fp32") and run.data.tags["train.precision_used"] == train["precision"]
    assert train["machine"] == machine_name(torch.device("cpu"))  # the hardware the figures came from
    # The params as given (a batch of 8 here, or auto), what they resolved to as tags and in train.json.
    assert run.data.tags["train.batch_size_used"] == str(train["batch_size"]) == run.data.params["train.batch_size"]
    assert float(run.data.tags["train.lr_used"]) == train["lr"] == float(run.data.params["train.lr"])
    assert not list((project / ".resume").glob("*"))
