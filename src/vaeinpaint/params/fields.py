"""The value types of params.yaml: the enumerations, and numbers, flags and text as YAML and DVC write them.

Each enumeration is a `Literal` (what pydantic checks) with its tuple beside it (what the
rest of the code imports), both from one list of values. The coercions run before
pydantic's own checks and raise one-line messages the error formatter only prefixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

Source = Literal["builtin", "folder", "url", "ffhq", "animals10"]
FfhqVariant = Literal["thumbnails128", "images1024"]
Fit = Literal["stretch", "center-crop"]
Color = Literal["gray", "rgb"]
Augment = Literal["flip", "crop"]  # train.augment's operations, in the order they are applied
RatioOf = Literal["area", "side"]
Shape = Literal["square", "rectangle", "strokes", "mixed", "files"]
BoxShape = Literal["square", "rectangle"]  # what occlusion.count, overlap and position apply to
Position = Literal["random", "center"]
Arch = Literal["inpaint", "paper"]
Head = Literal["shuffle", "transpose"]  # model.head: how the inpaint decoder reaches full resolution
ContextKind = Literal["dilated", "fourier"]  # model.context_kind
Prior = Literal["standard", "learned"]  # model.prior: the latent's prior, N(0, I) or a network on the visible pixels
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
TrainMasks = Literal["random", "fixed"]
Baseline = Literal["corrupted", "biharmonic", "telea"]

SOURCES = get_args(Source)
FFHQ_VARIANTS = get_args(FfhqVariant)
URL_SCHEMES = ("http", "https", "file")
FITS = get_args(Fit)
COLORS = get_args(Color)
SIZES = (32, 512)  # prepare.size range of the default model (its four stride-2 stages take any size in it)
AUGMENTS = get_args(Augment)
RATIO_OF = get_args(RatioOf)
SHAPES = get_args(Shape)
BOX_SHAPES = get_args(BoxShape)
POSITIONS = get_args(Position)
ARCHS = get_args(Arch)
HEADS = get_args(Head)
CONTEXT_KINDS = get_args(ContextKind)
PRIORS = get_args(Prior)
DEVICES = get_args(Device)
PRECISIONS = get_args(Precision)
TRAIN_MASKS = get_args(TrainMasks)
BASELINES = get_args(Baseline)


def fail(kind: str, message: str, at: str = "", **ctx: Any) -> PydanticCustomError:
    """An error whose message is final: the formatter only puts the param's name before it.
    `at` names the field when a model-level rule raises it (pydantic's location then stops
    at the block)."""
    # The message goes in through ctx, so braces in a user's value are never read as a template.
    return PydanticCustomError(kind, "{message}", {"message": message, "at": at, **ctx})


@dataclass(frozen=True)
class Says:
    """Words around a bound's message: `{lead} must be in (0, 1] {note}, got 0.0`."""

    lead: str = ""
    note: str = ""


def _number_from_text(value: str) -> float | None:
    # YAML 1.1 reads 1e-09 (no dot) as a string, and DVC writes floats that way: read it as the number it is.
    try:
        return float(value.strip())
    except ValueError:
        return None


def to_number(value: Any) -> float:
    """A float from an int, a float or a number written as text; bools are not numbers."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        number = _number_from_text(value)
    if number is None:
        raise fail("number_type", f"expected a number, got {value!r}")
    if not math.isfinite(number):
        raise fail("finite_number", f"expected a finite number, got {value!r}")
    return number


def to_integer(value: Any) -> int:
    """An int from an int, or a whole float (2.0, '2', '1e3'); 2.5 and bools are refused."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        number = _number_from_text(value)
    if number is None or not math.isfinite(number) or number != int(number):
        raise fail("int_type", f"expected an integer, got {value!r}")
    return int(number)


def to_flag(value: Any) -> bool:
    # Strict on purpose: YAML 1.1 reads yes/on as true already; 1 or "yes" as text is a mistake.
    if isinstance(value, bool):
        return value
    raise fail("bool_type", f"expected true or false, got {value!r}")


def to_text(value: Any) -> str:
    # An all-digit sha256 or a numeric name comes out of YAML as a number: keep its digits.
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise fail("string_type", f"expected a string, got {value!r}")


def to_list(value: Any) -> tuple[str, ...]:
    """A list param written as a YAML list or as comma-separated text."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise fail("list_type", f"expected a list, got {value!r}")
    return tuple(str(v) for v in value)


def augment_ops(value: str) -> tuple[str, ...]:
    """The operations of a (canonical) `train.augment`: () for none, ("flip", "crop") for flip+crop."""
    return tuple(op for op in value.split("+") if op in AUGMENTS)


AUTO_BATCH = "auto"


def to_batch_size(value: Any) -> int | str:
    """`train.batch_size`: a positive integer (as `to_integer` reads one), or `auto` (the
    training device decides: `modeling.setup.resolve_batch`)."""
    if value == AUTO_BATCH:
        return AUTO_BATCH
    try:
        number = to_integer(value)
    except PydanticCustomError:
        number = 0
    if number < 1:
        raise fail("batch_size", f"expected a positive integer or auto, got {value!r}")
    return number


def to_augment(value: Any) -> str:
    """`train.augment` as one canonical string: `none`, or its operations joined by `+` in
    the order they are applied (`flip+crop`), whether it was written `flip+crop`,
    `[crop, flip]` or `flip,crop`."""
    if value is None:
        return "none"
    if isinstance(value, str):
        parts = [v.strip() for v in value.replace(",", "+").split("+")]
    elif isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value]
    else:
        raise fail("augment_type", f"expected none, flip, crop, flip+crop or a list of them, got {value!r}")
    ops = {p for p in parts if p and p != "none"}
    unknown = sorted(ops - set(AUGMENTS))
    if unknown:
        expected = f"expected none, flip, crop, flip+crop or a list of {', '.join(AUGMENTS)}"
        raise fail("augment_value", f"unknown value {unknown[0]!r} ({expected})")
    return "+".join(op for op in AUGMENTS if op in ops) or "none"


def auto_or_at_least_zero(value: Any, read: Callable[[Any], Any], kind: str, what: str) -> Any:
    """`auto` (a default resolved later, by the model's prior) or `read(value)` >= 0; anything
    else fails as `kind`, "expected auto or `what` >= 0"."""
    if isinstance(value, str) and value.strip() == "auto":
        return "auto"
    try:
        number = read(value)
    except PydanticCustomError:
        number = -1
    if number < 0:
        raise fail(kind, f"expected auto or {what} >= 0, got {value!r}")
    return number


def to_samples(value: Any) -> int | str:
    """`evaluate.samples`: `auto` (a default that depends on the evaluated model's prior) or a
    whole number >= 0."""
    return auto_or_at_least_zero(value, to_integer, "samples", "a whole number")


def to_kl_weight(value: Any) -> float | str:
    """`train.kl_weight`: `auto` (a default that depends on `model.prior`) or a number >= 0."""
    return auto_or_at_least_zero(value, to_number, "kl_weight", "a number")


Number = Annotated[float, BeforeValidator(to_number)]
Integer = Annotated[int, BeforeValidator(to_integer)]
Flag = Annotated[bool, BeforeValidator(to_flag)]
Text = Annotated[str, BeforeValidator(to_text)]
AugmentText = Annotated[str, BeforeValidator(to_augment)]
BatchSize = Annotated[int | Literal["auto"], BeforeValidator(to_batch_size)]
Baselines = Annotated[tuple[Baseline, ...], BeforeValidator(to_list)]
Samples = Annotated[int | Literal["auto"], BeforeValidator(to_samples)]
KlWeight = Annotated[float | Literal["auto"], BeforeValidator(to_kl_weight)]
