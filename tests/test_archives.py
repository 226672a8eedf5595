"""Downloads (checksum, resume, retries) over a loopback server, and safe extraction."""

from __future__ import annotations

import contextlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from vaeinpaint.data import archives, downloads
from vaeinpaint.data.archives import extract_images
from vaeinpaint.data.downloads import retrieve
from vaeinpaint.data.sources import choose_subset
from vaeinpaint.errors import DataError

from _http import LoopbackServer
from _samples import jpeg, make_tar, make_zip, tar_entry, zip_symlink
from conftest import sha256


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(downloads.CACHE_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(downloads, "DOWNLOAD_BLOCK", 4096)  # so a cut keeps most of what arrived


def big_zip(folder: Path, name: str = "faces.zip", count: int = 12) -> Path:
    """Big enough (~100 KB) for a cut to land mid-transfer; JPEGs barely compress."""
    return make_zip(folder / name, {f"faces/{i:03d}.jpg": jpeg(160, 120, seed=i, quality=98) for i in range(count)})


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


# ---------------------------------------------------------------------------- downloads


def test_download_verifies_and_caches_outside_data(served, cache):
    archive = big_zip(served.root)
    path = retrieve(served.url("faces.zip"), sha256(archive))
    assert path.parent == cache and path.read_bytes() == archive.read_bytes()
    assert retrieve(served.url("faces.zip"), sha256(archive)) == path
    assert len(served.requests) == 1  # the second call found the verified file in the cache


def test_wrong_checksum_names_both_hashes_and_keeps_nothing(served, cache):
    archive = big_zip(served.root)
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        retrieve(served.url("faces.zip"), wrong)
    message = str(err.value)
    assert f"expected {wrong}" in message and sha256(archive) in message
    assert "\n" not in message
    assert leftovers(cache) == []  # neither the bad archive nor its partial download


def test_dropped_connection_is_resumed_with_a_range_request(served, cache):
    archive = big_zip(served.root)
    served.cuts = [40_000]
    path = retrieve(served.url("faces.zip"), sha256(archive), backoff_s=0)
    assert path.read_bytes() == archive.read_bytes()
    assert [r for _, r in served.requests] == [None, "bytes=36864-"]  # the 9 whole 4 KiB blocks that arrived


def test_partial_download_of_an_earlier_run_is_resumed(served, cache):
    archive = big_zip(served.root)
    digest = sha256(archive)
    cache.mkdir()
    name = downloads.cache_name(served.url("faces.zip"), digest)
    (cache / f"{name}.part").write_bytes(archive.read_bytes()[:30_000])
    path = retrieve(served.url("faces.zip"), digest)
    assert path.read_bytes() == archive.read_bytes()
    assert served.requests == [("/faces.zip", "bytes=30000-")]


def test_complete_partial_download_is_not_fetched_again(served, cache):
    archive = big_zip(served.root)
    digest = sha256(archive)
    cache.mkdir()
    name = downloads.cache_name(served.url("faces.zip"), digest)
    (cache / f"{name}.part").write_bytes(archive.read_bytes())  # stopped just before the rename
    assert retrieve(served.url("faces.zip"), digest).read_bytes() == archive.read_bytes()
    assert served.requests == [("/faces.zip", f"bytes={archive.stat().st_size}-")]  # answered 416


def test_server_without_range_support_restarts_from_zero(tmp_path, cache):
    www = tmp_path / "plain"
    www.mkdir()
    archive = big_zip(www)
    digest = sha256(archive)
    cache.mkdir()
    with LoopbackServer(www, ranges=False) as server:
        name = downloads.cache_name(server.url("faces.zip"), digest)
        (cache / f"{name}.part").write_bytes(b"stale bytes of something else")
        path = retrieve(server.url("faces.zip"), digest)
    assert path.read_bytes() == archive.read_bytes()


def test_interrupted_download_never_looks_complete(served, cache):
    archive = big_zip(served.root)
    digest = sha256(archive)
    served.cuts = [20_000, 10_000, 0, 0]  # 4 blocks (16384 bytes) arrive, then 2 more, then nothing twice
    with pytest.raises(DataError, match="failed 2 times in a row without progress .* resume from byte 24576"):
        retrieve(served.url("faces.zip"), digest, retries=1, backoff_s=0)
    assert len(served.requests) == 4  # progress resets the count of failures
    name = downloads.cache_name(served.url("faces.zip"), digest)
    assert leftovers(cache) == [f"{name}.part"]  # no file under the final name
    path = retrieve(served.url("faces.zip"), digest)  # a later run picks up from there
    assert path.read_bytes() == archive.read_bytes()
    assert served.requests[-1] == ("/faces.zip", "bytes=24576-")


def test_server_errors_are_retried(served, cache):
    archive = big_zip(served.root)
    served.statuses = [503, 500]
    assert retrieve(served.url("faces.zip"), sha256(archive), backoff_s=0).read_bytes() == archive.read_bytes()
    assert len(served.requests) == 3


def test_missing_file_is_a_clear_error(served, cache):
    with pytest.raises(DataError, match=r"nothing\.zip: HTTP 404"):
        retrieve(served.url("nothing.zip"), "0" * 64)
    assert len(served.requests) == 1  # not worth retrying


def test_file_url_is_verified_in_place(tmp_path, cache):
    archive = big_zip(tmp_path)
    assert retrieve(archive.as_uri(), sha256(archive)) == archive
    with pytest.raises(DataError, match=f"SHA-256 {sha256(archive)}, expected {'1' * 64}"):
        retrieve(archive.as_uri(), "1" * 64)
    assert not cache.exists()


# ---------------------------------------------------------------------- safe extraction


def test_extracts_only_images_keeping_paths(tmp_path):
    archive = make_zip(
        tmp_path / "a.zip",
        {
            "set/cats/1.jpg": jpeg(seed=1),
            "set/dogs/2.JPG": jpeg(seed=2),
            "set/README.txt": b"hi",
            "__MACOSX/set/._1.jpg": b"meta",
            "set/.DS_Store": b"",
        },
    )
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract_images(archive, dest) == ["set/cats/1.jpg", "set/dogs/2.JPG"]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == ["set/cats/1.jpg", "set/dogs/2.JPG"]
    assert (dest / "set/cats/1.jpg").read_bytes() == jpeg(seed=1)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_flavours(tmp_path, mode):
    archive = make_tar(tmp_path / "a.tar", {"./imgs/1.png": b"x", "imgs/2.jpg": b"y"}, mode=mode)
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract_images(archive, dest) == ["imgs/1.png", "imgs/2.jpg"]
    assert (dest / "imgs/2.jpg").read_bytes() == b"y"


def test_not_an_archive(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(DataError, match="x.zip: not a zip or tar archive"):
        extract_images(path, tmp_path)


UNSAFE_ZIPS = {
    "dot-dot": ("../evil.jpg", "'..' in its path"),
    "nested dot-dot": ("imgs/../../evil.jpg", "'..' in its path"),
    "backslash dot-dot": ("..\\evil.jpg", "'..' in its path"),
    "absolute": ("/tmp/evil.jpg", "absolute path"),
    "drive letter": ("C:/evil.jpg", "absolute path"),
}


@pytest.mark.parametrize("case", UNSAFE_ZIPS)
def test_unsafe_zip_member_refuses_the_whole_archive(tmp_path, case):
    bad, reason = UNSAFE_ZIPS[case]
    archive = make_zip(tmp_path / "bad.zip", {"imgs/ok.jpg": jpeg(), bad: jpeg(seed=2)})
    dest = tmp_path / "project" / "data" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(DataError) as err:
        extract_images(archive, dest)
    assert repr(bad) in str(err.value) and reason in str(err.value)
    assert list(dest.iterdir()) == []  # not even the good member
    assert not list(tmp_path.rglob("evil.jpg"))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (tar_entry("imgs/link.jpg", tarfile.SYMTYPE, "../../etc/passwd"), "symlink to '../../etc/passwd' points outside"),
        (tar_entry("imgs/link.jpg", tarfile.SYMTYPE, "/etc/passwd"), "symlink to '/etc/passwd' points outside"),
        (tar_entry("imgs/hard.jpg", tarfile.LNKTYPE, "../outside.jpg"), "hard link to '../outside.jpg' points outside"),
        (tar_entry("dev/null.jpg", tarfile.CHRTYPE), "a device or FIFO"),
        (tar_entry("pipe.jpg", tarfile.FIFOTYPE), "a device or FIFO"),
    ],
)
def test_unsafe_tar_member_refuses_the_whole_archive(tmp_path, entry, reason):
    archive = make_tar(tmp_path / "bad.tar.gz", {"imgs/ok.jpg": jpeg()}, special=[entry])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match=reason) as err:
        extract_images(archive, dest)
    assert repr(entry.name) in str(err.value)
    assert list(dest.iterdir()) == []


def test_zip_symlink_outside_is_refused(tmp_path):
    archive = zip_symlink(tmp_path / "bad.zip", "imgs/link.jpg", "../../../home", extra={"imgs/ok.jpg": jpeg()})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match="'imgs/link.jpg': symlink to '../../../home' points outside"):
        extract_images(archive, dest)
    assert list(dest.iterdir()) == []


def test_links_inside_the_archive_are_skipped_not_followed(tmp_path):
    archive = make_tar(
        tmp_path / "ok.tar",
        {"imgs/a.jpg": b"a"},
        mode="w",
        special=[tar_entry("imgs/b.jpg", tarfile.SYMTYPE, "a.jpg"), tar_entry("imgs/c.jpg", tarfile.LNKTYPE, "imgs/a.jpg")],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract_images(archive, dest) == ["imgs/a.jpg"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_duplicate_member_names_are_refused(tmp_path):
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("imgs/a.jpg", b"1")
        z.writestr("imgs/./a.jpg", b"2")
    with pytest.raises(DataError, match="'imgs/a.jpg' appears twice"):
        extract_images(archive, tmp_path)


def test_zip_bomb_member_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "RATIO_FREE_BYTES", 1 << 16)
    archive = make_zip(tmp_path / "bomb.zip", {"ok.jpg": jpeg(), "zeros.png": bytes(4 << 20)})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match=r"'zeros.png': compressed \d+:1 .*zip bomb"):
        extract_images(archive, dest)
    assert list(dest.iterdir()) == []


def test_tar_gz_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "RATIO_FREE_BYTES", 1 << 16)
    archive = make_tar(tmp_path / "bomb.tar.gz", {f"{i}.png": bytes(1 << 20) for i in range(4)})
    with pytest.raises(DataError, match=r"bomb.tar.gz: expands over \d+:1"):
        extract_images(archive, tmp_path)


def test_member_count_and_total_size_limits(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "many.zip", {f"{i}.jpg": b"x" * 100 for i in range(10)})
    monkeypatch.setattr(archives, "MAX_MEMBERS", 5)
    with pytest.raises(DataError, match="more than 5 members"):
        extract_images(archive, tmp_path)
    monkeypatch.setattr(archives, "MAX_MEMBERS", 100)
    monkeypatch.setattr(archives, "MAX_TOTAL_BYTES", 500)
    with pytest.raises(DataError, match="expands to more than"):
        extract_images(archive, tmp_path)


def test_member_inflating_past_its_declared_size_is_refused(tmp_path):
    class Inflating:  # an archive whose member yields more bytes than its header declares
        @contextlib.contextmanager
        def open(self, member):
            yield io.BytesIO(b"12345678")

    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match="'a.jpg': 5 bytes where its header says 4"):
        archives._extract_one(Inflating(), archives.Member("a.jpg", 4, None), dest.resolve())


def test_corrupt_member_is_a_data_error(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.png", b"A" * 5000)
    archive.write_bytes(archive.read_bytes().replace(b"A" * 10, b"B" * 10, 1))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match="a.zip: corrupt archive"):
        extract_images(archive, dest)


def test_limit_is_a_seeded_pick_spread_over_folders(tmp_path):
    names = [f"{animal}/{i:03d}.jpg" for animal in ("cane", "gatto", "ragno") for i in range(100)]
    picked = choose_subset(names, 30, seed=0)
    assert len(picked) == 30 and picked == [n for n in names if n in set(picked)]  # order kept
    assert {n.split("/")[0] for n in picked} == {"cane", "gatto", "ragno"}
    assert choose_subset(list(reversed(names)), 30, seed=0) == list(reversed(picked))
    assert choose_subset(names, 30, seed=1) != picked
    assert choose_subset(names, 0, seed=0) == names


def test_extraction_honours_the_chooser_in_archive_order(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {f"imgs/{i}.jpg": str(i).encode() for i in (3, 1, 2)})
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract_images(archive, dest, lambda names: [n for n in names if not n.endswith("1.jpg")]) == ["imgs/3.jpg", "imgs/2.jpg"]
    assert not (dest / "imgs/1.jpg").exists()
