"""The model as MLflow users take it: the pyfunc model loaded in a fresh process, the
registry (`vaeinpaint register --best`), and model URIs in `vaeinpaint inpaint`.

Runs are made directly (tiny untrained models with set metrics), in a SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from vaeinpaint import tracking
from vaeinpaint.apps.inpaint import inpaint
from vaeinpaint.modeling.checkpoint import model_config, save_checkpoint
from vaeinpaint.modeling.model import build_model
from vaeinpaint.params import ModelParams

from conftest import TinyProject, run_env

pytestmark = pytest.mark.slow

# name -> (test_ssim_mean, val_loss, logs a model). `tie` comes after `good`: newest wins ties.
RUNS = {"poor": (0.5, 0.30, True), "good": (0.7, 0.20, True), "tie": (0.7, 0.25, True), "no-model": (0.99, 0.01, False)}


def make_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    params = ModelParams(width=8, latent_channels=4)
    save_checkpoint(path, {"model": build_model(params).state_dict(), "config": model_config(params, 32), "epoch": 1, "optimizer": {}})
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A project with a SQLite store holding RUNS; yields (project, {name: (run_id, checkpoint)})."""
    project = tmp_path_factory.mktemp("registry")
    TinyProject(project)
    patch = pytest.MonkeyPatch()
    patch.chdir(project)
    patch.setenv("VAEINPAINT_TRACKING", "1")
    patch.setenv("VAEINPAINT_CACHE", str(project / "cache"))
    made = {}
    for seed, (name, (ssim, loss, with_model)) in enumerate(RUNS.items()):
        checkpoint = make_checkpoint(project / f"{name}.pt", seed)
        run = tracking.start_run(name, {})
        run.log_metrics({"test_ssim_mean": ssim, "val_loss": loss})
        if with_model:
            run.log_model(checkpoint, step=1)
        run.end()
        made[name] = (run.run_id, checkpoint)
        time.sleep(0.01)  # distinct start times
    patch.undo()
    return project, made


@pytest.fixture
def tracked(store, monkeypatch):
    """The store's project as working directory, tracking on (conftest turns it off per test)."""
    project, made = store
    monkeypatch.chdir(project)
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    monkeypatch.setenv("VAEINPAINT_CACHE", str(project / "cache"))
    return project, made


def photo_files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {"rgb": folder / "rgb.png", "gray": folder / "gray.png", "mask": folder / "mask.png"}
    Image.fromarray((rng.random((50, 70, 3)) * 255).astype(np.uint8)).save(files["rgb"])
    Image.fromarray((rng.random((50, 70)) * 255).astype(np.uint8)).save(files["gray"])
    mask = np.zeros((50, 70), np.uint8)
    mask[10:30, 20:45] = 255
    Image.fromarray(mask).save(files["mask"])
    return files


FRESH_PROCESS = """
import io, json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
files = json.loads(sys.argv[2])
read = lambda name: open(files[name], "rb").read()
frame = pd.DataFrame({"image": [read("rgb")], "box": ["20,10,25,20"]})
outputs = {
    "box": model.predict(frame)["image"][0],
    "mask": model.predict(pd.DataFrame({"image": [read("gray")], "mask": [read("mask")]}))["image"][0],
    "sampled": model.predict(frame, params={"sample": True, "seed": 7})["image"][0],
}
for name, data in outputs.items():
    open(files["out"] + name + ".png", "wb").write(data)
print(sorted(m for m in sys.modules if m.startswith("vaeinpaint.")))
"""


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_pyfunc_model_round_trip_in_a_fresh_process(store, tmp_path):
    project, made = store
    run_id, checkpoint = made["good"]
    files = photo_files(tmp_path)
    arguments = json.dumps({**{k: str(v) for k, v in files.items()}, "out": str(tmp_path / "pyfunc-")})
    env = run_env(VAEINPAINT_TRACKING="1", MLFLOW_TRACKING_URI=f"sqlite:///{project}/mlflow.db")
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, f"runs:/{run_id}/model", arguments], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "vaeinpaint.tracking.pyfunc" in out.stdout  # built from the package's code, not a pickle

    # The same pixels as `vaeinpaint inpaint` with the checkpoint file: one implementation.
    inpaint(files["rgb"], tmp_path / "cli-box.png", checkpoint, box="20,10,25,20", device="cpu")
    inpaint(files["gray"], tmp_path / "cli-mask.png", checkpoint, mask=files["mask"], device="cpu")
    inpaint(files["rgb"], tmp_path / "cli-sampled.png", checkpoint, box="20,10,25,20", samples=2, seed=7, device="cpu")
    assert np.array_equal(pixels(tmp_path / "pyfunc-box.png"), pixels(tmp_path / "cli-box.png"))
    assert np.array_equal(pixels(tmp_path / "pyfunc-mask.png"), pixels(tmp_path / "cli-mask.png"))
    assert np.array_equal(pixels(tmp_path / "pyfunc-sampled.png"), pixels(tmp_path / "cli-sampled_1.png"))

    photo, restored = pixels(files["rgb"]), pixels(tmp_path / "pyfunc-box.png")
    hole = np.zeros(photo.shape[:2], bool)
    hole[10:30, 20:45] = True
    assert np.array_equal(restored[~hole], photo[~hole]) and (restored[hole] != photo[hole]).mean() > 0.9


def test_the_logged_model_is_code_plus_weights_with_a_signature(store):
    import mlflow

    project, made = store
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{made['good'][0]}/model", tracking_uri=f"sqlite:///{project}/mlflow.db"))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in pyfunc
    assert not list(folder.rglob("*.pkl"))  # nothing pickled
    state = torch.load(folder / pyfunc["artifacts"]["checkpoint"]["path"], weights_only=True)
    assert set(state) == {"model", "config", "epoch"}  # weights only, no optimizer state
    assert [c["name"] for c in json.loads(mlmodel["signature"]["inputs"])] == ["image", "mask", "box"]
    assert {p["name"] for p in json.loads(mlmodel["signature"]["params"])} == {"sample", "seed", "strategy"}
    assert (folder / "serving_input_example.json").exists()


def test_register_best_takes_the_best_run_with_a_model_and_the_newest_on_ties(tracked):
    project, made = tracked
    out = subprocess.run(
        ["vaeinpaint", "register", "--best", "test_ssim_mean", "--alias", "champion"],
        cwd=project,
        env=run_env(VAEINPAINT_TRACKING="1"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    tie = made["tie"][0]
    assert out.stdout.splitlines() == [
        f"registered runs:/{tie}/model (test_ssim_mean=0.7) as models:/vae-inpainting/1",
        "alias: models:/vae-inpainting@champion -> version 1",
    ]
    assert tracking.register(metric="val_loss")["run_id"] == made["good"][0]  # loss: lower is better
    assert tracking.register(metric="test_ssim_mean", higher=False)["run_id"] == made["poor"][0]  # --lower
    assert tracking.list_registered_models() == [
        "models:/vae-inpainting@champion",
        "models:/vae-inpainting/3",
        "models:/vae-inpainting/2",
        "models:/vae-inpainting/1",
    ]
    from vaeinpaint.apps.models import available_models

    assert [c.spec for c in available_models()][1:] == tracking.list_registered_models()  # the web page's picker: pipeline, then these
    with pytest.raises(tracking.TrackingError, match="has no logged model"):
        tracking.register(run_id=made["no-model"][0])


def test_inpaint_takes_a_model_as_a_path_a_run_or_a_registered_model(tracked, tmp_path):
    project, made = tracked
    if "models:/vae-inpainting@champion" not in tracking.list_registered_models():
        tracking.register(metric="test_ssim_mean", alias="champion")
    files = photo_files(tmp_path)
    env = run_env(VAEINPAINT_TRACKING="1", VAEINPAINT_CACHE=str(tmp_path / "cache"))

    def cli(name: str, *model: str) -> subprocess.CompletedProcess:
        command = [
            "vaeinpaint",
            "inpaint",
            str(files["rgb"]),
            "-o",
            str(tmp_path / f"{name}.png"),
            "--box",
            "20,10,25,20",
            "--device",
            "cpu",
            *model,
        ]
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)

    for name, model in (
        ("path", ["--checkpoint", str(made["tie"][1])]),
        ("alias", ["--model", "models:/vae-inpainting@champion"]),
        ("version", ["--model", "models:/vae-inpainting/1"]),
        ("run", ["--model", f"runs:/{made['tie'][0]}/model"]),
        ("other", ["--model", str(made["poor"][1])]),
    ):
        assert cli(name, *model).returncode == 0, name
    expected = (tmp_path / "path.png").read_bytes()
    assert all((tmp_path / f"{name}.png").read_bytes() == expected for name in ("alias", "version", "run"))
    assert (tmp_path / "other.png").read_bytes() != expected  # another model: another fill
    assert len(list((tmp_path / "cache").rglob("checkpoint.pt"))) == 1  # one download, reused

    missing = cli("missing", "--model", "models:/vae-inpainting@nope")
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        "error: models:/vae-inpainting@nope: Registered model alias nope not found."
    ]
    both = cli("both", "--model", "models:/vae-inpainting/1", "--checkpoint", str(made["tie"][1]))
    assert both.returncode == 2 and "give one of them" in both.stderr
