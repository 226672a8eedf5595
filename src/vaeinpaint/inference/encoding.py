"""Photos out: lossless encodings only (anything lossy would change the pixels outside the hole,
which inpainting promises to keep), checked to decode to what was meant, written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from vaeinpaint.errors import DataError, ParamError, one_line
from vaeinpaint.files import atomic_path

# Output extension -> (PIL format, save options).
LOSSLESS = {
    ".png": ("PNG", {}),
    ".tif": ("TIFF", {"compression": "tiff_lzw"}),
    ".tiff": ("TIFF", {"compression": "tiff_lzw"}),
    ".bmp": ("BMP", {}),
    # `exact`: without it libwebp rewrites the colour of fully transparent pixels.
    ".webp": ("WEBP", {"lossless": True, "exact": True}),
}
LOSSY = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".avif", ".heic", ".heif", ".jp2", ".gif"})


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
        raise DataError(f"{option} {path}: {fmt} cannot store a {image.mode} image ({one_line(exc, 120)}); use .png or .tiff") from None
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
