"""Trained models by spec: loading one (the only way the command, the batch mode and the server
load a model), and the ones the page's model picker offers.

A spec is a string naming a checkpoint: a file path, or an MLflow model URI (`runs:/RUN_ID/model`,
`models:/NAME@ALIAS`, `models:/NAME/VERSION`) that `tracking.resolve_checkpoint` downloads; the
checkpoint file then loads through `inference.load_model_file`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vaeinpaint import paths, tracking
from vaeinpaint.inference.loading import Model, load_model_file
from vaeinpaint.modeling.device import select_device_option


@dataclass(frozen=True)
class ModelChoice:
    id: str  # what a client sends back: an opaque name, never a path
    label: str
    spec: str


def checkpoint_path(spec: str) -> Path:
    """The checkpoint file a spec names (an MLflow model is downloaded once into the cache)."""
    return tracking.resolve_checkpoint(spec)


def load_model(spec: str, device: str = "auto") -> Model:
    select_device_option(device, "--device")  # a bad --device is refused before anything is downloaded
    return load_model_file(checkpoint_path(spec), device, spec)


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
    return [ModelChoice(uri, uri, uri) for uri in tracking.list_registered_models()]
