"""Decode any image PIL reads into an 8-bit grayscale square, and prepare a whole folder.

The prepared set is one uint8 array `[N, size, size]` (`images.npy`) plus an index table
(`index.csv`: id, row, path, sha256, label, width, height), instead of tens of thousands
of small files. Exact duplicates (same bytes) are kept once; unreadable files are skipped
and counted by reason, never fatal.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from vaeinpaint.progress import progress

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

# PIL refuses images above this many pixels (decompression bombs). 1024x1024 FFHQ images
# are ~1 Mpx; 8K photos are ~36 Mpx. Anything past 128 Mpx is refused, not decoded.
MAX_IMAGE_PIXELS = 128 * 1024 * 1024


def list_image_files(root: Path) -> list[Path]:
    """Image files under `root`, recursively, by extension, in a stable (sorted) order.
    Hidden files and folders (`.DS_Store`, `__MACOSX/._x.jpg`) are left out."""
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def to_gray_u8(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit grayscale ('L'). Transparency is composited onto white;
    16-bit and 32-bit integer images are rescaled (not clipped) to 8 bits."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in ("1", "RGB", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB").convert("L") if mode in ("LAB", "HSV") else image.convert("L")
    if mode == "CMYK":
        return image.convert("RGB").convert("L")
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image, dtype=np.float64)
        # 16-bit data (PNG, TIFF) arrives as I;16 or as 32-bit I: scale by the 16-bit
        # range unless every value already fits in 8 bits.
        top = 255.0 if mode == "I" and values.max() <= 255 and values.min() >= 0 else 65535.0
        return Image.fromarray(np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8), "L")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        lo, hi = float(values.min()), float(values.max())
        scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        return Image.fromarray(np.rint(scaled * 255.0).astype(np.uint8), "L")
    # Palette, alpha (RGBA, LA, PA, P with transparency) and everything else: via RGBA.
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("L")


def fit_square(image: Image.Image, size: int, fit: str) -> Image.Image:
    """`stretch`: resize to size x size whatever the aspect ratio (as the study did);
    `center-crop`: crop the central square, then resize."""
    if fit == "center-crop":
        return ImageOps.fit(image, (size, size), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def decode_gray(data: bytes, size: int, fit: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Bytes of one image file -> (uint8 [size, size], original (width, height)).

    JPEGs are decoded at reduced scale (PIL's draft mode: the DCT is scaled by 1/2, 1/4
    or 1/8 while staying at least `size` on both sides), straight to luma. EXIF
    orientation is applied before resizing. Raises ValueError for anything unreadable.
    """
    with Image.open(io.BytesIO(data)) as image:
        original = image.size
        if image.format == "JPEG":
            image.draft("L", (size, size))
        image.seek(0)  # GIF, TIFF: first frame
        image.load()
        image = ImageOps.exif_transpose(image)
        gray = to_gray_u8(image)
        if (gray.size[0], gray.size[1]) != (size, size):
            gray = fit_square(gray, size, fit)
        return np.asarray(gray, dtype=np.uint8), original


@dataclass(frozen=True)
class Decoded:
    path: str
    sha256: str
    pixels: np.ndarray | None
    width: int
    height: int
    skip_reason: str = ""


def _decode_file(args: tuple[Path, str, int, str]) -> Decoded:
    path, rel, size, fit = args
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Decoded(rel, "", None, 0, 0, f"unreadable file ({exc.__class__.__name__})")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return Decoded(rel, digest, None, 0, 0, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pixels, (w, h) = decode_gray(data, size, fit)
    except UnidentifiedImageError:
        return Decoded(rel, digest, None, 0, 0, "not an image")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Decoded(rel, digest, None, 0, 0, "too many pixels (decompression bomb)")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = "truncated image" if "truncated" in str(exc).lower() else f"cannot decode ({exc.__class__.__name__})"
        return Decoded(rel, digest, None, 0, 0, reason)
    return Decoded(rel, digest, pixels, w, h)


def _init_worker() -> None:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:  # one thread per process: the processes already use every core
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def decode_all(files: list[tuple[Path, str]], size: int, fit: str, workers: int) -> list[Decoded]:
    """Decode `(path, relative path)` pairs in order, on `workers` processes."""
    tasks = [(path, rel, size, fit) for path, rel in files]
    workers = workers or os.cpu_count() or 1
    _init_worker()
    if workers == 1 or len(tasks) < 64:
        return [_decode_file(t) for t in progress(tasks, desc="prepare", unit="img")]
    chunk = max(8, min(256, len(tasks) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        return list(progress(pool.map(_decode_file, tasks, chunksize=chunk), total=len(tasks), desc="prepare", unit="img"))


def label_of(rel: str) -> str:
    """The folder an image sits in (a class for datasets laid out as class folders)."""
    parent = Path(rel).parent
    return parent.name if parent.name else ""


@dataclass
class PreparedSet:
    images: np.ndarray  # uint8 [N, size, size]
    index: pd.DataFrame  # id, row, path, sha256, label, width, height
    stats: dict


def prepare_folder(raw: Path, size: int, fit: str, workers: int = 0) -> PreparedSet:
    """Decode every image under `raw` into one array plus an index table."""
    started = time.perf_counter()
    paths = list_image_files(raw)
    files = [(p, p.relative_to(raw).as_posix()) for p in paths]
    decoded = decode_all(files, size, fit, workers)

    kept: list[Decoded] = []
    seen: set[str] = set()
    reasons: Counter[str] = Counter()
    n_duplicates = 0
    for item in decoded:
        if item.pixels is None:
            reasons[item.skip_reason] += 1
            log.warning("prepare: skipped %s: %s", item.path, item.skip_reason)
        elif item.sha256 in seen:
            n_duplicates += 1
        else:
            seen.add(item.sha256)
            kept.append(item)
    if not kept:
        raise_empty(raw, len(files), reasons)

    images = np.stack([item.pixels for item in kept]) if kept else np.zeros((0, size, size), np.uint8)
    index = pd.DataFrame(
        {
            "id": [item.sha256[:16] for item in kept],
            "row": np.arange(len(kept)),
            "path": [item.path for item in kept],
            "sha256": [item.sha256 for item in kept],
            "label": [label_of(item.path) for item in kept],
            "width": [item.width for item in kept],
            "height": [item.height for item in kept],
        }
    )
    seconds = time.perf_counter() - started
    stats = {
        "n_files": len(files),
        "n_images": len(kept),
        "n_skipped": int(sum(reasons.values())),
        "n_duplicates": n_duplicates,
        "skipped_reasons": dict(sorted(reasons.items())),
        "size": size,
        "fit": fit,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(files) / seconds, 1) if seconds > 0 else None,
    }
    return PreparedSet(images, index, stats)


def raise_empty(raw: Path, n_files: int, reasons: Counter) -> None:
    from vaeinpaint.errors import DataError

    detail = ", ".join(f"{n} {r}" for r, n in reasons.most_common()) or "no image files"
    raise DataError(f"prepare: no usable images in {raw} ({n_files} files: {detail})")
