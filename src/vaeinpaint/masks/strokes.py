"""Free-form brush strokes, drawn until the hole covers a target share of the image.

The strokes are those of DeepFill v2's `brush_stroke_mask` (Yu et al., "Free-Form Image
Inpainting with Gated Convolution", ICCV 2019), which LaMa's irregular masks follow too:
each stroke is a random walk of thick line segments from a random start, zig-zagging (the
turn angle alternates around 2 pi / 5), each segment about diag / 8 long (normal, clipped
to [0, diag / 4]), with round joints. DeepFill's walks all head right and it flips whole
masks at random; here each stroke heads one of 8 ways (flips and a transpose), so the
strokes of one mask cross each other. OpenCV draws a thick line with round caps, so
consecutive segments join round, as DeepFill's extra circles at each vertex make them.

What differs: DeepFill's masks cover whatever their random strokes happen to cover (5% to
60% of the image). Here `ratio` is the target: segments are drawn one by one, stroke after
stroke, and drawing stops at the segment that brings the hole nearest the target (the one
that crosses it, or the one before), so every mask lands within half a segment of the
target and their mean on it. Widths and lengths scale with the image, so a mask looks the
same at 64 or 512 px. With too few or too thin strokes (`strokes`, `stroke_vertices`,
`stroke_width`) a high target cannot be reached: `reachable_share` estimates how far they
get, and params validation refuses a ratio beyond it.
"""

from __future__ import annotations

import cv2
import numpy as np

# The brush's geometry lives with params (whose validation needs `reachable_share`); it is
# re-exported here, where the masks are drawn.
from vaeinpaint.params.strokes import REACH_SAMPLES, Brush, full_stroke_share, reachable_share, stroke_rng, walks

__all__ = ["REACH_SAMPLES", "Brush", "full_stroke_share", "reachable_share", "stroke_mask", "stroke_rng", "walks"]


def stroke_mask(height: int, width: int, ratio: float, brush: Brush, rng: np.random.Generator) -> np.ndarray:
    """bool [height, width]: strokes drawn until they cover the share of the area nearest `ratio`
    (or all of them, if that is less)."""
    canvas = np.zeros((height, width), np.uint8)
    goal = ratio * height * width
    covered = 0
    for start, end, thickness in walks(height, width, brush, rng):
        before, covered_before = canvas.copy(), covered
        cv2.line(canvas, start, end, 1, thickness)
        covered = int(np.count_nonzero(canvas))
        if covered >= goal:
            return (before if goal - covered_before < covered - goal else canvas).astype(bool)
    return canvas.astype(bool)
