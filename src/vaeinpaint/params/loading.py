"""Reading params: params.yaml or a mapping into validated `Params`, and the checks that
need the data (split sizes against the number of images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vaeinpaint.errors import ParamError
from vaeinpaint.params.blocks import Params, SplitParams
from vaeinpaint.params.fields import to_augment
from vaeinpaint.params.report import param_error
from vaeinpaint.paths import project_root


def load_params(path: str | Path = "params.yaml", *, check_paths: bool = True, base: Path | None = None) -> Params:
    """Read params.yaml, fill defaults, validate; raise ParamError on the first problem.

    Relative paths in it (`data.path`) are taken from `base`, by default the project root
    (not the working directory, which for a queued experiment is a temporary copy)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ParamError(f"{path}: expected a mapping of param blocks")
    return _validated(raw, check_paths, project_root() if base is None else base)


def from_dict(raw: dict[str, Any], *, check_paths: bool = False, base: Path = Path(".")) -> Params:
    """Params from a mapping of blocks (as params.yaml reads); files it names are looked at
    only with `check_paths` (relative ones from `base`)."""
    return _validated(raw, check_paths, base)


def validate(params: Params, *, check_paths: bool = True, base: Path = Path(".")) -> None:
    """Check params built in code (keyword construction and `model_copy` check less) as
    params.yaml is checked; raise ParamError on the first problem."""
    _validated(params.model_dump(), check_paths, base)


def _validated(raw: dict[str, Any], check_paths: bool, base: Path) -> Params:
    try:
        return Params.model_validate(raw, context={"check_paths": check_paths, "base": base})
    except ValidationError as exc:
        raise param_error(exc, Params) from None


def augment_value(value: Any) -> str:
    """`train.augment` as one canonical string: `none`, or its operations joined by `+` in
    the order they are applied (`flip+crop`), whether it was written `flip+crop`,
    `[crop, flip]` or `flip,crop`."""
    try:
        return to_augment(value)
    except Exception as exc:  # PydanticCustomError: the message the formatter would prefix
        raise ParamError(f"train.augment: {exc}") from None


def split_sizes(split: SplitParams, n_images: int) -> tuple[int, int]:
    """(n_train, n_test) for `n_images`, or ParamError if the data is too small."""
    if split.train < 1:
        n_test = int(round(split.test * n_images))
        n_train = int(round(split.train * n_images))
        n_train = min(n_train, n_images - n_test)
    else:
        n_train, n_test = int(split.train), int(split.test)
        if n_train + n_test > n_images:
            raise ParamError(
                f"split.train + split.test: {n_train} + {n_test} = {n_train + n_test} images asked for, "
                f"but the prepared data has only {n_images}"
            )
    if n_test < 1 or n_train < 1:
        raise ParamError(f"split.train/split.test: {n_images} images give {n_train} train and {n_test} test; both need at least one")
    return n_train, n_test
