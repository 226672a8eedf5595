"""Every path the pipeline reads or writes, defined once, relative to the project root.

Stages run with the project root (or a DVC experiment's copy of it) as their working
directory, so these relative paths are what dvc.yaml declares. Things that must outlive
a queued experiment's temporary copy (the MLflow store, resumable training state) are
anchored to `project_root()` instead.
"""

from __future__ import annotations

import os
from pathlib import Path

PARAMS = Path("params.yaml")
PRESETS = Path("presets/experiments.yaml")  # the named experiments (`vaeinpaint experiments`)

RAW_DIR = Path("data/raw")

PREPARED_DIR = Path("data/prepared")
IMAGES = PREPARED_DIR / "images.npy"  # uint8 [N, size, size]
INDEX = PREPARED_DIR / "index.csv"  # one row per image: id, source path, sha256, ...

SPLIT = Path("data/split/split.csv")  # id, row (into IMAGES), subset

MASKS_DIR = Path("data/masks")
MASKS = MASKS_DIR / "masks.npz"  # train, test: uint8 [n, size, size], 1 = missing
BOXES = MASKS_DIR / "boxes.csv"  # id, subset, box, x, y, w, h (squares and rectangles)
MASK_SHARES = MASKS_DIR / "per_image.csv"  # id, subset, kind, share (of the image hidden), mask_file

MODEL_DIR = Path("data/model")
CHECKPOINT = MODEL_DIR / "checkpoint.pt"  # model, optimizer, epoch, config
RUN_INFO = MODEL_DIR / "run.json"  # hands the MLflow run id from train to evaluate
PROBE = MODEL_DIR / "probe.json"  # test_ids, rows (epoch, minutes, ssim, hole_psnr): quality during training

BASELINES_DIR = Path("data/baselines")
BASELINES_PER_IMAGE = BASELINES_DIR / "per_image.csv"

EVAL_DIR = Path("data/eval")
EVAL_PER_IMAGE = EVAL_DIR / "per_image.csv"
SAMPLES = EVAL_DIR / "samples.png"

METRICS_DIR = Path("metrics")
PREPARE_METRICS = METRICS_DIR / "prepare.json"
SPLIT_METRICS = METRICS_DIR / "split.json"
OCCLUDE_METRICS = METRICS_DIR / "occlude.json"
TRAIN_METRICS = METRICS_DIR / "train.json"
TRAIN_CURVE = METRICS_DIR / "train_loss.csv"
BASELINES_METRICS = METRICS_DIR / "baselines.json"
EVAL_METRICS = METRICS_DIR / "evaluate.json"
BY_HOLE_SIZE = METRICS_DIR / "by_hole_size.csv"  # bin, hole_share, method, n, ssim, hole_psnr (test set)
DIVERSITY_BY_HOLE_SIZE = METRICS_DIR / "diversity_by_hole_size.csv"  # bin, hole_share, n, samples, diversity and best-of-K figures (test)
QUALITY_BY_MINUTE = METRICS_DIR / "quality_by_minute.csv"  # minutes, epoch, method, n, ssim, hole_psnr (probe images)

MLFLOW_DB = "mlflow.db"
RESUME_DIR = ".resume"  # under project_root(): per-config training state for resuming


def project_root() -> Path:
    """The DVC project's root: `DVC_ROOT` when DVC runs us (it points queued experiments,
    which run in temporary copies under .dvc/tmp/exps, back at the real root), else the
    nearest folder upwards holding dvc.yaml, else the working directory."""
    env = os.environ.get("DVC_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() or (folder / ".dvc").is_dir():
            return folder
    return here
