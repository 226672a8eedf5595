"""Where the model looks in a photo, and at what size: the strategies for photos larger than
the model (IOPaint's choices).

- `resize`: the whole photo, stretched to the model's training size (the model sees a 100 x
  100 thumbnail; in a large photo the fill comes back soft).
- `crop`: one window per hole (8-connected component), centred on it: the hole's box
  enlarged `CROP_CONTEXT` times, square where the photo allows, seen at the photo's own
  resolution unless the hole is thicker than the squares the model learned to fill: then it
  is shrunk until it is as thick as they were (`TRAINED_HOLE` of the model's side), with
  enough context around for the model to see at least its training size. A thin stroke
  across a photo stays sharp; a large blob is filled at the scale the model knows. Windows
  are never wider than `CROP_MAX_SCALE` training sizes (512 px at 100).
- `original`: the whole photo at its own resolution (the model is fully convolutional), up
  to `ORIGINAL_MAX_SIDE` px on a side; larger photos are refused, not silently shrunk.

A window is a rectangle of the photo plus the size the model sees it at. Each window's fill
is used only for the pixels of its own hole (`labels`), so windows may overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vaeinpaint.errors import DataError, ParamError

STRATEGIES = ("resize", "crop", "original")
DEFAULT_STRATEGY = "crop"  # the best looking on real photos (docs: Inpainting your own pictures)
CROP_CONTEXT = 2.0  # window side / hole box side: as much known context around as the hole is wide
CROP_MAX_SCALE = 5.12  # windows wider than this many training sizes (512 px at 100) are shrunk to it
TRAINED_HOLE = 0.45  # the default training squares (20% of the area) span 45% of the model's side
ORIGINAL_MAX_SIDE = 1024  # px: the whole photo at full resolution, up to this


@dataclass(frozen=True)
class Window:
    top: int
    left: int
    height: int
    width: int
    model_height: int  # the size the model sees the window at
    model_width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    @property
    def native(self) -> bool:
        """Seen at the photo's own resolution."""
        return (self.model_height, self.model_width) == (self.height, self.width)


def plan(strategy: str, hole: np.ndarray, model_size: int, fully_convolutional: bool) -> tuple[np.ndarray, list[Window]]:
    """(labels, windows): window i fills the hole pixels where labels == i + 1."""
    if strategy not in STRATEGIES:
        raise DataError(f"strategy {strategy}: must be one of {', '.join(STRATEGIES)}")
    height, width = hole.shape
    if strategy == "original" and not fully_convolutional:
        raise DataError("strategy original: this model (the study's architecture) only works at its training size; use resize or crop")
    if strategy == "resize":
        return hole.astype(np.int32), [Window(0, 0, height, width, model_size, model_size)]
    if strategy == "original":
        if max(height, width) > ORIGINAL_MAX_SIDE:
            raise DataError(
                f"strategy original: the photo is {width}x{height}, over {ORIGINAL_MAX_SIDE} px on a side; "
                "use crop (or resize) for photos this large"
            )
        return hole.astype(np.int32), [Window(0, 0, height, width, height, width)]
    return crop_windows(hole, model_size, fully_convolutional)


def crop_windows(hole: np.ndarray, model_size: int, fully_convolutional: bool) -> tuple[np.ndarray, list[Window]]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    windows = []
    for number, (x, y, w, h, _area) in enumerate(stats[1:count].tolist(), 1):  # label 0 is the background
        scale = min(1.0, TRAINED_HOLE * model_size / thickness(labels[y : y + h, x : x + w] == number))
        side = max(math.ceil(CROP_CONTEXT * max(w, h)), math.ceil(model_size / scale))
        top, win_h = centred(y, h, side, hole.shape[0])
        left, win_w = centred(x, w, side, hole.shape[1])
        if not fully_convolutional:
            model_h = model_w = model_size
        else:
            scale = min(scale, CROP_MAX_SCALE * model_size / max(win_h, win_w))
            model_h, model_w = max(1, round(win_h * scale)), max(1, round(win_w * scale))
        windows.append(Window(top, left, win_h, win_w, model_h, model_w))
    return labels, windows


def thickness(component: np.ndarray) -> float:
    """The diameter of the widest disc inside a hole (px): a square's side, a stroke's width."""
    inside = np.pad(component, 1).astype(np.uint8)  # known pixels all round, so the border counts as an edge
    return 2.0 * float(cv2.distanceTransform(inside, cv2.DIST_L2, 5).max())


def centred(start: int, length: int, side: int, limit: int) -> tuple[int, int]:
    """(start, length) of a span `side` long (at most `limit`) centred on [start, start +
    length), moved inside [0, limit)."""
    side = min(side, limit)
    first = start + length // 2 - side // 2
    return min(max(first, 0), limit - side), side


def padded(size: int, multiple: int = 16) -> int:
    """The model halves the resolution four times: sides that are a multiple of 16 keep every
    skip connection aligned with its decoder stage."""
    return -(-size // multiple) * multiple


def check_strategy(strategy: str) -> None:
    """Refuse an unknown strategy before any work (the command's and the pyfunc model's check)."""
    if strategy not in STRATEGIES:
        raise ParamError(f"--strategy {strategy}: must be one of {', '.join(STRATEGIES)}")
