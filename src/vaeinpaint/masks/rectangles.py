"""Occluding rectangles: boxes of random aspect, each covering `ratio` of the image area.

Each rectangle's width / height is drawn log-uniformly in [1 / aspect, aspect] (so tall and
wide are equally likely) and its sides are chosen so that width x height is the area a
square of the same ratio would cover; a side longer than the image is cut to the image and
the other side lengthened to keep the area. Rectangles are placed like squares: one after
another, each uniformly among the corners still allowed, with bounded restarts (row by row,
or sync-free on a GPU, as `boxes.sample_boxes`); an image that finds no room in any round
gets squares of the same area on a grid instead.
"""

from __future__ import annotations

import math

import torch

from vaeinpaint.masks.boxes import MAX_RESTARTS, SYNC_FREE_ROUNDS, Canvas, canvas, draw_index, grid_boxes, positions, with_sizes


def rectangle_sizes(n: int, size: Canvas, ratio: float, count: int, aspect: float, generator: torch.Generator, device) -> torch.Tensor:
    """(w, h) of `count` rectangles for each of `n` images: int64 [n, count, 2]."""
    height, width = canvas(size)
    area = ratio * height * width
    log_aspect = (torch.rand(n, count, generator=generator, device=device, dtype=torch.float64) * 2 - 1) * math.log(aspect)
    a = log_aspect.exp()
    w, h = (area * a).sqrt(), (area / a).sqrt()
    w, h = torch.where(w > width, width, w), torch.where(w > width, area / width, h)  # too wide: full width, taller
    w, h = torch.where(h > height, area / height, w), torch.where(h > height, height, h)  # too tall: full height, wider
    w = w.round().clamp(1, width).long()
    h = h.round().clamp(1, height).long()
    return torch.stack([w, h], dim=-1)


def _one_round(sizes: torch.Tensor, height: int, width: int, overlap: bool, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners [n, count, 2] for boxes of `sizes`, placed in turn, and which rows ran out of room."""
    n, count = sizes.shape[:2]
    xs, ys = positions(width, torch.device(device)), positions(height, torch.device(device))
    dead = torch.zeros(n, dtype=torch.bool, device=device)
    corners: list[torch.Tensor] = []
    for k in range(count):
        w, h = sizes[:, k, 0, None], sizes[:, k, 1, None]  # [n, 1]
        if k == 0 or overlap:  # nothing in the way: the corners allowed are a rectangle, x and y independent
            u = torch.rand(n, 2, generator=generator, device=device, dtype=torch.float64)
            x = (u[:, 0] * (width - w[:, 0] + 1)).floor().long()
            y = (u[:, 1] * (height - h[:, 0] + 1)).floor().long()
            corners.append(torch.stack([x, y], dim=-1))
            continue
        allowed = (ys[None, :] <= height - h)[:, :, None] & (xs[None, :] <= width - w)[:, None, :]  # [n, y, x]
        if not overlap:
            for j, corner in enumerate(corners):
                xj, yj = corner[:, 0, None], corner[:, 1, None]
                wj, hj = sizes[:, j, 0, None], sizes[:, j, 1, None]
                # A box at (x, y) overlaps box j iff their spans intersect on both axes.
                over_x = (xs[None, :] < xj + wj) & (xs[None, :] + w > xj)
                over_y = (ys[None, :] < yj + hj) & (ys[None, :] + h > yj)
                allowed &= ~(over_y[:, :, None] & over_x[:, None, :])
        weights = allowed.flatten(1).float()
        dead |= weights.sum(1) == 0
        weights = torch.where(dead[:, None], 1.0, weights)
        flat = draw_index(weights, generator)
        corners.append(torch.stack([flat % width, flat // width], dim=-1))
    return torch.stack(corners, dim=1), dead


def sample_rectangles(
    n: int,
    size: Canvas,
    ratio: float,
    count: int,
    aspect: float,
    overlap: bool,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    sync_free: bool = False,
    fallback_side: int = 0,
) -> torch.Tensor:
    """`count` rectangles for each of `n` images: int64 [n, count, 4] as (x, y, w, h).
    `fallback_side`: the side of the equal-area squares that replace an image's rectangles
    when they cannot be packed (needed with `overlap: false` and count > 1)."""
    height, width = canvas(size)
    sizes = rectangle_sizes(n, (height, width), ratio, count, aspect, generator, device)
    if overlap or count == 1:
        corners, _ = _one_round(sizes, height, width, overlap, generator, device)
        return torch.cat([corners, sizes], dim=-1)
    boxes = torch.zeros(n, count, 4, dtype=torch.long, device=device)
    pending = torch.ones(n, dtype=torch.bool, device=device)
    for _ in range(SYNC_FREE_ROUNDS if sync_free else MAX_RESTARTS):
        corners, dead = _one_round(sizes, height, width, overlap, generator, device)
        boxes = torch.where((pending & ~dead)[:, None, None], torch.cat([corners, sizes], dim=-1), boxes)
        pending &= dead
        if not sync_free and not pending.any():
            return boxes
    grid = with_sizes(grid_boxes(n, height, width, fallback_side, count, generator, device), fallback_side)
    return torch.where(pending[:, None, None], grid, boxes)


def centred_rectangles(n: int, size: Canvas, ratio: float, aspect: float, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """One rectangle of random aspect in the middle of each image: int64 [n, 1, 4]."""
    height, width = canvas(size)
    sizes = rectangle_sizes(n, (height, width), ratio, 1, aspect, generator, device)
    corners = torch.stack([(width - sizes[..., 0]) // 2, (height - sizes[..., 1]) // 2], dim=-1)
    return torch.cat([corners, sizes], dim=-1)
