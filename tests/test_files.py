"""Atomic writes: a kill at any point leaves the old or the new output, never neither, and
what was renamed into place was on disk first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vaeinpaint import files
from vaeinpaint.files import atomic_dir, atomic_path

from conftest import run_env


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def fill(folder, files_: dict[str, str]) -> None:
    for name, text in files_.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


OLD = {"a.txt": "old a", "sub/b.txt": "old b"}
NEW = {"a.txt": "new a", "c.txt": "new c"}


def test_atomic_dir_replaces_the_old_folder_and_leaves_nothing_beside_it(tmp_path):
    dest = tmp_path / "raw"
    fill(dest, OLD)
    with atomic_dir(dest) as tmp:
        fill(tmp, NEW)
        assert tree(dest) == OLD  # untouched while the new one is built
    assert tree(dest) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_a_failure_inside_the_block_keeps_the_old_folder(tmp_path):
    dest = tmp_path / "raw"
    fill(dest, OLD)
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        fill(tmp, NEW)
        raise RuntimeError("download failed")
    assert tree(dest) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


KILL_ON_RENAME_INTO_PLACE = """
import os, signal, sys
from pathlib import Path
from vaeinpaint import files

dest = Path(sys.argv[1])
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if Path(dst) == dest:  # the new folder is about to be renamed into place: die first
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

files.os.replace = replace
with files.atomic_dir(dest) as tmp:
    (tmp / "a.txt").write_text("new a")
"""


def test_kill_inside_the_swap_leaves_the_old_folder_and_the_next_write_recovers_it(tmp_path):
    dest = tmp_path / "raw"
    fill(dest, OLD)
    out = subprocess.run([sys.executable, "-c", KILL_ON_RENAME_INTO_PLACE, str(dest)], env=run_env(), capture_output=True, text=True)
    assert out.returncode == -9, out.stderr
    # Killed between taking the old folder out and putting the new one in: the old one is
    # whole, under its aside name (or still in place).
    survivors = [p for p in tmp_path.iterdir() if p.is_dir() and tree(p) == OLD]
    assert survivors, sorted(p.name for p in tmp_path.iterdir())

    # The next writer puts the old folder back before it starts, so a failing one leaves it...
    with pytest.raises(RuntimeError), atomic_dir(dest):
        raise RuntimeError("download failed again")
    assert tree(dest) == OLD
    # ...and a succeeding one replaces it; either way nothing is left beside it.
    with atomic_dir(dest) as tmp:
        fill(tmp, NEW)
    assert tree(dest) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_a_leftover_old_folder_beside_a_complete_new_one_is_removed(tmp_path):
    dest = tmp_path / "raw"
    fill(dest, NEW)
    fill(tmp_path / ".raw.old", OLD)  # killed after the new folder went in, before the old was deleted
    with atomic_dir(dest) as tmp:
        fill(tmp, {"d.txt": "newer"})
    assert tree(dest) == {"d.txt": "newer"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def spy_on_disk_writes(monkeypatch) -> list[tuple[str, str]]:
    """Record, in order, each fsync (of which path), sync (all) and rename (to which path)."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_sync = os.fsync, os.replace, os.sync

    def sync():
        events.append(("sync", "everything"))
        return real_sync()

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        events.append(("rename", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    monkeypatch.setattr(files.os, "sync", sync)
    return events


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the file behind a descriptor")
def test_atomic_path_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = spy_on_disk_writes(monkeypatch)
    with atomic_path(tmp_path / "state.pt") as tmp:
        tmp.write_bytes(b"x" * 1000)
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync"]
    assert events[0][1] == str(tmp)  # the bytes are on disk before they get the real name...
    assert events[1][1] == f"{tmp} -> {tmp_path / 'state.pt'}"
    assert events[2][1] == str(tmp_path)  # ...and the new name is on disk after
    assert (tmp_path / "state.pt").read_bytes() == b"x" * 1000


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the file behind a descriptor")
def test_atomic_dir_syncs_every_file_and_folder_before_the_swap(tmp_path, monkeypatch):
    dest = tmp_path / "raw"
    fill(dest, OLD)
    events = spy_on_disk_writes(monkeypatch)
    with atomic_dir(dest) as tmp:
        fill(tmp, {"a.txt": "new a", "sub/b.txt": "new b"})
    first_rename = next(i for i, (kind, _) in enumerate(events) if kind == "rename")
    synced_before = {path for kind, path in events[:first_rename] if kind in ("fsync", "sync")}
    # A sync() of everything, or an fsync of each file and folder of the new tree.
    assert "everything" in synced_before or {str(tmp / "a.txt"), str(tmp / "sub/b.txt"), str(tmp / "sub"), str(tmp)} <= synced_before
    assert events[-1] == ("fsync", str(tmp_path))  # the renames themselves reach the disk
    assert tree(dest) == {"a.txt": "new a", "sub/b.txt": "new b"}


def test_write_json_leaves_the_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        files.write_json(path, {"a": object()})
    assert files.read_json(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
