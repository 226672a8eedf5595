import itertools

import numpy as np
import pytest
import torch

from vaeinpaint.masks.boxes import RandomMasks, boxes_table, boxes_to_masks, occlude, sample_boxes
from vaeinpaint.params import OcclusionParams, square_side

IDS = [f"{i:016x}" for i in range(60)]


def overlaps(a, b, side):
    return abs(a[0] - b[0]) < side and abs(a[1] - b[1]) < side


@pytest.mark.parametrize(
    "ratio, ratio_of, count, side",
    [(0.2, "area", 1, 45), (0.4, "area", 1, 63), (0.2, "area", 2, 45), (0.2, "side", 1, 20), (0.2, "side", 3, 20)],
)
def test_mask_area_and_count(ratio, ratio_of, count, side):
    params = OcclusionParams(ratio=ratio, ratio_of=ratio_of, count=count)
    masks, corners = occlude(IDS, 100, params)
    assert masks.shape == (len(IDS), 100, 100) and masks.dtype == np.uint8
    assert corners.shape == (len(IDS), count, 2)
    # Squares never overlap, so every mask covers exactly count * side^2 pixels.
    assert set(masks.sum(axis=(1, 2)).tolist()) == {count * side * side}
    assert corners.min() >= 0 and corners.max() <= 100 - side
    for boxes in corners:
        assert not any(overlaps(a, b, side) for a, b in itertools.combinations(boxes, 2))


def test_area_ratio_is_a_fifth_of_the_image():
    masks, _ = occlude(IDS[:5], 100, OcclusionParams(ratio=0.2))
    assert abs(masks[0].mean() - 0.2) < 0.003  # 45 x 45 = 2025 of 10000 pixels


def test_overlap_allowed_can_overlap():
    masks, corners = occlude(IDS, 100, OcclusionParams(ratio=0.2, count=3, overlap=True))
    assert (masks.sum(axis=(1, 2)) < 3 * 45 * 45).any()


def test_masks_are_deterministic_and_stable():
    params = OcclusionParams(ratio=0.2, count=2, seed=5)
    a, _ = occlude(IDS, 100, params)
    b, _ = occlude(IDS, 100, params)
    assert np.array_equal(a, b)
    # An image keeps its masks when others are added or removed.
    c, _ = occlude(IDS[10:] + ["ffffffffffffffff"], 100, params)
    assert np.array_equal(a[10:], c[:-1])
    d, _ = occlude(IDS, 100, OcclusionParams(ratio=0.2, count=2, seed=6))
    assert not np.array_equal(a, d)


def test_tight_packing_still_places_every_square():
    generator = torch.Generator().manual_seed(0)
    boxes = sample_boxes(50, 100, 33, 9, False, generator)  # nine 33 px squares fill 99 x 99
    masks = boxes_to_masks(boxes, 100, 33)
    assert set(masks.sum(dim=(1, 2, 3)).tolist()) == {9 * 33 * 33}


def test_boxes_table_matches_masks():
    params = OcclusionParams(ratio=0.2, count=2)
    side = square_side(100, params.ratio, params.ratio_of)
    masks, corners = occlude(IDS[:4], 100, params)
    table = boxes_table(IDS[:4], "test", corners, side)
    assert len(table) == 8 and set(table["w"]) == {45}
    for i, image_id in enumerate(IDS[:4]):
        rebuilt = np.zeros((100, 100), np.uint8)
        for row in table[table["id"] == image_id].itertuples():
            rebuilt[row.y : row.y + row.h, row.x : row.x + row.w] = 1
        assert np.array_equal(rebuilt, masks[i])


def test_training_masks_are_reproducible_per_epoch():
    random_masks = RandomMasks(100, OcclusionParams(ratio=0.2, count=2), seed=1, device=torch.device("cpu"))
    first = random_masks.draw(16, random_masks.for_epoch(3))
    again = random_masks.draw(16, random_masks.for_epoch(3))
    other = random_masks.draw(16, random_masks.for_epoch(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert set(first.sum(dim=(1, 2, 3)).tolist()) == {2 * 45 * 45}
