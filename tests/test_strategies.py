"""The engine's strategies for photos larger than the model: where the model looks, at what
size, and that whatever the strategy only the hole changes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vaeinpaint.apps.models import load_model
from vaeinpaint.data.images import fit_square, to_gray_u8
from vaeinpaint.errors import DataError
from vaeinpaint.inference.compose import fill_photo
from vaeinpaint.inference.engine import completions, enlarge, inpaint_image, model_mask
from vaeinpaint.inference.windows import CROP_CONTEXT, CROP_MAX_SCALE, ORIGINAL_MAX_SIDE, TRAINED_HOLE, crop_windows, plan, thickness

WIDTH, HEIGHT = 300, 200


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(str(tiny_checkpoint), "cpu")


def photo(mode: str = "RGB", size=(WIDTH, HEIGHT), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def two_holes(size=(WIDTH, HEIGHT)) -> np.ndarray:
    hole = np.zeros(size[::-1], bool)
    hole[20:50, 30:70] = True  # a box
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    hole |= np.hypot(xx - 220, yy - 140) < 25  # a disc
    return hole


@pytest.mark.parametrize("strategy", ["resize", "crop", "original"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_only_the_hole_changes(model, strategy, mode):
    before, hole = photo(mode), two_holes()
    (after,) = inpaint_image(model, before, hole, strategy=strategy)
    assert (after.mode, after.size) == (before.mode, before.size)
    a, b = np.asarray(after), np.asarray(before)
    assert np.array_equal(a[~hole], b[~hole])
    assert (a[hole] != b[hole]).reshape(hole.sum(), -1).any(-1).mean() > 0.9


@pytest.mark.parametrize("strategy", ["resize", "crop", "original"])
def test_a_colour_model_fills_rgb_directly_with_every_strategy(tmp_path, strategy):
    from conftest import save_tiny_checkpoint

    colour = load_model(str(save_tiny_checkpoint(tmp_path / "rgb.pt", color="rgb")), "cpu")
    before, hole = photo("RGBA"), two_holes()
    (after,) = inpaint_image(colour, before, hole, strategy=strategy)
    a, b = np.asarray(after), np.asarray(before)
    assert np.array_equal(a[~hole], b[~hole]) and np.array_equal(a[..., 3], b[..., 3])  # alpha untouched
    assert (a[hole][:, :3] != b[hole][:, :3]).any(-1).mean() > 0.9
    assert (np.ptp(a[hole][:, :3].astype(int), axis=-1) > 10).mean() > 0.5  # colour, not gray


def test_strategies_differ_inside_the_hole_only(model):
    before, hole = photo(), two_holes()
    results = {s: np.asarray(inpaint_image(model, before, hole, strategy=s)[0]) for s in ("resize", "crop", "original")}
    for a, b in (("crop", "resize"), ("crop", "original"), ("resize", "original")):
        assert np.array_equal(results[a][~hole], results[b][~hole])
        assert (results[a][hole] != results[b][hole]).any(-1).mean() > 0.5, (a, b)


def test_resize_is_the_previous_pipeline_exactly(model):
    """`resize` = the command before strategies: the whole photo stretched to the model's
    size (Lanczos), the hole shrunk, the completion enlarged (bicubic) and pasted in."""
    before, hole = photo(), two_holes()
    gray = np.asarray(fit_square(to_gray_u8(before), model.size, "stretch"), np.float32) / 255.0
    (small,) = completions(model.module, gray, model_mask(hole, model.size), 1, 0, model.device)
    expected = fill_photo(before, hole, enlarge(small, before.size))
    (after,) = inpaint_image(model, before, hole, strategy="resize")
    assert np.array_equal(np.asarray(after), np.asarray(expected))


def test_crop_windows_surround_each_hole_with_context():
    hole = two_holes((1200, 800))  # a 30 x 40 box, a disc 50 px across
    hole[600:603, 100:1000] = True  # a long thin stroke: 900 px wide, 3 px thick
    hole[300:500, 700:900] = True  # a 200 px square: much thicker than the training squares (45 px)
    labels, windows = crop_windows(hole, model_size=100, fully_convolutional=True)
    assert len(windows) == 4 and labels.max() == 4
    for number, window in enumerate(windows, 1):
        rows, cols = np.nonzero(labels == number)
        top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
        assert window.top <= top and window.left <= left  # the whole hole inside its window
        assert bottom <= window.top + window.height and right <= window.left + window.width
        assert 0 <= window.top and window.top + window.height <= 800 and 0 <= window.left and window.left + window.width <= 1200
        side = max(bottom - top, right - left)
        assert max(window.height, window.width) >= min(CROP_CONTEXT * side, 800)  # context around the hole
        assert min(window.model_height, window.model_width) >= 100  # the model sees at least its training size
        assert max(window.model_height, window.model_width) <= CROP_MAX_SCALE * 100
        scale = window.model_width / window.width
        assert thickness(labels == number) * scale <= TRAINED_HOLE * 100 + 1  # no thicker than the training squares
    box, disc, square, stroke = windows  # in raster order of their first pixel
    assert (box.height, box.width) == (100, 100) and box.native  # 40 px: twice that is less than the model's size
    assert 100 <= disc.model_height <= 101 and not disc.native  # 50 px across: shrunk to 45
    assert (stroke.height, stroke.width) == (800, 1200) and (stroke.model_height, stroke.model_width) == (
        341,
        512,
    )  # only the cap shrinks it
    assert square.model_width == 100 and square.width == 445  # 200 px -> 45 px, with context all round


def test_windows_the_model_sees_are_multiples_of_16(model):
    seen = []
    hook = model.module.register_forward_pre_hook(lambda module, args, kwargs: seen.append(tuple(args[0].shape[-2:])), with_kwargs=True)
    try:
        inpaint_image(model, photo(size=(301, 203)), two_holes((301, 203)), strategy="original")
        inpaint_image(model, photo(size=(301, 203)), two_holes((301, 203)), strategy="crop")
        inpaint_image(model, photo(size=(301, 203)), two_holes((301, 203)), strategy="resize")
    finally:
        hook.remove()
    assert seen[0] == (208, 304)
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in seen[1:3])  # crop: one window per hole
    assert seen[3] == (model.size, model.size)  # resize: the training size


def test_original_refuses_photos_over_its_limit(model):
    side = ORIGINAL_MAX_SIDE + 1
    hole = np.zeros((10, side), bool)
    hole[2:5, 2:5] = True
    with pytest.raises(DataError, match=rf"strategy original: the photo is {side}x10, over {ORIGINAL_MAX_SIDE} px on a side; use crop"):
        plan("original", hole, 32, True)
    with pytest.raises(DataError, match="strategy original: this model .* only works at its training size"):
        plan("original", hole[:, :20], 32, False)


def test_samples_per_window_are_seeded(model):
    before, hole = photo(), two_holes()
    first = [np.asarray(image) for image in inpaint_image(model, before, hole, strategy="crop", samples=2, seed=3)]
    again = [np.asarray(image) for image in inpaint_image(model, before, hole, strategy="crop", samples=2, seed=3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert (first[0][hole] != first[1][hole]).any(-1).mean() > 0.5


def test_empty_or_misshapen_hole_is_refused(model):
    with pytest.raises(DataError, match="no missing pixels"):
        inpaint_image(model, photo(), np.zeros((HEIGHT, WIDTH), bool))
    with pytest.raises(DataError, match="mask: it is 20x10, the photo is 300x200"):
        inpaint_image(model, photo(), np.ones((10, 20), bool))


def test_tiny_photo_and_hole_at_the_border(model):
    """Padding mirrors even a photo smaller than 16 px; a hole touching the edges is fine."""
    before = photo(size=(7, 5))
    hole = np.zeros((5, 7), bool)
    hole[:, :2] = True
    for strategy in ("crop", "original", "resize"):
        (after,) = inpaint_image(model, before, hole, strategy=strategy)
        assert np.array_equal(np.asarray(after)[~hole], np.asarray(before)[~hole])


def test_the_commands_default_is_the_engines():
    """cli.py spells the default out (importing the engine there would load torch for every command)."""
    import inspect

    from vaeinpaint.cli import inpaint
    from vaeinpaint.inference.windows import DEFAULT_STRATEGY

    assert inspect.signature(inpaint).parameters["strategy"].default.default == DEFAULT_STRATEGY
