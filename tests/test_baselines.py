import numpy as np
import pytest

from vaeinpaint.evaluation.baselines import evenly_spaced, fill, fill_all
from vaeinpaint.evaluation.evaluate import score


def ramp(size=48) -> np.ndarray:
    """A linear ramp: biharmonic continuation reproduces it exactly."""
    return np.tile(np.linspace(40, 200, size), (size, 1)).round().astype(np.uint8)


def hole(size=48) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[14:34, 10:30] = 1
    return mask


def test_corrupted_is_the_damaged_input():
    image, mask = ramp(), hole()
    restored = fill("corrupted", image, mask)
    assert np.all(restored[mask == 1] == 0)
    assert np.allclose(restored[mask == 0], image[mask == 0] / 255.0)


def test_biharmonic_reproduces_a_ramp():
    image, mask = ramp(), hole()
    table = score(image[None], mask[None], fill("biharmonic", image, mask)[None])
    assert table["hole_psnr"][0] > 45  # up to 8-bit rounding of the ramp
    assert table["ssim"][0] > 0.999


def test_telea_fills_a_flat_image_almost_exactly():
    image, mask = np.full((48, 48), 120, np.uint8), hole()
    restored = fill("telea", image, mask) * 255
    assert np.all(restored[mask == 0] == 120)
    assert np.abs(restored[mask == 1] - 120).max() <= 3  # fast marching's weighted estimate drifts a little


def test_corrupted_scores_a_known_value():
    image, mask = np.full((48, 48), 102, np.uint8), hole()  # 0.4 everywhere; the hole becomes 0
    table = score(image[None], mask[None], fill("corrupted", image, mask)[None])
    assert table["hole_l1"][0] == pytest.approx(0.4)
    assert table["hole_psnr"][0] == pytest.approx(10 * np.log10(1 / 0.16))


def test_fill_all_in_parallel_equals_one_by_one():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (130, 24, 24), dtype=np.uint8)
    masks = np.zeros_like(images)
    masks[:, 6:14, 6:14] = 1
    parallel = fill_all("telea", images, masks, workers=2)
    serial = np.stack([fill("telea", im, m) for im, m in zip(images, masks)])
    assert np.array_equal(parallel, serial)


def test_evenly_spaced_sample():
    assert evenly_spaced(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert evenly_spaced(101, 3).tolist() == [0, 50, 100]
