"""How fast `prepare` turns 1024x1024 JPEGs (FFHQ's full size) into 100x100 gray images.

`bench_prepare()` writes N such JPEGs to a temporary folder, then times, in the same run on
the same files, `prepare_folder` (draft-mode decoding on every core) and the loop a user
would write first: one process, `Image.open(p).convert("L").resize((100, 100))`. Their
ratio holds on a busy machine better than either figure. `python -m
vaeinpaint.bench.prepare [--quick]` prints them; `python -m vaeinpaint.bench` includes them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vaeinpaint.data.images import prepare_folder
from vaeinpaint.data.sources import load_builtin_photo

SIZE = 100
SIDE = 1024
QUALITY = 90
COUNT = {True: 160, False: 800}  # quick, full
ROUNDS = {True: 1, False: 2}  # best of: a stray background job only slows a round down
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")


def synthesize(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` distinct 1024x1024 photo JPEGs: random crops of scikit-image's colour photos,
    upscaled, with sensor-like noise so that they are not unrealistically smooth (smooth
    images decode faster) and never identical (prepare would drop duplicates)."""
    rng = np.random.default_rng(seed)
    photos = [load_builtin_photo(name) for name in PHOTOS]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
        noisy = np.asarray(crop, np.int16) + rng.integers(-6, 7, (SIDE, SIDE, 3), dtype=np.int16)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=QUALITY)
        paths.append(path)
    return paths


def naive_loop(paths: list[Path]) -> float:
    """Seconds for the single-process PIL loop over `paths`."""
    started = time.perf_counter()
    for path in paths:
        Image.open(path).convert("L").resize((SIZE, SIZE))
    return time.perf_counter() - started


def prepare_run(folder: Path, count: int) -> float:
    """Seconds for `prepare_folder` on every core (pool start-up included, as a user sees it)."""
    started = time.perf_counter()
    prepared = prepare_folder(folder, SIZE, "stretch", workers=0)
    seconds = time.perf_counter() - started
    if prepared.stats["n_images"] != count:
        raise RuntimeError(f"bench_prepare: prepare kept {prepared.stats['n_images']} of {count} images")
    return seconds


def bench_prepare(quick: bool = False) -> dict:
    """Images per second of `prepare` and of the naive loop, and their ratio."""
    count = COUNT[quick]
    with tempfile.TemporaryDirectory(prefix="vaeinpaint-bench-prepare-") as tmp:
        folder = Path(tmp)
        paths = synthesize(folder, count)
        for path in paths:  # both contenders then read from the page cache
            path.read_bytes()
        naive = min(naive_loop(paths) for _ in range(ROUNDS[quick]))
        ours = min(prepare_run(folder, count) for _ in range(ROUNDS[quick]))
    return {
        "prepare_img_per_s": round(count / ours, 1),
        "naive_prepare_img_per_s": round(count / naive, 1),
        "prepare_speedup": round(naive / ours, 2),
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    started = time.perf_counter()
    result = bench_prepare(quick=quick)
    print(f"{COUNT[quick]} JPEGs {SIDE}x{SIDE} (quality {QUALITY}) -> {SIZE}x{SIZE} gray, {os.cpu_count()} cores:")
    print(f"  prepare_folder (draft mode, all cores): {result['prepare_img_per_s']:8.1f} images/s")
    print(f"  naive PIL loop (one process):           {result['naive_prepare_img_per_s']:8.1f} images/s")
    print(f"  speed-up: {result['prepare_speedup']:.2f}x   (whole benchmark {time.perf_counter() - started:.1f} s)")
