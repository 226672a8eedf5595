"""The models of what a user asks the engine (where the hole is, how many samples, from which
seed, with which strategy), with errors naming the option typed or the form field."""

import pytest
from pydantic import ValidationError

from vaeinpaint.errors import ParamError
from vaeinpaint.options import (
    HOLE_OPTIONS,
    MAX_SAMPLES,
    RANDOM_SHAPES,
    SAMPLING_OPTIONS,
    HoleOptions,
    RandomHole,
    Sampling,
    ServedSampling,
    checked,
    option_error,
)
from vaeinpaint.params import SHAPES

NAMES = {"ratio": "--random", "count": "--count", "shape": "--shape", "seed": "--seed"}


def test_defaults_and_number_forms():
    hole = RandomHole(ratio=0.2)
    assert (hole.shape, hole.ratio, hole.count, hole.seed) == ("square", 0.2, 1, 0)
    assert RandomHole.model_validate({"ratio": "0.3", "count": "2", "shape": "rectangle"}) == RandomHole(
        ratio=0.3, count=2, shape="rectangle"
    )
    assert set(RANDOM_SHAPES) == set(SHAPES) - {"files"}


def test_the_occlusion_params_it_draws():
    occlusion = RandomHole(ratio=0.1, count=3, shape="rectangle", seed=7).occlusion()
    assert (occlusion.shape, occlusion.ratio, occlusion.count, occlusion.seed) == ("rectangle", 0.1, 3, 7)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"ratio": 1.5}, "--random: must be in (0, 1), got 1.5"),
        ({"ratio": 0}, "--random: must be in (0, 1), got 0.0"),
        ({"ratio": "half"}, "--random: expected a number, got 'half'"),
        ({}, "--random: required"),
        ({"ratio": 0.2, "count": 0}, "--count: must be at least 1, got 0"),
        ({"ratio": 0.2, "count": 2, "shape": "strokes"}, "--count 2: applies to squares and rectangles, not strokes"),
        ({"ratio": 0.2, "count": 3, "shape": "mixed"}, "--count 3: applies to squares and rectangles, not mixed"),
        ({"ratio": 0.2, "shape": "blobs"}, "--shape blobs: must be one of square, rectangle, strokes, mixed"),
        ({"ratio": 0.2, "seed": 1.5}, "--seed: expected an integer, got 1.5"),
    ],
)
def test_errors_name_the_option(given, message):
    with pytest.raises(ValidationError) as err:
        RandomHole(**given)
    error = option_error(err.value, NAMES)
    assert isinstance(error, ParamError)
    assert str(error) == message


def test_fields_without_an_option_name_keep_their_own():
    with pytest.raises(ValidationError) as err:
        RandomHole(ratio=0.2, count=2, shape="strokes")
    assert str(option_error(err.value, {"ratio": "ratio"})) == "count 2: applies to squares and rectangles, not strokes"


def test_box_shapes_take_a_count():
    for shape in ("square", "rectangle"):
        assert RandomHole(ratio=0.1, count=4, shape=shape).count == 4


# HoleOptions: the command's flat options (ratio is --random) -> one message naming the option.
HOLE_CASES = {
    "none": ({}, "give exactly one of --mask, --box, --random to say where the hole is (none of them was given)"),
    "two": (
        {"box": "1,1,5,5", "ratio": 0.1},
        "give exactly one of --mask, --box, --random to say where the hole is (got --box and --random)",
    ),
    "count without random": ({"box": "1,1,5,5", "count": 2}, "--count 2: only applies to --random"),
    "shape without random": ({"mask": "m.png", "shape": "strokes"}, "--shape strokes: only applies to --random"),
    "unknown shape": ({"ratio": 0.2, "shape": "blobs"}, "--shape blobs: must be one of square, rectangle, strokes, mixed"),
    "ratio out of range": ({"ratio": 1.0}, "--random: must be in (0, 1), got 1.0"),
    "count for strokes": ({"ratio": 0.2, "count": 2, "shape": "strokes"}, "--count 2: applies to squares and rectangles, not strokes"),
    "no count": ({"ratio": 0.2, "count": 0}, "--count: must be at least 1, got 0"),
    "box malformed": ({"box": "1,2,3"}, "--box 1,2,3: expected x,y,w,h in whole pixels, e.g. 10,20,40,30"),
    "box empty": ({"box": "1,2,0,4"}, "--box 1,2,0,4: x and y must be >= 0, w and h >= 1"),
}


@pytest.mark.parametrize("case", list(HOLE_CASES))
def test_hole_options_name_the_option(case):
    given, message = HOLE_CASES[case]
    with pytest.raises(ParamError) as err:
        checked(HoleOptions, HOLE_OPTIONS, **given)
    assert str(err.value) == message


def test_hole_options_say_where():
    from vaeinpaint.inference.holes import Box

    assert checked(HoleOptions, HOLE_OPTIONS, box="3,4,5,6").box == Box(3, 4, 5, 6)
    random = checked(HoleOptions, HOLE_OPTIONS, ratio="0.25", count="2", shape="rectangle", seed=9).random
    assert random == RandomHole(ratio=0.25, count=2, shape="rectangle", seed=9)
    where = checked(HoleOptions, HOLE_OPTIONS, mask="holes/m.png")
    assert (str(where.mask), where.box, where.random) == ("holes/m.png", None, None)


@pytest.mark.parametrize(
    "model, names, shown, given, message",
    [
        (Sampling, SAMPLING_OPTIONS, True, {"samples": 0}, "--samples: must be at least 1, got 0"),
        (Sampling, SAMPLING_OPTIONS, True, {"seed": -1}, "--seed: must be at least 0, got -1"),
        (Sampling, SAMPLING_OPTIONS, True, {"strategy": "zoom"}, "--strategy zoom: must be one of resize, crop, original"),
        (ServedSampling, None, False, {"samples": 17}, f"samples: must be from 1 to {MAX_SAMPLES}, got 17"),
        (ServedSampling, None, False, {"seed": 2**32}, f"seed: must be from 0 to {2**32 - 1}, got {2**32}"),
        (ServedSampling, None, False, {"strategy": "zoom"}, "strategy: must be one of resize, crop, original"),
    ],
)
def test_sampling_errors(model, names, shown, given, message):
    with pytest.raises(ParamError) as err:
        checked(model, names, shown=shown, **given)
    assert str(err.value) == message


def test_the_command_has_no_upper_bound_the_server_has():
    assert checked(Sampling, samples=100).samples == 100
    assert checked(ServedSampling, samples="16", seed="7").seed == 7
    assert Sampling().strategy == ServedSampling().strategy
