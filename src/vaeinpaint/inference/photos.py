"""Photos in: any file PIL reads, turned upright as its EXIF says, in one of a few working
modes (8-bit gray, RGB, with or without alpha, 16-bit gray), refused before decoding when it
has more pixels than allowed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from vaeinpaint.data.images import IMAGE_FORMATS, upright
from vaeinpaint.errors import DataError, one_line

# Modes the photo is worked on in; others are converted on loading (see `working_mode`).
# Modes the photo is worked on in; others are converted on loading (see `working_mode`).
GRAY_MODES = ("L", "LA")
COLOUR_MODES = ("RGB", "RGBA")
WIDE_MODE = "I;16"  # 16-bit gray


class TooLarge(DataError):
    """An image with more pixels than allowed (the server's --max-megapixels)."""


@dataclass(frozen=True)
class Photo:
    image: Image.Image  # upright, in one of GRAY_MODES, COLOUR_MODES or WIDE_MODE
    icc_profile: bytes | None  # carried to the output, so colour-managed viewers show the same colours


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
        raise DataError(f"{name}: cannot be read ({one_line(exc, 120)})") from None
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
