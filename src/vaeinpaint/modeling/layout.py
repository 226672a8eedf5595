"""Images as the pipeline stores them, and as the model sees them.

Stored (`images.npy`, uint8): gray `[n, S, S]`, colour `[n, S, S, 3]` in R, G, B order
(channels last, as PIL and numpy lay pixels out). The model sees float `[n, C, S, S]` in
[0, 1] in channels-last memory, which for colour is the stored layout itself: a permute,
no copy. Masks are `[n, S, S]` for both (one hole for every channel).
"""

from __future__ import annotations

import numpy as np
import torch

CHANNELS = {"gray": 1, "rgb": 3}  # prepare.color -> channels the model takes and returns


def color_of(images: np.ndarray | torch.Tensor) -> str:
    """`gray` for a stack [n, S, S], `rgb` for [n, S, S, 3]."""
    if images.ndim == 3:
        return "gray"
    if images.ndim == 4 and images.shape[-1] == 3:
        return "rgb"
    raise ValueError(f"images of shape {tuple(images.shape)} are neither gray [n, S, S] nor RGB [n, S, S, 3]")


def to_model(images: torch.Tensor, memory_format: torch.memory_format = torch.channels_last) -> torch.Tensor:
    """uint8 [n, S, S] or [n, S, S, C] -> float [n, C, S, S] in [0, 1] (channels-last memory
    for training; evaluation keeps the default layout it has always scored with)."""
    x = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return x.float().div_(255.0).contiguous(memory_format=memory_format)


def masks_to_model(masks: torch.Tensor, memory_format: torch.memory_format = torch.channels_last) -> torch.Tensor:
    """uint8 [n, S, S] -> float [n, 1, S, S]."""
    return masks.unsqueeze(1).float().contiguous(memory_format=memory_format)


def from_model(output: torch.Tensor) -> torch.Tensor:
    """The model's [n, C, S, S] -> the stored layout: [n, S, S] for C = 1, [n, S, S, C] else."""
    return output[:, 0] if output.shape[1] == 1 else output.permute(0, 2, 3, 1)
