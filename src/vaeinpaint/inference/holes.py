"""Where the hole is: a mask image (white = missing), boxes in the photo's pixels, or a random
hole from the pipeline's own mask generator; as bool [H, W], True = missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from vaeinpaint.data.images import IMAGE_FORMATS, upright
from vaeinpaint.errors import DataError, ParamError, one_line
from vaeinpaint.masks.files import mask_gray
from vaeinpaint.masks.generator import SHARE_TOLERANCE, box_side, draw
from vaeinpaint.params import OcclusionParams


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def box_problem(text: str) -> str | None:
    """What is wrong with `text` as a box `x,y,w,h` in whole pixels; None when nothing is."""
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        return "expected x,y,w,h in whole pixels, e.g. 10,20,40,30"
    if x < 0 or y < 0 or w < 1 or h < 1:
        return "x and y must be >= 0, w and h >= 1"
    return None


def parse_box(text: str) -> Box:
    problem = box_problem(text)
    if problem:
        raise ParamError(f"--box {text}: {problem}")
    x, y, w, h = (int(part) for part in text.split(","))
    return Box(x, y, w, h)


def box_hole(box: Box, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if box.x + box.w > width or box.y + box.h > height:
        raise DataError(f"--box {box}: not inside the {width}x{height} image (needs x + w <= {width} and y + h <= {height})")
    return boxes_hole([box], size)


def boxes_hole(boxes: list[Box], size: tuple[int, int]) -> np.ndarray:
    width, height = size
    hole = np.zeros((height, width), dtype=bool)
    for b in boxes:
        hole[b.y : b.y + b.h, b.x : b.x + b.w] = True
    return hole


def random_hole(size: tuple[int, int], shape: str, ratio: float, count: int, seed: int) -> np.ndarray:
    """A hole from the pipeline's mask generator on the W x H photo: `count` squares or
    rectangles, each `ratio` of the area, never overlapping; or strokes, or either at random
    (`mixed`), covering `ratio` of it."""
    width, height = size
    params = OcclusionParams(shape=shape, ratio=ratio, count=count, seed=seed)
    side = box_side(params, height, width)
    if shape != "strokes" and side < 1:
        raise DataError(f"--random {ratio}: covers less than one pixel of the {width}x{height} image")
    if shape == "square" and side > min(width, height):
        raise DataError(
            f"--random {ratio}: a square covering {ratio} of the {width}x{height} image's area ({side}x{side} px) does not fit in it"
        )
    if count > 1 and count > (width // side) * (height // side):  # axis-parallel equal squares: at most this many fit
        what = "squares" if shape == "square" else "rectangles the area of squares"
        raise DataError(
            f"--random {ratio} --count {count}: {count} {what} of {side} px do not fit in the {width}x{height} image without overlapping"
        )
    hole = draw(params, height, width, "inpaint").mask
    if shape in ("strokes", "mixed") and hole.mean() < ratio - SHARE_TOLERANCE:
        raise DataError(f"--random {ratio} --shape {shape}: the strokes cover only {hole.mean():.2f} of this image; ask for less")
    return hole


class MaskSizeError(DataError):
    """A mask of another size than its photo."""


class EmptyMask(DataError):
    """A mask with no missing pixel."""


def read_mask(source: Path | IO[bytes], size: tuple[int, int], name: str | None = None) -> np.ndarray:
    """A mask image (a file, or bytes named `name` in errors): white (>= 128 in gray) =
    missing. Transparent pixels count as black (kept), so white strokes on a transparent
    layer work as well as white on black. One of another size is refused before decoding."""
    name = name or f"--mask {source}"
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as image:
            if image.width * image.height != size[0] * size[1]:  # (turning it upright may swap the sides)
                raise MaskSizeError(mask_size_message(name, image.size, size))
            image.load()
            image = upright(image)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{name}: not found") from None
    except Exception as exc:  # as in load_photo: PIL raises many types for malformed files
        raise DataError(f"{name}: cannot be read as an image ({one_line(exc, 120)})") from None
    if image.size != size:
        raise MaskSizeError(mask_size_message(name, image.size, size))
    hole = np.asarray(mask_gray(image)) >= 128
    if not hole.any():
        raise EmptyMask(f"{name}: no white (missing) pixels, nothing to inpaint")
    return hole


def mask_size_message(name: str, mask: tuple[int, int], photo: tuple[int, int]) -> str:
    return f"{name}: it is {mask[0]}x{mask[1]}, the photo is {photo[0]}x{photo[1]}; they must match"


def mask_image(hole: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(hole, 255, 0).astype(np.uint8))
