"""The brush of stroke masks: where each stroke goes, and how far a brush can reach.

The walks are DeepFill v2's (see `vaeinpaint.masks.strokes` for the method and what
differs). They live here, not in the masks package, because params validation needs
`reachable_share` to refuse a ratio the strokes cannot reach, and the masks package
imports params: keeping the geometry on this side breaks that import circle. Pure
geometry: nothing here knows about params beyond the three stroke fields it reads.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import cv2
import numpy as np

MEAN_ANGLE = 2 * math.pi / 5  # DeepFill v2's turn angle between segments...
ANGLE_RANGE = 2 * math.pi / 15  # ...and how far a stroke's range may spread around it
WIDTH_SPREAD = 0.5  # a stroke's width is stroke_width x short side x U(1 - spread, 1 + spread)
REACH_SAMPLES = 64  # strokes drawn to estimate the reachable share


@dataclass(frozen=True)
class Brush:
    """How strokes are drawn (occlusion.stroke_width, stroke_vertices, strokes)."""

    width: float = 0.1  # mean width, share of the shorter side
    vertices: int = 12  # most vertices per stroke; each stroke has vertices // 3 .. vertices
    strokes: int = 12  # most strokes per mask

    @classmethod
    def of(cls, params) -> Brush:
        return cls(params.stroke_width, params.stroke_vertices, params.strokes)


def stroke_rng(seed: int, key: str) -> np.random.Generator:
    """A generator for one mask, seeded from (seed, key): an image id, or any other name."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{key}:strokes".encode()).digest()[:16], "little"))


def walks(height: int, width: int, brush: Brush, rng: np.random.Generator):
    """Segments ((x0, y0), (x1, y1), thickness) of each stroke, lazily, in drawing order."""
    radius = math.hypot(height, width) / 8
    short = min(height, width)
    for _ in range(brush.strokes):
        vertices = int(rng.integers(max(2, brush.vertices // 3), brush.vertices + 1))
        spread = rng.uniform(0, ANGLE_RANGE, 2)
        low, high = MEAN_ANGLE - spread[0], MEAN_ANGLE + spread[1]
        thickness = max(1, int(round(brush.width * short * rng.uniform(1 - WIDTH_SPREAD, 1 + WIDTH_SPREAD))))
        flip_x, flip_y, swap = rng.integers(0, 2, 3) * 2 - 1  # which way this stroke heads: one of 8
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        for i in range(vertices - 1):
            angle = rng.uniform(low, high)
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
            dx, dy = length * math.cos(angle), length * math.sin(angle)
            if swap > 0:
                dx, dy = dy, dx
            nx = float(np.clip(x + flip_x * dx, 0, width - 1))
            ny = float(np.clip(y + flip_y * dy, 0, height - 1))
            yield (int(round(x)), int(round(y))), (int(round(nx)), int(round(ny))), thickness
            x, y = nx, ny


def full_stroke_share(height: int, width: int, brush: Brush, rng: np.random.Generator) -> float:
    """The share every stroke of one mask covers when none is held back (how far they can go)."""
    canvas = np.zeros((height, width), np.uint8)
    for start, end, thickness in walks(height, width, brush, rng):
        cv2.line(canvas, start, end, 1, thickness)
    return float(np.count_nonzero(canvas)) / (height * width)


def reachable_share(height: int, width: int, params) -> float:
    """The mean share stroke masks reach when aiming at `params.ratio` (of OcclusionParams):
    the target where the strokes can reach it, what they cover where they cannot. Estimated
    on REACH_SAMPLES masks drawn from a fixed seed, so the same params give the same answer."""
    brush = Brush.of(params)
    shares = [full_stroke_share(height, width, brush, stroke_rng(0, f"reach:{i}")) for i in range(REACH_SAMPLES)]
    return float(np.minimum(shares, params.ratio).mean())
