"""THE inpainting engine (`inpaint_image`), which `vaeinpaint inpaint`, its folder mode,
`vaeinpaint serve` and the MLflow pyfunc model all call.

The model works on its training colour (8-bit gray, or RGB for a colour checkpoint), in
windows of the photo chosen by a strategy (`windows.py`): the whole photo stretched to the
training size (`resize`), a window around each hole at the photo's resolution (`crop`), or the
whole photo at its resolution (`original`). A window seen at another size is resized (Lanczos)
with its hole shrunk so that any model pixel partly over it counts as missing, and the
completion is resized back (bicubic). How the completion goes back into the photo (colour,
alpha, 16 bits) is `compose.py`'s.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vaeinpaint.data.images import to_gray_u8, to_rgb_u8
from vaeinpaint.errors import ParamError
from vaeinpaint.inference.compose import fill_photo
from vaeinpaint.inference.holes import EmptyMask, MaskSizeError, mask_size_message
from vaeinpaint.inference.loading import Model
from vaeinpaint.inference.windows import DEFAULT_STRATEGY, Window, padded, plan


def any_per_cell(hole: np.ndarray, cells: int) -> np.ndarray:
    """Shrink axis 0 of `hole` to `cells`: a cell is True if any row it overlaps is. Cell j
    spans rows [j n / cells, (j + 1) n / cells), the footprint a resize gives it."""
    n = hole.shape[0]
    j = np.arange(cells)
    start = (j * n) // cells
    stop = np.maximum(-((-(j + 1) * n) // cells), start + 1)  # ceil, and at least one row when enlarging
    cumulative = np.zeros((n + 1, *hole.shape[1:]), dtype=np.int32)
    np.cumsum(hole, axis=0, out=cumulative[1:])
    return cumulative[stop] > cumulative[start]


def model_mask(hole: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The hole at the model's size (side, or height and width): a model pixel partly over the hole is missing."""
    height, width = (size, size) if isinstance(size, int) else size
    return any_per_cell(any_per_cell(hole, height).T, width).T


def photo_pixels(photo: Image.Image, color: str) -> np.ndarray:
    """The photo in a model's colour: 8-bit gray [H, W] or RGB [H, W, 3] (as the pipeline prepares it)."""
    return np.asarray(to_gray_u8(photo) if color == "gray" else to_rgb_u8(photo))


def resized_view(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """8-bit pixels ([h, w] or [h, w, 3]) resized to `size` (height, width) as the pipeline
    prepares images (Lanczos, as `prepare.fit: stretch`); float in [0, 1]."""
    if pixels.shape[:2] != size:
        pixels = Image.fromarray(pixels).resize(size[::-1], Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(pixels, dtype=np.float32) / 255.0


def model_view(photo: Image.Image, size: int, color: str) -> np.ndarray:
    """The whole photo as the pipeline prepares `color` images: float [s, s] (gray) or [s, s, 3] (rgb)."""
    return resized_view(photo_pixels(photo, color), (size, size))


@torch.no_grad()
def completions(
    model: torch.nn.Module, view: np.ndarray, mask: np.ndarray, samples: int, seed: int, device: torch.device
) -> list[np.ndarray]:
    """The model's completions (float32 shaped like `view`: [s, s] or [s, s, 3]; known pixels
    pasted back). One sample: the latent's mean, deterministic. K samples: latents drawn with
    generators seeded seed + k. The latent is the encoder's of the damaged view; with a learned
    prior (`model.prior: learned`) that encoder is the prior network p(z | visible pixels), so
    both the mean and the draws come from the prior and never from the hole's pixels."""
    x = torch.from_numpy(view).to(device)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    m = torch.from_numpy(mask.astype(np.float32)).to(device)[None, None]
    if samples == 1:
        draws = [(False, None)]
    else:
        draws = [(True, torch.Generator(device=device).manual_seed(seed + k)) for k in range(samples)]
    results = []
    for sample, generator in draws:
        out, _, _ = model(x * (1 - m), m, sample=sample, generator=generator)
        # Known pixels pasted back first, so that resizing up blends the fill into the real
        # surroundings at the hole's edge, not into the model's blurrier copy of them.
        filled = torch.where(m > 0, out, x)[0].float().cpu()
        results.append((filled[0] if view.ndim == 2 else filled.permute(1, 2, 0)).numpy())
    return results


def enlarge(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float [s, s] (or [s, s, C], channel by channel) -> float [H, W] ([H, W, C]) in [0, 1], bicubic."""
    if small.ndim == 3:
        return np.stack([enlarge(small[..., c], size) for c in range(small.shape[-1])], axis=-1)
    image = Image.fromarray(small.astype(np.float32))
    return np.clip(np.asarray(image.resize(size, Image.Resampling.BICUBIC)), 0.0, 1.0)


def complete_window(model: Model, pixels: np.ndarray, hole: np.ndarray, window: Window, samples: int, seed: int) -> list[np.ndarray]:
    """The model's completions of one window of the photo (float [h, w] or [h, w, 3] in
    [0, 1]), from the photo's pixels in the model's colour (`photo_pixels`) and its whole hole."""
    rows, cols = window.slices
    pixels, hole = pixels[rows, cols], hole[rows, cols]
    shape = (window.model_height, window.model_width)
    small, small_hole = resized_view(pixels, shape), (hole if window.native else model_mask(hole, shape))
    if model.fully_convolutional and shape != (model.size, model.size):
        # Mirrored context, known, up to a multiple of 16 (see `windows.padded`).
        pad = ((0, padded(shape[0]) - shape[0]), (0, padded(shape[1]) - shape[1]))
        small, small_hole = np.pad(small, pad + ((0, 0),) * (small.ndim - 2), mode="symmetric"), np.pad(small_hole, pad)
    fills = [fill[: shape[0], : shape[1]] for fill in completions(model.module, small, small_hole, samples, seed, model.device)]
    return fills if window.native else [enlarge(fill, (window.width, window.height)) for fill in fills]


def inpaint_image(
    model: Model, photo: Image.Image, hole: np.ndarray, *, strategy: str = DEFAULT_STRATEGY, samples: int = 1, seed: int = 0
) -> list[Image.Image]:
    """THE inpainting function: `photo` (a working mode, see `load_photo`) with `hole` (bool
    [H, W], True = missing) filled by `model`, once per sample. Only hole pixels change."""
    if samples < 1:
        raise ParamError(f"samples: must be at least 1, got {samples}")
    if hole.shape != (photo.height, photo.width):
        raise MaskSizeError(mask_size_message("mask", hole.shape[::-1], photo.size))
    if not hole.any():
        raise EmptyMask("mask: no missing pixels, nothing to inpaint")
    labels, windows = plan(strategy, hole, model.size, model.fully_convolutional)
    pixels = photo_pixels(photo, model.color)
    fills = [np.zeros(pixels.shape, np.float32) for _ in range(samples)]  # luma, or a colour model's RGB
    for number, window in enumerate(windows, 1):
        own = labels[window.slices] == number  # this window's hole: its fill is used there only
        for fill, window_fill in zip(fills, complete_window(model, pixels, hole, window, samples, seed)):
            fill[window.slices][own] = window_fill[own]
    return [fill_photo(photo, hole, fill) for fill in fills]
