"""Checkpoints: saved atomically, loaded with `weights_only=True` (a checkpoint is untrusted input).

A checkpoint is a plain dict of tensors and simple values: `model` and `optimizer`
state dicts, `scheduler` state, `epoch` (epochs completed), `history` (per-epoch losses),
`config` (what `build_model` needs: the `model` params, the image size and colour it was
trained on; `model.prior` among the params, so a checkpoint says whether it carries a learned
prior) and `fingerprint` (what the training was run on; see `train.fingerprint`).
Checkpoints written before colour existed have no `config["color"]`: they are gray; those
written before a model param existed are built with the value that param had then
(`LEGACY_MODEL`), not today's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaeinpaint.errors import DataError, one_line
from vaeinpaint.files import atomic_path
from vaeinpaint.modeling.layout import CHANNELS
from vaeinpaint.modeling.model import build_model
from vaeinpaint.params import ModelParams

# What the model params added later meant before they existed: a checkpoint without one of
# them was trained with this value (today's default may differ).
LEGACY_MODEL = {"head": "transpose", "context": 0, "context_kind": "dilated", "attention": False, "prior": "standard"}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    # Through a file object: torch.save names the zip's records after a path it is given,
    # here the temporary file's random name, and the same weights would hash differently.
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(state, file)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at `path`, or a one-line DataError. `mmap`: tensors are read from the file
    only when used (cheap when only a few plain values are wanted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint: {path} not found (run `dvc repro train` first, or pass --checkpoint)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise DataError(f"checkpoint: {path} cannot be loaded safely ({one_line(exc, 120)})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise DataError(f"checkpoint: {path} is not a vaeinpaint checkpoint (no model or config)")
    return state


def model_config(params: ModelParams, size: int, color: str = "gray") -> dict[str, Any]:
    return {"model": params.model_dump(), "size": size, "color": color}


def checkpoint_color(state: dict[str, Any]) -> str:
    """The colour (`prepare.color`) a checkpoint was trained on; gray for checkpoints from before colour."""
    config = state.get("config")
    color = config.get("color", "gray") if isinstance(config, dict) else "gray"
    if color not in CHANNELS:
        raise DataError(f"checkpoint: trained on unknown colour {color!r} (this version knows {', '.join(CHANNELS)})")
    return color


def checkpoint_prior(state: dict[str, Any]) -> str:
    """The latent's prior (`model.prior`) a checkpoint was trained with; `standard` for those
    from before the param."""
    config = state.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    return str(model.get("prior", LEGACY_MODEL["prior"])) if isinstance(model, dict) else LEGACY_MODEL["prior"]


def model_from_checkpoint(state: dict[str, Any], device: str | torch.device = "cpu") -> tuple[torch.nn.Module, int]:
    """(model in eval mode on `device`, image size it was trained at); `checkpoint_color`
    says which colour it takes."""
    color = checkpoint_color(state)
    try:
        config = state["config"]
        model = build_model(ModelParams(**{**LEGACY_MODEL, **config["model"]}), CHANNELS[color])
        model.load_state_dict(state["model"])
        size = int(config["size"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # another architecture, or a foreign file
        raise DataError(f"checkpoint: does not match this version's models ({one_line(exc)})") from None
    return model.to(device).eval(), size


def check_fits_pipeline(state: dict[str, Any], path: str | Path, size: int, color: str) -> None:
    """A one-line error unless the checkpoint at `path` was trained on `color` images of
    `size` x `size` (what this pipeline's prepared images are)."""
    trained_color = checkpoint_color(state)
    trained_size = state.get("config", {}).get("size")
    if trained_color != color:
        raise DataError(
            f"checkpoint: {path} was trained on {trained_color} images, but prepare.color is {color!r} here "
            f"(re-run `dvc repro train`, or set prepare.color: {trained_color})"
        )
    if trained_size != size:
        raise DataError(
            f"checkpoint: {path} was trained on {trained_size}x{trained_size} images, but prepare.size is {size} here "
            f"(re-run `dvc repro train`, or set prepare.size: {trained_size})"
        )
