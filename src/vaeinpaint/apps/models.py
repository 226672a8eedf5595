"""Trained models by spec: loading one (the only way the command, the batch mode and the server
load a model), and the ones the page's model picker offers.

A spec is a string naming a checkpoint: a file path, or an MLflow model URI (`runs:/RUN_ID/model`,
`models:/NAME@ALIAS`, `models:/NAME/VERSION`) that `tracking.resolve_checkpoint` downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vaeinpaint import paths
from vaeinpaint.errors import ParamError
from vaeinpaint.modeling.checkpoint import checkpoint_color, load_checkpoint, model_from_checkpoint
from vaeinpaint.modeling.model import InpaintVAE
from vaeinpaint.modeling.device import select_device

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Model:
    module: torch.nn.Module  # in eval mode, on `device`
    size: int  # the square side it was trained at
    color: str  # what it was trained on: gray or rgb (`prepare.color`)
    device: torch.device
    spec: str

    @property
    def fully_convolutional(self) -> bool:
        """Runs on any image size (ours); the study's architecture has fully connected layers."""
        return isinstance(self.module, InpaintVAE)


@dataclass(frozen=True)
class ModelChoice:
    id: str  # what a client sends back: an opaque name, never a path
    label: str
    spec: str


def checkpoint_path(spec: str) -> Path:
    """The checkpoint file a spec names (an MLflow model is downloaded once into the cache)."""
    from vaeinpaint import tracking

    return tracking.resolve_checkpoint(spec)


def load_model(spec: str, device: str = "auto") -> Model:
    torch_device = select_inpaint_device(device)
    state = load_checkpoint(checkpoint_path(spec))
    module, size = model_from_checkpoint(state, torch_device)
    return Model(module, size, checkpoint_color(state), torch_device, spec)


def select_inpaint_device(name: str) -> torch.device:
    """`modeling.device.select_device`, with errors that name the command's option."""
    if name not in DEVICES:
        raise ParamError(f"--device {name}: must be one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("--device cuda: no CUDA device is available (use auto or cpu)")
    return select_device(name)


def pipeline_spec() -> str:
    """The pipeline's trained model: data/model/checkpoint.pt under the project root."""
    return str(paths.project_root() / paths.CHECKPOINT)


def available_models(given: str | None = None) -> list[ModelChoice]:
    """The model picker's entries, the default first: the model given to `serve --model`
    (if any), the pipeline's checkpoint, then MLflow's registered models."""
    choices = []
    if given is not None:
        choices.append(ModelChoice("given", f"--model {given}", given))
    pipeline = pipeline_spec()
    if given is None or Path(given).resolve() != Path(pipeline).resolve():
        choices.append(ModelChoice("pipeline", "pipeline: data/model/checkpoint.pt", pipeline))
    return choices + registered_models()


def registered_models() -> list[ModelChoice]:
    """MLflow's registered models, aliases first (`models:/vae-inpainting@champion`, then
    `models:/vae-inpainting/3`, ...); none when tracking is off or its store or server is not there."""
    from vaeinpaint import tracking

    return [ModelChoice(uri, uri, uri) for uri in tracking.list_registered_models()]
