"""Reading and writing the pipeline's data artifacts (the formats live here, once).

- prepared: `images.npy` (uint8 [N, size, size] gray, [N, size, size, 3] RGB) + `index.csv` (id, row, path, sha256, label, ...)
- split: `split.csv` (id, row, subset)
- masks: `masks.npz` (`train`, `test`: uint8 [n, size, size], 1 = missing) + `boxes.csv` + `per_image.csv`
Masks are stored in split order: the i-th mask of a subset belongs to its i-th image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vaeinpaint import paths
from vaeinpaint.errors import DataError
from vaeinpaint.files import save_npy, save_npz, write_csv


def _need(path: Path, stage: str) -> Path:
    if not Path(path).exists():
        raise DataError(f"{path}: missing (run `dvc repro {stage}` first)")
    return Path(path)


def write_prepared(images: np.ndarray, index: pd.DataFrame, folder: Path = paths.PREPARED_DIR) -> None:
    save_npy(folder / paths.IMAGES.name, images)
    write_csv(folder / paths.INDEX.name, index)


def read_images(path: Path = paths.IMAGES) -> np.ndarray:
    """The prepared images, memory-mapped (nothing is read until used)."""
    return np.load(_need(path, "prepare"), mmap_mode="r")


def read_index(path: Path = paths.INDEX) -> pd.DataFrame:
    text = {"id": str, "path": str, "sha256": str, "label": str, "label_en": str}  # a folder named 1990 stays "1990"
    return pd.read_csv(_need(path, "prepare"), dtype=text, keep_default_na=False)


def read_split(path: Path = paths.SPLIT) -> pd.DataFrame:
    return pd.read_csv(_need(path, "split"), dtype={"id": str, "subset": str})


def read_masks(path: Path = paths.MASKS) -> dict[str, np.ndarray]:
    with np.load(_need(path, "occlude")) as data:
        return {name: data[name] for name in data.files}


def read_mask_shares(path: Path = paths.MASK_SHARES) -> pd.Series:
    """The share of each image its mask hides, by image id (what `occlude` recorded)."""
    table = pd.read_csv(_need(path, "occlude"), dtype={"id": str, "subset": str, "kind": str, "mask_file": str}, keep_default_na=False)
    return table.set_index("id")["share"]


def read_baseline_scores(path: Path = paths.BASELINES_PER_IMAGE) -> pd.DataFrame:
    """The baselines' per-image scores: id, subset, method, ssim, hole_psnr, hole_l1."""
    return pd.read_csv(_need(path, "baselines"), dtype={"id": str, "subset": str, "method": str})


def write_masks(masks: dict[str, np.ndarray], boxes: pd.DataFrame, shares: pd.DataFrame, folder: Path = paths.MASKS_DIR) -> None:
    save_npz(folder / paths.MASKS.name, **masks)
    write_csv(folder / paths.BOXES.name, boxes)
    write_csv(folder / paths.MASK_SHARES.name, shares)


class SubsetImages:
    """One subset's rows of the memory-mapped `images.npy`, read only when indexed: what
    training streams from when the set is too big for the device (`modeling.feed`).
    `view[idx]` is `source[rows[idx]]`; `np.asarray(view)` reads them all."""

    def __init__(self, source: np.ndarray, rows: np.ndarray):
        self.source, self.rows = source, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *source.shape[1:])
        self.dtype = source.dtype
        self.ndim = source.ndim
        self.nbytes = int(np.prod(self.shape)) * source.dtype.itemsize

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        return self.source[self.rows[idx]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.source[self.rows]
        return array if dtype is None else array.astype(dtype)


@dataclass
class Subset:
    """One subset (train or test) in split order: ids, uint8 images and masks."""

    name: str
    ids: list[str]
    images: np.ndarray | SubsetImages
    masks: np.ndarray


def load_subset(
    name: str, images: np.ndarray | None = None, split: pd.DataFrame | None = None, masks: dict | None = None, lazy: bool = False
) -> Subset:
    """The subset `name`. `lazy`: its images stay in the memory-mapped file until indexed."""
    images = read_images() if images is None else images
    split = read_split() if split is None else split
    masks = read_masks() if masks is None else masks
    chosen = split[split["subset"] == name]
    rows = chosen["row"].to_numpy()
    if len(rows) and rows.max() >= len(images):
        raise DataError(f"{paths.SPLIT}: refers to image row {rows.max()} but {paths.IMAGES} has {len(images)} (re-run `dvc repro split`)")
    subset_masks = masks.get(name, np.zeros((0,) + images.shape[1:3], np.uint8))
    if len(subset_masks) != len(rows):
        raise DataError(f"{paths.MASKS}: {len(subset_masks)} {name} masks for {len(rows)} {name} images (re-run `dvc repro occlude`)")
    if lazy:
        return Subset(name, chosen["id"].tolist(), SubsetImages(images, rows), subset_masks)
    return Subset(name, chosen["id"].tolist(), np.ascontiguousarray(images[rows]), subset_masks)
