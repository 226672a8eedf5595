"""Image files and archives built in tests: one builder per awkward case."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def photo(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A smooth random RGB picture (different for each seed, so never a duplicate)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def jpeg(width: int = 64, height: int = 48, seed: int = 0, quality: int = 90) -> bytes:
    return encode(photo(width, height, seed), "JPEG", quality=quality)


def truncated_jpeg(seed: int = 1) -> bytes:
    data = jpeg(128, 96, seed)
    return data[: len(data) // 2]


def cmyk_jpeg() -> bytes:
    """Left half pure cyan (luma 179 once in RGB), right half 50% black (luma 127)."""
    image = Image.new("CMYK", (64, 32), (0, 0, 0, 128))
    image.paste((255, 0, 0, 0), (0, 0, 32, 32))
    return encode(image, "JPEG", quality=95)


def rgba_png() -> bytes:
    """Left third opaque black, middle third half-transparent black, right third fully transparent."""
    pixels = np.zeros((30, 30, 4), np.uint8)
    pixels[:, :10, 3] = 255
    pixels[:, 10:20, 3] = 128
    return encode(Image.fromarray(pixels, "RGBA"), "PNG")


def png16() -> bytes:
    """16-bit gray: top row band 0, middle 128 * 257 (8-bit 128), bottom 65535."""
    pixels = np.zeros((30, 30), np.uint16)
    pixels[10:20] = 128 * 257
    pixels[20:] = 65535
    return encode(Image.fromarray(pixels), "PNG")


# EXIF orientation -> the transpose that shows the image upright, and its inverse.
ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270}


def upright_marker(width: int = 256, height: int = 128) -> Image.Image:
    """White, with a black top-left quarter: any wrong turn or flip moves the black."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste((0, 0, 0), (0, 0, width // 2, height // 2))
    return image


def exif_rotated_jpeg(orientation: int, width: int = 256, height: int = 128) -> bytes:
    """A JPEG whose pixels are stored turned, with the EXIF tag that turns them back to
    `upright_marker(width, height)`."""
    fix = ORIENTATION_FIX[orientation]
    stored = upright_marker(width, height).transpose(INVERSE.get(fix, fix))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def broken_exif_jpeg(width: int = 256, height: int = 128) -> bytes:
    """`upright_marker`, stored upright, with EXIF that says "turn me" (orientation 6) but
    that PIL cannot apply: its ResolutionUnit is a LONG 0xFFFFFFFF where a SHORT belongs, so
    rewriting the EXIF after the turn fails (struct.error), as it does for some cameras' files."""
    ifd = struct.pack(">HHII", 0x0112, 3, 1, 6 << 16) + struct.pack(">HHII", 0x0128, 4, 1, 0xFFFFFFFF)
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 2) + ifd + b"\x00\x00\x00\x00" + bytes(16)
    return encode(upright_marker(width, height), "JPEG", quality=95, exif=b"Exif\x00\x00" + tiff)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def zip_symlink(path: Path, name: str, target: str, extra: dict[str, bytes] | None = None) -> Path:
    """A zip holding a Unix symlink `name` -> `target` (as Info-ZIP stores them)."""
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in (extra or {}).items():
            archive.writestr(member, data)
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
    return path


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", special: list[tarfile.TarInfo] | None = None) -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in special or []:
            archive.addfile(info)
    return path


def tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info
