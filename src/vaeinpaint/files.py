"""Atomic file writes: outputs appear complete or not at all."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: str | Path) -> None:
    """Flush a file's bytes, or a folder's entries, to the disk (POSIX: folders open read-only too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(root: Path) -> None:
    """Put every file and folder under `root` on the disk. One `sync()` flushes them all: an
    fsync per file costs a journal commit each (6 s for 1,600 small files here, 0.08 s for
    one sync)."""
    os.sync()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The file is fsynced before the rename and the folder after it: a rename can reach the
    disk before the data it names, and a power loss would then leave a complete-looking
    but empty file (a zero-length resume state, say)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give outputs the usual mode
        fsync_path(tmp_path)
        os.replace(tmp_path, path)
        fsync_path(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def aside_path(path: Path) -> Path:
    """Where `atomic_dir` keeps the old folder while the new one is renamed into place."""
    return path.parent / f".{path.name}.old"


def recover_dir(path: str | Path) -> None:
    """Finish a folder swap that a kill interrupted: with no `path`, the old folder set aside
    goes back; beside a complete `path`, it is deleted. Temporary folders a killed writer left
    (`.NAME.*.tmp`) are deleted too. (DVC's repo lock keeps two stages from writing one
    output at once, so no live writer owns them.)"""
    path = Path(path)
    aside = aside_path(path)
    if aside.is_dir():
        if path.exists():
            shutil.rmtree(aside)
        else:
            os.replace(aside, path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds.

    POSIX cannot rename a folder onto a non-empty one, so the swap is two renames: the old
    folder aside (`.NAME.old`), the new one in, then the old one deleted. A kill between the
    renames leaves the old folder whole under its aside name, and the next `atomic_dir` (or
    `recover_dir`) for `path` puts it back before anything else; a kill after them leaves
    the new folder in place and the old one to be deleted next time. Every file and folder
    of the new tree is on the disk before the swap, and the parent folder after it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        sync_tree(tmp)
        aside = aside_path(path)
        if path.exists():
            os.replace(path, aside)
        os.replace(tmp, path)
        fsync_path(path.parent)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def write_csv(path: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV with `\\n` line ends (byte-identical across runs)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def file_hash(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes. MD5 is what DVC records in dvc.lock (and what FFHQ
    publishes per image); SHA-256 is what archives are pinned with."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
