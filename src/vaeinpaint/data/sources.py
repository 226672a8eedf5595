"""Where raw images come from: one function per `data.source`, each filling a folder.

`acquire()` is the only entry point: it builds the raw folder in a temporary place and
renames it into `data/raw/` when complete, so a failed download never looks finished.
Downloads go through `vaeinpaint.data.downloads` (verified, resumable, cached outside data/),
archives through `vaeinpaint.data.archives` (checked member by member before extraction).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from vaeinpaint.data.archives import ImageChooser, extract_images
from vaeinpaint.data.downloads import cache_dir, retrieve, verify_local
from vaeinpaint.data.images import IMAGE_EXTENSIONS, SOURCE_FILE, list_image_files
from vaeinpaint.errors import DataError, one_line
from vaeinpaint.files import atomic_dir, file_hash, write_json
from vaeinpaint.params import DataParams
from vaeinpaint.progress import progress, progress_enabled

log = logging.getLogger(__name__)

# Real photographs that ship inside scikit-image's wheel (no download needed). Synthetic
# test patterns (checkerboard, binary_blobs, logo, ...) and the images that scikit-image
# fetches from the network on first use are left out.
BUILTIN_PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket",
    "text", "motorcycle_left", "motorcycle_right",
)  # fmt: skip


def load_builtin_photo(name: str) -> np.ndarray:
    """One of BUILTIN_PHOTOS as a uint8 array (H, W) or (H, W, 3)."""
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        image = getattr(skimage.data, name)()
    return np.ascontiguousarray(image[..., :3] if image.ndim == 3 else image)


def fetch_builtin(params: DataParams, dest: Path) -> dict:
    """Deterministic random crops (position, scale, aspect, flip) of scikit-image's photos.

    A small heterogeneous real-photo set for running the whole pipeline offline. Crops of
    one photo overlap, so train and test are not independent: use it to check the
    pipeline, not to judge a model.
    """
    rng = np.random.default_rng(params.seed)
    photos = {name: load_builtin_photo(name) for name in BUILTIN_PHOTOS}
    count = min(params.builtin_count, params.limit) if params.limit else params.builtin_count
    for i in range(count):
        name = BUILTIN_PHOTOS[i % len(BUILTIN_PHOTOS)]
        photo = photos[name]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.25, 0.9))
        aspect = rng.uniform(0.8, 1.25)
        ch, cw = min(h, int(side * aspect)), min(w, int(side / aspect))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        folder = dest / name
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{name}-{i:05d}.png", optimize=False, compress_level=1)
    return {"images": count, "photos": len(BUILTIN_PHOTOS)}


def fetch_folder(params: DataParams, dest: Path, base: Path = Path(".")) -> dict:
    """Copy the image files under `data.path` (recursively), keeping their relative paths."""
    root = resolve(params.path, base)
    if not root.is_dir():
        raise DataError(f"data.path: {params.path} is not a folder")
    names = copy_images(root, dest, lambda found: choose_subset(found, params.limit, params.seed))
    if not names:
        raise DataError(f"data.path: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {params.path}")
    return {"images": len(names), "path": str(root)}


def copy_images(folder: Path, dest: Path, choose: Callable[[list[str]], list[str]] | None = None) -> list[str]:
    """Copy the image files under `folder` that `choose` keeps (all by default) into `dest`,
    at the same relative paths; return those paths."""
    found = [p.relative_to(folder).as_posix() for p in list_image_files(folder)]
    names = choose(found) if choose else found
    for name in progress(names, desc="copy", unit="file"):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, target)
    return names


def choose_subset(names: list[str], limit: int, seed: int) -> list[str]:
    """All of `names`, or (`limit` > 0) that many picked by a seeded hash of each name, in
    their given order. Not the first ones: sets laid out as class folders would lose whole
    classes. The pick depends only on the names and the seed, not on the listing order."""
    if not limit or len(names) <= limit:
        return list(names)
    ranked = sorted(names, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).digest())
    keep = set(ranked[:limit])
    return [name for name in names if name in keep]


def resolve(path: str, base: Path) -> Path:
    """`path` with `~` expanded; a relative one is taken from `base` (the project root),
    never from the working directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


# ---------------------------------------------------------------- archives and presets


def materialize(source: Path, dest: Path, choose: ImageChooser | None = None) -> list[str]:
    """Image files of `source` (an archive or a folder) into `dest`."""
    return copy_images(source, dest, choose) if source.is_dir() else extract_images(source, dest, choose)


def limited(params: DataParams) -> ImageChooser:
    return lambda names: choose_subset(names, params.limit, params.seed)


def fetch_url(params: DataParams, dest: Path, base: Path) -> dict:
    """`data.url` (http, https or file) with `data.sha256`: any zip or tar of images."""
    archive = retrieve(params.url, params.sha256)
    names = extract_images(archive, dest, limited(params))
    if not names:
        raise DataError(f"data.url: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {params.url}")
    return {"images": len(names), "url": params.url, "sha256": params.sha256.lower()}


def _local_or_mirror(params: DataParams, base: Path) -> tuple[Path, dict]:
    """A preset's data: `data.path` (archive or folder) first, else the `data.url` mirror."""
    if params.path:
        path = resolve(params.path, base)
        if not path.exists():
            raise DataError(f"data.path: {params.path} does not exist")
        if path.is_file():
            verify_local(path, params.sha256, what=f"data.path {params.path}")
        return path, {"path": str(path)}
    archive = retrieve(params.url, params.sha256)
    return archive, {"url": params.url}


def _record_hash(source: Path, params: DataParams) -> dict:
    """The archive's SHA-256 for SOURCE.json, so a run can be pinned with `data.sha256`."""
    if source.is_dir():
        return {}
    digest = params.sha256.lower() or file_hash(source, "sha256")
    if not params.sha256:
        log.info("download: %s has SHA-256 %s (set data.sha256 to pin it)", source.name, digest)
    return {"sha256": digest}


# FFHQ (NVlabs): https://github.com/NVlabs/ffhq-dataset. The official files live on a
# quota-limited Google Drive that serves its 70,000 images one by one, so the preset reads a
# local copy (data.path) or a mirror (data.url) of the official archives or folders.


@dataclass(frozen=True)
class FfhqVariant:
    folder: str  # the official folder, and the stem of its archive
    metadata_key: str  # its entry in ffhq-dataset-v2.json
    pixels: int


FFHQ_VARIANTS = {
    "thumbnails128": FfhqVariant("thumbnails128x128", "thumbnail", 128),
    "images1024": FfhqVariant("images1024x1024", "image", 1024),
}
FFHQ_COUNT = 70_000
FFHQ_FILE = re.compile(r"^(\d{5})\.png$")
# The published metadata: every image's size and MD5 (from NVlabs' download_ffhq.py).
FFHQ_METADATA_NAME = "ffhq-dataset-v2.json"
FFHQ_METADATA_SIZE = 267_793_842
FFHQ_METADATA_MD5 = "425ae20f06a4da1d4dc0f46d40ba5fd6"
FFHQ_LICENSE = "CC BY-NC-SA 4.0 (dataset, NVIDIA); images under their Flickr licenses (see ffhq-dataset-v2.json)"


def ffhq_index(name: str) -> int | None:
    match = FFHQ_FILE.match(PurePosixPath(name).name)
    return int(match.group(1)) if match and int(match.group(1)) < FFHQ_COUNT else None


def _ffhq_chooser(params: DataParams) -> ImageChooser:
    variant = FFHQ_VARIANTS[params.variant]
    others = {v.folder for v in FFHQ_VARIANTS.values()} - {variant.folder}

    def choose(names: list[str]) -> list[str]:
        # A copy of the whole dataset holds both folders: take ours. A mirror with its own
        # layout holds neither: take every FFHQ-named file, but not the other variant's.
        ours = [n for n in names if variant.folder in n.split("/")[:-1]]
        pool = ours or names
        for name in pool:
            wrong = others & set(name.split("/")[:-1])
            if wrong:
                raise DataError(f"data.variant: {params.variant} wants {variant.folder}/, but the data holds {name} ({wrong.pop()})")
            if ffhq_index(name) is None:
                raise DataError(f"{name}: not an FFHQ file name (00000.png ... 69999.png); use data.source: url for other archives")
        counts = Counter(ffhq_index(n) for n in pool)
        twice = next((n for n in pool if counts[ffhq_index(n)] > 1), None)
        if twice:
            raise DataError(f"{twice}: FFHQ image number {ffhq_index(twice):05d} appears twice")
        return choose_subset(pool, params.limit, params.seed)

    return choose


def find_ffhq_metadata(source: Path) -> Path | None:
    """ffhq-dataset-v2.json in (or beside) the local copy, or in the download cache."""
    places = [source, source.parent] if source.is_dir() else [source.parent]
    for folder in [*places, cache_dir()]:
        candidate = folder / FFHQ_METADATA_NAME
        if candidate.is_file():
            return candidate
    return None


def load_ffhq_checksums(path: Path, key: str) -> dict[int, tuple[int, str]]:
    """Image number -> (file size, MD5) for variant `key`, from the published metadata,
    itself checked against the size and MD5 that NVlabs publish for it."""
    if path.stat().st_size != FFHQ_METADATA_SIZE or file_hash(path) != FFHQ_METADATA_MD5:
        raise DataError(f"{path}: not the published {FFHQ_METADATA_NAME} (size or MD5 differs from NVlabs' download_ffhq.py)")
    items = json.loads(path.read_bytes())
    return {int(k): (int(v[key]["file_size"]), str(v[key]["file_md5"])) for k, v in items.items()}


def verify_ffhq(dest: Path, names: list[str], checksums: dict[int, tuple[int, str]]) -> None:
    for name in progress(names, desc="verify", unit="file"):
        size, md5 = checksums[ffhq_index(name)]  # type: ignore[index]
        path = dest / name
        if path.stat().st_size != size or file_hash(path) != md5:
            raise DataError(f"{name}: differs from the published FFHQ file (size or MD5 in {FFHQ_METADATA_NAME})")


def fetch_ffhq(params: DataParams, dest: Path, base: Path) -> dict:
    """FFHQ thumbnails (128 px) or images (1024 px) from a local copy or a mirror."""
    variant = FFHQ_VARIANTS[params.variant]
    source, origin = _local_or_mirror(params, base)
    names = materialize(source, dest, _ffhq_chooser(params))
    if not names:
        raise DataError(f"{source.name}: no FFHQ images ({variant.folder}/NNNNN/NNNNN.png) found")
    metadata = find_ffhq_metadata(source)
    if metadata:
        verify_ffhq(dest, names, load_ffhq_checksums(metadata, variant.metadata_key))
        verified = f"size and MD5 of every image against {FFHQ_METADATA_NAME}"
    else:
        log.warning(
            "download: %s not found beside %s or in %s: FFHQ file names checked, contents not", FFHQ_METADATA_NAME, source, cache_dir()
        )
        verified = f"file names only ({FFHQ_METADATA_NAME} not found)"
    return {
        "images": len(names),
        "variant": params.variant,
        **origin,
        **_record_hash(source, params),
        "verified": verified,
        "license": FFHQ_LICENSE,
        "label": "face",
    }


# Animals-10 (Kaggle alessiocorrado99/animals10): raw-img/<Italian class>/<image>.
ANIMALS10_DATASET = "alessiocorrado99/animals10"
ANIMALS10_CLASSES = {
    "cane": "dog", "cavallo": "horse", "elefante": "elephant", "farfalla": "butterfly", "gallina": "chicken",
    "gatto": "cat", "mucca": "cow", "pecora": "sheep", "ragno": "spider", "scoiattolo": "squirrel",
}  # fmt: skip


def _animals10_chooser(params: DataParams) -> ImageChooser:
    def choose(names: list[str]) -> list[str]:
        for name in names:
            if PurePosixPath(name).parent.name not in ANIMALS10_CLASSES:
                raise DataError(f"{name}: not in an Animals-10 class folder ({', '.join(ANIMALS10_CLASSES)})")
        return choose_subset(names, params.limit, params.seed)

    return choose


def kaggle_archive(dataset: str = ANIMALS10_DATASET) -> Path:
    """Download a Kaggle dataset's zip into the cache with the kaggle package (not unzipped:
    its extraction is not the safe one)."""
    folder = cache_dir() / "kaggle" / dataset.replace("/", "-")
    hint = "or set data.path to a local animals10.zip or folder"
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise DataError(f"data.source: animals10 from Kaggle needs the kaggle package (pip install 'vaeinpaint[kaggle]'), {hint}") from None
    except (Exception, SystemExit) as exc:  # kaggle < 1.7 authenticates on import
        raise DataError(
            f"data.source: Kaggle credentials missing or invalid ({exc}); see https://www.kaggle.com/docs/api, {hint}"
        ) from None
    api = KaggleApi()
    try:
        api.authenticate()
    except (Exception, SystemExit) as exc:
        raise DataError(
            f"data.source: Kaggle credentials missing or invalid ({exc}); see https://www.kaggle.com/docs/api, {hint}"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        api.dataset_download_files(dataset, path=str(folder), unzip=False, quiet=not progress_enabled())
    except Exception as exc:
        raise DataError(f"data.source: Kaggle download of {dataset} failed ({one_line(exc)})") from None
    archive = folder / f"{dataset.split('/')[1]}.zip"
    if not archive.is_file():
        raise DataError(f"data.source: the Kaggle download of {dataset} did not produce {archive}")
    return archive


def fetch_animals10(params: DataParams, dest: Path, base: Path) -> dict:
    """Animals-10 from `data.path` (zip or folder), a `data.url` mirror, or Kaggle."""
    if params.path or params.url:
        source, origin = _local_or_mirror(params, base)
    else:
        source, origin = kaggle_archive(), {"kaggle": ANIMALS10_DATASET}
    names = materialize(source, dest, _animals10_chooser(params))
    if not names:
        raise DataError(f"{source.name}: no Animals-10 images (raw-img/<class>/<image>) found")
    return {
        "images": len(names),
        **origin,
        **_record_hash(source, params),
        "license": "see https://www.kaggle.com/datasets/alessiocorrado99/animals10 (images collected from Google Images)",
        "label_en": ANIMALS10_CLASSES,
    }


def acquire(params: DataParams, dest: Path, base: Path = Path(".")) -> dict:
    """Fill `dest` with raw images for `params.source`; return a summary. All or nothing."""
    fetchers: dict[str, Callable[..., dict]] = {
        "builtin": fetch_builtin, "folder": fetch_folder, "url": fetch_url, "ffhq": fetch_ffhq, "animals10": fetch_animals10,
    }  # fmt: skip
    fetch = fetchers[params.source]
    with atomic_dir(dest) as tmp:
        summary = fetch(params, tmp) if params.source == "builtin" else fetch(params, tmp, base)
        summary = {"source": params.source, **summary}
        write_json(tmp / SOURCE_FILE, summary)
    log.info("download: %s", summary)
    return summary
