"""Inpaint a photo of any size and mode with a trained model: the engine (`inpaint_image`,
which `vaeinpaint inpaint`, its folder mode and `vaeinpaint serve` all call) and the
one-photo command.

The model works on its training colour (8-bit gray, or RGB for a colour checkpoint), in
windows of the photo chosen by a strategy (`windows.py`): the whole photo stretched to the
training size (`resize`), a window around each hole at the photo's resolution (`crop`), or the
whole photo at its resolution (`original`). A window seen at another size is resized (Lanczos)
with its hole shrunk so that any model pixel partly over it counts as missing, and the
completion is resized back (bicubic). A colour model fills colour photos directly (gray
photos get its completion's luma). A gray model's completion becomes the photo's luma inside
the hole only: colour photos then get the hole's chroma from OpenCV's Telea inpainting.
Alpha is left alone, and every pixel outside the hole is written back exactly as it was
read. Outputs are lossless, and checked to decode to what was meant.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vaeinpaint.apps.models import Model, load_model
from vaeinpaint.inference.windows import STRATEGIES, Window, padded, plan
from vaeinpaint.data.images import IMAGE_FORMATS, to_gray_u8, to_rgb_u8, upright
from vaeinpaint.errors import DataError, ParamError
from vaeinpaint.evaluation.baselines import TELEA_RADIUS, fill_hole
from vaeinpaint.files import atomic_path
from vaeinpaint.masks.files import mask_gray
from vaeinpaint.masks.generator import SHARE_TOLERANCE, box_side, draw
from vaeinpaint.params import OcclusionParams

# Output extension -> (PIL format, save options). Only lossless encodings: anything lossy
# would change the pixels outside the hole, which this command promises to keep.
LOSSLESS = {
    ".png": ("PNG", {}),
    ".tif": ("TIFF", {"compression": "tiff_lzw"}),
    ".tiff": ("TIFF", {"compression": "tiff_lzw"}),
    ".bmp": ("BMP", {}),
    # `exact`: without it libwebp rewrites the colour of fully transparent pixels.
    ".webp": ("WEBP", {"lossless": True, "exact": True}),
}
LOSSY = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".avif", ".heic", ".heif", ".jp2", ".gif"})

# Modes the photo is worked on in; others are converted on loading (see `working_mode`).
GRAY_MODES = ("L", "LA")
COLOUR_MODES = ("RGB", "RGBA")
WIDE_MODE = "I;16"  # 16-bit gray
RANDOM_SHAPES = ("square", "rectangle", "strokes", "mixed")  # what --random draws (occlusion.shape, but files)
DEFAULT_STRATEGY = "crop"  # the best looking on real photos (README: Inpainting your own pictures)


class TooLarge(DataError):
    """An image with more pixels than allowed (the server's --max-megapixels)."""


@dataclass(frozen=True)
class Photo:
    image: Image.Image  # upright, in one of GRAY_MODES, COLOUR_MODES or WIDE_MODE
    icc_profile: bytes | None  # carried to the output, so colour-managed viewers show the same colours


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def output_format(path: Path, option: str = "-o") -> tuple[str, dict]:
    """(PIL format, save options) for an output path, by its extension; lossy ones are refused."""
    suffix = path.suffix.lower()
    if suffix in LOSSLESS:
        return LOSSLESS[suffix]
    supported = ", ".join(sorted(LOSSLESS))
    if suffix in LOSSY:
        raise ParamError(f"{option} {path}: {suffix} is lossy and would change the pixels outside the hole; use one of {supported}")
    raise ParamError(f"{option} {path}: unknown image extension {suffix or '(none)'}; use one of {supported}")


def sample_paths(out: Path, samples: int) -> list[Path]:
    """`out` for one completion; `stem_1.ext` ... `stem_K.ext` for K of them."""
    if samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{k}{out.suffix}") for k in range(1, samples + 1)]


def load_photo(source: Path | IO[bytes], name: str | None = None, max_pixels: int | None = None) -> Photo:
    """The photo (a file, or bytes in memory named `name` in errors), turned upright as its
    EXIF says, in a working mode. Over `max_pixels` it is refused before being decoded."""
    name = name or str(source)
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as image:
            check_pixels(image, name, max_pixels)
            image.load()
            icc = image.info.get("icc_profile")
            image = upright(image)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{name}: not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{name}: not an image vaeinpaint reads ({', '.join(IMAGE_FORMATS)})") from None
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"{name}: too many pixels ({exc})") from None
    except Exception as exc:  # a malformed file can make PIL raise almost anything (OSError, SyntaxError, ...)
        raise DataError(f"{name}: cannot be read ({describe(exc)})") from None
    if image.mode == "CMYK":  # a CMYK profile does not describe the RGB that PIL's conversion makes
        icc = None
    return Photo(working_mode(image, name), icc)


def check_pixels(image: Image.Image, name: str, max_pixels: int | None) -> None:
    """Refuse an image over `max_pixels` from its header, before decoding anything."""
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise TooLarge(
            f"{name}: {image.width}x{image.height} is {image.width * image.height / 1e6:.3g} megapixels, "
            f"over the limit of {max_pixels / 1e6:g}"
        )


def describe(exc: Exception) -> str:
    """An exception as one short line: errors are reported on one line."""
    lines = str(exc).splitlines()
    return f"{exc.__class__.__name__}: {lines[0][:120]}" if lines else exc.__class__.__name__


def working_mode(image: Image.Image, name: str) -> Image.Image:
    """L, LA, RGB, RGBA and 16-bit gray are kept as they are. Others are converted to the
    mode that holds their pixels unchanged (1 -> L, palette -> RGB or RGBA, big-endian
    16-bit -> I;16), or, for CMYK and YCbCr JPEGs, to RGB as any viewer shows them."""
    mode = image.mode
    if mode in GRAY_MODES + COLOUR_MODES + (WIDE_MODE,):
        return image
    if mode.startswith("I;16"):
        return Image.fromarray(np.asarray(image).astype(np.uint16))
    if mode == "1":
        return image.convert("L")
    if mode in ("P", "PA"):
        return image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    if mode in ("CMYK", "YCbCr"):
        return image.convert("RGB")
    raise DataError(f"{name}: mode {mode} is not supported (use 8-bit gray, RGB, RGBA or 16-bit gray)")


# --- where the hole is -----------------------------------------------------------------


def hole_from_options(
    size: tuple[int, int], mask: Path | None, box: str | None, ratio: float | None, count: int, seed: int, shape: str = "square"
) -> np.ndarray:
    """The hole (bool [H, W], True = missing) that exactly one of --mask, --box, --random describes."""
    check_hole_options(mask, box, ratio, count, shape)
    if mask is not None:
        return read_mask(mask, size)
    if box is not None:
        return box_hole(parse_box(box), size)
    return random_hole(size, shape, ratio, count, seed)


def check_hole_options(mask: Path | None, box: str | None, ratio: float | None, count: int, shape: str = "square") -> None:
    """Cheap checks, made before anything is loaded."""
    given = [name for name, value in (("--mask", mask), ("--box", box), ("--random", ratio)) if value is not None]
    if len(given) != 1:
        what = "none of them was given" if not given else f"got {' and '.join(given)}"
        raise ParamError(f"give exactly one of --mask, --box, --random to say where the hole is ({what})")
    if count != 1 and ratio is None:
        raise ParamError(f"--count {count}: only applies to --random")
    if shape != "square" and ratio is None:
        raise ParamError(f"--shape {shape}: only applies to --random")
    if shape not in RANDOM_SHAPES:
        raise ParamError(f"--shape {shape}: must be one of {', '.join(RANDOM_SHAPES)}")
    if count != 1 and shape not in ("square", "rectangle"):
        raise ParamError(f"--count {count}: applies to squares and rectangles, not {shape}")
    if ratio is not None and not 0 < ratio < 1:
        raise ParamError(f"--random: must be in (0, 1), got {ratio}")
    if count < 1:
        raise ParamError(f"--count: must be at least 1, got {count}")
    if box is not None:
        parse_box(box)


def parse_box(text: str) -> Box:
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        raise ParamError(f"--box {text}: expected x,y,w,h in whole pixels, e.g. 10,20,40,30") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ParamError(f"--box {text}: x and y must be >= 0, w and h >= 1")
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
        raise DataError(f"{name}: cannot be read as an image ({describe(exc)})") from None
    if image.size != size:
        raise MaskSizeError(mask_size_message(name, image.size, size))
    hole = np.asarray(mask_gray(image)) >= 128
    if not hole.any():
        raise EmptyMask(f"{name}: no white (missing) pixels, nothing to inpaint")
    return hole


def mask_size_message(name: str, mask: tuple[int, int], photo: tuple[int, int]) -> str:
    return f"{name}: it is {mask[0]}x{mask[1]}, the photo is {photo[0]}x{photo[1]}; they must match"


# --- the model's view ------------------------------------------------------------------


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
    generators seeded seed + k."""
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


# --- back into the photo ---------------------------------------------------------------


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


# --- writing ---------------------------------------------------------------------------


def encode(image: Image.Image, path: Path, icc_profile: bytes | None = None, option: str = "-o") -> bytes:
    """`image` encoded for `path`, after checking that it decodes back to the same pixels:
    some formats drop what they cannot store (BMP: alpha; WEBP: 16 bits)."""
    fmt, options = output_format(path, option)
    if icc_profile and fmt != "BMP":
        options = {**options, "icc_profile": icc_profile}
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{option} {path}: {fmt} cannot store a {image.mode} image ({describe(exc)}); use .png or .tiff") from None
    data = buffer.getvalue()
    if not decodes_to(data, image):
        raise DataError(f"{option} {path}: {fmt} cannot store this {image.mode} image losslessly; use .png or .tiff")
    return data


def decodes_to(data: bytes, expected: Image.Image) -> bool:
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()
        if decoded.mode != expected.mode:
            try:  # e.g. WEBP returns gray as RGB: fine if converting back restores every value
                decoded = decoded.convert(expected.mode)
            except ValueError:
                return False
        return decoded.size == expected.size and np.array_equal(np.asarray(decoded), np.asarray(expected))


def write_files(files: dict[Path, bytes]) -> None:
    for path, data in files.items():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)


def mask_image(hole: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(hole, 255, 0).astype(np.uint8))


# --- the command -----------------------------------------------------------------------


def inpaint(
    photo_path: Path,
    out: Path,
    model_spec: str | Path,
    *,
    mask: Path | None = None,
    box: str | None = None,
    ratio: float | None = None,
    count: int = 1,
    seed: int = 0,
    shape: str = "square",
    samples: int = 1,
    save_mask: Path | None = None,
    device: str = "auto",
    strategy: str = DEFAULT_STRATEGY,
) -> list[Path]:
    """Inpaint `photo_path` where the options say; write the completion(s) (and the mask,
    if asked) and return the paths written. Nothing is written unless every output is ready."""
    output_format(out)
    if save_mask is not None:
        output_format(save_mask, "--save-mask")
    check_hole_options(mask, box, ratio, count, shape)
    if samples < 1:
        raise ParamError(f"--samples: must be at least 1, got {samples}")
    outputs = sample_paths(out, samples)
    if save_mask is not None and save_mask.resolve() in {path.resolve() for path in outputs}:
        raise ParamError(f"--save-mask {save_mask}: is also where the inpainted photo goes; pick another name")
    check_strategy(strategy)
    model = load_model(str(model_spec), device)

    photo = load_photo(photo_path)
    hole = hole_from_options(photo.image.size, mask, box, ratio, count, seed, shape)
    filled = inpaint_image(model, photo.image, hole, strategy=strategy, samples=samples, seed=seed)
    files = {path: encode(image, path, photo.icc_profile) for path, image in zip(outputs, filled)}
    if save_mask is not None:
        files[save_mask] = encode(mask_image(hole), save_mask, option="--save-mask")
    write_files(files)
    return list(files)


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ParamError(f"--strategy {strategy}: must be one of {', '.join(STRATEGIES)}")
