"""The square sampler as it was before free-form masks (commit c2c8efd, masks/boxes.py), kept
verbatim as the reference the new generator must reproduce bit for bit for squares: same
stored masks for every image, same training masks on the CPU."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from vaeinpaint.params import OcclusionParams, square_side

MAX_RESTARTS = 20


def sample_boxes(
    n: int, size: int, side: int, count: int, overlap: bool, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Top-left corners of `count` squares for each of `n` images: int64 [n, count, 2] as (x, y)."""
    positions = size - side + 1  # valid top-left coordinates per axis
    boxes = torch.empty(n, count, 2, dtype=torch.long, device=device)
    todo = torch.arange(n, device=device)
    for _ in range(MAX_RESTARTS):
        m = len(todo)
        allowed = torch.ones(m, positions, positions, dtype=torch.bool, device=device)  # [y, x]
        coords = torch.arange(positions, device=device)
        dead = torch.zeros(m, dtype=torch.bool, device=device)
        for k in range(count):
            weights = allowed.flatten(1).float()
            dead |= weights.sum(1) == 0
            weights[dead] = 1.0  # placeholder draw for rows that must restart
            flat = torch.multinomial(weights, 1, generator=generator).squeeze(1)
            y, x = flat // positions, flat % positions
            boxes[todo, k, 0], boxes[todo, k, 1] = x, y
            if not overlap and k + 1 < count:
                # Another square's corner (x', y') overlaps this one iff |x'-x| < side and |y'-y| < side.
                near_x = (coords[None, :] - x[:, None]).abs() < side
                near_y = (coords[None, :] - y[:, None]).abs() < side
                allowed &= ~(near_y[:, :, None] & near_x[:, None, :])
        if not dead.any():
            return boxes
        todo = todo[dead]
    # Tight packings (e.g. nine 33 px squares in 100 px) defeat sequential sampling: place
    # the remaining images' squares in distinct cells of a grid, at random offsets.
    boxes[todo] = _grid_boxes(len(todo), size, side, count, generator, device)
    return boxes


def _grid_boxes(n: int, size: int, side: int, count: int, generator: torch.Generator, device) -> torch.Tensor:
    cells_per_axis = size // side
    if count > cells_per_axis**2:
        raise ValueError(f"occlusion: {count} squares of {side} px cannot fit without overlap in {size} px")
    cell = size // cells_per_axis
    order = torch.rand(n, cells_per_axis**2, generator=generator, device=device).argsort(dim=1)[:, :count]
    offsets = torch.randint(0, cell - side + 1, (n, count, 2), generator=generator, device=device)
    return torch.stack([order % cells_per_axis, order // cells_per_axis], dim=-1) * cell + offsets


def boxes_to_masks(boxes: torch.Tensor, size: int, side: int) -> torch.Tensor:
    """[n, count, 2] corners -> float masks [n, 1, size, size], 1 inside any square."""
    coords = torch.arange(size, device=boxes.device)
    x, y = boxes[..., 0, None], boxes[..., 1, None]  # [n, count, 1]
    in_x = (coords >= x) & (coords < x + side)  # [n, count, size]
    in_y = (coords >= y) & (coords < y + side)
    inside = (in_y[..., :, None] & in_x[..., None, :]).any(dim=1)  # [n, size, size]
    return inside.unsqueeze(1).float()


def image_generator(seed: int, image_id: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def occlude(ids: list[str], size: int, params: OcclusionParams) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Masks for the images `ids`: (uint8 [n, size, size], [(image index, x, y)] per square)."""
    side = square_side(size, params.ratio, params.ratio_of)
    corners = torch.empty(len(ids), params.count, 2, dtype=torch.long)
    for i, image_id in enumerate(ids):
        gen = image_generator(params.seed, image_id)
        corners[i] = sample_boxes(1, size, side, params.count, params.overlap, gen)[0]
    masks = boxes_to_masks(corners, size, side)[:, 0].to(torch.uint8).numpy() if len(ids) else np.zeros((0, size, size), np.uint8)
    return masks, corners.numpy()


class RandomMasks:
    """Fresh masks for training batches, drawn on the training device.

    One generator per epoch, seeded from (seed, epoch): an epoch's masks do not depend
    on what ran before, so a resumed training draws exactly what an unbroken one would.
    """

    def __init__(self, size: int, params: OcclusionParams, seed: int, device: torch.device):
        self.size, self.params, self.seed, self.device = size, params, seed, device
        self.side = square_side(size, params.ratio, params.ratio_of)

    def for_epoch(self, epoch: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + epoch)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        boxes = sample_boxes(n, self.size, self.side, p.count, p.overlap, generator, self.device)
        return boxes_to_masks(boxes, self.size, self.side)
