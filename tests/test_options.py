"""RandomHole and option_error: the random hole of `vaeinpaint inpaint` and the server, with
errors naming the option typed, in the words `check_hole_options` uses."""

import pytest
from pydantic import ValidationError

from vaeinpaint.errors import ParamError
from vaeinpaint.options import RANDOM_SHAPES, RandomHole, option_error
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
