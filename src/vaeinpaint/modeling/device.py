"""Which device torch computes on: the one choice that training, evaluation, the benchmark and
inference share, so that `train.device: auto` means the same everywhere."""

from __future__ import annotations

import torch

from vaeinpaint.errors import ParamError
from vaeinpaint.params import DEVICES


def select_device(name: str) -> torch.device:
    """`auto`: CUDA when there is a device, else the CPU; `cuda` without one is a one-line error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device: 'cuda' requested but no CUDA device is available (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def select_device_option(name: str, option: str = "--device") -> torch.device:
    """`select_device` for a command's option (inference, the benchmark): its errors name the
    option typed (`--device tpu: must be one of auto, cpu, cuda`)."""
    if name not in DEVICES:
        raise ParamError(f"{option} {name}: must be one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError(f"{option} cuda: no CUDA device is available (use auto or cpu)")
    return select_device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously; a CPU has nothing queued)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
