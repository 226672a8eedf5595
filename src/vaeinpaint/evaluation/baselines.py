"""Classical fills, scored on the same masks as the model.

- `corrupted`: the damaged input itself (holes left black): the floor any method must beat.
- `biharmonic`: scikit-image's `inpaint_biharmonic` (smooth continuation of the border);
  colour images with `channel_axis=-1` (each channel continued on its own).
- `telea`: OpenCV's fast marching method (`cv2.inpaint`, `INPAINT_TELEA`, radius 3), which
  fills 1- and 3-channel 8-bit images alike.
They depend only on the images and the masks, so the `baselines` stage caches them apart
from training.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from vaeinpaint.progress import progress

TELEA_RADIUS = 3


def fill(method: str, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Restore one image (gray [h, w] or colour [h, w, 3], uint8 or uint16; holes: mask
    [h, w] == 1) with `method`; float64 result in [0, 1], shaped like `image`."""
    colour = image.ndim == 3
    top = float(np.iinfo(image.dtype).max)
    keep = 1 - (mask[..., None] if colour else mask)
    damaged = image.astype(np.float64) / top * keep
    if method == "corrupted":
        return damaged
    if method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        channels = {"channel_axis": -1} if colour else {}
        return np.clip(inpaint_biharmonic(damaged, mask.astype(bool), **channels), 0.0, 1.0)
    if method == "telea":
        import cv2

        damaged_native = (image * keep).astype(image.dtype)
        return cv2.inpaint(damaged_native, mask.astype(np.uint8), TELEA_RADIUS, cv2.INPAINT_TELEA).astype(np.float64) / top
    raise ValueError(f"unknown baseline {method!r}")


def fill_hole(method: str, pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`fill` for a photo of any size: `pixels` (as `fill` takes them) with only the `hole`
    (bool [H, W]) replaced. Work is confined to the hole's bounding box plus the methods'
    reach (Telea's radius, biharmonic's 2 px stencil): nothing farther can reach into it."""
    rows, cols = np.nonzero(hole)
    margin = max(TELEA_RADIUS, 2) + 1
    region = slice(max(0, rows.min() - margin), rows.max() + 1 + margin), slice(max(0, cols.min() - margin), cols.max() + 1 + margin)
    inside = hole[region]
    restored = fill(method, pixels[region], inside.astype(np.uint8))
    top = np.iinfo(pixels.dtype).max
    out = pixels.copy()
    out[region][inside] = np.rint(restored[inside] * top).astype(pixels.dtype)
    return out


def _fill_chunk(args: tuple[str, np.ndarray, np.ndarray]) -> np.ndarray:
    method, images, masks = args
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    return np.stack([fill(method, im, m) for im, m in zip(images, masks)]) if len(images) else np.zeros(images.shape)


def fill_all(method: str, images: np.ndarray, masks: np.ndarray, workers: int = 0) -> np.ndarray:
    """`fill` over a stack [n, s, s] or [n, s, s, 3], on `workers` processes (0: all cores)."""
    workers = workers or os.cpu_count() or 1
    chunks = [(method, images[i : i + 64], masks[i : i + 64]) for i in range(0, len(images), 64)]
    if workers == 1 or len(chunks) <= 1 or method == "corrupted":
        parts = [_fill_chunk(c) for c in progress(chunks, desc=method, unit="chunk")]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(progress(pool.map(_fill_chunk, chunks), total=len(chunks), desc=method, unit="chunk"))
    return np.concatenate(parts) if parts else np.zeros(images.shape)


def evenly_spaced(n: int, limit: int) -> np.ndarray:
    """At most `limit` indices spread evenly over range(n) (a sample that spans every class folder)."""
    if limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))
