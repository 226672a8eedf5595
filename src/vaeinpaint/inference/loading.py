"""A trained model from a checkpoint file, ready to inpaint: in eval mode on its device, with
what inference must know of its training (the size, the colour). Resolving an MLflow model
URI to a checkpoint file is tracking's job (`tracking.resolve_checkpoint`), done before this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vaeinpaint.modeling.checkpoint import checkpoint_color, load_checkpoint, model_from_checkpoint
from vaeinpaint.modeling.device import select_device_option
from vaeinpaint.modeling.model import InpaintVAE


@dataclass(frozen=True)
class Model:
    module: torch.nn.Module  # in eval mode, on `device`
    size: int  # the square side it was trained at
    color: str  # what it was trained on: gray or rgb (`prepare.color`)
    device: torch.device
    spec: str  # what the user named it by: a path or a model URI

    @property
    def prior(self) -> str:
        """Where its draws come from: `learned` (p(z | visible pixels), `model.prior: learned`) or
        `standard` (the encoder's latent)."""
        return getattr(self.module, "prior", "standard")

    @property
    def fully_convolutional(self) -> bool:
        """Runs on any image size (ours); the study's architecture has fully connected layers."""
        return isinstance(self.module, InpaintVAE)


def load_model_file(path: str | Path, device: str = "auto", spec: str | None = None) -> Model:
    """The model in the checkpoint at `path` (loaded with weights_only=True), on `device`."""
    torch_device = select_device_option(device, "--device")
    state = load_checkpoint(Path(path))
    module, size = model_from_checkpoint(state, torch_device)
    return Model(module, size, checkpoint_color(state), torch_device, str(path) if spec is None else spec)
