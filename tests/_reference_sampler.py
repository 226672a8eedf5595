"""The box samplers as they were before their per-step costs were cut (commit ac045bd,
masks/boxes.py and masks/rectangles.py), kept verbatim as the reference the current ones must
reproduce bit for bit: the masks the `occlude` stage stores, and those training draws."""

from __future__ import annotations

import math

import torch

from vaeinpaint.errors import DataError

Canvas = int | tuple[int, int]

MAX_RESTARTS = 20  # rounds when drawing row by row
SYNC_FREE_ROUNDS = 6  # rounds when every image draws every round (each ~1/3 of tight cases fail; then the grid)


def canvas(size: Canvas) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def draw_index(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of `weights` [n, k], with probability proportional to the weight.

    Exactly what `torch.multinomial(weights, 1, generator=generator)` returns (PyTorch draws
    one sample as argmax(w / q), q ~ Exp(1): the Gumbel-max trick), without its check that
    the weights are valid, which reads a value back to the host and so stalls a GPU."""
    q = torch.empty_like(weights).exponential_(1, generator=generator)
    return (weights / q).argmax(dim=1)


def _one_round(n, height, width, side, count, overlap, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners [n, count, 2] (x, y) placed one square at a time, and which rows ran out of room."""
    py, px = height - side + 1, width - side + 1  # valid top-left coordinates per axis
    allowed = torch.ones(n, py, px, dtype=torch.bool, device=device)  # [y, x]
    xs, ys = torch.arange(px, device=device), torch.arange(py, device=device)
    dead = torch.zeros(n, dtype=torch.bool, device=device)
    corners = []
    for k in range(count):
        weights = allowed.flatten(1).float()
        dead |= weights.sum(1) == 0
        weights = torch.where(dead[:, None], 1.0, weights)  # placeholder draw for rows that must restart
        flat = draw_index(weights, generator)
        y, x = flat // px, flat % px
        corners.append(torch.stack([x, y], dim=-1))
        if not overlap and k + 1 < count:
            # Another square's corner (x', y') overlaps this one iff |x'-x| < side and |y'-y| < side.
            near_x = (xs[None, :] - x[:, None]).abs() < side
            near_y = (ys[None, :] - y[:, None]).abs() < side
            allowed &= ~(near_y[:, :, None] & near_x[:, None, :])
    return torch.stack(corners, dim=1), dead


def sample_boxes(
    n: int,
    size: Canvas,
    side: int,
    count: int,
    overlap: bool,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    sync_free: bool = False,
) -> torch.Tensor:
    """Top-left corners of `count` squares for each of `n` images: int64 [n, count, 2] as (x, y)."""
    height, width = canvas(size)
    if side > min(height, width):
        raise DataError(f"occlusion: a {side} px square does not fit in a {width}x{height} image")
    if overlap or count == 1:  # no square can be left without room: one round is enough
        return _one_round(n, height, width, side, count, overlap, generator, device)[0]
    if sync_free:
        boxes = torch.zeros(n, count, 2, dtype=torch.long, device=device)
        pending = torch.ones(n, dtype=torch.bool, device=device)
        for _ in range(SYNC_FREE_ROUNDS):
            corners, dead = _one_round(n, height, width, side, count, overlap, generator, device)
            boxes = torch.where((pending & ~dead)[:, None, None], corners, boxes)
            pending &= dead
        grid = grid_boxes(n, height, width, side, count, generator, device)
        return torch.where(pending[:, None, None], grid, boxes)
    boxes = torch.empty(n, count, 2, dtype=torch.long, device=device)
    todo = torch.arange(n, device=device)
    for _ in range(MAX_RESTARTS):
        corners, dead = _one_round(len(todo), height, width, side, count, overlap, generator, device)
        boxes[todo] = corners
        if not dead.any():
            return boxes
        todo = todo[dead]
    # Tight packings (e.g. nine 33 px squares in 100 px) defeat sequential sampling: place
    # the remaining images' squares in distinct cells of a grid, at random offsets.
    boxes[todo] = grid_boxes(len(todo), height, width, side, count, generator, device)
    return boxes


def grid_boxes(n: int, height: int, width: int, side: int, count: int, generator: torch.Generator, device) -> torch.Tensor:
    """Corners [n, count, 2] of squares in distinct cells of the coarsest grid that holds them."""
    cells_x, cells_y = width // side, height // side
    if count > cells_x * cells_y:
        raise DataError(f"occlusion: {count} squares of {side} px cannot fit without overlap in a {width}x{height} image")
    cell_w, cell_h = width // cells_x, height // cells_y
    order = torch.rand(n, cells_x * cells_y, generator=generator, device=device).argsort(dim=1)[:, :count]
    if cell_w == cell_h:  # a square canvas: one draw for both offsets, as squares have always been placed
        offsets = torch.randint(0, cell_w - side + 1, (n, count, 2), generator=generator, device=device)
    else:
        dx = torch.randint(0, cell_w - side + 1, (n, count, 1), generator=generator, device=device)
        dy = torch.randint(0, cell_h - side + 1, (n, count, 1), generator=generator, device=device)
        offsets = torch.cat([dx, dy], dim=-1)
    return torch.stack([order % cells_x * cell_w, order // cells_x * cell_h], dim=-1) + offsets


def boxes_to_masks(boxes: torch.Tensor, size: Canvas) -> torch.Tensor:
    """Boxes [n, count, 4] as (x, y, w, h) -> float masks [n, 1, height, width], 1 inside any box."""
    height, width = canvas(size)
    xs, ys = torch.arange(width, device=boxes.device), torch.arange(height, device=boxes.device)
    x, y, w, h = (boxes[..., i, None] for i in range(4))  # [n, count, 1]
    in_x = (xs >= x) & (xs < x + w)  # [n, count, width]
    in_y = (ys >= y) & (ys < y + h)
    inside = (in_y[..., :, None] & in_x[..., None, :]).any(dim=1)  # [n, height, width]
    return inside.unsqueeze(1).float()


def with_sizes(corners: torch.Tensor, side: int) -> torch.Tensor:
    """Square corners [n, count, 2] -> boxes [n, count, 4] as (x, y, side, side)."""
    return torch.cat([corners, torch.full_like(corners, side)], dim=-1)


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


def _one_round_rectangles(
    sizes: torch.Tensor, height: int, width: int, overlap: bool, generator, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners [n, count, 2] for boxes of `sizes`, placed in turn, and which rows ran out of room."""
    n, count = sizes.shape[:2]
    xs, ys = torch.arange(width, device=device), torch.arange(height, device=device)
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
        corners, _ = _one_round_rectangles(sizes, height, width, overlap, generator, device)
        return torch.cat([corners, sizes], dim=-1)
    boxes = torch.zeros(n, count, 4, dtype=torch.long, device=device)
    pending = torch.ones(n, dtype=torch.bool, device=device)
    for _ in range(SYNC_FREE_ROUNDS if sync_free else MAX_RESTARTS):
        corners, dead = _one_round_rectangles(sizes, height, width, overlap, generator, device)
        boxes = torch.where((pending & ~dead)[:, None, None], torch.cat([corners, sizes], dim=-1), boxes)
        pending &= dead
        if not sync_free and not pending.any():
            return boxes
    grid = with_sizes(grid_boxes(n, height, width, fallback_side, count, generator, device), fallback_side)
    return torch.where(pending[:, None, None], grid, boxes)
