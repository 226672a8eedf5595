"""Occluding squares: where they go (1 = missing pixel).

Squares are placed one after another, each uniformly among the top-left corners still
allowed; with `overlap: false` a square may touch another but not cover any of its pixels.
When an early square leaves no room for a later one, the image starts over (a bounded
number of rounds), and past that its squares go into distinct cells of a grid.

Two ways to run the same rounds. Row by row (`sync_free=False`, the `occlude` stage and
training on the CPU): only the images that failed draw again, and the loop stops as soon
as none did. That needs the host to look at the tensors (`dead.any()`, boolean indexing),
which on a GPU waits for every queued kernel. `sync_free=True` (training on a GPU) draws
every round for every image and keeps each image's first successful round with
`torch.where`: more arithmetic, no host sync. Both give the same squares whenever an
image succeeds in its first round, which is always the case for one square, or with
`overlap: true`.

Why the sync-free way does not stop once every box is placed: knowing that takes the same
host read it exists to avoid (`pending.any()` waits for every kernel queued before it, and
the host's lead over the GPU is gone at every draw), and at the batches a GPU trains with it
would rarely stop anyway: with a third of the rows failing a round (tight packings), all of
256 rows are placed after r rounds with probability (1 - 3^-r)^256: 0.006% after 3 rounds,
35% after 5, 70% after 6. With one box (the default) or `overlap: true` a single round runs, as on the
CPU. The coordinates every round compares against are made once (`positions`).
"""

from __future__ import annotations

import functools
import hashlib

import torch

from vaeinpaint.errors import DataError

MAX_RESTARTS = 20  # rounds when drawing row by row
SYNC_FREE_ROUNDS = 6  # rounds when every image draws every round (each ~1/3 of tight cases fail; then the grid)

Canvas = int | tuple[int, int]  # size x size, or (height, width)


def canvas(size: Canvas) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@functools.lru_cache(maxsize=64)
def positions(length: int, device: torch.device) -> torch.Tensor:
    """`torch.arange(length)` on `device`, made once: every round of every draw compares
    against the same coordinates (read only, never written)."""
    return torch.arange(length, device=device)


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
    xs, ys = positions(px, torch.device(device)), positions(py, torch.device(device))
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


def centred_box(height: int, width: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Top-left corner of a box in the middle of the image (rounded up and to the left)."""
    return (width - box_w) // 2, (height - box_h) // 2


def boxes_to_masks(boxes: torch.Tensor, size: Canvas) -> torch.Tensor:
    """Boxes [n, count, 4] as (x, y, w, h) -> float masks [n, 1, height, width], 1 inside any box."""
    height, width = canvas(size)
    xs, ys = positions(width, boxes.device), positions(height, boxes.device)
    x, y, w, h = (boxes[..., i, None] for i in range(4))  # [n, count, 1]
    in_x = (xs >= x) & (xs < x + w)  # [n, count, width]
    in_y = (ys >= y) & (ys < y + h)
    inside = (in_y[..., :, None] & in_x[..., None, :]).any(dim=1)  # [n, height, width]
    return inside.unsqueeze(1).float()


def with_sizes(corners: torch.Tensor, side: int) -> torch.Tensor:
    """Square corners [n, count, 2] -> boxes [n, count, 4] as (x, y, side, side)."""
    return torch.cat([corners, torch.full_like(corners, side)], dim=-1)


def image_generator(seed: int, image_id: str) -> torch.Generator:
    """A CPU generator for one image, seeded from its id: its draws do not depend on other images."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
