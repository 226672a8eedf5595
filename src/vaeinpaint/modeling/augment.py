"""Training augmentation (`train.augment`), on the training device, batch at a time.

- `flip`: each image is mirrored left-right with probability 1/2 (never upside down: faces
  and most photos are not symmetric that way).
- `crop`: each image is cropped to a random square of CROP_SCALE (80%) to 100% of its side,
  at a random position, and resized back to its size (bilinear): a random zoom.

Both act on the clean images before the holes are cut, so the model learns from shifted,
zoomed and mirrored photos while the masks stay what the occlusion params say. Draws come
from their own generator, seeded from (train.seed, epoch, rank): an epoch's augmentation does
not depend on what ran before it (resume stays exact), and turning augmentation on leaves the
batch order, masks and latent noise of every epoch as they were without it.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

CROP_SCALE = 0.8  # `crop` keeps at least this share of the side


def augment_generator(seed: int, epoch: int, device: torch.device, rank: int = 0) -> torch.Generator:
    digest = hashlib.sha256(f"augment:{seed}:{epoch}:{rank}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def augment(x: torch.Tensor, ops: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """`x` (float [n, C, S, S]) with `ops` applied in order, each image drawing its own."""
    for op in ops:
        if op == "flip":
            x = random_flip(x, generator)
        elif op == "crop":
            x = random_crop(x, generator)
        else:
            raise ValueError(f"unknown augmentation {op!r}")
    return x


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random square of CROP_SCALE..1 of the side, resized back: one affine grid per image."""
    n = len(x)
    draws = torch.rand(n, 3, generator=generator, device=x.device, dtype=torch.float32)
    scale = CROP_SCALE + (1.0 - CROP_SCALE) * draws[:, 0]
    # In grid_sample's [-1, 1] coordinates the crop's centre may move by 1 - scale either way.
    shift = (2.0 * draws[:, 1:] - 1.0) * (1.0 - scale)[:, None]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)
