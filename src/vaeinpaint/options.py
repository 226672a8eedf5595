"""Command options validated by pydantic models, with errors that name the option typed.

`vaeinpaint inpaint --random RATIO --count N --shape S --seed K` and the server's random
hole describe the same thing, a `RandomHole`; validating it here keeps their rules (and
the params' number forms: `'0.5'` from a form field is 0.5) in one place. `option_error`
turns the first error into the command's one line through the params' formatter, naming
the option (`--random: must be in (0, 1), got 1.5`) instead of the field.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vaeinpaint.errors import ParamError
from vaeinpaint.params import OcclusionParams
from vaeinpaint.params.fields import BOX_SHAPES, Integer, Number, fail
from vaeinpaint.params.report import param_error

RandomShape = Literal["square", "rectangle", "strokes", "mixed"]  # occlusion.shape, but files: drawn, not read
RANDOM_SHAPES = get_args(RandomShape)


class RandomHole(BaseModel):
    """A hole drawn by the pipeline's mask generator: `count` squares or rectangles, each
    `ratio` of the area, or strokes (or either, `mixed`) covering `ratio` of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: RandomShape = "square"
    ratio: Annotated[Number, Field(gt=0, lt=1)]
    count: Annotated[Integer, Field(ge=1)] = 1
    seed: Integer = 0

    @model_validator(mode="after")
    def _count_is_for_boxes(self) -> RandomHole:
        if self.count != 1 and self.shape not in BOX_SHAPES:
            # `shown`: the commands' messages put the value after the option (`--count 2: ...`).
            raise fail("box_only", f"applies to squares and rectangles, not {self.shape}", at="count", shown=self.count)
        return self

    def occlusion(self) -> OcclusionParams:
        """The occlusion params that draw this hole."""
        return OcclusionParams(shape=self.shape, ratio=self.ratio, count=self.count, seed=self.seed)


def option_error(exc: ValidationError, names: dict[str, str], model: type[BaseModel] = RandomHole) -> ParamError:
    """The first error of validating `model` as a ParamError naming the option, not the field:
    names={"ratio": "--random", "count": "--count"} gives `--count 2: applies to squares and
    rectangles, not strokes`. Fields missing from `names` are named as they are."""
    return param_error(exc, model, names)
