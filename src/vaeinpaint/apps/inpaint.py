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
from vaeinpaint.inference.holes import box_hole, mask_image, parse_box, random_hole, read_mask
from vaeinpaint.inference.photos import load_photo
from vaeinpaint.inference.windows import DEFAULT_STRATEGY, check_strategy

RANDOM_SHAPES = ("square", "rectangle", "strokes", "mixed")  # what --random draws (occlusion.shape, but files)


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
    if samples < 1:
        raise ParamError(f"--samples: must be at least 1, got {samples}")
    outputs = sample_paths(out, samples)
    if save_mask is not None and save_mask.resolve() in {path.resolve() for path in outputs}:
        raise ParamError(f"--save-mask {save_mask}: is also where the inpainted photo goes; pick another name")
    check_strategy(strategy)
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
    check_hole_options(mask, box, ratio, count, shape)
    if mask is not None:
        return read_mask(mask, size)
    if box is not None:
        return box_hole(parse_box(box), size)
    return random_hole(size, shape, ratio, count, seed)


def check_hole_options(mask: Path | None, box: str | None, ratio: float | None, count: int, shape: str = "square") -> None:
    """Cheap checks, made before anything is loaded."""
    given = [name for name, value in (("--mask", mask), ("--box", box), ("--random", ratio)) if value is not None]
    if len(given) != 1:
        what = "none of them was given" if not given else f"got {' and '.join(given)}"
        raise ParamError(f"give exactly one of --mask, --box, --random to say where the hole is ({what})")
    if count != 1 and ratio is None:
        raise ParamError(f"--count {count}: only applies to --random")
    if shape != "square" and ratio is None:
        raise ParamError(f"--shape {shape}: only applies to --random")
    if shape not in RANDOM_SHAPES:
        raise ParamError(f"--shape {shape}: must be one of {', '.join(RANDOM_SHAPES)}")
    if count != 1 and shape not in ("square", "rectangle"):
        raise ParamError(f"--count {count}: applies to squares and rectangles, not {shape}")
    if ratio is not None and not 0 < ratio < 1:
        raise ParamError(f"--random: must be in (0, 1), got {ratio}")
    if count < 1:
        raise ParamError(f"--count: must be at least 1, got {count}")
    if box is not None:
        parse_box(box)
