"""Realism without downloaded weights: the sliced Wasserstein distance (SWD) between Laplacian-
pyramid patches of restorations and of the true images, taken from the holes alone.

FID needs an Inception network's weights; this needs nothing. It is ProGAN's SWD (Karras et
al. 2018, `metrics/sliced_wasserstein.py`; mmagic's `SlicedWassersteinDistance` is the same):
- a Laplacian pyramid per image (OpenCV's `pyrDown` / `pyrUp`, the 5-tap binomial filter),
  from the image's size down to the last level of at least 16 px (100 px: 100, 50, 25; the last
  level is the low-pass residue);
- at every level, `PATCHES_PER_IMAGE` 7 x 7 patches per image, centred on hole pixels of that
  level (a level's hole: a pixel any of whose finer pixels is missing), drawn with a seeded
  generator, the same places for every set scored;
- each set's descriptors (patches flattened, all channels) normalised per level and channel
  to zero mean and unit variance over the set (ProGAN's `finalize_descriptors`);
- `DIRECTIONS` random unit directions (seeded); each set projected on them, sorted, and the
  mean absolute difference between the sorted projections of restorations and truth: the
  one-dimensional Wasserstein-1 distance, averaged over directions;
- the mean over levels, times 1000 (as ProGAN reports it).

Restorations are scored pasted back (the known pixels are the truth's), so a patch across the
hole's edge compares the fill's joins as well. 0: the restorations' hole patches are distributed
as the truth's; larger is further. What it rewards: local structure at every scale distributed
as in real images (edges, texture, their contrast relative to each other): a blurred fill has
too little fine detail and scores worse than a sharp one, even one whose detail is in the
wrong place. Its limits: it compares distributions, not images, so a fill that copies another
image's texture can score well while being wrong (read it beside SSIM and hole PSNR); each set
is normalised on its own, as ProGAN does, so a uniform change of contrast is invisible; at 7 x 7
the coarsest levels of a small image see little; and with few test images it is noisy (tens of
thousands of patches make a stable figure; compare sets scored here, on the same places).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

PATCH = 7
PATCHES_PER_IMAGE = 64  # per level (ProGAN: 128 over 16k images; fewer here, where test sets are small and CPU time counts)
MIN_RESOLUTION = 16
DIRECTIONS = 512  # ProGAN: 4 repeats of 128
SCALE = 1000.0
LABEL = (
    "sliced Wasserstein distance x 1000 between 7x7 Laplacian-pyramid patches of the holes, restored (pasted back) "
    "against true test images; lower is closer to real images; not FID (no learned features)"
)


def levels_for(size: int) -> int:
    """Pyramid levels of an image whose shorter side is `size`: down to the last of >= 16 px."""
    levels = 1
    while math.ceil(size / 2) >= MIN_RESOLUTION:
        size = math.ceil(size / 2)
        levels += 1
    return levels


def as_channels(images: np.ndarray) -> np.ndarray:
    """[n, h, w] or [n, h, w, C] float -> [n, h, w, C] float32."""
    images = np.asarray(images, dtype=np.float32)
    return images[..., None] if images.ndim == 3 else images


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """Levels [n, C, h_l, w_l] of float images [n, h, w, C]: band-pass differences, then the low-pass residue."""
    out: list[list[np.ndarray]] = [[] for _ in range(levels)]
    for image in images:
        current = image  # [h, w, C]; OpenCV drops a single channel's axis, put back at once
        for level in range(levels - 1):
            smaller = np.atleast_3d(cv2.pyrDown(current))
            up = np.atleast_3d(cv2.pyrUp(smaller, dstsize=(current.shape[1], current.shape[0])))
            out[level].append(current - up)
            current = smaller
        out[-1].append(current)
    return [np.stack(level).transpose(0, 3, 1, 2) for level in out]


def hole_levels(masks: np.ndarray, levels: int) -> list[np.ndarray]:
    """The hole [n, h_l, w_l] (bool) at each level: a coarse pixel is missing when any of the
    finer pixels it covers is (sizes as `pyrDown`'s, rounded up)."""
    hole = masks.astype(bool)
    out = [hole]
    for _ in range(levels - 1):
        n, h, w = hole.shape
        padded = np.zeros((n, h + h % 2, w + w % 2), dtype=bool)
        padded[:, :h, :w] = hole
        hole = padded.reshape(n, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2).any(axis=(2, 4))
        out.append(hole)
    return out


def patch_centres(hole: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """[P, 3] (image, row, column) of `per_image` centres per image, drawn uniformly (with
    replacement) among its hole pixels, moved in so that the 7 x 7 patch lies inside. Images
    without a hole at this level give none. Sorted by image."""
    half = PATCH // 2
    n, h, w = hole.shape
    centres = []
    for index in range(n):
        rows, cols = np.nonzero(hole[index])
        if len(rows) == 0:
            continue
        pick = rng.integers(0, len(rows), per_image)
        y, x = np.clip(rows[pick], half, h - 1 - half), np.clip(cols[pick], half, w - 1 - half)
        centres.append(np.stack([np.full(per_image, index), y, x], axis=1))
    return np.concatenate(centres) if centres else np.zeros((0, 3), dtype=np.int64)


def patches(level: np.ndarray, centres: np.ndarray, offset: int = 0) -> np.ndarray:
    """[P, C, 7, 7] patches of `level` ([n, C, h, w], holding images offset .. offset + n) at `centres`."""
    half = PATCH // 2
    d = np.arange(-half, half + 1)
    images = centres[:, 0] - offset
    rows = centres[:, 1, None, None] + d[None, :, None]
    cols = centres[:, 2, None, None] + d[None, None, :]
    return level[images[:, None, None], :, rows, cols].transpose(0, 3, 1, 2)


def normalised(descriptors: np.ndarray) -> np.ndarray:
    """ProGAN's `finalize_descriptors`: [P, C, 7, 7] to zero mean and unit variance per channel
    over the set, flattened to [P, C * 49]."""
    d = descriptors.astype(np.float32)
    d = d - d.mean(axis=(0, 2, 3), keepdims=True)
    std = d.std(axis=(0, 2, 3), keepdims=True)
    return (d / np.where(std > 0, std, 1.0)).reshape(len(d), -1)


def sorted_projections(descriptors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    return np.sort(descriptors @ directions, axis=0)


class HoleSWD:
    """The SWD of restorations from the truth in the holes of `originals` (uint8 [n, s, s] or
    [n, s, s, 3]) under `masks` ([n, s, s], 1 = missing), at places and along directions drawn
    from `seed`: score a set with `distance`, or its descriptors with `descriptors` then
    `distance_of` (to build a set from parts, as draws made batch by batch)."""

    def __init__(self, originals: np.ndarray, masks: np.ndarray, seed: int = 0, per_image: int = PATCHES_PER_IMAGE):
        self.truth = as_channels(originals.astype(np.float32) / 255.0)
        self.masks = masks
        self.levels = levels_for(min(originals.shape[1:3]))
        rng = np.random.default_rng(seed)
        self.centres = [patch_centres(hole, per_image, rng) for hole in hole_levels(masks, self.levels)]
        truth = self.descriptors(originals.astype(np.float32) / 255.0)
        channels = self.truth.shape[-1]
        directions = np.random.default_rng(seed + 1).standard_normal((channels * PATCH * PATCH, DIRECTIONS))
        self.directions = (directions / np.linalg.norm(directions, axis=0, keepdims=True)).astype(np.float32)
        self.reference = [sorted_projections(normalised(d), self.directions) if len(d) else None for d in truth]

    def pasted(self, restored: np.ndarray, start: int) -> np.ndarray:
        """`restored` (float [m, s, s(, C)], images start .. start + m) with the known pixels of the truth."""
        restored = as_channels(restored)
        hole = self.masks[start : start + len(restored), ..., None].astype(bool)
        return np.where(hole, restored, self.truth[start : start + len(restored)])

    def descriptors(self, restored: np.ndarray, start: int = 0, source: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per level, the patches [P_m, C, 7, 7] at the centres that fall in images start .. start
        + m of `restored` (float, unpasted; [m, ...] or, with `source`, K sets [K, m, ...] and
        `source` [P] naming the set each centre of the whole set takes its patch from)."""
        stacked = restored[None] if source is None else restored
        pyramids = [laplacian_pyramid(self.pasted(r, start), self.levels) for r in stacked]
        out = []
        for level, centres in enumerate(self.centres):
            inside = (centres[:, 0] >= start) & (centres[:, 0] < start + stacked.shape[1])
            chosen = np.zeros(int(inside.sum()), dtype=np.int64) if source is None else source[level][inside]
            part = np.empty((len(chosen), pyramids[0][level].shape[1], PATCH, PATCH), dtype=np.float32)
            for k, pyramid in enumerate(pyramids):
                take = chosen == k
                part[take] = patches(pyramid[level], centres[inside][take], offset=start)
            out.append(part)
        return out

    def distance_of(self, descriptors: list[np.ndarray]) -> float:
        """SWD x 1000 of a whole set's descriptors (`descriptors`, parts concatenated), mean over levels."""
        if any(len(d) == 0 for d in descriptors):
            return math.nan
        per_level = [
            float(np.abs(sorted_projections(normalised(d), self.directions) - reference).mean())
            for d, reference in zip(descriptors, self.reference)
        ]
        return round(SCALE * float(np.mean(per_level)), 4)

    def distance(self, restored: np.ndarray) -> float:
        """SWD x 1000 of a whole set of restorations (float [n, s, s(, C)] in [0, 1])."""
        return self.distance_of(self.descriptors(restored))

    def sources(self, k: int) -> list[np.ndarray]:
        """For a set of `k` draws per image: centre p takes its patch from draw p mod k, so the
        set has as many patches as the truth's and every draw its share."""
        return [np.arange(len(c)) % k for c in self.centres]
