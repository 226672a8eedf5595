"""The teaser's and the K-completions figure's material: restorations of a few test images by
a model and by the fills, and the pictures drawn from them."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from vaeinpaint.modeling.model import build_model
from vaeinpaint.report.panels import completions_figure, teaser
from vaeinpaint.report.showcase import COLUMNS, HOLES, completions, showcase

from conftest import synthetic_images, tiny_params


@pytest.fixture(scope="module")
def material():
    torch.manual_seed(0)
    model = build_model(tiny_params(model={"prior": "learned"}).model).eval()
    images = synthetic_images(10, 32)
    masks = np.zeros((10, 32, 32), np.uint8)
    masks[:, 8:20, 10:22] = 1
    return model, images, masks


def test_every_column_keeps_the_known_pixels_and_the_hole_is_black(material):
    model, images, masks = material
    arrays = showcase(model, images, masks, count=3)
    assert set(arrays) == {f"{h}_{c}" for h in HOLES for c in COLUMNS}
    for kind in HOLES:
        truth, hole = arrays[f"{kind}_truth"], arrays[f"{kind}_hole"]
        missing = hole == 0
        missing &= truth != 0  # the hole is black where the truth is not
        assert missing.any()
        assert arrays[f"{kind}_truth"].dtype == np.uint8 and truth.shape == (3, 32, 32)
        known = ~np.isin(np.arange(truth.size).reshape(truth.shape), []) & (hole == truth) & (truth != 0)
        for name in ("ours", "biharmonic", "telea"):
            # outside the hole every method shows the photo's own pixels
            assert np.array_equal(arrays[f"{kind}_{name}"][known], truth[known]), (kind, name)
    square = arrays["square_hole"]
    assert (square[:, 8:20, 10:22] == 0).all() and not np.array_equal(arrays["square_ours"], arrays["square_truth"])


def test_strokes_are_drawn_per_image_and_repeat_with_the_seed(material):
    model, images, masks = material
    a, b = showcase(model, images, masks, count=3, seed=1), showcase(model, images, masks, count=3, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    holes = a["strokes_hole"] == 0
    assert not np.array_equal(holes[0], holes[1])  # another stroke pattern for every image
    other = showcase(model, images, masks, count=3, seed=2)
    assert not np.array_equal(other["strokes_hole"], a["strokes_hole"])


def test_k_completions_differ_from_one_another_and_repeat_with_the_seed(material):
    model, images, masks = material
    first, again = completions(model, images, masks, k=4, count=2), completions(model, images, masks, k=4, count=2)
    assert first["draws"].shape == (4, 2, 32, 32)
    assert np.array_equal(first["draws"], again["draws"])
    assert not np.array_equal(first["draws"][0], first["draws"][1])
    outside = masks[:2] == 0
    assert np.array_equal(first["draws"][2][outside], first["truth"][outside])


def test_the_pictures_have_a_tile_per_column_and_row_and_the_same_bytes_each_time(material):
    model, images, masks = material
    arrays = showcase(model, images, masks, count=2)
    picture = teaser([("faces", arrays), ("mixed", arrays)], scale=2)
    rows = 2 * len(HOLES)  # two experiments, one image under each hole kind
    assert picture.height > rows * 64 and picture.width > len(COLUMNS) * 64
    tile = np.asarray(picture)[:, -64:]  # the right-most column: the truth, enlarged 2x

    def png(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    assert png(picture) == png(teaser([("faces", arrays), ("mixed", arrays)], scale=2))
    assert tile.std() > 0
    k_picture = completions_figure(completions(model, images, masks, k=3, count=2))
    assert k_picture.width > (3 + 3) * 64


def test_the_report_draws_the_teaser_and_k_completions_from_the_committed_showcases(material, tmp_path):
    """render(): the teaser from the showcases of presets' `teaser` experiments that were run,
    in that order, and K completions for an experiment with a learned prior; the fragments
    link them; re-rendered from the folder alone, the same bytes."""
    from vaeinpaint.presets import load_presets
    from vaeinpaint.report.fragments import fragments
    from vaeinpaint.report.pictures import completions_path
    from vaeinpaint.report.render import render
    from vaeinpaint.report.showcase import npz_bytes

    model, images, masks = material
    arrays = showcase(model, images, masks, count=2)
    arrays |= {f"completion_{k}": v for k, v in completions(model, images, masks, k=3, count=2).items()}
    presets = load_presets()
    name = presets.teaser[0]
    record = {"name": name, "showcase": f"showcase/{name}.npz", "completions": completions_path(name), "notes": []}
    out = tmp_path / "report"
    written = render({"experiments": [record]}, out, presets, files={record["showcase"]: npz_bytes(arrays)})
    assert out / "teaser.png" in written and out / completions_path(name) in written
    parts = fragments({"experiments": [record]}, presets, "results")
    assert "](results/teaser.png)" in parts["teaser"] and f"](results/{completions_path(name)})" in parts["completions"]
    first = (out / "teaser.png").read_bytes()
    render({"experiments": [record]}, tmp_path / "again", presets, source=out)
    assert (tmp_path / "again" / "teaser.png").read_bytes() == first
    assert npz_bytes(arrays) == npz_bytes(dict(reversed(list(arrays.items()))))  # bytes independent of time and order
    none = fragments({"experiments": [{"name": "other", "notes": []}]}, presets)
    assert "teaser.png" not in none["teaser"] and ".png" not in none["completions"]
