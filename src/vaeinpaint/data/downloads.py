"""Verified, resumable downloads into a cache outside `data/`.

pooch does the download-with-hash: it moves a file into place only when its SHA-256
matches. Our `ResumableDownloader`, plugged into pooch's `downloader=` hook, adds what pooch
lacks: resuming an interrupted transfer with an HTTP Range request, and retrying transient
errors. The cache (`VAEINPAINT_CACHE`, else pooch's per-user cache) is never under `data/`,
which only holds DVC outputs; a wrong checksum deletes the download and writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from vaeinpaint.errors import DataError, one_line
from vaeinpaint.files import file_hash
from vaeinpaint.progress import progress_enabled

log = logging.getLogger(__name__)

CACHE_ENV = "VAEINPAINT_CACHE"

# Bytes per read while downloading. A dropped connection loses the block in flight (urllib3
# raises without handing it over), so blocks stay small.
DOWNLOAD_BLOCK = 64 << 10


def cache_dir() -> Path:
    """Where downloaded archives are kept between runs (outside `data/`)."""
    import pooch

    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser().resolve() if env else Path(pooch.os_cache("vaeinpaint"))


class _Incomplete(Exception):
    """The connection ended before the announced number of bytes arrived."""


class _ServerError(Exception):
    """An HTTP status worth retrying (5xx, 408, 429)."""


class ResumableDownloader:
    """A pooch `downloader=` hook: HTTP(S) GET into a stable `.part` file in the cache.

    pooch's own HTTPDownloader starts from zero every time, which is painful for FFHQ's
    2 GB and 89 GB archives. Here an interrupted transfer keeps its bytes in `part`, and
    the next attempt (a retry in this run, or a later run) asks only for the rest with an
    HTTP Range request. Servers that ignore Range answer 200, and we start over. When the
    file is complete it is renamed onto pooch's temporary file; pooch then checks the hash
    and deletes it on a mismatch, so a bad download never survives, partial or not.
    """

    def __init__(self, part: Path, *, retries: int = 5, backoff_s: float = 2.0, timeout_s: float = 60.0):
        self.part = part
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sha256 = ""  # of the completed download, for the mismatch message
        self._hash = hashlib.sha256()
        self._hashed = 0  # bytes of `part` already fed to `_hash`

    def __call__(self, url: str, output_file: str, pooch: object, check_only: bool = False) -> None:
        import requests

        transient = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, _Incomplete, _ServerError)
        stalls = 0  # failed attempts in a row that got no byte further
        while True:
            before = self._size()
            try:
                self._attempt(url)
                break
            except transient as exc:
                # Only attempts without progress count against `retries`: a long download
                # over a flaky link may get there in many pieces.
                stalls = 0 if self._size() > before else stalls + 1
                if stalls > self.retries:
                    raise DataError(
                        f"{url}: download failed {stalls} times in a row without progress ({one_line(exc)}); "
                        f"run again to resume from byte {self._size()}"
                    ) from None
                wait = min(self.backoff_s * 2**stalls, 60.0)
                log.warning("download: %s (%s), retrying from byte %d in %.0f s", url, exc, self._size(), wait)
                time.sleep(wait)
        self.sha256 = self._hash.hexdigest()
        os.replace(self.part, output_file)

    def _size(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _attempt(self, url: str) -> None:
        import requests

        have = self._size()
        # identity: a gzip transfer encoding would make Content-Length and Range count other bytes
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout_s) as response:
            if response.status_code == 416 and have:
                if _content_range_total(response.headers.get("Content-Range", "")) == have:
                    self._hash_existing(have)
                    return  # the previous run got every byte but stopped before the rename
                self._restart()
                raise _Incomplete("the partial download does not fit the remote file; starting over")
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise _ServerError(f"HTTP {response.status_code} {response.reason}")
            if response.status_code >= 400:
                raise DataError(f"{url}: HTTP {response.status_code} {response.reason}")
            resumed = response.status_code == 206 and _content_range_start(response.headers.get("Content-Range", "")) == have
            if not resumed:
                self._restart()
                have = 0
            self._hash_existing(have)
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            self._stream(response, total, have)
        size = self.part.stat().st_size
        if total is not None and size < total:
            raise _Incomplete(f"received {size} of {total} bytes")

    def _stream(self, response, total: int | None, have: int) -> None:
        from tqdm.auto import tqdm

        name = self.part.name.removesuffix(".part")
        with (
            open(self.part, "ab") as out,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=f"download {name}", disable=not progress_enabled(), leave=False
            ) as bar,
        ):
            for block in response.iter_content(chunk_size=DOWNLOAD_BLOCK):
                out.write(block)
                self._hash.update(block)
                self._hashed += len(block)
                bar.update(len(block))

    def _restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self._hash, self._hashed = hashlib.sha256(), 0

    def _hash_existing(self, have: int) -> None:
        """Bring the running hash up to the `have` bytes already in `part` (once per run)."""
        if self._hashed == have:
            return
        self._hash, self._hashed = hashlib.sha256(), 0
        with open(self.part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                self._hash.update(block)
                self._hashed += len(block)


def _content_range_start(header: str) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", header)
    return int(match.group(1)) if match else None


def _content_range_total(header: str) -> int | None:
    match = re.match(r"bytes (?:\*|\d+-\d+)/(\d+)", header)
    return int(match.group(1)) if match else None


def is_local(url: str) -> bool:
    return urllib.parse.urlparse(url).scheme == "file"


def local_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def cache_name(url: str, sha256: str) -> str:
    """The archive's file name in the cache: by content when its hash is known (two mirrors
    of one file share it), else by URL."""
    import pooch

    if not sha256:
        return pooch.utils.unique_file_name(url)
    stem = PurePosixPath(urllib.parse.urlparse(url).path).name or "archive"
    return f"sha256-{sha256.lower()[:16]}-{stem}"


def retrieve(url: str, sha256: str = "", *, retries: int = 5, backoff_s: float = 2.0) -> Path:
    """The archive at `url` in the download cache, downloaded (or resumed) and verified.
    A `file://` URL is checked where it lies. With no `sha256`, the file is taken as is."""
    if is_local(url):
        return verify_local(local_path(url), sha256, what=url)
    import filelock
    import pooch
    import requests

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    name = cache_name(url, sha256)
    downloader = ResumableDownloader(cache / f"{name}.part", retries=retries, backoff_s=backoff_s)
    # Two runs downloading the same archive at once would interleave their bytes.
    with filelock.FileLock(str(cache / f"{name}.lock")):
        try:
            path = pooch.retrieve(
                url, known_hash=f"sha256:{sha256.lower()}" if sha256 else None, fname=name, path=cache, downloader=downloader
            )
        except ValueError as exc:
            downloader.part.unlink(missing_ok=True)
            if sha256 and downloader.sha256 and downloader.sha256 != sha256.lower():
                raise DataError(
                    f"data.sha256: the archive from {url} has SHA-256 {downloader.sha256}, expected {sha256.lower()}; "
                    "the download was deleted and nothing was written under data/"
                ) from None
            raise DataError(f"{url}: {exc}") from None
        except requests.RequestException as exc:
            raise DataError(f"{url}: download failed ({one_line(exc)})") from None
    return Path(path)


def verify_local(path: Path, sha256: str, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{what}: no such file")
    if sha256:
        actual = file_hash(path, "sha256")
        if actual != sha256.lower():
            raise DataError(f"data.sha256: {what} has SHA-256 {actual}, expected {sha256.lower()}; nothing was written under data/")
    return path
