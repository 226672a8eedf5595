"""Where raw images come from: one function per `data.source`, each filling a folder.

`acquire()` is the only entry point: it builds the raw folder in a temporary place and
renames it into `data/raw/` when complete, so a failed download never looks finished.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from vaeinpaint.errors import DataError
from vaeinpaint.files import atomic_dir, write_json
from vaeinpaint.images import IMAGE_EXTENSIONS, list_image_files
from vaeinpaint.params import DataParams

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
    files = list_image_files(root)
    if params.limit:
        files = files[: params.limit]
    if not files:
        raise DataError(f"data.path: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {params.path}")
    for src in files:
        target = dest / src.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return {"images": len(files), "path": str(root)}


def resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def _archive_sources() -> dict[str, Callable[..., dict]]:
    """`url`, `ffhq` and `animals10` live in `vaeinpaint.archives` (downloads, safe extraction)."""
    from vaeinpaint import archives

    return {"url": archives.fetch_url, "ffhq": archives.fetch_ffhq, "animals10": archives.fetch_animals10}


def acquire(params: DataParams, dest: Path, base: Path = Path(".")) -> dict:
    """Fill `dest` with raw images for `params.source`; return a summary. All or nothing."""
    fetchers: dict[str, Callable[..., dict]] = {"builtin": fetch_builtin, "folder": fetch_folder}
    if params.source not in fetchers:
        fetchers.update(_archive_sources())
    fetch = fetchers[params.source]
    with atomic_dir(dest) as tmp:
        summary = fetch(params, tmp) if params.source == "builtin" else fetch(params, tmp, base)
        summary = {"source": params.source, **summary}
        write_json(tmp / "SOURCE.json", summary)
    log.info("download: %s", summary)
    return summary
