"""params.yaml, parsed and validated in one place, on pydantic models.

Every stage calls `load_params()` before doing any work, so a bad value fails fast with one
line naming the param (`occlusion.ratio: must be in (0, 1), got 1.5`) and nothing is
written. Checks that need the data (split sizes against the number of images) live here
too, as functions the stages call with what they know.

The package: `fields` (value types, enumerations), `blocks` (the models and their
defaults, and each block's own rules), `rules` (rules on single values: paths, URLs, sizes), `report` (a pydantic error as one line),
`loading` (params.yaml into `Params`), `strokes` (the stroke brush's reach, which the occlusion rules need).
"""

from __future__ import annotations

from vaeinpaint.params.blocks import (
    BaselinesParams,
    DataParams,
    EvaluateParams,
    ModelParams,
    OcclusionParams,
    Params,
    PrepareParams,
    SplitParams,
    TrainParams,
    flatten,
)
from vaeinpaint.params.fields import (
    ARCHS,
    AUGMENTS,
    AUTO_BATCH,
    BASELINES,
    BOX_SHAPES,
    COLORS,
    CONTEXT_KINDS,
    DEVICES,
    FFHQ_VARIANTS,
    FITS,
    HEADS,
    POSITIONS,
    PRECISIONS,
    PRIORS,
    RATIO_OF,
    SHAPES,
    SIZES,
    SOURCES,
    TRAIN_MASKS,
    URL_SCHEMES,
    Integer,
    Number,
    augment_ops,
)
from vaeinpaint.params.loading import augment_value, from_dict, load_params, split_sizes, validate
from vaeinpaint.params.report import first_error, param_error
from vaeinpaint.params.rules import AUTO_KL_WEIGHT, AUTO_SAMPLES, model_path, resolve_kl_weight, resolve_samples, square_side

__all__ = [
    "ARCHS",
    "AUTO_KL_WEIGHT",
    "AUTO_SAMPLES",
    "AUTO_BATCH",
    "AUGMENTS",
    "BASELINES",
    "BOX_SHAPES",
    "COLORS",
    "CONTEXT_KINDS",
    "DEVICES",
    "FFHQ_VARIANTS",
    "FITS",
    "HEADS",
    "POSITIONS",
    "PRECISIONS",
    "PRIORS",
    "RATIO_OF",
    "SHAPES",
    "SIZES",
    "SOURCES",
    "TRAIN_MASKS",
    "URL_SCHEMES",
    "BaselinesParams",
    "DataParams",
    "EvaluateParams",
    "Integer",
    "ModelParams",
    "Number",
    "OcclusionParams",
    "Params",
    "PrepareParams",
    "SplitParams",
    "TrainParams",
    "augment_ops",
    "augment_value",
    "first_error",
    "flatten",
    "from_dict",
    "load_params",
    "model_path",
    "param_error",
    "resolve_kl_weight",
    "resolve_samples",
    "split_sizes",
    "square_side",
    "validate",
]
