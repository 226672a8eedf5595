"""`vaeinpaint inpaint PHOTO -o OUT`: one photo, its hole given by --mask, --box or --random,
filled by a trained model (a checkpoint path or an MLflow model URI) with the inference engine.
Every option is checked before the model is loaded, and nothing is written unless every
output is ready (`inference.encoding`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaeinpaint.apps.models import load_model
from vaeinpaint.errors import ParamError
from vaeinpaint.inference.encoding import encode, output_format, sample_paths, write_files
from vaeinpaint.inference.engine import inpaint_image
from vaeinpaint.inference.holes import box_hole, mask_image, random_hole, read_mask
from vaeinpaint.inference.photos import load_photo
from vaeinpaint.inference.windows import DEFAULT_STRATEGY
from vaeinpaint.options import HOLE_OPTIONS, RANDOM_SHAPES, SAMPLING_OPTIONS, HoleOptions, Sampling, checked

__all__ = ["RANDOM_SHAPES", "check_hole_options", "check_sampling", "hole_from_options", "inpaint"]


def inpaint(
    photo_path: Path,
    out: Path,
    model_spec: str | Path,
    *,
    mask: Path | None = None,
    box: str | None = None,
    ratio: float | None = None,
    count: int = 1,
    seed: int = 0,
    shape: str = "square",
    samples: int = 1,
    save_mask: Path | None = None,
    device: str = "auto",
    strategy: str = DEFAULT_STRATEGY,
) -> list[Path]:
    """Inpaint `photo_path` where the options say; write the completion(s) (and the mask,
    if asked) and return the paths written. Nothing is written unless every output is ready."""
    output_format(out)
    if save_mask is not None:
        output_format(save_mask, "--save-mask")
    check_hole_options(mask, box, ratio, count, shape)
    check_sampling(samples, seed, strategy)
    outputs = sample_paths(out, samples)
    if save_mask is not None and save_mask.resolve() in {path.resolve() for path in outputs}:
        raise ParamError(f"--save-mask {save_mask}: is also where the inpainted photo goes; pick another name")
    model = load_model(str(model_spec), device)

    photo = load_photo(photo_path)
    hole = hole_from_options(photo.image.size, mask, box, ratio, count, seed, shape)
    filled = inpaint_image(model, photo.image, hole, strategy=strategy, samples=samples, seed=seed)
    files = {path: encode(image, path, photo.icc_profile) for path, image in zip(outputs, filled)}
    if save_mask is not None:
        files[save_mask] = encode(mask_image(hole), save_mask, option="--save-mask")
    write_files(files)
    return list(files)


def hole_from_options(
    size: tuple[int, int], mask: Path | None, box: str | None, ratio: float | None, count: int, seed: int, shape: str = "square"
) -> np.ndarray:
    """The hole (bool [H, W], True = missing) that exactly one of --mask, --box, --random describes."""
    where = check_hole_options(mask, box, ratio, count, shape, seed)
    if where.mask is not None:
        return read_mask(where.mask, size)
    if where.box is not None:
        return box_hole(where.box, size)
    hole = where.random
    return random_hole(size, hole.shape, hole.ratio, hole.count, hole.seed)


def check_hole_options(
    mask: Path | None, box: str | None, ratio: float | None, count: int, shape: str = "square", seed: int = 0
) -> HoleOptions:
    """The hole options validated (`options.HoleOptions`), before anything is loaded."""
    return checked(HoleOptions, HOLE_OPTIONS, mask=mask, box=box, ratio=ratio, count=count, shape=shape, seed=seed)


def check_sampling(samples: int, seed: int, strategy: str) -> Sampling:
    """--samples, --seed and --strategy validated (`options.Sampling`)."""
    return checked(Sampling, SAMPLING_OPTIONS, samples=samples, seed=seed, strategy=strategy)
