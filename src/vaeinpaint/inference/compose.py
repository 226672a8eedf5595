"""A completion back into the photo: a colour model fills colour photos directly (gray photos
get its completion's luma); a gray model's completion becomes the photo's luma inside the hole
only, and colour photos then get the hole's chroma from OpenCV's Telea inpainting. Alpha is
left alone, and every pixel outside the hole is written back exactly as it was read. The
classical fills (`baseline_photo`) go back the same way."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from vaeinpaint.evaluation.baselines import TELEA_RADIUS, fill_hole
from vaeinpaint.inference.photos import COLOUR_MODES, WIDE_MODE


def fill_photo(photo: Image.Image, hole: np.ndarray, luma: np.ndarray) -> Image.Image:
    """`photo` with its hole's luma replaced by `luma` (float [H, W] in [0, 1]), or with a
    colour model's `luma` ([H, W, 3]), its hole's RGB; pixels outside the hole and the alpha
    channel are copied unchanged."""
    pixels = np.array(photo)  # a copy
    if luma.ndim == 3:  # a colour model's fill
        if photo.mode in COLOUR_MODES:
            pixels[..., :3][hole] = to_u8(luma[hole])
            return Image.fromarray(pixels)
        luma = luma @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as PIL's RGB -> L
    if photo.mode == WIDE_MODE:
        pixels[hole] = np.rint(luma[hole] * 65535.0).astype(np.uint16)
    elif photo.mode == "L":
        pixels[hole] = to_u8(luma[hole])
    elif photo.mode == "LA":
        pixels[..., 0][hole] = to_u8(luma[hole])
    else:
        pixels[..., :3] = colour_fill(pixels[..., :3], hole, luma)
    return Image.fromarray(pixels)


def baseline_photo(method: str, photo: Image.Image, hole: np.ndarray) -> Image.Image:
    """`photo` with its hole filled by a classical method (`baselines.fill_hole`), in colour
    where it has colour; alpha and every pixel outside the hole are copied unchanged."""
    pixels = np.array(photo)  # a copy
    if photo.mode in ("L", WIDE_MODE):
        return Image.fromarray(fill_hole(method, pixels, hole))
    channels = 0 if photo.mode == "LA" else slice(0, 3)
    pixels[..., channels] = fill_hole(method, np.ascontiguousarray(pixels[..., channels]), hole)
    return Image.fromarray(pixels)


def to_u8(values: np.ndarray) -> np.ndarray:
    return np.rint(values * 255.0).astype(np.uint8)


def colour_fill(rgb: np.ndarray, hole: np.ndarray, luma: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] with the hole's Y set to `luma` and its Cr, Cb continued from
    the surroundings by Telea; only hole pixels change. Work is confined to the hole's
    bounding box plus Telea's radius: nothing farther from the hole can reach into it."""
    rows, cols = np.nonzero(hole)
    margin = TELEA_RADIUS + 1
    top, left = max(0, rows.min() - margin), max(0, cols.min() - margin)
    bottom, right = rows.max() + 1 + margin, cols.max() + 1 + margin
    region, inside = rgb[top:bottom, left:right], hole[top:bottom, left:right]
    ycrcb = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0][inside] = to_u8(luma[top:bottom, left:right][inside])
    inside_u8 = inside.astype(np.uint8)
    for channel in (1, 2):
        ycrcb[..., channel] = cv2.inpaint(np.ascontiguousarray(ycrcb[..., channel]), inside_u8, TELEA_RADIUS, cv2.INPAINT_TELEA)
    filled = rgb.copy()
    filled[top:bottom, left:right][inside] = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)[inside]
    return filled
