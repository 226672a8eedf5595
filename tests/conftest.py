"""Shared fixtures: tiny synthetic data, so unit tests run in seconds on a CPU."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vaeinpaint.params import Params, from_dict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    """No progress bars, no tracking unless a test turns it on, a CPU-only torch."""
    monkeypatch.setenv("VAEINPAINT_PROGRESS", "0")
    monkeypatch.setenv("VAEINPAINT_TRACKING", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)


def tiny_params(**blocks) -> Params:
    """Defaults shrunk for tests; `blocks` override per block, e.g. train={"epochs": 2}."""
    raw = {
        "prepare": {"size": 32},
        "model": {"width": 8, "latent_channels": 4},
        "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "val_fraction": 0.1},
    }
    for block, values in blocks.items():
        raw.setdefault(block, {}).update(values)
    return from_dict(raw)


def synthetic_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (gradients plus a blob): structure a model can learn fast."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        cx, cy, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.1, 0.3)]
        image = 0.5 + 0.25 * (a * xx + b * yy) + c * 0.3 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2)
        images.append(np.clip(image, 0, 1))
    return np.rint(np.stack(images) * 255).astype(np.uint8)


class TinyProject:
    """A project folder for tests: a `dvc.yaml` with no stages (which makes the folder the project
    root, as `paths.project_root` finds it), a `params.yaml` written on demand, the data files
    stages read, made small, and the stage scripts run as DVC runs them."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "dvc.yaml").write_text("stages: {}\n")

    def params(self, blocks: dict) -> TinyProject:
        """params.yaml with just these blocks (the code's defaults fill the rest)."""
        (self.root / "params.yaml").write_text(yaml.safe_dump(blocks, sort_keys=False))
        return self

    def split(self, n_train: int, n_test: int) -> list[str]:
        """data/split/split.csv for n_train + n_test images; their ids."""
        ids = [f"{i:016x}" for i in range(n_train + n_test)]
        (self.root / "data/split").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": ids, "row": range(len(ids)), "subset": ["train"] * n_train + ["test"] * n_test}).to_csv(
            self.root / "data/split/split.csv", index=False
        )
        return ids

    def run(self, stage: str, **env: str) -> subprocess.CompletedProcess:
        """stages/STAGE.py in this folder, tracking off unless `env` turns it on; never raises."""
        return subprocess.run(
            [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
            cwd=self.root,
            env=run_env(**{"VAEINPAINT_TRACKING": "0", **env}),
            capture_output=True,
            text=True,
        )

    def tree(self) -> list[str]:
        """Every file and folder under the project, relative: what a failed stage must leave as it was."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*"))


@pytest.fixture
def tiny_project(tmp_path) -> TinyProject:
    """A tiny project at tmp_path (see `TinyProject`); the working directory stays where it is."""
    return TinyProject(tmp_path)


@pytest.fixture
def project_dir(tiny_project, monkeypatch) -> Path:
    """A tiny project's folder as the working directory and project root."""
    monkeypatch.chdir(tiny_project.root)
    return tiny_project.root


def run_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin folder first on PATH (so `dvc`
    and the `python` in dvc.yaml's commands are this virtualenv's), no DVC or MLflow state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"VAEINPAINT_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def copy_project(root: Path, overrides: dict[str, dict], *, git: bool = True) -> Path:
    """A copy of this project (dvc.yaml, stages, library, params.yaml with `overrides` applied
    per block) at `root`, as a fresh git + DVC repo, with the project's plot templates
    (.dvc/plots), and one commit when `git` is set."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".gitignore", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block, values in overrides.items():
        params[block].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if git:
        for command in (
            ["git", "init", "-q"],
            ["git", "config", "user.email", "test@example.com"],
            ["git", "config", "user.name", "test"],
            ["dvc", "init", "-q"],
            ["cp", "-r", str(ROOT / ".dvc" / "plots"), str(root / ".dvc" / "plots")],
            ["git", "add", "-A"],
            ["git", "commit", "-qm", "copy of the project"],
        ):
            subprocess.run(command, cwd=root, env=run_env(), check=True, capture_output=True)
    return root


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server (127.0.0.1, a thread) serving tmp_path/www."""
    from _http import LoopbackServer

    folder = tmp_path / "www"
    folder.mkdir()
    with LoopbackServer(folder) as server:
        yield server


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_tiny_checkpoint(path: Path, size: int = 32, color: str = "gray", prior: str = "standard") -> Path:
    """An untrained tiny model at `size` px (with `prior`: `model.prior`). PyTorch's default
    init shrinks the signal at every layer, so such a model outputs ~0.5 everywhere whatever
    its latent; He init keeps the signal, so that (as with a trained model) the latent matters
    and samples differ."""
    import torch
    import torch.nn as nn

    from vaeinpaint.modeling.checkpoint import model_config, save_checkpoint
    from vaeinpaint.modeling.model import build_model
    from vaeinpaint.params import ModelParams

    torch.manual_seed(0)
    params = ModelParams(width=8, latent_channels=4, prior=prior)
    model = build_model(params, 3 if color == "rgb" else 1)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
    save_checkpoint(path, {"model": model.state_dict(), "config": model_config(params, size, color)})
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "checkpoint.pt")
