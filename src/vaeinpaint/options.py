"""What a user asks of the inference engine, validated by pydantic models, with errors that
name the option typed.

- `HoleOptions`: where the hole is, exactly one of `--mask`, `--box`, `--random` (a
  `RandomHole`: `--random RATIO --count N --shape S --seed K`, drawn by the pipeline's mask
  generator with the occlusion params' own types and bounds);
- `Sampling`: `--samples`, `--seed`, `--strategy` of the command, and `ServedSampling`, the
  same fields of the server's form with the bounds one request may cost.

`vaeinpaint inpaint`, its folder mode and the server validate through these models, so each
rule is written once (and the params' number forms hold: `'0.5'` from a form field is 0.5).
`option_error` turns the first error into one line through the params' formatter, naming the
option (`--random: must be in (0, 1), got 1.5`) instead of the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from vaeinpaint.errors import ParamError
from vaeinpaint.inference.holes import Box, box_problem, parse_box
from vaeinpaint.inference.windows import DEFAULT_STRATEGY, STRATEGIES
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


def to_box(value: Any) -> Box:
    """A box from `x,y,w,h` text (or a Box)."""
    if isinstance(value, Box):
        return value
    problem = box_problem(str(value))
    if problem:
        raise fail("box", problem, shown=value)
    return parse_box(str(value))


class HoleOptions(BaseModel):
    """Where the hole is: a mask file (a folder of them for a folder of photos), a box in the
    photo's pixels, or a random hole. Built from the command's flat options (`ratio` is
    `--random`), which `HOLE_OPTIONS` names in messages."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    mask: Path | None = None
    box: Annotated[Box, BeforeValidator(to_box)] | None = None
    random: RandomHole | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one_place(cls, data: Any) -> Any:
        # Which options were given decides before any value is read: a count without --random
        # is a mistake whatever the count.
        if not isinstance(data, dict) or "random" in data:
            return data
        data = dict(data)
        ratio, count, shape, seed = (data.pop(k, d) for k, d in (("ratio", None), ("count", 1), ("shape", "square"), ("seed", 0)))
        given = [
            name
            for name, key in (("--mask", "mask"), ("--box", "box"), ("--random", "ratio"))
            if (ratio if key == "ratio" else data.get(key)) is not None
        ]
        if len(given) != 1:
            what = "none of them was given" if not given else f"got {' and '.join(given)}"
            raise fail("one_place", f"give exactly one of --mask, --box, --random to say where the hole is ({what})")
        if ratio is None:
            for key, value, default in (("count", count, 1), ("shape", shape, "square")):
                if value != default:
                    raise fail("random_only", "only applies to --random", at=key, shown=value)
        else:
            data["random"] = {"ratio": ratio, "count": count, "shape": shape, "seed": seed}
        return data


HOLE_OPTIONS = {"ratio": "--random", "count": "--count", "shape": "--shape", "seed": "--seed", "box": "--box", "mask": "--mask"}

Strategy = Literal[STRATEGIES]  # how a photo is fitted to the model (inference.windows)
MAX_SAMPLES = 16  # what one request to the server may ask: K completions cost K passes
MAX_SEED = 2**32 - 1  # numpy's seeds


class Sampling(BaseModel):
    """How many completions (1: the most likely; K > 1: drawn from the latent), from which
    seed, with the photo fitted to the model how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: Annotated[Integer, Field(ge=1)] = 1
    seed: Annotated[Integer, Field(ge=0)] = 0
    strategy: Strategy = DEFAULT_STRATEGY


class ServedSampling(Sampling):
    """`Sampling` as the server's form fields: bounded, as one request may cost only so much."""

    samples: Annotated[Integer, Field(ge=1, le=MAX_SAMPLES)] = 1
    seed: Annotated[Integer, Field(ge=0, le=MAX_SEED)] = 0


SAMPLING_OPTIONS = {"samples": "--samples", "seed": "--seed", "strategy": "--strategy"}

Model = TypeVar("Model", bound=BaseModel)


def checked(model: type[Model], names: dict[str, str] | None = None, *, shown: bool = True, **values: Any) -> Model:
    """`model` validated from `values`, or a ParamError naming the option (see `option_error`)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise option_error(exc, names or {}, model, shown=shown) from None


def option_error(exc: ValidationError, names: dict[str, str], model: type[BaseModel] = RandomHole, *, shown: bool = True) -> ParamError:
    """The first error of validating `model` as a ParamError naming the option, not the field:
    names={"ratio": "--random", "count": "--count"} gives `--count 2: applies to squares and
    rectangles, not strokes`. Fields missing from `names` are named as they are. With `shown`
    False, the value is not repeated after the name (`strategy: must be one of ...`), as a
    form field's message reads."""
    return param_error(exc, model, names, shown=shown)
