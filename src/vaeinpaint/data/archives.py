"""Safe extraction of untrusted archives (zip, tar, tar.gz/bz2/xz).

Every member's header is read and the whole archive is refused, before anything is
written, if one member is unsafe (absolute path, `..`, a link leading outside, a device
file) or if the archive expands absurdly (zip bombs). Then only the image files (all, or
those a chooser keeps) are extracted, each created exclusively and never through a link.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from vaeinpaint.data.images import is_image_name
from vaeinpaint.errors import DataError, one_line
from vaeinpaint.progress import progress

log = logging.getLogger(__name__)

# What an archive may expand to. FFHQ's largest archive (images1024x1024.zip) holds about
# 70,000 members and 89 GB of PNGs; photos barely compress (ratio ~1), while zip bombs reach
# 1000:1 and more. Small members may have any ratio (a blank PNG, a README).
MAX_MEMBERS = 2_000_000
MAX_TOTAL_BYTES = 1 << 40  # 1 TiB
MAX_RATIO = 100
RATIO_FREE_BYTES = 16 << 20  # a member, or an archive's total, below this is not ratio-checked
MAX_LINK_TARGET = 4096  # a zip symlink stores its target as its content

ImageChooser = Callable[[list[str]], list[str]]


@dataclass(frozen=True)
class Member:
    """A regular file of an archive that passed the checks, under its normalized name."""

    name: str  # relative POSIX path, no `.`/`..` parts
    size: int
    ref: zipfile.ZipInfo | tarfile.TarInfo


def _normalize(raw_name: str) -> str:
    """`raw_name` as a safe relative POSIX path, or DataError. Backslashes count as
    separators (archives made on Windows), so `..\\x` is caught too."""
    name = raw_name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"unsafe archive member {raw_name!r}: absolute path; the whole archive was refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"unsafe archive member {raw_name!r}: '..' in its path; the whole archive was refused")
    if any("\0" in p for p in parts):
        raise DataError(f"unsafe archive member {raw_name!r}: NUL in its path; the whole archive was refused")
    return "/".join(parts)


def _check_link(raw_name: str, name: str, target: str, *, hard: bool) -> None:
    """Refuse a link whose target lies outside the extraction folder. A symlink's target
    is relative to the link's folder, a tar hardlink's to the archive root."""
    target = target.replace("\\", "/")
    base = PurePosixPath() if hard else PurePosixPath(name).parent
    escapes = target.startswith("/") or bool(re.match(r"^[A-Za-z]:", target))
    if not escapes:
        depth = len(base.parts)
        for part in PurePosixPath(target).parts:
            depth += -1 if part == ".." else 0 if part == "." else 1
            escapes = escapes or depth < 0
    if escapes:
        kind = "hard link" if hard else "symlink"
        raise DataError(
            f"unsafe archive member {raw_name!r}: {kind} to {target!r} points outside the archive; the whole archive was refused"
        )


class _Limits:
    """Running totals over an archive's members, refusing at the first limit crossed. The
    whole-archive ratio is checked as the total grows (it only grows), so a .tar.gz bomb is
    refused after decompressing at most MAX_RATIO times its size, not all of it."""

    def __init__(self, archive: Path):
        self.archive = archive
        self.packed = archive.stat().st_size
        self.members = 0
        self.total = 0

    def add(self, raw_name: str, size: int, packed: int | None = None) -> None:
        self.members += 1
        self.total += size
        if self.members > MAX_MEMBERS:
            raise DataError(f"{self.archive.name}: more than {MAX_MEMBERS} members; refused as a likely archive bomb")
        if self.total > MAX_TOTAL_BYTES:
            raise DataError(f"{self.archive.name}: expands to more than {MAX_TOTAL_BYTES >> 30} GiB; refused as a likely archive bomb")
        if packed is not None and _too_expanded(size, packed):
            raise DataError(
                f"unsafe archive member {raw_name!r}: compressed {size // max(packed, 1)}:1 ({packed} -> {size} bytes); refused as a likely zip bomb"
            )
        if _too_expanded(self.total, self.packed):
            raise DataError(
                f"{self.archive.name}: expands over {self.total // max(self.packed, 1)}:1 ({self.packed} -> {self.total}+ bytes); "
                "refused as a likely archive bomb"
            )


def _too_expanded(size: int, packed: int) -> bool:
    return size > RATIO_FREE_BYTES and size > MAX_RATIO * max(packed, 1)


class _ZipArchive:
    def __init__(self, path: Path):
        self.path = path
        self.file = zipfile.ZipFile(path)

    def close(self) -> None:
        self.file.close()

    def members(self) -> list[Member]:
        limits = _Limits(self.path)
        found = []
        for info in self.file.infolist():
            name = _normalize(info.filename)
            limits.add(info.filename, info.file_size, info.compress_size)
            if info.flag_bits & 0x1:
                raise DataError(f"{self.path.name}: member {info.filename!r} is encrypted; encrypted archives are not supported")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                if info.file_size > MAX_LINK_TARGET:
                    raise DataError(f"unsafe archive member {info.filename!r}: symlink with a {info.file_size}-byte target")
                target = self.file.read(info).decode("utf-8", "replace")
                _check_link(info.filename, name, target, hard=False)
                log.info("download: skipped symlink %s (links are not extracted)", info.filename)
            elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DataError(f"unsafe archive member {info.filename!r}: a device, FIFO or socket; the whole archive was refused")
            elif not info.is_dir() and name:
                found.append(Member(name, info.file_size, info))
        return found

    @contextlib.contextmanager
    def open(self, member: Member) -> Iterator[IO[bytes]]:
        with self.file.open(member.ref) as f:  # type: ignore[arg-type]
            yield f


class _TarArchive:
    def __init__(self, path: Path):
        self.path = path
        self.file = tarfile.open(path, "r:*")

    def close(self) -> None:
        self.file.close()

    def members(self) -> list[Member]:
        limits = _Limits(self.path)
        found = []
        # Headers one at a time, so a bomb is refused as soon as its running total says so
        # (a .tar.gz has to be decompressed to reach each next header).
        while (info := self.file.next()) is not None:
            name = _normalize(info.name)
            limits.add(info.name, info.size if info.isfile() else 0)
            if info.issym() or info.islnk():
                _check_link(info.name, name, info.linkname, hard=info.islnk())
                log.info("download: skipped link %s (links are not extracted)", info.name)
            elif info.ischr() or info.isblk() or info.isfifo():
                raise DataError(f"unsafe archive member {info.name!r}: a device or FIFO; the whole archive was refused")
            elif info.isfile() and name:
                found.append(Member(name, info.size, info))
            elif not info.isdir():
                raise DataError(f"unsafe archive member {info.name!r}: unsupported member type {info.type!r}")
        return found

    @contextlib.contextmanager
    def open(self, member: Member) -> Iterator[IO[bytes]]:
        f = self.file.extractfile(member.ref)  # type: ignore[arg-type]
        if f is None:
            raise DataError(f"{self.path.name}: cannot read member {member.name!r}")
        with f:
            yield f


@contextlib.contextmanager
def open_archive(path: Path) -> Iterator[_ZipArchive | _TarArchive]:
    """A zip or tar (plain, gz, bz2, xz) archive, recognized by its content, not its name."""
    try:
        if zipfile.is_zipfile(path):
            archive: _ZipArchive | _TarArchive = _ZipArchive(path)
        elif tarfile.is_tarfile(path):
            archive = _TarArchive(path)
        else:
            raise DataError(f"{path.name}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path.name}: unreadable archive ({one_line(exc)})") from None
    try:
        yield archive
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{path.name}: corrupt archive ({one_line(exc)})") from None
    finally:
        archive.close()


def extract_images(path: Path, dest: Path, choose: ImageChooser | None = None) -> list[str]:
    """Check every member of the archive at `path`, then extract its image files (those
    `choose` keeps, in archive order) into `dest`. Returns their names.

    Why not pooch's Unzip/Untar processors: Unzip calls ZipFile.extractall, which silently
    rewrites absolute and `..` names instead of refusing the archive, and neither checks
    sizes, member counts or compression ratios; Untar only passes tarfile's "data" filter
    on Python >= 3.12, so on 3.10/3.11 a tar symlink can point anywhere. Both also unpack
    everything into the cache next to the archive, where we want only the image files,
    straight into the temporary folder that becomes data/raw.
    """
    with open_archive(path) as archive:
        members = archive.members()  # every member checked before anything is written
        _check_unique(members)
        images = [m for m in members if is_image_name(m.name)]
        keep = set(choose([m.name for m in images]) if choose else [m.name for m in images])
        chosen = [m for m in images if m.name in keep]  # archive order: a .tar.gz never seeks back
        _check_space(dest, sum(m.size for m in chosen), path.name)
        root = dest.resolve()
        for member in progress(chosen, desc="extract", unit="file"):
            _extract_one(archive, member, root)
    return [m.name for m in chosen]


def _check_unique(members: list[Member]) -> None:
    seen: set[str] = set()
    for m in members:
        if m.name in seen:
            raise DataError(f"archive member {m.name!r} appears twice; the whole archive was refused")
        seen.add(m.name)


def _check_space(dest: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise DataError(f"{what}: extracting needs {needed >> 20} MiB but {dest} has {free >> 20} MiB free")


def _extract_one(archive: _ZipArchive | _TarArchive, member: Member, root: Path) -> None:
    target = root / member.name
    # Names were validated and we never create links, but check the final path anyway.
    if os.path.commonpath([root, target.resolve()]) != str(root):
        raise DataError(f"unsafe archive member {member.name!r}: resolves outside the extraction folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "wb") as out, archive.open(member) as src:
            written = _copy_capped(src, out, member.size)
    except OSError as exc:
        raise DataError(f"archive member {member.name!r}: cannot extract ({one_line(exc)})") from None
    if written != member.size:
        raise DataError(f"archive member {member.name!r}: {written} bytes where its header says {member.size}")


def _copy_capped(src: IO[bytes], out: IO[bytes], size: int) -> int:
    """Copy at most `size` + 1 bytes: a member that inflates past its declared size is a bomb."""
    written = 0
    while block := src.read(min(1 << 20, size + 1 - written)):
        out.write(block)
        written += len(block)
        if written > size:
            break
    return written
