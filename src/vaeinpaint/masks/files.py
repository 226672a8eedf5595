"""Masks read from image files: a folder or an archive of them (`occlusion.shape: files`).

Any size and format PIL reads safely (the formats `prepare` accepts); white (>= 128 in gray)
is missing. Transparent pixels count as black (kept), so white strokes painted on a
transparent layer work as well as white on black; 16-bit masks are scaled to 8 bits,
palette ones go through their colours. Each mask is resized to the images' size with
nearest-neighbour (no grey edges to threshold) and binarised. Unreadable files, and masks
with no missing or no known pixel once resized, are skipped and counted by reason.
Archives go through the same checks as dataset archives (`data/archives.py`) and are
extracted into a temporary folder that is removed afterwards.

Each image gets one mask, picked by a hash of (seed, its id): deterministic, independent
of the other images, and any number of images can share a smaller set of masks.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vaeinpaint.data.archives import extract_images
from vaeinpaint.data.images import IMAGE_FORMATS, MAX_IMAGE_PIXELS, list_image_files, to_gray_u8, upright
from vaeinpaint.errors import DataError
from vaeinpaint.progress import progress

log = logging.getLogger(__name__)


@dataclass
class MaskFiles:
    masks: np.ndarray  # uint8 [k, height, width], 1 = missing
    names: list[str]  # each mask's path relative to the folder or archive
    skipped: Counter = field(default_factory=Counter)  # reason -> number of files

    def summary(self) -> dict:
        return {"read": len(self.names), "skipped": int(sum(self.skipped.values())), "skipped_reasons": dict(sorted(self.skipped.items()))}


def mask_gray(image: Image.Image) -> Image.Image:
    """A mask image as 8-bit gray, transparent pixels black (known)."""
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("L")
    return to_gray_u8(image)


def decode_mask(data: bytes, height: int, width: int) -> np.ndarray:
    """Bytes of one mask file -> uint8 [height, width], 1 = missing. Raises what PIL raises."""
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
        image.seek(0)  # GIF, TIFF: the first frame
        image.load()
        gray = mask_gray(upright(image))
    if gray.size != (width, height):
        gray = gray.resize((width, height), Image.Resampling.NEAREST)
    return (np.asarray(gray) >= 128).astype(np.uint8)


def skip_reason(data: bytes, height: int, width: int) -> tuple[np.ndarray | None, str]:
    """(mask, "") or (None, why it cannot be used)."""
    if not data:
        return None, "empty file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            mask = decode_mask(data, height, width)
    except UnidentifiedImageError:
        return None, "not an image"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "too many pixels (decompression bomb)"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what PIL raises for damaged files
        return None, "truncated image" if "truncated" in str(exc).lower() else f"cannot decode ({exc.__class__.__name__})"
    if not mask.any():
        return None, "no missing pixels"
    if mask.all():
        return None, "no known pixels"
    return mask, ""


def read_folder(folder: Path, height: int, width: int, shown: str) -> MaskFiles:
    masks, names, skipped = [], [], Counter()
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    for path in progress(list_image_files(folder), desc="masks", unit="file"):
        name = path.relative_to(folder).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            mask, reason = None, f"unreadable file ({exc.__class__.__name__})"
        else:
            mask, reason = skip_reason(data, height, width)
        if mask is None:
            skipped[reason] += 1
            log.warning("occlude: skipped mask %s: %s", name, reason)
        else:
            masks.append(mask)
            names.append(name)
    if not masks:
        detail = ", ".join(f"{n} {r}" for r, n in skipped.most_common()) or "no image files"
        raise DataError(f"occlusion.path: no usable mask images in {shown} ({detail})")
    return MaskFiles(np.stack(masks), names, skipped)


def read_mask_files(path: Path, height: int, width: int, shown: str | None = None) -> MaskFiles:
    """Every usable mask in the folder or archive at `path`, at height x width, by name."""
    shown = shown or str(path)
    if path.is_dir():
        return read_folder(path, height, width, shown)
    if not path.is_file():
        raise DataError(f"occlusion.path: {shown} does not exist")
    with tempfile.TemporaryDirectory(prefix="vaeinpaint-masks-") as tmp:
        try:
            extract_images(path, Path(tmp))
        except DataError as exc:
            raise DataError(f"occlusion.path: {exc}") from None
        return read_folder(Path(tmp), height, width, shown)


def assign(ids: list[str], n_masks: int, seed: int) -> np.ndarray:
    """Which mask each image gets: int64 [len(ids)], by a hash of (seed, id)."""
    keys = [int.from_bytes(hashlib.sha256(f"{seed}:{image_id}:mask".encode()).digest()[:8], "little") for image_id in ids]
    return (np.array(keys, dtype=np.uint64) % np.uint64(n_masks)).astype(np.int64)
