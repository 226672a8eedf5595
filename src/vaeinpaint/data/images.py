"""Decode any image PIL reads into an 8-bit gray or colour square, and prepare a whole folder.

The prepared set is one uint8 array (`images.npy`: `[N, size, size]` gray, the study's, or
`[N, size, size, 3]` RGB with `prepare.color: rgb`) plus an index table
(`index.csv`: id, row, path, sha256, label, label_en, width, height), instead of tens of
thousands of small files. Exact duplicates (same bytes) are kept once; unreadable files are
skipped and counted by reason, never fatal; images kept despite a problem (EXIF that cannot
be applied) are counted by reason too. A bug in this code is not a bad file: it stops prepare.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import time
import warnings
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from vaeinpaint.progress import progress

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

# The decoders PIL may use. PIL picks a decoder by content, not by name, so without this a
# `.jpg` from an untrusted archive could be handed to, say, the EPS plugin (which runs
# Ghostscript). "JPEG" also opens MPO, the multi-picture JPEG that many cameras write.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

# PIL refuses images above this many pixels (decompression bombs). 1024x1024 FFHQ images
# are ~1 Mpx; 8K photos are ~36 Mpx. Anything past 128 Mpx is refused, not decoded.
MAX_IMAGE_PIXELS = 128 * 1024 * 1024

SOURCE_FILE = "SOURCE.json"  # written by the download stage beside the raw images


def is_image_name(rel: str) -> bool:
    """An image file by extension (`rel`: a POSIX path under some root), not hidden and not
    macOS metadata (`.DS_Store`, `__MACOSX/._x.jpg`). Folders and archives both go by this."""
    parts = rel.split("/")
    return PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS and not any(p.startswith(".") or p == "__MACOSX" for p in parts)


def list_image_files(root: Path) -> list[Path]:
    """Image files under `root` (see `is_image_name`), recursively, in a stable (sorted) order."""
    files = [path for path in root.rglob("*") if is_image_name(path.relative_to(root).as_posix()) and path.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def to_gray_u8(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit grayscale ('L'). Transparency is composited onto white;
    16-bit and 32-bit integer images are rescaled (not clipped) to 8 bits."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in ("1", "RGB", "YCbCr"):
        return image.convert("L")
    if mode == "LAB":  # PIL cannot convert LAB to RGB; its L channel is the lightness
        return image.getchannel("L")
    if mode == "HSV":
        return image.convert("RGB").convert("L")
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


def to_rgb_u8(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Transparency is composited onto white, as `to_gray_u8`
    does; modes without colour (gray, 16-bit, float, LAB's lightness) become gray RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("1", "L", "YCbCr", "CMYK", "HSV"):
        return image.convert("RGB")
    if mode.startswith("I") or mode in ("F", "LAB"):
        return to_gray_u8(image).convert("RGB")
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def fit_square(image: Image.Image, size: int, fit: str) -> Image.Image:
    """`stretch`: resize to size x size whatever the aspect ratio (as the study did);
    `center-crop`: crop the central square, then resize. Large images are first shrunk by
    a whole factor (`reducing_gap`): much faster on big PNGs, and per Pillow's docs the
    result is then indistinguishable from a full Lanczos pass in most cases."""
    if fit == "center-crop":
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)


EXIF_NOT_APPLIED = "EXIF orientation not applied (kept as stored)"


def upright_checked(image: Image.Image) -> tuple[Image.Image, bool]:
    """(`image` turned as its EXIF orientation says, True), or (`image` as stored, False) when
    its EXIF cannot be applied: the pixels are still good, so the image is kept, and the
    caller counts it."""
    try:
        return ImageOps.exif_transpose(image), True
    except Exception:  # PIL's EXIF parser raises any type on bad tags (struct.error, TypeError, AttributeError seen)
        return image, False


def upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says; as stored if its EXIF cannot be applied."""
    return upright_checked(image)[0]


# What PIL raises for a file it cannot decode (truncated, corrupt, not an image, a bad
# header): anything else, a TypeError say, is a bug in this code and must not become a skip.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def decode_gray(data: bytes, size: int, fit: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Bytes of one image file -> (uint8 [size, size], original upright (width, height)).

    JPEGs are decoded at reduced scale (PIL's draft mode: the DCT is scaled by 1/2, 1/4
    or 1/8 while staying at least `size` on both sides), straight to luma. EXIF
    orientation is applied before resizing. Raises one of DECODE_ERRORS for anything
    unreadable; UnidentifiedImageError for what is not an image of IMAGE_FORMATS.
    """
    return decode(data, size, fit, "gray")


def decode(data: bytes, size: int, fit: str, color: str) -> tuple[np.ndarray, tuple[int, int]]:
    """`decode_gray`, or with `color="rgb"` uint8 [size, size, 3] in R, G, B order."""
    pixels, size_, _ = decode_checked(data, size, fit, color)
    return pixels, size_


def decode_checked(data: bytes, size: int, fit: str, color: str) -> tuple[np.ndarray, tuple[int, int], str]:
    """`decode`, plus what went wrong in an image that was kept anyway ("" if nothing)."""
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
        width, height = image.size
        if isinstance(image, JpegImageFile):  # JPEG and MPO
            image.draft("L" if color == "gray" else "RGB", (size, size))
        image.seek(0)  # GIF, TIFF: first frame
        image.load()
        stored = image.size
        image, turned = upright_checked(image)
        if image.size != stored:  # turned by 90 degrees
            width, height = height, width
        pixels = to_gray_u8(image) if color == "gray" else to_rgb_u8(image)
        if pixels.size != (size, size):
            pixels = fit_square(pixels, size, fit)
        return np.asarray(pixels, dtype=np.uint8), (width, height), "" if turned else EXIF_NOT_APPLIED


@dataclass(frozen=True)
class Decoded:
    path: str
    sha256: str
    pixels: np.ndarray | None
    width: int
    height: int
    skip_reason: str = ""
    problem: str = ""  # kept, but not as it should have been (EXIF_NOT_APPLIED)


def _decode_file(args: tuple[Path, str, int, str, str]) -> Decoded:
    path, rel, size, fit, color = args
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
            pixels, (w, h), problem = decode_checked(data, size, fit, color)
    except UnidentifiedImageError:
        return Decoded(rel, digest, None, 0, 0, "not an image")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Decoded(rel, digest, None, 0, 0, "too many pixels (decompression bomb)")
    except DECODE_ERRORS as exc:  # the file is bad: skip it, not the run
        reason = "truncated image" if "truncated" in str(exc).lower() else f"cannot decode ({exc.__class__.__name__})"
        return Decoded(rel, digest, None, 0, 0, reason)
    except Exception as exc:  # a bug: let it stop prepare, saying which file it happened on
        if hasattr(exc, "add_note"):  # Python 3.11+
            exc.add_note(f"prepare: while decoding {rel}")
        raise
    return Decoded(rel, digest, pixels, w, h, problem=problem)


def _init_worker() -> None:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:  # one thread per process: the processes already use every core
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def usable_cpus() -> int:
    """CPUs this process may run on: fewer than `os.cpu_count()` under taskset or a
    container's CPU set, where one process per machine core would just fight for them."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def decode_all(files: list[tuple[Path, str]], size: int, fit: str, workers: int, color: str = "gray") -> list[Decoded]:
    """Decode `(path, relative path)` pairs in order, on `workers` processes (0: every usable CPU)."""
    tasks = [(path, rel, size, fit, color) for path, rel in files]
    workers = workers or usable_cpus()
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


@dataclass(frozen=True)
class Labeling:
    """How images get their label, from what the download stage wrote in SOURCE.json:
    `label` names the one class of a single-class set (FFHQ: face), else the folder an
    image sits in is its class; `label_en` translates labels (Animals-10's Italian)."""

    label: str = ""
    label_en: dict[str, str] = field(default_factory=dict)

    def of(self, rel: str) -> tuple[str, str]:
        label = self.label or label_of(rel)
        return label, self.label_en.get(label, label)


def read_labeling(raw: Path) -> Labeling:
    source = raw / SOURCE_FILE
    if not source.is_file():
        return Labeling()
    info = json.loads(source.read_text())
    return Labeling(str(info.get("label", "")), {str(k): str(v) for k, v in (info.get("label_en") or {}).items()})


@dataclass
class PreparedSet:
    images: np.ndarray  # uint8 [N, size, size] (gray) or [N, size, size, 3] (rgb)
    index: pd.DataFrame  # id, row, path, sha256, label, label_en, width, height
    stats: dict


def prepare_folder(raw: Path, size: int, fit: str, workers: int = 0, color: str = "gray") -> PreparedSet:
    """Decode every image under `raw` into one array plus an index table. The index (and so
    the split, which ranks images by their file's sha256) does not depend on `color`."""
    started = time.perf_counter()
    labeling = read_labeling(raw)
    paths = list_image_files(raw)
    files = [(p, p.relative_to(raw).as_posix()) for p in paths]
    decoded = decode_all(files, size, fit, workers, color)

    kept: list[Decoded] = []
    seen: set[str] = set()
    reasons: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    n_duplicates = 0
    for item in decoded:
        if item.problem:
            problems[item.problem] += 1
            log.warning("prepare: kept %s: %s", item.path, item.problem)
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

    images = np.stack([item.pixels for item in kept])
    labels = [labeling.of(item.path) for item in kept]
    index = pd.DataFrame(
        {
            "id": [item.sha256[:16] for item in kept],
            "row": np.arange(len(kept)),
            "path": [item.path for item in kept],
            "sha256": [item.sha256 for item in kept],
            "label": [label for label, _ in labels],
            "label_en": [label_en for _, label_en in labels],
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
        "n_kept_with_problems": int(sum(problems.values())),
        "kept_with_problems": dict(sorted(problems.items())),
        "size": size,
        "fit": fit,
        "color": color,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(files) / seconds, 1) if seconds > 0 else None,
    }
    return PreparedSet(images, index, stats)


def raise_empty(raw: Path, n_files: int, reasons: Counter) -> None:
    from vaeinpaint.errors import DataError

    detail = ", ".join(f"{n} {r}" for r, n in reasons.most_common()) or "no image files"
    raise DataError(f"prepare: no usable images in {raw} ({n_files} files: {detail})")
